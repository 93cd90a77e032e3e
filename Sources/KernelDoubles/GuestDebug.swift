import CKVM
import Glibc

// guest-debug: KVM_SET_GUEST_DEBUG and KVM_EXIT_DEBUG (suites guest-debug, debug-regs).

/// DR6.BS: the #DB was a single step.
private let dr6SingleStep: UInt64 = 1 << 14

extension KernelDoubles {
    static let guestDebug: [KernelDouble] = [
        // SAFETY: afterRun hands over run only after KVM_RUN returned >= 0 on this thread: the mapping is live, the exit final.
        .afterRun(.debugPCOffByOne, "kvm_debug_exit_arch.pc reports the byte after the right address") { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.pc &+= 1 }
        },
        .afterRun(.debugDR6StatusLost, "kvm_debug_exit_arch.dr6 loses its status bits (B0-B3, BD, BS)") { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.dr6 = 0xFFFF_0FF0 }
        },
        .mutant(.singleStepDropped, "the second single-step #DB of each vCPU is dropped (the vCPU runs on to the next one)") { call, forward in
            var r = forward(call)
            // SAFETY: call.run is live (IoctlCall.run) and holds the exit of the KVM_RUN that just returned on this thread.
            if call.isRun, r >= 0, let run = call.run, run.pointee.exit_reason == exitDebug, run.pointee.debug.arch.dr6 & dr6SingleStep != 0 {
                let key = "steps@\(call.fd)"
                DoubleState.counters[key, default: 0] += 1
                if DoubleState.counters[key] == 2 { r = forward(call) }
            }
            return r
        },
        .mutant(.singleStepLostAfterIO, "the single-step #DB after an instruction that exited to userspace (KVM_EXIT_IO) is dropped") { call, forward in
            var r = forward(call)
            guard call.isRun, r >= 0, let run = call.run else { return r }
            let key = "after-io@\(call.fd)"
            // SAFETY: call.run is this vCPU's live kvm_run; it is read after a successful KVM_RUN on this thread.
            if run.pointee.exit_reason == UInt32(KVM_EXIT_IO) { DoubleState.values[key] = 1; return r }
            if DoubleState.values[key] == 1, run.pointee.exit_reason == exitDebug, run.pointee.debug.arch.dr6 & dr6SingleStep != 0 {
                DoubleState.values[key] = nil
                r = forward(call)
            }
            return r
        },
        // SAFETY: as for every afterRun edit: run is live and holds the finished exit.
        .afterRun(.debugExitDR7Reset, "kvm_debug_exit_arch.dr7 reports the reset value 0x400, not the debugreg[7] userspace set") { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.dr7 = 0x400 }
        },
        .mutant(.vmmRFLAGSDropped, "KVM_SET_REGS drops the RFLAGS bits the VMM sets at entry (IF, IOPL): the guest runs with them clear") { call, forward in
            // SAFETY: a KVM_SET_REGS argument is the caller's struct kvm_regs, valid and unshared for this ioctl.
            if call.request == CKVM_REQ_SET_REGS, let regs = call.arg(as: kvm_regs.self) { regs.pointee.rflags &= ~UInt64(0x3200) }
            return forward(call)
        },
        .mutant(.vmmRFLAGSIFForced, "KVM_SET_REGS runs the guest with IF=1 whatever the VMM set") { call, forward in
            if call.request == CKVM_REQ_SET_REGS, let regs = call.arg(as: kvm_regs.self) { regs.pointee.rflags |= 0x200 }
            return forward(call)
        },
        .mutant(.injectIgnored, "KVM_GUESTDBG_INJECT_BP/INJECT_DB accepted but nothing is injected") { call, forward in
            // SAFETY: a KVM_SET_GUEST_DEBUG argument is the caller's struct kvm_guest_debug, valid for this ioctl.
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) {
                dbg.pointee.control &= ~UInt32(KVM_GUESTDBG_INJECT_BP | KVM_GUESTDBG_INJECT_DB)
            }
            return forward(call)
        },
        .mutant(.guestDebugDisableIgnored, "KVM_SET_GUEST_DEBUG with control 0 is a no-op: debugging stays on") { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self), dbg.pointee.control == 0 { return 0 }
            return forward(call)
        },
    ]
}
