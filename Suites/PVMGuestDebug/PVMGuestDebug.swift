import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// Seed 002's promises, which hold for any backend: with host debugging off the guest owns
// DR0-DR3/DR7 and gets its own #DB/#BP; with it on, debug events go to userspace and the
// host's DR7 never shows through the guest's view of DR7.

@section("kvmcheck_suites") @used
let pvmGuestDebugEntry: SuiteEntryPoint = { registerSuite(pvmGuestDebugSuite) }

private let guestDRUAPI = ["KVM_SET_DEBUGREGS", "KVM_GET_DEBUGREGS", "guest DR0-DR7"]

let pvmGuestDebugSuite: Suite = Suite(
    "pvm-guest-debug", summary: "guest-owned DR7, #DB/#BP delivered to the guest unless the host debugs it",
    series: "pvm-guest-debug", features: pvmGuestDebugFeatures, checks: [
        guestExecuteBreakpointsCheck,
        Check("vmm_loaded_breakpoint_delivers_db", uapi: guestDRUAPI, requires: [.capability(.debugRegs)], levels: .both,
              killedBy: [.guestDR7NotKept]) { t in
            // Same as above with DR0/DR7 loaded by KVM_SET_DEBUGREGS at both levels, so a CPL0/CPL3
            // difference is told apart from a MOV-DR/SET_DEBUGREGS difference.
            let dr7 = DR7.fixed | DR7.arming(0, .execute)
            let g = try guestArmedGuest(t, dr7: dr7, targets: [0: .label("bp")], viaVMM: true) { a in
                a.label("bp"); a.nop()
                a.ucallSync(1)
                a.ucallDone()
            }
            try expectGuestDB(t, g, at: g.address("bp"), dr6: DR6.reporting(breakpoints: [0]),
                              "DR0 execute breakpoint loaded with KVM_SET_DEBUGREGS")
            try g.expectSync(1)
        },
        guestWriteWatchpointCheck,
        guestInt3Check,
        Check("guest_dr7_gd_raises_db_bd", uapi: guestDRUAPI + ["DR7.GD", "DR6.BD"], levels: .only(.cpl0), killedBy: [.guestDR6ResetOnEntry]) { t in
            let g = try t.guest { a in
                a.mov(.rax, Int64((DR7.fixed | .generalDetect).rawValue))
                a.mov(.dr7, .rax)
                a.onFault(resumeAt: "after")
                a.label("access"); a.mov(.rax, .dr0)
                a.label("after")
                a.clearFault()
                a.mov(.rbx, .dr6)
                a.mov(.rcx, .dr7)
                a.ucallSync(1, .rbx, .rcx)
                a.ucallDone()
            }
            g.recordsDebugStatus = false // the handler's own DR6 read would be the access under test
            try g.expectException(.db, at: "access", because: "the first DR access after setting DR7.GD faults (RIP at the access)")
            let values = try g.expectSync(1, because: "reading DR6/DR7 in the handler's wake (GD cleared by the #DB)")
            try t.assert(DR6(values[0]).isRegisterAccess, "DR6 the guest reads after the GD #DB",
                         expected: "BD (bit 13) set", observed: "\(DR6(values[0]))")
            try t.assert(!DR7(values[1]).generalDetectEnabled, "DR7 the guest reads after the GD #DB",
                         expected: "GD clear (the CPU clears it on #DB)", observed: "\(DR7(values[1]))")
        },
        Check("guest_dr7_reads_back", uapi: guestDRUAPI, requires: [.capability(.debugRegs)], levels: .only(.cpl0),
              killedBy: [.guestDR7NotKept]) { t in
            // Armed on addresses nothing touches, so the value is all that matters.
            let value = DR7.fixed | DR7.arming(0, .write, length: 4) | DR7.arming(2, .execute)
            let g = try t.guest { a in
                a.mov(.rax, Int64(value.rawValue))
                a.mov(.dr7, .rax)
                a.mov(.rbx, .dr7)
                a.ucallSync(1, .rbx)
                a.ucallDone()
            }
            let seen = try g.expectSync(1)[0]
            try assertDR7(t, DR7(seen), value, "DR7 the guest reads back")
            try assertDR7(t, DR7(try g.vcpu.debugRegs().dr7), value, "KVM_GET_DEBUGREGS.dr7 after the guest wrote DR7")
        },
        Check("host_single_step_takes_guest_db", uapi: guestDRUAPI + ["KVM_GUESTDBG_SINGLESTEP"],
              requires: [needsGuestDebug, .capability(.debugRegs)],
              // Relies on single-step at this CPL (its own check's subject); the step mutants kill that check.
              preconditions: [CheckRef("guest-debug", singleStepCheck)], levels: .both,
              killedBy: [.guestDR7NotKept]) { t in
            let dr7 = DR7.fixed | DR7.arming(0, .execute)
            let g = try guestArmedGuest(t, dr7: dr7, targets: [0: .label("bp")]) { a in
                a.label("start"); a.nop()
                a.label("bp"); a.nop()
                a.label("end"); a.ucallSync(1)
                a.ucallDone()
            }
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            var stops: [DebugStop] = []
            while stops.count < 6, stops.last?.exit.pc != g.address("end") {
                stops.append(try g.nextDebugStop(expecting: "every #DB (steps and the guest's own DR0 hit) as KVM_EXIT_DEBUG while the host single-steps"))
                // An instruction breakpoint is a fault: resume with RFLAGS.RF, as a debugger does, or it fires again.
                if stops.last!.exit.dr6.breakpointsHit.contains(0) {
                    var regs = try g.vcpu.regs()
                    regs.rflags |= 1 << 16
                    try g.vcpu.setRegs(regs)
                    // KVM re-adds its stepping TF on KVM_SET_REGS only at the RIP where stepping was
                    // armed (x86.c __kvm_set_rflags, singlestep_rip): re-arm, as debuggers do per resume.
                    try g.vcpu.setGuestDebug([.enable, .singleStep])
                }
            }
            // The guest's own DR0 hit must surface as a stop at bp with DR6.B0, not vanish or reach the guest.
            let hit = stops.contains { $0.exit.pc == g.address("bp") && $0.exit.dr6.breakpointsHit.contains(0) }
            try t.assert(hit && stops.last?.exit.pc == g.address("end"), "single-step walk over the guest's armed DR0 breakpoint",
                         expected: "a stop at \(g.describe(address: g.address("bp"))) with DR6.B0, then stops up to \(g.describe(address: g.address("end")))",
                         observed: stops.map { "\(g.describe(address: $0.exit.pc)) dr6 \($0.exit.dr6)" }.joined(separator: ", "))
            try g.vcpu.setGuestDebug([])
            try g.expectSync(1)
            try t.assertEqual(g.exceptionCount, 0, "#DBs the guest's handler took while the host was debugging")
        },
        Check("host_dr7_hidden_from_guest", uapi: guestDRUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug, .capability(.debugRegs)], levels: .both, killedBy: [.guestDR7NotKept, .hostDR7Leaks]) { t in
            // Guest and host arm different, never-executed addresses.
            let guestDR7 = DR7.fixed | DR7.arming(3, .execute)
            let hostDR7 = DR7.fixed | DR7.arming(0, .execute) | DR7.arming(1, .write, length: 8)
            let g = try guestArmedGuest(t, dr7: guestDR7, targets: [3: .address(watched + 0x800)]) { a in
                a.ucallSync(1)
                if t.cpl == .cpl0 { a.mov(.rbx, .dr7) }
                a.ucallSync(2, .rbx)
                a.ucallDone()
            }
            try g.expectSync(1)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([0: watched + 0x900, 1: watched + 0xA00], dr7: hostDR7))
            let seen = try g.expectSync(2)[0]
            if t.cpl == .cpl0 {
                try assertDR7(t, DR7(seen), guestDR7, "DR7 the guest reads while the host debugs it (the guest's own)")
            } else { t.note("CPL3 cannot read DR7; only the host's view (KVM_GET_DEBUGREGS) is checked") }
            try assertDR7(t, DR7(try g.vcpu.debugRegs().dr7), guestDR7, "KVM_GET_DEBUGREGS.dr7 while the host debugs the guest (the guest's own)")
        },
        Check("guest_breakpoint_works_after_host_debug", uapi: guestDRUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug, .capability(.debugRegs)],
              // Relies on the guest's own DR0 breakpoint working at this CPL at all (its own check's subject).
              preconditions: [CheckRef("pvm-guest-debug", guestExecuteBreakpointsCheck)], levels: .both,
              killedBy: [.guestDR7LostAfterHostDebug]) { t in
            let dr7 = DR7.fixed | DR7.arming(0, .execute)
            let g = try guestArmedGuest(t, dr7: dr7, targets: [0: .label("bp")]) { a in
                a.ucallSync(1)
                a.label("bp"); a.nop()
                a.ucallSync(2)
                a.ucallDone()
            }
            // The host debugs for one exit with its own DR0, then hands the registers back.
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints],
                                     debugRegs: GuestDebugRegisters([0: watched + 0x900], dr7: DR7.fixed | DR7.arming(0, .execute)))
            try g.expectSync(1)
            try g.vcpu.setGuestDebug([])
            try expectGuestDB(t, g, at: g.address("bp"), dr6: DR6.reporting(breakpoints: [0]),
                              "the guest's own DR0 breakpoint after host debugging was turned off")
            try g.expectSync(2)
        },
    ])

/// Where a guest-owned breakpoint points.
private enum BreakpointTarget {
    case label(String)
    case address(UInt64)
}

/// A guest whose own DR0–DR3 (by index; the others 0) and DR7 are armed before `body` runs.
/// At CPL0 the payload arms them itself (then ucallSync(0), which this runs past); at CPL3,
/// where MOV DR faults, the VMM loads them with KVM_SET_DEBUGREGS, as the guest kernel would
/// have before returning to user mode.
private func guestArmedGuest(_ t: CheckContext, dr7: DR7, targets: [Int: BreakpointTarget], viaVMM: Bool = false,
                     _ body: (inout Assembler) -> Void) throws -> Guest {
    let armInGuest = t.cpl == .cpl0 && !viaVMM
    let registers = 0...(targets.keys.max() ?? 0)
    let g = try t.guest { a in
        if armInGuest {
            for n in registers {
                switch targets[n] ?? .address(0) {
                case .label(let l): a.movabs(.rax, label: l)
                case .address(let v): a.movabs(.rax, v)
                }
                a.mov([DebugReg.dr0, .dr1, .dr2, .dr3][n], .rax)
            }
            a.mov(.rax, Int64(dr7.rawValue))
            a.mov(.dr7, .rax)
            a.ucallSync(0)
        }
        body(&a)
    }
    if armInGuest { try g.expectSync(0, because: "the payload's arming prologue") }
    else {
        func address(_ n: Int) -> UInt64 {
            switch targets[n] {
            case .label(let l)?: return g.address(l)
            case .address(let v)?: return v
            case nil: return 0
            }
        }
        var d = try g.vcpu.debugRegs()
        d.db = (address(0), address(1), address(2), address(3))
        d.dr7 = dr7.rawValue
        try g.vcpu.setDebugRegs(d)
    }
    return g
}

/// A DR7 value must equal `expected`; both are shown decoded (which DRs, access, length).
private func assertDR7(_ t: CheckContext, _ seen: DR7, _ expected: DR7, _ what: String) throws {
    try t.assert(seen == expected, what, expected: "\(expected)", observed: "\(seen)")
}

/// The next event must be the guest's own #DB; its RIP must be `rip` and the DR6 its handler
/// read exactly `dr6` (both are compared and recorded, and the check goes on).
private func expectGuestDB(_ t: CheckContext, _ g: Guest, at rip: UInt64, dr6: DR6, _ what: String) throws {
    let e = try g.expectException(.db, because: "#DB in the guest's handler: \(what)")
    t.expect(e.rip == rip, "\(what): RIP in the guest's #DB frame",
             expected: g.describe(address: rip), observed: g.describe(address: e.rip))
    t.expect(e.dr6 == dr6, "\(what): DR6 read by the guest's #DB handler",
             expected: "\(dr6)", observed: e.dr6.map { "\($0)" } ?? "not recorded")
}

let guestExecuteBreakpointsCheck = Check("guest_execute_breakpoints_deliver_db", uapi: guestDRUAPI, requires: [.capability(.debugRegs)], levels: .both,
    killedBy: [.guestDR7NotKept]) { t in
    // One guest per register, each a sub-case: a #DB missing on DRn cannot shift what the
    // others are compared with, and every register gets its verdict.
    for n in 0..<4 {
        t.subCase("DR\(n)") {
            let g = try guestArmedGuest(t, dr7: DR7.fixed | DR7.arming(n, .execute), targets: [n: .label("bp")]) { a in
                a.label("bp"); a.nop()
                a.ucallSync(1)
                a.ucallDone()
            }
            try expectGuestDB(t, g, at: g.address("bp"), dr6: DR6.reporting(breakpoints: [n]),
                              "guest-owned DR\(n) execute breakpoint")
            try g.expectSync(1)
        }
    }
}

let guestWriteWatchpointCheck = Check("guest_write_watchpoint_delivers_db", uapi: guestDRUAPI, requires: [.capability(.debugRegs)], levels: .both,
    killedBy: [.guestDR7NotKept]) { t in
    let dr7 = DR7.fixed | DR7.arming(1, .write, length: 4)
    let g = try guestArmedGuest(t, dr7: dr7, targets: [1: .address(watched)]) { a in
        a.mov(dword: .absolute(watched), 0x1234)
        a.label("after")
        a.ucallSync(1)
        a.ucallDone()
    }
    try expectGuestDB(t, g, at: g.address("after"), dr6: DR6.reporting(breakpoints: [1]),
                      "guest-owned DR1 4-byte write watchpoint (a trap: RIP after the store)")
    try g.expectSync(1)
}

/// int3 -> the guest's #BP happens inside one KVM_RUN with nothing at the ioctl seam to pervert.
private let int3Unkillable = "int3 -> guest #BP happens inside one KVM_RUN with host debugging off, with no ioctl to pervert; "
    + "a mutant forcing host SW breakpoints on kills it only where the kernel's host SW breakpoints intercept guest int3, "
    + "which is not true of every kernel (README: what kvmcheck found), so the test could not hold it to that"

let guestInt3Check = Check("guest_int3_delivers_bp", uapi: ["int3", "#BP"], levels: .both, unkillable: int3Unkillable) { t in
    let g = try t.guest { a in
        a.label("int3"); a.int3()
        a.label("after")
        a.ucallSync(1)
        a.ucallDone()
    }
    try g.expectException(.bp, at: "after", because: "#BP in the guest's handler, RIP after the int3 (host debugging is off)")
    try g.expectSync(1)
}
