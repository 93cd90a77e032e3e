import CKVM
import Glibc

// The mutants and models.  Each mutant's `kills` lists the checks it must turn `not ok`;
// `swift test` (MutantTests) runs every suite under every mutant and holds it to that list:
// those checks fail, every other check keeps its verdict.

extension KernelDoubles {
    public static let catalog: [KernelDouble] = models + mutants

    static let models: [KernelDouble] = [
        .model("debug-cr3", "KVM_CAP_X86_GUEST_DEBUG_CR3 (at the run's configured number) and kvm_debug_exit_arch.cr3 = the vCPU's CR3 on every KVM_EXIT_DEBUG") { call, forward in
            if call.request == CKVM_REQ_CHECK_EXTENSION, let cap = KernelDoubles.proposedCapabilities["KVM_CAP_X86_GUEST_DEBUG_CR3"],
               Int(bitPattern: UInt(bitPattern: call.arg)) == cap {
                return 1
            }
            let r = forward(call)
            if call.isRun, r >= 0, let run = call.run, run.pointee.exit_reason == exitDebug {
                var sregs = kvm_sregs()
                if realIoctl(call.fd, CKVM_REQ_GET_SREGS, &sregs) >= 0 {
                    (UnsafeMutableRawPointer(run) + Int(ckvm_debug_exit_cr3_offset)).storeBytes(of: sregs.cr3, as: UInt64.self)
                }
            }
            return r
        },
        .model("conditional-sync", "kvm_valid_regs bit 63: copy the requested sets out only on exits marked in kvm_save_regs_on_exit") { call, forward in
            guard call.isRun, let run = call.run, run.pointee.kvm_valid_regs & CKVM_SYNC_REGS_CONDITIONAL != 0 else {
                return forward(call)
            }
            let requested = run.pointee.kvm_valid_regs
            run.pointee.kvm_valid_regs = 0 // the real kernel neither rejects bit 63 nor copies
            let r = forward(call)
            run.pointee.kvm_valid_regs = requested
            guard r >= 0 else { return r }
            let reason = Int(run.pointee.exit_reason)
            let bitmap = UnsafeRawPointer(run) + MemoryLayout<kvm_run>.size
            let marked = reason < 1024 && bitmap.load(fromByteOffset: (reason / 64) * 8, as: UInt64.self) >> UInt64(reason % 64) & 1 == 1
            let copy = DoubleState.values["conditional-sync-never"] == 1 ? false
                : marked || DoubleState.values["conditional-sync-every-exit"] == 1
            if copy { copyOut(call.fd, run, requested) }
            return r
        },
    ]

    /// The legacy copy-out, done by hand for the conditional-sync model.
    static func copyOut(_ fd: CInt, _ run: UnsafeMutablePointer<kvm_run>, _ sets: UInt64) {
        if sets & SyncRegSet.regs.rawValue != 0 {
            var regs = kvm_regs()
            if realIoctl(fd, CKVM_REQ_GET_REGS, &regs) >= 0 { run.pointee.s.regs.regs = regs }
        }
        if sets & SyncRegSet.sregs.rawValue != 0 {
            var sregs = kvm_sregs()
            if realIoctl(fd, CKVM_REQ_GET_SREGS, &sregs) >= 0 { run.pointee.s.regs.sregs = sregs }
        }
        if sets & SyncRegSet.events.rawValue != 0 {
            var events = kvm_vcpu_events()
            if realIoctl(fd, CKVM_REQ_GET_VCPU_EVENTS, &events) >= 0 { run.pointee.s.regs.events = events }
        }
    }

    static let mutants: [KernelDouble] = [
        .mutant("blockirq-ignored", "KVM_GUESTDBG_BLOCKIRQ accepted but ignored: IRQs are injected while stepping",
                kills: blockIRQChecks + ["debug-regs/blockirq_steps_*"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) { dbg.pointee.control &= ~blockIRQBit }
            return forward(call)
        },
        .mutant("blockirq-rejected", "KVM_SET_GUEST_DEBUG refuses BLOCKIRQ with EINVAL although GUEST_DEBUG2 advertises it",
                kills: ["guest-debug/advertised_flags_accepted", "blockirq/kvm_interrupt_with_userspace_irqchip/*"] + blockIRQChecks + ["debug-regs/blockirq_steps_*"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self),
               dbg.pointee.control & blockIRQBit != 0 { return -Int(EINVAL) }
            return forward(call)
        },
        .afterRun("debug-pc-off-by-one", "kvm_debug_exit_arch.pc reports the byte after the right address",
                  kills: ["guest-debug/single_step_stops_after_each_instruction/*", "guest-debug/hw_*", "guest-debug/sw_breakpoint_*",
                          "pvm-guest-debug/host_single_step_takes_guest_db/*", "debug-regs/execute_*", "debug-regs/write_*", "debug-regs/blockirq_steps_*", "debug-regs/host_*"]) { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.pc &+= 1 }
        }.withGaps(singleStepDependents + hwBreakpointDependents),
        .afterRun("debug-dr6-status-lost", "kvm_debug_exit_arch.dr6 loses its status bits (B0-B3, BD, BS)",
                  kills: ["guest-debug/single_step_stops_after_each_instruction/*", "guest-debug/hw_*",
                          "pvm-guest-debug/host_single_step_takes_guest_db/*", "debug-regs/execute_*", "debug-regs/write_*", "debug-regs/blockirq_steps_*", "debug-regs/host_*"]) { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.dr6 = 0xFFFF_0FF0 }
        }.withGaps(singleStepDependents + hwBreakpointDependents),
        .mutant("single-step-dropped", "the second single-step #DB of each vCPU is dropped (the vCPU runs on to the next one)",
                kills: ["guest-debug/single_step_stops_after_each_instruction/*", "debug-regs/blockirq_steps_*"]) { call, forward in
            var r = forward(call)
            if call.isRun, r >= 0, let run = call.run, run.pointee.exit_reason == exitDebug, run.pointee.debug.arch.dr6 & (1 << 14) != 0 {
                let key = "steps@\(call.fd)"
                DoubleState.counters[key, default: 0] += 1
                if DoubleState.counters[key] == 2 { r = forward(call) }
            }
            return r
        }.withGaps(singleStepDependents),
        .mutant("single-step-lost-after-io", "the single-step #DB after an instruction that exited to userspace (KVM_EXIT_IO) is dropped",
                kills: ["guest-debug/single_step_over_userspace_exit/*"]) { call, forward in
            var r = forward(call)
            guard call.isRun, r >= 0, let run = call.run else { return r }
            let key = "after-io@\(call.fd)"
            if run.pointee.exit_reason == UInt32(KVM_EXIT_IO) { DoubleState.values[key] = 1; return r }
            if DoubleState.values[key] == 1, run.pointee.exit_reason == exitDebug, run.pointee.debug.arch.dr6 & (1 << 14) != 0 {
                DoubleState.values[key] = nil
                r = forward(call)
            }
            return r
        },
        .afterRun("debug-exit-dr7-reset", "kvm_debug_exit_arch.dr7 reports the reset value 0x400, not the debugreg[7] userspace set",
                  kills: ["guest-debug/debug_exit_dr7_equals_debugreg7/*"]) { _, run in
            if run.pointee.exit_reason == exitDebug { run.pointee.debug.arch.dr7 = 0x400 }
        },
        .mutant("vmm-rflags-dropped", "KVM_SET_REGS drops the RFLAGS bits the VMM sets at entry (IF, IOPL): the guest runs with them clear",
                kills: ["guest-debug/vmm_rflags_if_set_reaches_guest/*", "guest-debug/vmm_rflags_iopl_reaches_guest/*"]) { call, forward in
            if call.request == CKVM_REQ_SET_REGS, let regs = call.arg(as: kvm_regs.self) { regs.pointee.rflags &= ~UInt64(0x3200) }
            return forward(call)
        }.withGaps(["blockirq/*", "guest-debug/vmm_rflags_if_clear_reaches_guest/*"]),
        .mutant("vmm-rflags-if-forced", "KVM_SET_REGS runs the guest with IF=1 whatever the VMM set",
                kills: ["guest-debug/vmm_rflags_if_clear_reaches_guest/*"]) { call, forward in
            if call.request == CKVM_REQ_SET_REGS, let regs = call.arg(as: kvm_regs.self) { regs.pointee.rflags |= 0x200 }
            return forward(call)
        },
        .mutant("lapic-irr-dropped", "KVM_SET_LAPIC drops the pending interrupts (IRR) userspace set",
                kills: ["blockirq/pending_lapic_irq_delivered_without_blockirq/*",
                        "debug-regs/pending_lapic_irr_delivered_while_stepping_without_blockirq/*"]) { call, forward in
            if call.request == kvmSetLAPIC, let page = call.arg {
                for i in 0..<8 { (page + 0x200 + 0x10 * i).storeBytes(of: UInt32(0), as: UInt32.self) }
            }
            return forward(call)
        }.withGaps(["blockirq/*", "debug-regs/blockirq_steps_sti_cpuid_wrmsr_with_set_lapic_irr/*"]),
        .mutant("blockirq-forced", "KVM_SET_GUEST_DEBUG blocks interrupts (BLOCKIRQ) whenever debugging is enabled, asked or not",
                kills: ["debug-regs/pending_*_delivered_while_stepping_without_blockirq/*"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self),
               dbg.pointee.control & UInt32(KVM_GUESTDBG_ENABLE) != 0 { dbg.pointee.control |= blockIRQBit }
            return forward(call)
        }.withGaps(["debug-regs/blockirq_steps_*"]),
        .mutant("inject-ignored", "KVM_GUESTDBG_INJECT_BP/INJECT_DB accepted but nothing is injected",
                kills: ["guest-debug/inject_*", "guest-debug/second_injection_before_delivery"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) {
                dbg.pointee.control &= ~UInt32(KVM_GUESTDBG_INJECT_BP | KVM_GUESTDBG_INJECT_DB)
            }
            return forward(call)
        },
        .mutant("guest-debug-disable-ignored", "KVM_SET_GUEST_DEBUG with control 0 is a no-op: debugging stays on",
                kills: ["guest-debug/disabling_guest_debug_stops_exits/*", "guest-debug/single_step_tf_hidden/*",
                        "guest-debug/hw_*", "blockirq/irq_delivered_after_blockirq_cleared/*",
                        "blockirq/irq_held_while_running_with_blockirq/*", "debug-regs/blockirq_steps_*", "debug-regs/host_dr7_gd_exits_at_dr_access/*"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self), dbg.pointee.control == 0 { return 0 }
            return forward(call)
        }.withGaps(hwBreakpointDependents),
        .mutant("host-dr7-leaks", "KVM_GET_DEBUGREGS reports the host's (KVM_SET_GUEST_DEBUG) DR7 instead of the guest's",
                kills: ["pvm-guest-debug/host_dr7_hidden_from_guest/*"]) { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) {
                DoubleState.values["host-dr7"] = dbg.pointee.control & UInt32(KVM_GUESTDBG_ENABLE) != 0 ? dbg.pointee.arch.debugreg.7 : nil
            }
            let r = forward(call)
            if call.request == CKVM_REQ_GET_DEBUGREGS, r >= 0, let host = DoubleState.values["host-dr7"],
               let d = call.arg(as: kvm_debugregs.self) { d.pointee.dr7 = host }
            return r
        },
        .mutant("guest-dr7-not-kept", "the guest's DR7 is reset to 0x400 around every KVM_RUN (never loaded, never saved)",
                kills: ["pvm-guest-debug/guest_execute_breakpoints_deliver_db/*", "pvm-guest-debug/vmm_loaded_breakpoint_delivers_db/*",
                        "pvm-guest-debug/guest_dr7_reads_back/*", "pvm-guest-debug/host_dr7_hidden_from_guest/*",
                        "pvm-guest-debug/guest_breakpoint_works_after_host_debug/*", "pvm-guest-debug/guest_write_watchpoint_delivers_db/*",
                        "pvm-guest-debug/host_single_step_takes_guest_db/*"]) { call, forward in
            func reset() {
                var d = kvm_debugregs()
                if realIoctl(call.fd, CKVM_REQ_GET_DEBUGREGS, &d) >= 0 { d.dr7 = 0x400; _ = realIoctl(call.fd, CKVM_REQ_SET_DEBUGREGS, &d) }
            }
            if call.isRun { reset() }
            let r = forward(call)
            if call.isRun { reset() }
            return r
        },
        .mutant("guest-dr6-reset-on-entry", "the guest's DR6 is reset to 0xffff0ff0 on every KVM_RUN (status lost across exits)",
                kills: ["pvm-guest-debug/guest_dr7_gd_raises_db_bd"]) { call, forward in
            if call.isRun {
                var d = kvm_debugregs()
                if realIoctl(call.fd, CKVM_REQ_GET_DEBUGREGS, &d) >= 0 { d.dr6 = 0xFFFF_0FF0; _ = realIoctl(call.fd, CKVM_REQ_SET_DEBUGREGS, &d) }
            }
            return forward(call)
        },
        .mutant("sync-regs-stale", "kvm_run.s is not refreshed on exit: userspace reads the previous contents",
                // A stale s also corrupts the dirty-regs checks' read-modify-write of it.
                kills: ["sync-regs/synced_*", "sync-regs/dirty_regs_write_reaches_guest/*", "sync-regs/dirty_sregs_cr0_reaches_guest/*", "sync-regs-upstream/race_*", "sync-regs-upstream/dirty_all_sets_with_valid_zero_reach_guest_copy_nothing", "sync-regs-upstream/apic_base_via_dirty_sregs"]) { call, forward in
            guard call.isRun, let run = call.run else { return forward(call) }
            let before = run.pointee.s
            let r = forward(call)
            run.pointee.s = before
            return r
        },
        .mutant("sync-regs-copied-unasked", "kvm_run.s.regs is written even when kvm_valid_regs is 0",
                kills: ["sync-regs/valid_regs_zero_copies_nothing", "sync-regs-upstream/dirty_all_sets_with_valid_zero_reach_guest_copy_nothing"]) { call, forward in
            let r: Int = forward(call)
            guard call.isRun, r >= 0, let run = call.run, run.pointee.kvm_valid_regs == 0 else { return r }
            var regs = kvm_regs()
            if realIoctl(call.fd, CKVM_REQ_GET_REGS, &regs) >= 0 { run.pointee.s.regs.regs = regs }
            return r
        },
        .mutant("dirty-regs-ignored", "kvm_dirty_regs is ignored: userspace's writes to kvm_run.s never reach the vCPU",
                kills: ["sync-regs/dirty_*", "sync-regs/undefined_dirty_bit_einval_before_entry", "sync-regs-upstream/dirty_all_sets_with_valid_zero_reach_guest_copy_nothing", "sync-regs-upstream/apic_base_via_dirty_sregs", "sync-regs-upstream/all_sets_plus_undefined_dirty_bit_einval_before_entry"]) { call, forward in
            if call.isRun, let run = call.run { run.pointee.kvm_dirty_regs = 0 }
            return forward(call)
        },
        .mutant("dirty-regs-assumed", "kvm_run.s.regs is loaded into the vCPU on entry even without the dirty bit",
                kills: ["sync-regs/regs_write_without_dirty_bit_ignored/*"]) { call, forward in
            if call.isRun, let run = call.run, run.pointee.kvm_valid_regs & UInt64(KVM_SYNC_X86_REGS) != 0,
               run.pointee.kvm_dirty_regs == 0 {
                // Only after an exit that synced (rip is never 0 there), so fresh poison is not loaded.
                if run.pointee.s.regs.regs.rip != 0 && run.pointee.s.regs.regs.rip != 0xA5A5_A5A5_A5A5_A5A5 {
                    run.pointee.kvm_dirty_regs = UInt64(KVM_SYNC_X86_REGS)
                }
            }
            return forward(call)
        },
        .mutant("undefined-sync-bits-accepted", "undefined kvm_valid_regs/kvm_dirty_regs bits are ignored instead of EINVAL",
                kills: ["sync-regs/undefined_*", "sync-regs/valid_plus_undefined_bit_einval_before_entry", "sync-regs-upstream/all_sets_plus_undefined_dirty_bit_einval_before_entry"]) { call, forward in
            if call.isRun, let run = call.run {
                let keep = SyncRegSet.all.rawValue | CKVM_SYNC_REGS_CONDITIONAL
                run.pointee.kvm_valid_regs &= keep
                run.pointee.kvm_dirty_regs &= keep
            }
            return forward(call)
        },
        .mutant("sync-bit-63-ignored", "kvm_valid_regs bit 63 is accepted and ignored (a 32-bit valid-fields mask), as if undefined bits above 31 were fine",
                kills: ["sync-regs/bit_63_einval_unless_conditional_sync"]) { call, forward in
            guard call.isRun, let run = call.run, run.pointee.kvm_valid_regs & CKVM_SYNC_REGS_CONDITIONAL != 0 else { return forward(call) }
            let requested = run.pointee.kvm_valid_regs
            run.pointee.kvm_valid_regs &= ~CKVM_SYNC_REGS_CONDITIONAL
            let r = forward(call)
            run.pointee.kvm_valid_regs = requested
            return r
        },
        .mutant("one-reg-wrong-msr", "KVM_GET_ONE_REG for an MSR returns its neighbour's value (index ^ 1)",
                kills: ["one-reg/one_reg_reads_equal_get_msrs", "one-reg/set_one_reg_seen_by_get_msrs_and_guest_rdmsr/*",
                        "one-reg/set_one_reg_rejects_noncanonical",
                        // DEBUGCTL (0x1d9) read through ONE_REG becomes 0x1d8's value.
                        "debugctl/host_*", "debugctl/legacy_btf_lbr_accepted_and_views_agree/*", "msrs/guest_write_seen_by_host_then_*"]) { call, forward in
            if call.request == CKVM_REQ_GET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self),
               reg.pointee.id >> 32 == ckvm_x86_reg_msr(0) >> 32 {
                var swapped = reg.pointee
                swapped.id ^= 1
                return realIoctl(call.fd, CKVM_REQ_GET_ONE_REG, &swapped)
            }
            return forward(call)
        },
        .mutant("one-reg-bad-id-accepted", "KVM_{GET,SET}_ONE_REG succeed (as a no-op) for ids they should reject",
                kills: ["one-reg/*_einval", "one-reg/set_one_reg_rejects_noncanonical", "one-reg/guest_ssp_absent_without_shstk", "msrs/host_set_one_reg_refuses_reserved_value", "msrs/guest_ssp_get_and_set_einval_without_shstk"]) { call, forward in
            let r = forward(call)
            if (call.request == CKVM_REQ_GET_ONE_REG || call.request == CKVM_REQ_SET_ONE_REG), r == -Int(EINVAL) || r == -Int(ENOENT) {
                return 0
            }
            return r
        },
        .mutant("one-reg-efault-ignored", "KVM_{GET,SET}_ONE_REG ignore a bad user address instead of EFAULT",
                kills: ["one-reg/null_address_*"]) { call, forward in
            let r = forward(call)
            return (call.request == CKVM_REQ_GET_ONE_REG || call.request == CKVM_REQ_SET_ONE_REG) && r == -Int(EFAULT) ? 0 : r
        },
        .mutant("one-reg-on-vm-fd", "KVM_{GET,SET}_ONE_REG on a VM fd succeed instead of ENOTTY",
                kills: ["one-reg/vm_fd_enotty"]) { call, forward in
            let r = forward(call)
            let oneReg = call.request == CKVM_REQ_GET_ONE_REG || call.request == CKVM_REQ_SET_ONE_REG
            return oneReg && r == -Int(ENOTTY) && VCPURegistry.runs[call.fd] == nil ? 0 : r
        },
        .mutant("one-reg-ssp-not-stored", "KVM_SET_ONE_REG(KVM_REG_GUEST_SSP) succeeds without storing the value",
                kills: ["one-reg/guest_ssp_round_trips_with_shstk", "msrs/guest_ssp_get_and_set_einval_without_shstk"]) { call, forward in
            if call.request == CKVM_REQ_SET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self),
               reg.pointee.id == ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP)) { return 0 }
            return forward(call)
        },
        .mutant("one-reg-cap-hidden-on-vm", "KVM_CHECK_EXTENSION(KVM_CAP_ONE_REG) on a VM fd says 0 while the system fd says 1",
                kills: ["one-reg/one_reg_cap_matches_behaviour"]) { call, forward in
            let r = forward(call)
            let cap = Int(bitPattern: UInt(bitPattern: call.arg))
            return call.request == CKVM_REQ_CHECK_EXTENSION && cap == Int(KVM_CAP_ONE_REG) && VCPURegistry.vmFDs.contains(call.fd) ? 0 : r
        },
        .mutant("reg-list-e2big-without-count", "KVM_GET_REG_LIST(n = 0) fails with E2BIG but leaves n at 0",
                kills: ["one-reg/reg_list_short_buffer_e2big_with_count", "one-reg/reg_list_entries_readable"]) { call, forward in
            if call.request == CKVM_REQ_GET_REG_LIST, let list = call.arg(as: kvm_reg_list.self), list.pointee.n == 0 { return -Int(E2BIG) }
            return forward(call)
        },
        .mutant("reg-list-lists-ssp", "KVM_GET_REG_LIST lists KVM_REG_GUEST_SSP although the vCPU has no SHSTK",
                kills: ["one-reg/guest_ssp_absent_without_shstk", "one-reg/reg_list_entries_readable"],
                // A listed register is the positive control the E2BIG check lacks on a kernel with an empty list.
                makesObservable: ["one-reg/reg_list_short_buffer_e2big_with_count"]) { call, forward in
            guard call.request == CKVM_REQ_GET_REG_LIST, let list = call.arg(as: kvm_reg_list.self) else { return forward(call) }
            let room = list.pointee.n
            list.pointee.n = 1
            guard room >= 1 else { return -Int(E2BIG) }
            (UnsafeMutableRawPointer(list) + MemoryLayout<kvm_reg_list>.size).storeBytes(of: ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP)), as: UInt64.self)
            return 0
        },
        .mutant("debugctl-bit14-accepted", "KVM_SET_MSRS / KVM_SET_ONE_REG accept DEBUGCTL.FREEZE_IN_SMM (dropping it silently)",
                kills: ["debugctl/host_set_msrs_freeze_in_smm_rejected", "debugctl/host_one_reg_freeze_in_smm_einval"]) { call, forward in
            if call.request == CKVM_REQ_SET_MSRS {
                forEachMSR(call) { index, data in if index == 0x1D9 { data.pointee &= ~(UInt64(1) << 14) } }
            }
            if call.request == CKVM_REQ_SET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self), reg.pointee.id == ckvm_x86_reg_msr(0x1D9),
               let value = UnsafeMutablePointer<UInt64>(bitPattern: UInt(reg.pointee.addr)), value.pointee & (1 << 14) != 0 {
                var cleared = value.pointee & ~(UInt64(1) << 14)
                return withUnsafeMutablePointer(to: &cleared) { p in
                    var copy = reg.pointee
                    copy.addr = UInt64(UInt(bitPattern: p))
                    return realIoctl(call.fd, CKVM_REQ_SET_ONE_REG, &copy)
                }
            }
            return forward(call)
        },
        .mutant("debugctl-bit14-shown", "KVM_GET_MSRS / KVM_GET_ONE_REG report DEBUGCTL with the host's FREEZE_IN_SMM bit set",
                kills: ["debugctl/host_*", "debugctl/legacy_btf_lbr_accepted_and_views_agree/*",
                        "debugctl/freeze_on_smi_toggles_invisible_to_guest/*"]) { call, forward in
            let r = forward(call)
            guard r >= 0 else { return r }
            if call.request == CKVM_REQ_GET_MSRS {
                forEachMSR(call, limit: r) { index, data in if index == 0x1D9 { data.pointee |= 1 << 14 } }
            }
            if call.request == CKVM_REQ_GET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self), reg.pointee.id == ckvm_x86_reg_msr(0x1D9),
               let value = UnsafeMutablePointer<UInt64>(bitPattern: UInt(reg.pointee.addr)) {
                value.pointee |= 1 << 14
            }
            return r
        },
        .mutant("debugctl-writes-dropped", "KVM_SET_MSRS / KVM_SET_ONE_REG accept every DEBUGCTL write (without bit 14) and keep nothing",
                kills: []) { call, forward in
            let debugCtl: UInt32 = 0x1D9, bit14: UInt64 = 1 << 14
            if call.request == CKVM_REQ_SET_MSRS {
                forEachMSR(call) { index, data in if index == debugCtl && data.pointee & bit14 == 0 { data.pointee = 0 } }
            }
            if call.request == CKVM_REQ_SET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self), reg.pointee.id == ckvm_x86_reg_msr(debugCtl),
               let value = UnsafeMutablePointer<UInt64>(bitPattern: UInt(reg.pointee.addr)), value.pointee & bit14 == 0 {
                return 0
            }
            return forward(call)
        }.withGaps(["debugctl/guest_rdmsr_hides_freeze_in_smm/*", "debugctl/host_views_never_show_freeze_in_smm"]),
        .mutant("debugctl-legacy-bits-rejected", "KVM_SET_MSRS refuses DEBUGCTL.BTF/LBR instead of tolerating them (legacy ABI broken)",
                kills: ["debugctl/legacy_btf_lbr_accepted_and_views_agree/*"]) { call, forward in
            var refuse = false
            if call.request == CKVM_REQ_SET_MSRS {
                forEachMSR(call) { index, data in if index == 0x1D9 && data.pointee & 3 != 0 { refuse = true } }
            }
            return refuse ? 0 : forward(call)
        },
        .afterRun("cr3-slot-scribbled", "KVM_EXIT_DEBUG writes 0 past kvm_debug_exit_arch (into the proposed cr3 slot) without advertising it",
                  kills: ["debug-cr3/cr3_slot_canary/*"]) { _, run in
            if run.pointee.exit_reason == exitDebug {
                (UnsafeMutableRawPointer(run) + Int(ckvm_debug_exit_cr3_offset)).storeBytes(of: UInt64(0), as: UInt64.self)
            }
        },
        .afterRun("cr3-stale-root", "(with the debug-cr3 model) cr3 holds the first root the vCPU ever had, not the current one",
                  kills: ["debug-cr3/cr3_on_*", "debug-cr3/cr3_keeps_pcid_bits/*"], requires: ["debug-cr3"]) { call, run in
            guard run.pointee.exit_reason == exitDebug else { return }
            let slot = UnsafeMutableRawPointer(run) + Int(ckvm_debug_exit_cr3_offset)
            let key = "first-cr3@\(call.fd)"
            if DoubleState.values[key] == nil { DoubleState.values[key] = slot.load(as: UInt64.self) }
            slot.storeBytes(of: DoubleState.values[key]!, as: UInt64.self)
        },
        .mutant("conditional-sync-marked-dropped", "(with the conditional-sync model) marked exits do not sync either",
                kills: ["sync-regs/conditional_sync_on_marked_exits_only"], requires: ["conditional-sync"]) { call, forward in
            DoubleState.values["conditional-sync-never"] = 1
            return forward(call)
        },
        {
            // Syncing on every exit is what a kernel that accepts and ignores bit 63 does, so the
            // positive path reads it as a gap; bit_63_einval_unless_conditional_sync kills it.
            var d = KernelDouble.mutant("conditional-sync-every-exit", "(with the conditional-sync model) the exit bitmap is ignored: every exit syncs",
                                        kills: ["sync-regs/bit_63_einval_unless_conditional_sync"], requires: ["conditional-sync"]) { call, forward in
                DoubleState.values["conditional-sync-every-exit"] = 1
                return forward(call)
            }
            d.becomesGap = ["sync-regs/conditional_sync_on_marked_exits_only"]
            return d
        }(),
        // Upstream parity (debug-regs, sync-regs-upstream, msrs).
        .mutant("sync-regs-invalid-state-entered", "KVM_RUN enters with invalid dirty sync state (CR4.PAE clear in long mode, an exception vector > 31, an exception both pending and injected) and fails the entry instead of refusing it",
                kills: ["sync-regs-upstream/race_*"]) { call, forward in
            guard call.isRun, let run = call.run else { return forward(call) }
            let dirty = run.pointee.kvm_dirty_regs, s = run.pointee.s.regs
            let badSregs = dirty & SyncRegSet.sregs.rawValue != 0 && s.sregs.efer & 0x100 != 0 && s.sregs.cr4 & 0x20 == 0
            let e = s.events.exception
            let badEvents = dirty & SyncRegSet.events.rawValue != 0 && ((e.nr > 31 && e.pending != 0) || (e.pending != 0 && e.injected != 0))
            guard badSregs || badEvents else { return forward(call) }
            run.pointee.kvm_dirty_regs = 0
            run.pointee.exit_reason = UInt32(KVM_EXIT_FAIL_ENTRY)
            return 0
        },
        .mutant("sync-regs-cap-undefined-bit", "KVM_CHECK_EXTENSION(KVM_CAP_SYNC_REGS) also advertises bit 31, which no kernel defines",
                kills: ["sync-regs-upstream/cap_advertises_no_undefined_bit"]) { call, forward in
            let r = forward(call)
            let cap = Int(bitPattern: UInt(bitPattern: call.arg))
            return call.request == CKVM_REQ_CHECK_EXTENSION && cap == Int(KVM_CAP_SYNC_REGS) && r >= 0 ? r | 0x8000_0000 : r
        },
        .mutant("msr-host-write-dropped", "KVM_SET_MSRS / KVM_SET_ONE_REG of SYSENTER_ESP report success but store nothing",
                kills: ["msrs/guest_write_seen_by_host_then_*"]) { call, forward in
            if call.request == CKVM_REQ_SET_MSRS, let msrs = call.arg(as: kvm_msrs.self) {
                var hit = false
                forEachMSR(call) { index, _ in if index == 0x175 { hit = true } }
                if hit { return Int(msrs.pointee.nmsrs) }
            }
            if call.request == CKVM_REQ_SET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self), reg.pointee.id == ckvm_x86_reg_msr(0x175) { return 0 }
            return forward(call)
        },
        .mutant("msr-stale-at-first-run", "a vCPU starts with SYSENTER_EIP = 0x5eed5000 (a stale value) instead of its reset value 0",
                kills: ["msrs/guest_rdmsr_reset_values/*", "msrs/three_vcpus_one_thread_keep_their_own_msrs/*"]) { call, forward in
            if call.isRun {
                let key = "first-run@\(call.fd)"
                if DoubleState.counters[key] == nil { DoubleState.counters[key] = 1; setOneMSR(call.fd, 0x176, 0x5EED_5000) }
            }
            return forward(call)
        },
        .mutant("msr-index-list-drops-misc-enable", "KVM_GET_MSR_INDEX_LIST leaves out MISC_ENABLE, which KVM always emulates",
                kills: ["msrs/msr_index_list_matches_supported_cpuid"]) { call, forward in
            let r = forward(call)
            guard call.request == CKVM_REQ_GET_MSR_INDEX_LIST, r >= 0, let list = call.arg(as: kvm_msr_list.self) else { return r }
            let indices = (UnsafeMutableRawPointer(list) + MemoryLayout<kvm_msr_list>.size).assumingMemoryBound(to: UInt32.self)
            let kept = (0..<Int(list.pointee.nmsrs)).map { indices[$0] }.filter { $0 != 0x1A0 }
            for (i, v) in kept.enumerated() { indices[i] = v }
            list.pointee.nmsrs = UInt32(kept.count)
            return r
        },
        .mutant("msr-noncanonical-accepted-from-host", "KVM_SET_MSRS reports success for non-canonical FS/GS/KERNEL_GS_BASE, LSTAR, CSTAR, PLn_SSP values (storing nothing)",
                kills: ["msrs/host_set_msrs_refuses_reserved_value"]) { call, forward in
            guard call.request == CKVM_REQ_SET_MSRS, let msrs = call.arg(as: kvm_msrs.self) else { return forward(call) }
            var hit = false
            forEachMSR(call) { index, data in
                let addressMSR = [0xC000_0100, 0xC000_0101, 0xC000_0102, 0xC000_0082, 0xC000_0083].contains(index) || (0x6A4...0x6A7).contains(index)
                let v = Int64(bitPattern: data.pointee)
                if addressMSR && (v << 16) >> 16 != v { hit = true }
            }
            return hit ? Int(msrs.pointee.nmsrs) : forward(call)
        },
        .mutant("guest-ssp-reset-nonzero", "KVM_GET_ONE_REG(KVM_REG_GUEST_SSP) on a fresh vCPU returns 0x7fff0ff8 instead of 0",
                kills: ["msrs/guest_ssp_reset_value_zero"]) { call, forward in
            let r = forward(call)
            if call.request == CKVM_REQ_GET_ONE_REG, r >= 0, let reg = call.arg(as: kvm_one_reg.self),
               reg.pointee.id == ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP)),
               let value = UnsafeMutablePointer<UInt64>(bitPattern: UInt(reg.pointee.addr)), value.pointee == 0 {
                value.pointee = 0x7FFF_0FF8
            }
            return r
        },
    ]
}

/// The BLOCKIRQ checks proper (the LAPIC control is not one: it runs without BLOCKIRQ).
let blockIRQChecks = ["blockirq/steps_land_on_next_instruction/*", "blockirq/irq_delivered_after_blockirq_cleared/*",
                      "blockirq/irq_held_while_running_with_blockirq/*"]
/// Checks with guest-debug/single_step_stops_after_each_instruction as a precondition: a mutant
/// that breaks single-step makes them SKIP naming it (the precondition check carries the not ok).
let singleStepDependents = ["guest-debug/single_step_over_userspace_exit/*", "guest-debug/single_step_tf_hidden/*",
                            "debug-cr3/cr3_on_single_step_two_roots/*", "debug-cr3/cr3_keeps_pcid_bits/*",
                            "blockirq/steps_land_on_next_instruction/*", "blockirq/irq_delivered_after_blockirq_cleared/*",
                            "blockirq/kvm_interrupt_with_userspace_irqchip/*"]
/// Checks with guest-debug/hw_execute_breakpoint_dr0_to_dr3 as a precondition.
let hwBreakpointDependents = ["guest-debug/debug_exit_dr7_equals_debugreg7/*", "debug-cr3/cr3_on_hw_breakpoint_two_roots/*"]
/// KVM_SET_LAPIC = _IOW(KVMIO, 0x8f, struct kvm_lapic_state[1024 bytes]) (the C shim names no constant for it).
let kvmSetLAPIC: UInt = 0x4400_AE8F

extension KernelDouble {
    /// The same double, with checks that may turn SKIP (a failed precondition, or a feature made
    /// indistinguishable from absent) instead of keeping their verdict.
    func withGaps(_ ids: [String]) -> KernelDouble {
        var d = self
        d.becomesGap += ids
        return d
    }
}

/// Visits the entries of a struct kvm_msrs argument (KVM_GET_MSRS / KVM_SET_MSRS).
func forEachMSR(_ call: IoctlCall, limit: Int = .max, _ body: (UInt32, UnsafeMutablePointer<UInt64>) -> Void) {
    guard let msrs = call.arg(as: kvm_msrs.self) else { return }
    let base = UnsafeMutableRawPointer(msrs) + MemoryLayout<kvm_msrs>.size
    for i in 0..<min(Int(msrs.pointee.nmsrs), limit) {
        let entry = (base + i * MemoryLayout<kvm_msr_entry>.stride).assumingMemoryBound(to: kvm_msr_entry.self)
        withUnsafeMutablePointer(to: &entry.pointee.data) { body(entry.pointee.index, $0) }
    }
}

/// KVM_SET_MSRS of one MSR straight to the kernel (for doubles that plant state).
func setOneMSR(_ fd: CInt, _ index: UInt32, _ value: UInt64) {
    let size = MemoryLayout<kvm_msrs>.size + MemoryLayout<kvm_msr_entry>.stride
    let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    raw.assumingMemoryBound(to: kvm_msrs.self).pointee.nmsrs = 1
    let entry = (raw + MemoryLayout<kvm_msrs>.size).assumingMemoryBound(to: kvm_msr_entry.self)
    entry.pointee.index = index
    entry.pointee.data = value
    _ = ckvm_real_ioctl(fd, CKVM_REQ_SET_MSRS, raw)
}
