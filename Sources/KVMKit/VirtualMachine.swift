import CKVM
import SystemPackage

/// A VM fd, its memory slots and vCPUs.  Keeps its system alive.
public final class VirtualMachine {
    public let system: KVMSystem
    let fd: FileDescriptor
    private var memory: [GuestMemory] = []

    init(system: KVMSystem, fd: FileDescriptor) {
        self.system = system
        self.fd = fd
    }

    deinit {
        try? fd.close()
    }

    /// KVM_CHECK_EXTENSION on the VM fd (some caps are per VM type).
    public func checkExtension(_ cap: Capability) throws(KVMError) -> Int {
        try checked(ckvm_check_extension(fd.rawValue, cap.rawValue), "KVM_CHECK_EXTENSION(\(cap.name)) on VM")
    }

    /// Backs `size` bytes of guest-physical memory at `guestPhysical` with anonymous host memory.
    @discardableResult
    public func addMemory(slot: UInt32, guestPhysical: UInt64, size: Int) throws(KVMError) -> GuestMemory {
        let region = try GuestMemory(guestPhysical: guestPhysical, size: size)
        _ = try checked(ckvm_set_user_memory_region(fd.rawValue, slot, 0, guestPhysical, UInt64(size),
                                                    region.hostAddress), "KVM_SET_USER_MEMORY_REGION")
        memory.append(region)
        return region
    }

    /// The memory region holding `gpa`, if any.
    public func memory(containing gpa: UInt64) -> GuestMemory? {
        memory.first { $0.contains(gpa, count: 1) }
    }

    public func createIRQChip() throws(KVMError) {
        _ = try checked(ckvm_create_irqchip(fd.rawValue), "KVM_CREATE_IRQCHIP")
    }

    public func enableCapability(_ cap: Capability, arg0: UInt64 = 0) throws(KVMError) {
        _ = try checked(ckvm_enable_cap(fd.rawValue, UInt32(cap.rawValue), arg0), "KVM_ENABLE_CAP(\(cap.name))")
    }

    /// KVM_GET_ONE_REG issued on the VM fd (a vCPU ioctl on the wrong fd), for errno probes.
    public func getOneRegOnVMDescriptor(_ id: UInt64) -> KVMError? {
        var value: UInt64 = 0
        let r = withUnsafeMutablePointer(to: &value) { ckvm_get_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        return r < 0 ? KVMError("KVM_GET_ONE_REG on a VM fd", .failed(errno: Errno(rawValue: CInt(-r)))) : nil
    }

    public func createVCPU(id: Int = 0) throws(KVMError) -> VCPU {
        let vcpufd = try checked(ckvm_create_vcpu(fd.rawValue, UInt(id)), "KVM_CREATE_VCPU")
        let descriptor = FileDescriptor(rawValue: CInt(vcpufd))
        do {
            return try VCPU(vm: self, fd: descriptor, mmapSize: system.vcpuMmapSize())
        } catch {
            try? descriptor.close()
            throw error
        }
    }
}

/// Host memory that backs a guest-physical range.  All access is bounds-checked.
public final class GuestMemory {
    public let guestPhysical: UInt64
    public let size: Int
    private let base: UnsafeMutableRawPointer

    init(guestPhysical: UInt64, size: Int) throws(KVMError) {
        var err: CInt = 0
        guard let p = ckvm_mmap_anonymous(size, &err) else {
            throw KVMError("mmap(\(size) bytes)", .failed(errno: Errno(rawValue: err)))
        }
        self.guestPhysical = guestPhysical
        self.size = size
        self.base = p
    }

    deinit { _ = ckvm_munmap(base, size) }

    var hostAddress: UInt64 { UInt64(UInt(bitPattern: base)) }

    public func contains(_ gpa: UInt64, count: Int) -> Bool {
        gpa >= guestPhysical && gpa - guestPhysical + UInt64(count) <= UInt64(size)
    }

    private func offset(_ gpa: UInt64, _ count: Int) -> Int {
        precondition(contains(gpa, count: count),
                     "guest access [0x\(String(gpa, radix: 16)), +\(count)) outside region at 0x\(String(guestPhysical, radix: 16)) of \(size) bytes")
        return Int(gpa - guestPhysical)
    }

    public func write(_ bytes: [UInt8], at gpa: UInt64) {
        let o = offset(gpa, bytes.count)
        bytes.withUnsafeBytes { (base + o).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    public func read(at gpa: UInt64, count: Int) -> [UInt8] {
        let o = offset(gpa, count)
        return Array(UnsafeRawBufferPointer(start: base + o, count: count))
    }

    public func store<T: FixedWidthInteger>(_ value: T, at gpa: UInt64) {
        let o = offset(gpa, MemoryLayout<T>.size)
        (base + o).storeBytes(of: value.littleEndian, toByteOffset: 0, as: T.self)
    }

    public func load<T: FixedWidthInteger>(_ type: T.Type = T.self, at gpa: UInt64) -> T {
        let o = offset(gpa, MemoryLayout<T>.size)
        return T(littleEndian: (base + o).loadUnaligned(as: T.self))
    }

    public func fill(_ byte: UInt8, at gpa: UInt64, count: Int) {
        let o = offset(gpa, count)
        (base + o).initializeMemory(as: UInt8.self, repeating: byte, count: count)
    }
}
