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

    public func createIRQChip() throws(KVMError) {
        _ = try checked(ckvm_create_irqchip(fd.rawValue), "KVM_CREATE_IRQCHIP")
    }

    /// KVM_GET_ONE_REG issued on the VM fd (a vCPU ioctl on the wrong fd), for errno probes.
    public func tryGetOneReg(_ id: UInt64) -> Result<UInt64, KVMError> {
        var value: UInt64 = 0
        // SAFETY: the kernel writes at most 8 bytes into `value`, which outlives the call.
        let r = withUnsafeMutablePointer(to: &value) { ckvm_get_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        return attempt(r, "KVM_GET_ONE_REG on a VM fd").map { _ in value }
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
