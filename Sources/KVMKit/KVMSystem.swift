import CKVM
import Glibc
import SystemPackage

/// An open `/dev/kvm` (or another path, for tests).  Owns its fd.
public final class KVMSystem {
    public let path: String
    let fd: FileDescriptor

    /// Opens the device read-write, as every KVM user must.
    public init(path: String = "/dev/kvm") throws(KVMError) {
        self.path = path
        do {
            fd = try FileDescriptor.open(FilePath(path), .readWrite, options: [.closeOnExec])
        } catch let e as Errno {
            throw KVMError("open(\(path))", .failed(errno: e))
        } catch {
            throw KVMError("open(\(path))", .protocolViolation("\(error)"))
        }
    }

    deinit { try? fd.close() }

    /// The only KVM_GET_API_VERSION answer a KVM device gives (KVM_API_VERSION since 2.6.22).
    public static let expectedAPIVersion = 12

    public func apiVersion() throws(KVMError) -> Int {
        try checked(ckvm_get_api_version(fd.rawValue), "KVM_GET_API_VERSION")
    }

    /// KVM_CHECK_EXTENSION on the system fd: 0 means absent; masks (SYNC_REGS, GUEST_DEBUG2) are returned whole.
    public func checkExtension(_ cap: Capability) throws(KVMError) -> Int {
        try checkExtension(raw: cap.rawValue, name: cap.name)
    }

    /// For caps without a fixed number yet (unmerged: the run configures the number; see CheckKit's ProposedCapabilities).
    public func checkExtension(raw: Int, name: String) throws(KVMError) -> Int {
        try checked(ckvm_check_extension(fd.rawValue, raw), "KVM_CHECK_EXTENSION(\(name))")
    }

    public func vcpuMmapSize() throws(KVMError) -> Int {
        let size = try checked(ckvm_get_vcpu_mmap_size(fd.rawValue), "KVM_GET_VCPU_MMAP_SIZE")
        guard size >= MemoryLayout<kvm_run>.size else {
            throw KVMError("KVM_GET_VCPU_MMAP_SIZE", .protocolViolation("\(size) bytes is smaller than struct kvm_run"))
        }
        return size
    }

    public func supportedCPUID() throws(KVMError) -> [kvm_cpuid_entry2] {
        var capacity: UInt32 = 256
        while true {
            var entries = [kvm_cpuid_entry2](repeating: kvm_cpuid_entry2(), count: Int(capacity))
            var count = capacity
            let r = ckvm_get_supported_cpuid(fd.rawValue, &entries, &count)
            if r == -Int(E2BIG), capacity < 4096 { capacity *= 2; continue }
            _ = try checked(r, "KVM_GET_SUPPORTED_CPUID")
            return Array(entries.prefix(Int(count)))
        }
    }

    public func msrIndexList() throws(KVMError) -> [UInt32] {
        var count: UInt32 = 0
        let probe = ckvm_get_msr_index_list(fd.rawValue, nil, &count)
        if probe < 0 && probe != -Int(E2BIG) { _ = try checked(probe, "KVM_GET_MSR_INDEX_LIST") }
        var indices = [UInt32](repeating: 0, count: Int(count))
        _ = try checked(ckvm_get_msr_index_list(fd.rawValue, &indices, &count), "KVM_GET_MSR_INDEX_LIST")
        return Array(indices.prefix(Int(count)))
    }

    public func createVM(type: Int = 0) throws(KVMError) -> VirtualMachine {
        let vmfd = try checked(ckvm_create_vm(fd.rawValue, UInt(type)), "KVM_CREATE_VM")
        return VirtualMachine(system: self, fd: FileDescriptor(rawValue: CInt(vmfd)))
    }
}
