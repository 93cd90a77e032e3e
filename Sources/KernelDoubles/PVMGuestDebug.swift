import CKVM
import Glibc

// pvm-guest-debug: the guest's own debug registers next to the host's (KVM_GET/SET_DEBUGREGS).

extension KernelDoubles {
    static let pvmGuestDebug: [KernelDouble] = [
        .mutant(.hostDR7Leaks, "KVM_GET_DEBUGREGS reports the host's (KVM_SET_GUEST_DEBUG) DR7 instead of the guest's") { call, forward in
            // SAFETY: each arg is the struct its checked request names (kvm_guest_debug; kvm_debugregs the kernel just filled),
            // valid for this ioctl.
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) {
                DoubleState.values["host-dr7"] = dbg.pointee.control & UInt32(KVM_GUESTDBG_ENABLE) != 0 ? dbg.pointee.arch.debugreg.7 : nil
            }
            let r = forward(call)
            if call.request == CKVM_REQ_GET_DEBUGREGS, r >= 0, let host = DoubleState.values["host-dr7"],
               let d = call.arg(as: kvm_debugregs.self) { d.pointee.dr7 = host }
            return r
        },
        .mutant(.guestDR7NotKept, "the guest's DR7 is reset to 0x400 around every KVM_RUN (never loaded, never saved)") { call, forward in
            func reset() {
                var d = kvm_debugregs()
                if realIoctl(call.fd, CKVM_REQ_GET_DEBUGREGS, &d) >= 0, d.dr7 != 0x400 {
                    d.dr7 = 0x400
                    _ = realIoctl(call.fd, CKVM_REQ_SET_DEBUGREGS, &d)
                }
            }
            if call.isRun { reset() }
            let r = forward(call)
            if call.isRun { reset() }
            return r
        },
        .mutant(.guestDR7LostAfterHostDebug, "turning host debugging off (KVM_SET_GUEST_DEBUG without ENABLE) resets the guest's DR7 to 0x400 instead of handing it back") { call, forward in
            // SAFETY: the arg is the kvm_guest_debug its checked request names, valid for this ioctl.
            let off = call.request == CKVM_REQ_SET_GUEST_DEBUG && (call.arg(as: kvm_guest_debug.self).map { $0.pointee.control & UInt32(KVM_GUESTDBG_ENABLE) == 0 } ?? false)
            let r = forward(call)
            if off, r >= 0 {
                var d = kvm_debugregs()
                if realIoctl(call.fd, CKVM_REQ_GET_DEBUGREGS, &d) >= 0 { d.dr7 = 0x400; _ = realIoctl(call.fd, CKVM_REQ_SET_DEBUGREGS, &d) }
            }
            return r
        },
        .mutant(.guestDR6ResetOnEntry, "the guest's DR6 is reset to 0xffff0ff0 on every KVM_RUN (status lost across exits)") { call, forward in
            if call.isRun {
                var d = kvm_debugregs()
                if realIoctl(call.fd, CKVM_REQ_GET_DEBUGREGS, &d) >= 0, d.dr6 != 0xFFFF_0FF0 {
                    d.dr6 = 0xFFFF_0FF0
                    _ = realIoctl(call.fd, CKVM_REQ_SET_DEBUGREGS, &d)
                }
            }
            return forward(call)
        },
    ]
}
