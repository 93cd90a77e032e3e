import CKVM
import SystemPackage

// Register state through the vCPU ioctls: GET/SET of REGS, SREGS, EVENTS, DEBUGREGS, guest
// debug, CPUID, MSRs, ONE_REG and the register list.

extension VCPU {
    public func regs() throws(KVMError) -> kvm_regs { try get(kvm_regs(), "KVM_GET_REGS", ckvm_get_regs) }
    public func setRegs(_ r: kvm_regs) throws(KVMError) { try set(r, "KVM_SET_REGS", ckvm_set_regs) }
    public func sregs() throws(KVMError) -> kvm_sregs { try get(kvm_sregs(), "KVM_GET_SREGS", ckvm_get_sregs) }
    public func setSregs(_ s: kvm_sregs) throws(KVMError) { try set(s, "KVM_SET_SREGS", ckvm_set_sregs) }
    public func events() throws(KVMError) -> kvm_vcpu_events { try get(kvm_vcpu_events(), "KVM_GET_VCPU_EVENTS", ckvm_get_vcpu_events) }
    public func setEvents(_ e: kvm_vcpu_events) throws(KVMError) { try set(e, "KVM_SET_VCPU_EVENTS", ckvm_set_vcpu_events) }
    public func debugRegs() throws(KVMError) -> kvm_debugregs { try get(kvm_debugregs(), "KVM_GET_DEBUGREGS", ckvm_get_debugregs) }
    public func setDebugRegs(_ d: kvm_debugregs) throws(KVMError) { try set(d, "KVM_SET_DEBUGREGS", ckvm_set_debugregs) }

    /// A GET ioctl that fills one uAPI struct.  SAFETY: `ioctl` is a ckvm wrapper taking a
    /// pointer to exactly one T.
    private func get<T>(_ initial: T, _ name: String, _ ioctl: (CInt, UnsafeMutablePointer<T>) -> Int) throws(KVMError) -> T {
        var value = initial
        // SAFETY: the ioctl writes one T through a pointer to `value`, which outlives the call.
        _ = try checked(ioctl(fd.rawValue, &value), name)
        return value
    }

    /// A SET ioctl that reads one uAPI struct.  SAFETY: as `get`.
    private func set<T>(_ value: T, _ name: String, _ ioctl: (CInt, UnsafePointer<T>) -> Int) throws(KVMError) {
        var copy = value
        // SAFETY: the ioctl reads one T through a pointer to `copy`, which outlives the call.
        _ = try checked(ioctl(fd.rawValue, &copy), name)
    }

    /// KVM_SET_GUEST_DEBUG with the host's breakpoints (DR0–DR3 by index) and DR7.
    public func setGuestDebug(_ control: GuestDebugControl, debugRegs: GuestDebugRegisters = GuestDebugRegisters()) throws(KVMError) {
        try setGuestDebug(rawControl: control.rawValue, debugRegs: debugRegs)
    }

    /// As setGuestDebug, with arbitrary control bits (to probe undefined ones).
    public func setGuestDebug(rawControl: UInt32, debugRegs: GuestDebugRegisters = GuestDebugRegisters()) throws(KVMError) {
        var dbg = kvm_guest_debug()
        dbg.control = rawControl
        let slots = debugRegs.slots
        // SAFETY: debugreg is a u64[8] array, and `slots` has exactly 8 entries.
        withUnsafeMutableBytes(of: &dbg.arch.debugreg) { raw in
            for (i, v) in slots.enumerated() { raw.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) }
        }
        _ = try checked(ckvm_set_guest_debug(fd.rawValue, &dbg), "KVM_SET_GUEST_DEBUG")
    }

    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(KVMError) {
        _ = try checked(ckvm_set_cpuid2(fd.rawValue, entries, UInt32(entries.count)), "KVM_SET_CPUID2")
    }

    /// KVM_TRANSLATE: the guest-physical address `linear` maps to, as the vCPU's MMU sees it now.
    public func translate(_ linear: UInt64) throws(KVMError) -> kvm_translation {
        var tr = kvm_translation()
        tr.linear_address = linear
        _ = try checked(ckvm_translate(fd.rawValue, &tr), "KVM_TRANSLATE")
        return tr
    }

    /// Every register class KVM_RUN may change, for restoring a vCPU a race left in shutdown.
    public func saveState() throws(KVMError) -> SavedVCPUState {
        SavedVCPUState(regs: try regs(), sregs: try sregs(), events: try events())
    }

    public func restore(_ state: SavedVCPUState) throws(KVMError) {
        try setSregs(state.sregs)
        try setRegs(state.regs)
        try setEvents(state.events)
    }

    // MARK: MSRs and ONE_REG

    /// KVM_GET_MSRS: returns the values of the MSRs the kernel processed (it stops at the first failure).
    public func getMSRs(_ indices: [UInt32]) throws(KVMError) -> [UInt64] {
        var values = [UInt64](repeating: 0, count: indices.count)
        let n = try checked(ckvm_get_msrs(fd.rawValue, indices, &values, UInt32(indices.count)), "KVM_GET_MSRS")
        return Array(values.prefix(n))
    }

    /// One MSR through KVM_GET_MSRS; nil when the kernel processed none (unknown or refused MSR).
    public func getMSR(_ index: UInt32) throws(KVMError) -> UInt64? {
        try getMSRs([index]).first
    }

    /// KVM_SET_MSRS: returns how many leading MSRs the kernel accepted.
    @discardableResult
    public func setMSRs(_ entries: [(index: UInt32, value: UInt64)]) throws(KVMError) -> Int {
        let indices = entries.map(\.index), values = entries.map(\.value)
        return try checked(ckvm_set_msrs(fd.rawValue, indices, values, UInt32(entries.count)), "KVM_SET_MSRS")
    }

    /// KVM_GET_ONE_REG for a 64-bit register.
    public func getOneReg(_ id: UInt64) throws(KVMError) -> UInt64 {
        var value: UInt64 = 0
        // SAFETY: the kernel writes at most 8 bytes (a U64 id) into `value`, which outlives the call.
        let r = withUnsafeMutablePointer(to: &value) { ckvm_get_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        _ = try checked(r, "KVM_GET_ONE_REG(\(hex(id)))")
        return value
    }

    public func setOneReg(_ id: UInt64, _ value: UInt64) throws(KVMError) {
        var copy = value
        // SAFETY: the kernel reads at most 8 bytes from `copy`, which outlives the call.
        let r = withUnsafeMutablePointer(to: &copy) { ckvm_set_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        _ = try checked(r, "KVM_SET_ONE_REG(\(hex(id)))")
    }

    /// KVM_GET_ONE_REG with a caller-chosen user address, to probe EFAULT paths.
    public func tryGetOneReg(_ id: UInt64, userAddress: UInt64) -> Result<Void, KVMError> {
        attempt(ckvm_get_one_reg(fd.rawValue, id, userAddress), "KVM_GET_ONE_REG(\(hex(id)))").map { _ in }
    }

    /// KVM_SET_ONE_REG with a caller-chosen user address, to probe EFAULT paths.
    public func trySetOneReg(_ id: UInt64, userAddress: UInt64) -> Result<Void, KVMError> {
        attempt(ckvm_set_one_reg(fd.rawValue, id, userAddress), "KVM_SET_ONE_REG(\(hex(id)))").map { _ in }
    }

    /// Every register id KVM_GET_REG_LIST reports (sized by a first, empty call).
    public func regList() throws(KVMError) -> [UInt64] {
        let sizing = tryRegList(capacity: 0)
        return try tryRegList(capacity: Int(sizing.reportedCount)).result.get()
    }

    /// KVM_GET_REG_LIST with room for `capacity` ids: the result, and the count the kernel wrote
    /// back into `n` (on E2BIG too, which is the point of a short buffer).
    public func tryRegList(capacity: Int) -> (result: Result<[UInt64], KVMError>, reportedCount: UInt64) {
        var n = UInt64(capacity)
        var ids = [UInt64](repeating: 0, count: max(capacity, 1))
        let r = attempt(ckvm_get_reg_list(fd.rawValue, &n, &ids), "KVM_GET_REG_LIST")
        return (r.map { _ in Array(ids.prefix(min(Int(n), capacity))) }, n)
    }
}

public struct SavedVCPUState {
    public let regs: kvm_regs
    public let sregs: kvm_sregs
    public let events: kvm_vcpu_events
}
