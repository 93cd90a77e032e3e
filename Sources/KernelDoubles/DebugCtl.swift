import CKVM
import Glibc

// debugctl: MSR_IA32_DEBUGCTLMSR and its FREEZE_IN_SMM bit (14) through KVM_SET/GET_MSRS and ONE_REG.

private let debugCtl: UInt32 = 0x1D9
private let freezeInSMM: UInt64 = 1 << 14
private let debugCtlID = ckvm_x86_reg_msr(debugCtl)

extension KernelDoubles {
    static let debugCtlMutants: [KernelDouble] = [
        .mutant(.debugctlBit14Accepted, "KVM_SET_MSRS / KVM_SET_ONE_REG accept DEBUGCTL.FREEZE_IN_SMM (dropping it silently)") { call, forward in
            if call.request == CKVM_REQ_SET_MSRS {
                // SAFETY: forEachMSR's data lies in the caller's kvm_msrs entries; oneReg's value is the caller's 64-bit register.
                forEachMSR(call) { index, data in if index == debugCtl { data.pointee &= ~freezeInSMM } }
            }
            if let (reg, value) = oneReg(call, CKVM_REQ_SET_ONE_REG, id: debugCtlID), let value, value.pointee & freezeInSMM != 0 {
                var cleared = value.pointee & ~freezeInSMM
                // SAFETY: `cleared` outlives the real ioctl that reads it through the copy's addr.
                return withUnsafeMutablePointer(to: &cleared) { p in
                    var copy = reg.pointee
                    copy.addr = UInt64(UInt(bitPattern: p))
                    return realIoctl(call.fd, CKVM_REQ_SET_ONE_REG, &copy)
                }
            }
            return forward(call)
        },
        .mutant(.debugctlBit14Shown, "KVM_GET_MSRS / KVM_GET_ONE_REG report DEBUGCTL with the host's FREEZE_IN_SMM bit set") { call, forward in
            let r = forward(call)
            guard r >= 0 else { return r }
            // SAFETY: after a successful GET, the entries and the ONE_REG value are the caller's buffers the kernel just filled.
            if call.request == CKVM_REQ_GET_MSRS {
                forEachMSR(call, limit: r) { index, data in if index == debugCtl { data.pointee |= freezeInSMM } }
            }
            if let (_, value) = oneReg(call, CKVM_REQ_GET_ONE_REG, id: debugCtlID), let value { value.pointee |= freezeInSMM }
            return r
        },
        .mutant(.debugctlWritesDropped, "KVM_SET_MSRS / KVM_SET_ONE_REG accept every DEBUGCTL write (without bit 14) and keep nothing") { call, forward in
            // SAFETY: data and value are the caller's SET buffers (forEachMSR, oneReg), valid for this ioctl.
            if call.request == CKVM_REQ_SET_MSRS {
                forEachMSR(call) { index, data in if index == debugCtl && data.pointee & freezeInSMM == 0 { data.pointee = 0 } }
            }
            if let (_, value) = oneReg(call, CKVM_REQ_SET_ONE_REG, id: debugCtlID), let value, value.pointee & freezeInSMM == 0 {
                return 0
            }
            return forward(call)
        },
        .mutant(.debugctlLegacyBitsRejected, "KVM_SET_MSRS refuses DEBUGCTL.BTF/LBR instead of tolerating them (legacy ABI broken)") { call, forward in
            var refuse = false
            if call.request == CKVM_REQ_SET_MSRS {
                // SAFETY: data lies in the caller's kvm_msrs entries (forEachMSR); it is only read.
                forEachMSR(call) { index, data in if index == debugCtl && data.pointee & 3 != 0 { refuse = true } }
            }
            return refuse ? 0 : forward(call)
        },
        .mutant(.debugctlVMCS12NotUpdated, "KVM_SET_MSRS(DEBUGCTL) in L2 leaves vmcs12.guest_ia32_debugctl as KVM_SET_NESTED_STATE set it (vmx.c's save to vmcs12 dropped)") { call, forward in
            let r = forward(call)
            guard r >= 0, call.request == CKVM_REQ_SET_NESTED_STATE || call.request == CKVM_REQ_GET_NESTED_STATE,
                  let state = call.arg, let field = KernelDoubles.vmcs12DebugCtl(state) else { return r }
            // SAFETY: vmcs12DebugCtl found the field inside the header's size, which the caller allocated (SET: sent, GET: filled).
            if call.request == CKVM_REQ_SET_NESTED_STATE {
                KernelDoubles.vmcs12DebugCtlSet[call.fd] = field.pointee
            } else if let set = KernelDoubles.vmcs12DebugCtlSet[call.fd] {
                field.pointee = set
            }
            return r
        },
    ]

    /// guest_ia32_debugctl as each vCPU fd's last KVM_SET_NESTED_STATE set it.
    nonisolated(unsafe) private static var vmcs12DebugCtlSet: [CInt: UInt64] = [:]

    // SAFETY: `state` is the caller's kvm_nested_state; its size field (offset 4) says how many bytes follow it are the caller's.
    /// vmcs12.guest_ia32_debugctl (vmcs12 offset 184) in a VMX kvm_nested_state that holds a vmcs12.
    private static func vmcs12DebugCtl(_ state: UnsafeMutableRawPointer) -> UnsafeMutablePointer<UInt64>? {
        let header = Int(CKVM_NESTED_STATE_HEADER_SIZE), offset = header + 184
        guard state.load(fromByteOffset: 2, as: UInt16.self) == UInt16(KVM_STATE_NESTED_FORMAT_VMX),
              Int(state.load(fromByteOffset: 4, as: UInt32.self)) >= header + 4096 else { return nil }
        return (state + offset).assumingMemoryBound(to: UInt64.self)
    }
}
