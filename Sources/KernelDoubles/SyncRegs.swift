import CKVM
import Glibc

// sync-regs: kvm_run.s, kvm_valid_regs / kvm_dirty_regs, and the proposed conditional sync
// (bit 63 + kvm_save_regs_on_exit), modelled here (suites sync-regs, sync-regs-upstream).

private let syncRegs = UInt64(KVM_SYNC_X86_REGS), syncSregs = UInt64(KVM_SYNC_X86_SREGS)
private let syncEvents = UInt64(KVM_SYNC_X86_EVENTS)
private let allSyncSets = syncRegs | syncSregs | syncEvents

/// Whether two values of a C struct hold the same bytes.
private func sameBytes<T>(_ a: T, _ b: T) -> Bool {
    // SAFETY: each buffer views a local copy of the value, only while the two are compared.
    withUnsafeBytes(of: a) { x in withUnsafeBytes(of: b) { y in x.elementsEqual(y) } }
}

extension KernelDoubles {
    static let conditionalSyncModel = KernelDouble.model(
        .conditionalSync, "kvm_valid_regs bit 63: copy the requested sets out only on exits marked in kvm_save_regs_on_exit"
    ) { call, forward in
        // SAFETY: call.run is this vCPU's live kvm_run (IoctlCall.run); bit 63 is hidden from the kernel only around forward().
        guard call.isRun, let run = call.run, run.pointee.kvm_valid_regs & CKVM_SYNC_REGS_CONDITIONAL != 0 else {
            return forward(call)
        }
        let requested = run.pointee.kvm_valid_regs
        run.pointee.kvm_valid_regs = 0 // the real kernel neither rejects bit 63 nor copies
        let r = forward(call)
        run.pointee.kvm_valid_regs = requested
        guard r >= 0 else { return r }
        // SAFETY: the seam maps a whole page; the 1024-bit bitmap follows kvm_run inside it.
        let reason = Int(run.pointee.exit_reason)
        let bitmap = UnsafeRawPointer(run) + MemoryLayout<kvm_run>.size
        // The guard: a reason past the 1024 bits (a userspace thread rewrote exit_reason) copies nothing.
        // Its off-by-one mutant reads reason 1024's bit, the first one after the bitmap (still in the page).
        let limit = isActive(.conditionalSyncBitmapOverread) ? 1025 : 1024
        let marked = reason < limit && bitmap.load(fromByteOffset: (reason / 64) * 8, as: UInt64.self) >> UInt64(reason % 64) & 1 == 1
        if reason == 1024 && marked { ActionTrace.record(.conditionalSyncBitmapOverread) }
        // The mutants of this model pervert its decision; where they change it, they acted.
        var copy = marked
        if isActive(.conditionalSyncEveryExit), !copy { copy = true; ActionTrace.record(.conditionalSyncEveryExit) }
        if isActive(.conditionalSyncMarkedDropped), copy { copy = false; ActionTrace.record(.conditionalSyncMarkedDropped) }
        if copy { copyOut(call.fd, run, requested) }
        return r
    }

    // SAFETY: run is the vCPU's kvm_run mapping (the model's call.run) and its KVM_RUN just returned on
    // this thread, so the page is live and the vCPU is back in userspace while kvm_run.s is filled.
    /// The legacy copy-out, done by hand for the conditional-sync model.
    static func copyOut(_ fd: CInt, _ run: UnsafeMutablePointer<kvm_run>, _ sets: UInt64) {
        var regs = kvm_regs(), sregs = kvm_sregs(), events = kvm_vcpu_events()
        if sets & syncRegs != 0, realIoctl(fd, CKVM_REQ_GET_REGS, &regs) >= 0 { run.pointee.s.regs.regs = regs }
        if sets & syncSregs != 0, realIoctl(fd, CKVM_REQ_GET_SREGS, &sregs) >= 0 { run.pointee.s.regs.sregs = sregs }
        if sets & syncEvents != 0, realIoctl(fd, CKVM_REQ_GET_VCPU_EVENTS, &events) >= 0 { run.pointee.s.regs.events = events }
    }

    static let syncRegsMutants: [KernelDouble] = [
        .mutant(.syncRegsStale, "kvm_run.s is not refreshed on exit: userspace reads the previous contents") { call, forward in
            guard call.isRun, let run = call.run else { return forward(call) }
            // SAFETY: call.run is live for this KVM_RUN (IoctlCall.run); kvm_run.s is copied by value before and restored after it.
            let before = run.pointee.s
            let r = forward(call)
            // Writers of kvm_run's sync state say when they change it (ActionTrace cannot tell them from a racer).
            if !sameBytes(run.pointee.s, before) { ActionTrace.record(.syncRegsStale) }
            run.pointee.s = before
            return r
        },
        .mutant(.syncRegsCopiedUnasked, "kvm_run.s.regs is written even when kvm_valid_regs is 0") { call, forward in
            let r: Int = forward(call)
            // SAFETY: call.run holds the exit of the KVM_RUN that just succeeded on this thread; s.regs is overwritten as a copying kernel would.
            guard call.isRun, r >= 0, let run = call.run, run.pointee.kvm_valid_regs == 0 else { return r }
            var regs = kvm_regs()
            if realIoctl(call.fd, CKVM_REQ_GET_REGS, &regs) >= 0 {
                if !sameBytes(run.pointee.s.regs.regs, regs) { ActionTrace.record(.syncRegsCopiedUnasked) }
                run.pointee.s.regs.regs = regs
            }
            return r
        },
        .mutant(.dirtyRegsIgnored, "kvm_dirty_regs is ignored: userspace's writes to kvm_run.s never reach the vCPU") { call, forward in
            // SAFETY: call.run is live (IoctlCall.run); kvm_dirty_regs is cleared before the kernel reads it at entry.
            if call.isRun, let run = call.run, run.pointee.kvm_dirty_regs != 0 {
                ActionTrace.record(.dirtyRegsIgnored)
                run.pointee.kvm_dirty_regs = 0
            }
            return forward(call)
        },
        .mutant(.dirtyRegsAssumed, "kvm_run.s.regs is loaded into the vCPU on entry even without the dirty bit") { call, forward in
            // SAFETY: call.run is live (IoctlCall.run) and holds the previous exit's sync state; the dirty bit is set before entry.
            if call.isRun, let run = call.run, run.pointee.kvm_valid_regs & syncRegs != 0, run.pointee.kvm_dirty_regs == 0 {
                // Only after an exit that synced (rip is never 0 there), so fresh poison is not loaded.
                if run.pointee.s.regs.regs.rip != 0 && run.pointee.s.regs.regs.rip != 0xA5A5_A5A5_A5A5_A5A5 {
                    ActionTrace.record(.dirtyRegsAssumed)
                    run.pointee.kvm_dirty_regs = syncRegs
                }
            }
            return forward(call)
        },
        .mutant(.undefinedSyncBitsAccepted, "undefined kvm_valid_regs/kvm_dirty_regs bits are ignored instead of EINVAL") { call, forward in
            if call.isRun, let run = call.run {
                // SAFETY: call.run is live (IoctlCall.run); the sync masks are read and narrowed in place before entry.
                let keep = allSyncSets | CKVM_SYNC_REGS_CONDITIONAL
                if (run.pointee.kvm_valid_regs | run.pointee.kvm_dirty_regs) & ~keep != 0 { ActionTrace.record(.undefinedSyncBitsAccepted) }
                run.pointee.kvm_valid_regs &= keep
                run.pointee.kvm_dirty_regs &= keep
            }
            return forward(call)
        },
        .mutant(.syncBit63Ignored, "kvm_valid_regs bit 63 is accepted and ignored (a 32-bit valid-fields mask), as if undefined bits above 31 were fine") { call, forward in
            // SAFETY: call.run is live (IoctlCall.run); bit 63 is dropped from kvm_valid_regs only around forward().
            guard call.isRun, let run = call.run, run.pointee.kvm_valid_regs & CKVM_SYNC_REGS_CONDITIONAL != 0 else { return forward(call) }
            let requested = run.pointee.kvm_valid_regs
            run.pointee.kvm_valid_regs &= ~CKVM_SYNC_REGS_CONDITIONAL
            let r = forward(call)
            run.pointee.kvm_valid_regs = requested
            return r
        },
        // These act inside the conditional-sync model (above), which reads whether they are active.
        .mutant(.conditionalSyncMarkedDropped, "(with the conditional-sync model) marked exits do not sync either",
                requires: [.conditionalSync]) { call, forward in forward(call) },
        // Syncing on every exit is what a kernel that accepts and ignores bit 63 does, so the
        // positive path reads it as a gap; bit_63_einval_unless_conditional_sync kills it.
        .mutant(.conditionalSyncEveryExit, "(with the conditional-sync model) the exit bitmap is ignored: every exit syncs",
                requires: [.conditionalSync]) { call, forward in forward(call) },
        .mutant(.conditionalSyncBitmapOverread, "(with the conditional-sync model) the exit-reason guard is off by one: reason 1024 (written by another thread) reads the bit past the bitmap",
                requires: [.conditionalSync]) { call, forward in forward(call) },
        // Upstream parity (sync-regs-upstream).
        .mutant(.syncRegsInvalidStateEntered, "KVM_RUN enters with invalid dirty sync state (CR4.PAE clear in long mode, an exception vector > 31, an exception both pending and injected) and fails the entry instead of refusing it") { call, forward in
            guard call.isRun, let run = call.run else { return forward(call) }
            // SAFETY: call.run is live (IoctlCall.run); invalid() only loads its fields, on this thread, before entry.
            func invalid() -> Bool { // field by field: no copy of kvm_run.s per look
                let dirty = run.pointee.kvm_dirty_regs
                if dirty & syncSregs != 0 && run.pointee.s.regs.sregs.efer & 0x100 != 0 && run.pointee.s.regs.sregs.cr4 & 0x20 == 0 { return true }
                guard dirty & syncEvents != 0 else { return false }
                let nr = run.pointee.s.regs.events.exception.nr, pending = run.pointee.s.regs.events.exception.pending
                return (nr > 31 && pending != 0) || (pending != 0 && run.pointee.s.regs.events.exception.injected != 0)
            }
            // Look for a while (~8 µs), as an entry path reading the state at some later moment
            // would: a racer leaves CR4.PAE clear only for a few instructions in every few hundred,
            // and on a loaded host the two threads share a CPU only now and then.
            guard (0..<8192).contains(where: { _ in invalid() }) else { return forward(call) }
            // SAFETY: the same kvm_run, before any real KVM_RUN: the double writes the failed entry it reports instead.
            run.pointee.kvm_dirty_regs = 0
            run.pointee.exit_reason = UInt32(KVM_EXIT_FAIL_ENTRY)
            return 0
        },
        .mutant(.syncRegsCapUndefinedBit, "KVM_CHECK_EXTENSION(KVM_CAP_SYNC_REGS) also advertises bit 31, which no kernel defines") { call, forward in
            let r = forward(call)
            return call.request == CKVM_REQ_CHECK_EXTENSION && call.capability == Int(KVM_CAP_SYNC_REGS) && r >= 0 ? r | 0x8000_0000 : r
        },
    ]
}
