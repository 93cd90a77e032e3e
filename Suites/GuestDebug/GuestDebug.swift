import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// KVM_SET_GUEST_DEBUG / KVM_EXIT_DEBUG as a debugger drives them: single-step, hardware
// breakpoints and watchpoints, int3, exception injection (api.rst 4.87, selftests debug_regs.c).

@section("kvmcheck_suites") @used
let guestDebugEntry: SuiteEntryPoint = { registerSuite(guestDebugSuite) }

let guestDebugSuite: Suite = Suite(
    "guest-debug", summary: "KVM_SET_GUEST_DEBUG: single-step, hardware/software breakpoints, injection",
    series: "guestdbg-blockirq", features: guestDebugFeatures, checks: [
        Check("advertised_flags_accepted", uapi: ["KVM_CAP_SET_GUEST_DEBUG2", "KVM_SET_GUEST_DEBUG"],
              requires: [.capability(.setGuestDebug2)], killedBy: [.blockirqRejected]) { t in
            let mask = UInt32(truncatingIfNeeded: try t.system.checkExtension(.setGuestDebug2))
            t.note("KVM_CAP_SET_GUEST_DEBUG2 = \(hex(mask)) (\(GuestDebugControl(rawValue: mask)))")
            var rejected: [String] = []
            for bit in (0..<32).map({ UInt32(1) << $0 }) where mask & bit != 0 {
                // A fresh vCPU per flag: an INJECT_* flag queues an exception the next one would collide with.
                let g = try t.guest { a in a.ucallDone() }
                do { try g.vcpu.setGuestDebug(rawControl: GuestDebugControl.enable.rawValue | bit) } catch let e as KVMError {
                    rejected.append("\(GuestDebugControl(rawValue: bit)): \(e.shortName)")
                }
            }
            try t.assert(rejected.isEmpty, "KVM_SET_GUEST_DEBUG with ENABLE plus each advertised flag",
                         expected: "every advertised flag accepted", observed: "rejected: " + rejected.joined(separator: ", "))
        },
        vmmRFLAGSIFSetCheck,
        vmmRFLAGSIFClearCheck,
        vmmRFLAGSIOPLCheck,
        singleStepCheck,
        singleStepOverExitCheck,
        Check("single_step_tf_hidden", uapi: debugUAPI + ["KVM_GUESTDBG_SINGLESTEP"],
              requires: [needsGuestDebug], preconditions: [CheckRef("guest-debug", singleStepCheck)], levels: .both,
              killedBy: [.guestDebugDisableIgnored]) { t in
            // Only pushfq in the line, so nothing else (port I/O, privileged instructions) can interfere.
            let g = try t.guest { a in
                a.nop()
                a.pushfq()
                a.pop(.rbx)
                a.label("end")
                a.ucallSync(1, .rbx)
                a.ucallDone()
            }
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 5)
            if let interruption { throw t.unexpected(interruption, expected: "single-step exits up to \(g.describe(address: g.address("end")))") }
            for s in stops {
                let rflags = try g.vcpu.regs().rflags
                try t.assertEqual(rflags & 0x100, 0, "KVM_GET_REGS rflags.TF at the step stop \(g.describe(address: s.exit.pc))")
            }
            try g.vcpu.setGuestDebug([])
            let values = try g.expectSync(1, because: "the pushed RFLAGS once single-step is off (no #DB may reach the guest)")
            // The uAPI promises only that KVM_GET_REGS hides the TF it uses (checked above). To
            // step, VMX and SVM set the guest's real RFLAGS.TF, so a guest pushf can see it: a
            // known, documented leak (arch/x86/kvm/x86.c kvm_get_rflags/__kvm_set_rflags; "reduced,
            // not eliminated" in the BLOCKIRQ thread, seed 001). Reported, not failed.
            let pushed = values[0]
            t.note(pushed & 0x100 == 0
                   ? "the guest's pushfq saw TF clear (no leak on this kernel)"
                   : "informational: the guest's pushfq saw RFLAGS \(hex(pushed)) with TF set (KVM's stepping TF, a documented leak: x86.c kvm_get_rflags/__kvm_set_rflags, seed 001)")
        },
        hwExecuteBreakpointCheck,
        debugExitDR7Check,
        hwWriteWatchpointCheck,
        Check("hw_read_write_watchpoint_lengths", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored]) { t in
            try watchpointCheck(t, access: .readWrite)
        },
        swBreakpointCheck,
        Check("sw_breakpoint_resume_past_int3", uapi: debugUAPI + ["KVM_GUESTDBG_USE_SW_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.debugPCOffByOne]) { t in
            let g = try int3Guest(t)
            try g.vcpu.setGuestDebug([.enable, .useSoftwareBreakpoints])
            let stop = try controlDebugStop(g, "KVM_EXIT_DEBUG (#BP) at the int3", subjectOf: "sw_breakpoint_exits_at_int3")
            try g.setRIP(stop.exit.pc + 1) // what a debugger does after removing its breakpoint
            let values = try g.expectSync(1)
            try t.assertEqual(values[0], 0x1234, "rbx after resuming past the int3 (the instruction after it ran)")
            try t.assertEqual(g.exceptionCount, 0, "exceptions the guest's handler took (the #BP belonged to the host)")
        },
        Check("inject_bp_reaches_guest", uapi: ["KVM_SET_GUEST_DEBUG", "KVM_GUESTDBG_INJECT_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.injectIgnored]) { t in
            try injectionCheck(t, .injectBP, vector: .bp)
        },
        Check("inject_db_reaches_guest", uapi: ["KVM_SET_GUEST_DEBUG", "KVM_GUESTDBG_INJECT_DB"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.injectIgnored]) { t in
            try injectionCheck(t, .injectDB, vector: .db)
        },
        Check("second_injection_before_delivery", uapi: ["KVM_SET_GUEST_DEBUG", "KVM_GUESTDBG_INJECT_BP", "KVM_GUESTDBG_INJECT_DB"],
              requires: [needsGuestDebug], informational: true, killedBy: [.injectIgnored]) { t in
            let g = try injectionGuest(t)
            try g.expectSync(1)
            try g.vcpu.setGuestDebug([.enable, .injectBP])
            var second = "accepted"
            do { try g.vcpu.setGuestDebug([.enable, .injectDB]) } catch let e as KVMError { second = e.shortName }
            try g.vcpu.setGuestDebug([])
            var delivered: [String] = []
            while true {
                let event = try g.next()
                if case .exception(let e) = event { delivered.append(e.name); continue }
                guard case .sync(2, _) = event else { throw t.unexpected(event, expected: "injected exception(s), then ucall SYNC 2") }
                break
            }
            t.note("second KVM_SET_GUEST_DEBUG(INJECT_DB) while #BP pending: \(second); guest received: \(delivered.joined(separator: ", "))")
            try t.assert(second == "EBUSY" && delivered == ["#BP"], "INJECT_DB while an injected #BP is still pending",
                         expected: "EBUSY, and the guest receives only the #BP (x86.c refuses a second pending exception)",
                         observed: "\(second), guest received [\(delivered.joined(separator: ", "))]")
        },
        Check("undefined_control_bits_rejected", uapi: ["KVM_SET_GUEST_DEBUG"], requires: [needsGuestDebug], informational: true) { t in
            let g = try t.guest { a in a.ucallDone() }
            let known = GuestDebugControl.named.reduce(UInt32(0)) { $0 | $1.0.rawValue }
            var accepted: [String] = []
            for bit in (0..<32).map({ UInt32(1) << $0 }) where known & bit == 0 {
                do {
                    try g.vcpu.setGuestDebug(rawControl: GuestDebugControl.enable.rawValue | bit)
                    accepted.append(hex(bit))
                } catch is KVMError {}
            }
            try g.vcpu.setGuestDebug([])
            try t.assert(accepted.isEmpty, "KVM_SET_GUEST_DEBUG with an undefined control bit (arm64 checks its valid mask; x86 does not)",
                         expected: "EINVAL for each of the \(32 - known.nonzeroBitCount) undefined bits",
                         observed: "accepted \(accepted.count): \(accepted.joined(separator: " "))")
        },
        Check("disabling_guest_debug_stops_exits", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.guestDebugDisableIgnored]) { t in
            let g = try t.guest { a in
                a.label("bp"); a.nop()
                a.ucallSync(1)
                a.ucallDone()
            }
            let dr7 = DR7.fixed | DR7.arming(0, .execute)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([0: g.address("bp")], dr7: dr7))
            _ = try controlDebugStop(g, "KVM_EXIT_DEBUG at bp while debugging is on (control run)", subjectOf: "hw_execute_breakpoint_dr0_to_dr3")
            try g.vcpu.setGuestDebug([], debugRegs: GuestDebugRegisters([0: g.address("bp")], dr7: dr7))
            try g.expectSync(1, because: "control = 0 disarms the host breakpoint still in debugreg[]")
            try t.assertEqual(g.exceptionCount, 0, "exceptions the guest's handler took (none: the breakpoint was the host's)")
        },
    ])

/// A straight line of instructions whose behaviour at this CPL is plain (no port I/O: at CPL3
/// it depends on IOPL and the TSS bitmap; an exit to userspace is single_step_over_userspace_exit's
/// subject): cpuid, pushf, and at CPL0 an MSR read and a DR write, which KVM handles itself.
private func steppedLineGuest(_ t: CheckContext) throws -> (Guest, [String]) {
    var labels: [String] = []
    let g = try t.guest { a in
        func at(_ name: String) { a.label(name); labels.append(name) }
        at("xor_eax"); a.xor(.eax, .eax)
        at("cpuid"); a.cpuid()
        if t.cpl == .cpl0 {
            at("mov_ecx"); a.mov(.ecx, 0x174) // IA32_SYSENTER_CS: every backend emulates it
            at("rdmsr"); a.rdmsr()
            at("mov_dr0"); a.mov(.dr0, .rax)
        }
        at("pushfq"); a.pushfq()
        at("pop_rbx"); a.pop(.rbx)
        a.label("end")
        a.ucallSync(1, .rbx)
        a.ucallDone()
    }
    return (g, labels)
}

/// For each length 1/2/4/8 (on DR0..DR3 in turn): an access just past the watched range must
/// not stop; an access of that width at its start must stop right after the instruction.
func watchpointCheck(_ t: CheckContext, access: DR7.Access) throws {
    let lengths = [1, 2, 4, 8]
    // Each check watches its own area, so a stale watchpoint from another cannot fire here.
    let area = watched + (access == .write ? 0x1000 : 0x2000)
    let g = try t.guest { a in
        for (i, len) in lengths.enumerated() {
            let base = area + UInt64(i * 0x40)
            a.label("case\(len)")
            // One byte just past the range: must not trigger.
            if access == .write { a.mov(byte: .absolute(base + UInt64(len)), 0x5A) } else { a.mov(.al, .absolute(base + UInt64(len))) }
            a.label("inside\(len)")
            switch (len, access) {
            case (1, .write): a.mov(byte: .absolute(base), 0x11)
            case (2, .write): a.mov(word: .absolute(base), 0x2222)
            case (4, .write): a.mov(dword: .absolute(base), 0x4444_4444)
            case (8, .write): a.mov(qword: .absolute(base), 0x0888_8888)
            case (1, _): a.mov(.al, .absolute(base))
            case (2, _): a.mov(.ax, .absolute(base))
            case (4, _): a.mov(.eax, .absolute(base))
            default: a.mov(.rax, .absolute(base))
            }
            a.label("after\(len)")
            a.ucallSync(Int64(len))
        }
        a.ucallDone()
    }
    for (n, len) in lengths.enumerated() {
        let base = area + UInt64(n * 0x40)
        let what = "DR\(n) \(access) watchpoint, \(len) byte(s) at \(hex(base))"
        t.subCase(what) {
            try g.setRIP(g.address("case\(len)"))
            let dr7 = DR7.fixed | DR7.arming(n, access, length: len)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([n: base], dr7: dr7))
            let stop = try g.nextDebugStop(expecting: "KVM_EXIT_DEBUG after the \(len)-byte access (\(what))")
            t.expect(stop.exit.pc != g.address("inside\(len)"), "\(what): a 1-byte access just past the range",
                     expected: "no stop", observed: "stopped: the watched range is longer than \(len) byte(s)")
            expectDebugExit(t, g, stop.exit, what, pc: g.address("after\(len)"), dr6: DR6.reporting(breakpoints: [n]))
            try g.vcpu.setGuestDebug([])
            try g.expectSync(UInt64(len))
        }
    }
    t.expectEqual(g.exceptionCount, 0, "exceptions the guest's handler took (host watchpoints must not reach it)")
}

/// int3 followed by an instruction whose effect shows it ran.
/// The debug exit a check starts from, which another check at this CPL has as its subject: when
/// no debug exit comes at all, this check's own subject cannot be observed and the other check
/// carries the `not ok`.  A debug exit that comes wrong (its pc, its DR6) is still this check's to judge.
private func controlDebugStop(_ g: Guest, _ what: String, subjectOf check: String) throws -> DebugStop {
    do { return try g.nextDebugStop(expecting: what) } catch GuestError.unexpectedEvent(let expected, let observed) {
        throw Skip.cannotObserve("the step it starts from did not happen: expected \(expected), observed \(observed) "
                                 + "(guest-debug/\(check) at this CPL has that as its subject)")
    }
}

private func int3Guest(_ t: CheckContext) throws -> Guest {
    try t.guest { a in
        a.mov(.rbx, 0)
        a.label("int3"); a.int3()
        a.mov(.rbx, 0x1234)
        a.ucallSync(1, .rbx)
        a.ucallDone()
    }
}

private func injectionGuest(_ t: CheckContext) throws -> Guest {
    try t.guest { a in
        a.ucallSync(1)
        a.label("after")
        a.ucallSync(2)
        a.ucallDone()
    }
}

/// INJECT_BP / INJECT_DB at a stop: the guest's handler must get that vector at the stop's RIP.
func injectionCheck(_ t: CheckContext, _ flag: GuestDebugControl, vector: ExceptionVector) throws {
    let g = try injectionGuest(t)
    try g.expectSync(1)
    try g.vcpu.setGuestDebug([.enable, flag])
    let e = try g.expectException(vector, because: "the guest's handler entered for KVM_GUESTDBG_\(flag)")
    try t.assert(e.rip == g.address("after"), "RIP in the injected exception's frame",
                 expected: g.describe(address: g.address("after")), observed: g.describe(address: e.rip))
    try g.vcpu.setGuestDebug([])
    try g.expectSync(2)
    try t.assertEqual(g.exceptionCount, 1, "exceptions the guest's handler took (exactly the injected one)")
}

/// RFLAGS the guest's own pushfq sees, for KVM_SET_REGS(rflags = 0x2 | bits) at this CPL.
private func guestRFLAGS(_ t: CheckContext, entry bits: UInt64) throws -> UInt64 {
    var options = GuestOptions()
    options.extraRFLAGS = bits
    let g = try t.guest(options) { a in
        a.pushfq()
        a.pop(.rbx)
        a.ucallSync(1, .rbx)
        a.ucallDone()
    }
    return try g.expectSync(1)[0]
}

/// Each entry value the VMM sets: the vCPU holds it (KVM_GET_REGS before KVM_RUN: what KVM
/// will inject against) and the guest runs with it (its pushfq): `mask` of both must equal `bits`.
private func expectEntryRFLAGS(_ t: CheckContext, mask: UInt64, _ cases: [(String, UInt64)]) {
    for (name, bits) in cases {
        t.subCase(name) {
            var options = GuestOptions()
            options.extraRFLAGS = bits
            let held = try t.guest(options) { a in a.ucallDone() }.vcpu.regs().rflags
            t.expect(held & mask == bits, "\(name): KVM_GET_REGS rflags at \(t.cpl) after KVM_SET_REGS(rflags = \(hex(0x2 | bits)))",
                     expected: "\(hex(bits)) under mask \(hex(mask))",
                     observed: "\(hex(held)) (masked \(hex(held & mask)))")
            let seen = try guestRFLAGS(t, entry: bits)
            t.expect(seen & mask == bits, "\(name): RFLAGS the guest's pushfq saw at \(t.cpl) after KVM_SET_REGS(rflags = \(hex(0x2 | bits)))",
                     expected: "\(hex(bits)) under mask \(hex(mask))",
                     observed: "\(hex(seen)) (masked \(hex(seen & mask)))")
        }
    }
}

/// The guest runs with IF=1 when the VMM sets it (every check that makes an interrupt
/// deliverable by entering with IF=1, instead of an `sti` whose behaviour at CPL3 depends on
/// IOPL, relies on it).
let vmmRFLAGSIFSetCheck = Check("vmm_rflags_if_set_reaches_guest", uapi: ["KVM_SET_REGS", "RFLAGS.IF"], levels: .both,
    killedBy: [.vmmRFLAGSDropped]) { t in
    expectEntryRFLAGS(t, mask: 0x200, [("IF set", 0x200)])
}

/// The guest runs with IF=0 when the VMM clears it (a VMM entering a guest with interrupts off).
let vmmRFLAGSIFClearCheck = Check("vmm_rflags_if_clear_reaches_guest", uapi: ["KVM_SET_REGS", "RFLAGS.IF"], levels: .both,
    killedBy: [.vmmRFLAGSIFForced], gapUnder: [.vmmRFLAGSDropped]) { t in
    // Positive control: the guest's pushfq can show IF set, so a clear IF is not just a default.
    let control = try guestRFLAGS(t, entry: 0x200)
    guard control & 0x200 != 0 else {
        throw Skip.cannotObserve("the guest does not see IF=1 set by KVM_SET_REGS either (pushfq \(hex(control))): a cleared IF cannot be told from a dropped one")
    }
    expectEntryRFLAGS(t, mask: 0x200, [("IF clear", 0)])
}

/// The guest runs with the IOPL the VMM set (nothing in kvmcheck relies on it any more: this
/// says whether a VMM can grant a CPL3 guest port I/O this way).
let vmmRFLAGSIOPLCheck = Check("vmm_rflags_iopl_reaches_guest", uapi: ["KVM_SET_REGS", "RFLAGS.IOPL"], levels: .both,
    killedBy: [.vmmRFLAGSDropped]) { t in
    expectEntryRFLAGS(t, mask: 0x3000, [("IOPL 3", 0x3000), ("IOPL 1", 0x1000)])
}

let singleStepCheck = Check("single_step_stops_after_each_instruction", uapi: debugUAPI + ["KVM_GUESTDBG_SINGLESTEP"],
                            requires: [needsGuestDebug], levels: .both, killedBy: [.debugDR6StatusLost, .debugPCOffByOne, .singleStepDropped]) { t in
    let (g, labels) = try steppedLineGuest(t)
    try g.vcpu.setGuestDebug([.enable, .singleStep])
    let (stops, interruption) = try g.stepUntil(g.address("end"), limit: labels.count + 2)
    let expected = labels.dropFirst().map(g.address) + [g.address("end")]
    try assertSteps(t, g, stops, interruption, expectedPCs: expected)
}

/// start: nop; bp: nop — the target of the execute-breakpoint checks.
private func breakpointGuest(_ t: CheckContext) throws -> Guest {
    try t.guest { a in
        a.label("start"); a.nop()
        a.label("bp"); a.nop()
        a.ucallSync(1)
        a.ucallDone()
    }
}

/// Every one of DR0-DR3 fires with the right exception, pc and dr6 (all four are tried and reported).
let hwExecuteBreakpointCheck = Check("hw_execute_breakpoint_dr0_to_dr3", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
                                     requires: [needsGuestDebug], levels: .both,
                                     killedBy: [.debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored]) { t in
    let g = try breakpointGuest(t)
    for n in 0..<4 {
        t.subCase("DR\(n) execute breakpoint") {
            try g.setRIP(g.address("start"))
            let dr7 = DR7.fixed | DR7.arming(n, .execute)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([n: g.address("bp")], dr7: dr7))
            let stop = try g.nextDebugStop(expecting: "KVM_EXIT_DEBUG at bp (DR\(n) execute)")
            expectDebugExit(t, g, stop.exit, "DR\(n) execute breakpoint", pc: g.address("bp"),
                            dr6: DR6.reporting(breakpoints: [n]))
        }
    }
    // From the start again, so a sub-case that failed (and ran the guest on) cannot make this
    // step fail too: with debugging off the guest must pass bp and reach its ucall.
    try g.setRIP(g.address("start"))
    try g.vcpu.setGuestDebug([])
    try g.expectSync(1)
    t.expectEqual(g.exceptionCount, 0, "exceptions the guest's handler took (host breakpoints must not reach it)")
}

let singleStepOverExitCheck = Check("single_step_over_userspace_exit", uapi: debugUAPI + ["KVM_GUESTDBG_SINGLESTEP", "KVM_EXIT_IO"],
    requires: [needsGuestDebug], preconditions: [CheckRef("guest-debug", singleStepCheck)], levels: .only(.cpl0),
    killedBy: [.singleStepLostAfterIO]) { t in
    // Only CPL0: port I/O at CPL3 depends on IOPL and the TSS bitmap, which are not the subject.
    let g = try t.guest { a in
        a.label("out"); a.out(0x80, .al)
        a.label("after_out"); a.nop()
        a.label("end"); a.nop()
        a.ucallDone()
    }
    try g.vcpu.setGuestDebug([.enable, .singleStep])
    let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 4)
    try assertStopAddresses(t, g, stops, interruption, expectedPCs: [g.address("after_out"), g.address("end")])
    try t.assert(stops.first?.portOutputsBefore == 1, "the stepped `out` exits to userspace once, then stops after it",
                 expected: "1 KVM_EXIT_IO before the first step stop", observed: stops.map(\.description).joined(separator: "; "))
}

let debugExitDR7Check = Check("debug_exit_dr7_equals_debugreg7", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP", "kvm_debug_exit_arch.dr7"],
    requires: [needsGuestDebug], preconditions: [CheckRef("guest-debug", hwExecuteBreakpointCheck)], levels: .both,
    killedBy: [.debugExitDR7Reset]) { t in
    let g = try breakpointGuest(t)
    for n in 0..<4 {
        // A DR7 per register that no other sub-case (or reset) has: DRn armed on bp, plus
        // a distinct length/type on the next register, armed on an address nothing touches.
        let other = (n + 1) % 4
        let dr7 = DR7.fixed | DR7.arming(n, .execute) | DR7.arming(other, .readWrite, length: [1, 2, 4, 8][n])
        var regs = GuestDebugRegisters([n: g.address("bp")], dr7: dr7)
        regs.breakpoints[other] = watched + 0x3000 + UInt64(n * 0x40)
        t.subCase("DR\(n)") {
            try g.setRIP(g.address("start"))
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: regs)
            let stop = try g.nextDebugStop(expecting: "KVM_EXIT_DEBUG at bp (DR\(n) execute)")
            t.expect(stop.exit.dr7 == dr7, "DR\(n): kvm_debug_exit_arch.dr7 (must equal the debugreg[7] set)",
                     expected: "\(dr7)", observed: "\(stop.exit.dr7)")
        }
    }
}

let hwWriteWatchpointCheck = Check("hw_write_watchpoint_lengths", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
    requires: [needsGuestDebug], levels: .both, killedBy: [.debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored]) { t in
    try watchpointCheck(t, access: .write)
}

let swBreakpointCheck = Check("sw_breakpoint_exits_at_int3", uapi: debugUAPI + ["KVM_GUESTDBG_USE_SW_BP"],
    requires: [needsGuestDebug], levels: .both, killedBy: [.debugPCOffByOne]) { t in
    let g = try int3Guest(t)
    try g.vcpu.setGuestDebug([.enable, .useSoftwareBreakpoints])
    let stop = try g.nextDebugStop(expecting: "KVM_EXIT_DEBUG (#BP) at the int3")
    t.expectEqual(stop.exit.exception, .bp, "kvm_debug_exit_arch.exception for int3 (#BP)")
    t.expectEqual(stop.exit.pc, g.address("int3"), "kvm_debug_exit_arch.pc (the int3 itself, as debuggers expect)")
}
