import CKVM

extension VCPU {
    /// KVM_INTERRUPT (userspace irqchip only).
    public func interrupt(vector: UInt32) throws(KVMError) {
        _ = try checked(ckvm_interrupt(fd.rawValue, vector), "KVM_INTERRUPT")
    }

    /// KVM_GET_LAPIC: the in-kernel local APIC's 1 KiB register page.
    public func lapicRegisters() throws(KVMError) -> [UInt8] {
        var state = kvm_lapic_state()
        _ = try checked(ckvm_get_lapic(fd.rawValue, &state), "KVM_GET_LAPIC")
        // SAFETY: regs is a plain char[1024] array; the bytes are copied out.
        return withUnsafeBytes(of: &state.regs) { Array($0) }
    }

    /// KVM_SET_LAPIC with a full register page (as lapicRegisters returned it, edited).
    public func setLapicRegisters(_ page: [UInt8]) throws(KVMError) {
        var state = kvm_lapic_state()
        // SAFETY: regs is a plain char[1024] array and the precondition makes `page` exactly that size.
        withUnsafeMutableBytes(of: &state.regs) { raw in
            precondition(page.count == raw.count, "the LAPIC page is \(raw.count) bytes")
            raw.copyBytes(from: page)
        }
        _ = try checked(ckvm_set_lapic(fd.rawValue, &state), "KVM_SET_LAPIC")
    }
}
