import CKVM
import Glibc

// debug-cr3: the proposed kvm_debug_exit_arch.cr3 and KVM_CAP_X86_GUEST_DEBUG_CR3, modelled here.

/// The proposed cr3 slot in kvm_run (after kvm_debug_exit_arch, inside the exit union).
// SAFETY: ckvm_debug_exit_cr3_offset (64) is inside kvm_run's 256-byte exit union (static-asserted in ckvm.h).
private func cr3Slot(_ run: UnsafeMutablePointer<kvm_run>) -> UnsafeMutableRawPointer {
    UnsafeMutableRawPointer(run) + Int(ckvm_debug_exit_cr3_offset)
}

extension KernelDoubles {
    static let debugCR3Model = KernelDouble.model(
        .debugCR3, "KVM_CAP_X86_GUEST_DEBUG_CR3 (at the run's configured number) and kvm_debug_exit_arch.cr3 = the vCPU's CR3 on every KVM_EXIT_DEBUG"
    ) { call, forward in
        if call.request == CKVM_REQ_CHECK_EXTENSION, let cap = KernelDoubles.proposedCapabilities["KVM_CAP_X86_GUEST_DEBUG_CR3"], call.capability == cap {
            return 1
        }
        let r = forward(call)
        // SAFETY: call.run is live (IoctlCall.run) and holds this KVM_RUN's exit; cr3Slot stays inside its exit union.
        if call.isRun, r >= 0, let run = call.run, run.pointee.exit_reason == exitDebug {
            var sregs = kvm_sregs()
            if realIoctl(call.fd, CKVM_REQ_GET_SREGS, &sregs) >= 0 { cr3Slot(run).storeBytes(of: sregs.cr3, as: UInt64.self) }
        }
        return r
    }

    static let debugCR3Mutants: [KernelDouble] = [
        .afterRun(.cr3SlotScribbled, "KVM_EXIT_DEBUG writes 0 past kvm_debug_exit_arch (into the proposed cr3 slot) without advertising it") { _, run in
            // SAFETY: afterRun's run is live with a finished exit; cr3Slot stays inside its exit union.
            if run.pointee.exit_reason == exitDebug { cr3Slot(run).storeBytes(of: UInt64(0), as: UInt64.self) }
        },
        .afterRun(.cr3StaleRoot, "(with the debug-cr3 model) cr3 holds the first root the vCPU ever had, not the current one",
                  requires: [.debugCR3]) { call, run in
            // SAFETY: as above: run is live after KVM_RUN and the slot is 8 bytes inside the exit union.
            guard run.pointee.exit_reason == exitDebug else { return }
            let key = "first-cr3@\(call.fd)"
            if DoubleState.values[key] == nil { DoubleState.values[key] = cr3Slot(run).load(as: UInt64.self) }
            cr3Slot(run).storeBytes(of: DoubleState.values[key]!, as: UInt64.self)
        },
    ]
}
