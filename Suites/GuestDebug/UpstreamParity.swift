import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// debug-regs: the assertions of the kernel's tools/testing/selftests/kvm/x86/debug_regs.c
// that guest-debug/blockirq do not already make in upstream's exact form.  Upstream runs
// them in one guest and stops at the first failure; here each is its own check and every
// DRn / step is a sub-case that is reported whatever the others did.

@section("kvmcheck_suites") @used
let debugRegsEntry: SuiteEntryPoint = { registerSuite(debugRegsSuite) }

/// The pending vector upstream raises (IRQ_VECTOR).
private let selfIPIVector: Int64 = 0xAA
private let tscDeadlineMSR: Int64 = 0x6E0

let debugRegsSuite = Suite(
    "debug-regs", summary: "debug_regs.c parity: exact exits for host HW breakpoints, BLOCKIRQ steps, host DR7.GD",
    series: "guestdbg-blockirq", checks: [
        Check("execute_breakpoint_each_dr_exception_pc_dr6", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.debugDR6StatusLost, .debugPCOffByOne]) { t in
            let g = try t.guest { a in
                a.label("start"); a.nop()
                a.label("bp"); a.nop()
                a.ucallDone()
            }
            for n in 0..<4 {
                try g.setRIP(g.address("start"))
                try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints],
                                         debugRegs: GuestDebugRegisters([n: g.address("bp")], dr7: DR7.fixed | DR7.arming(n, .execute)))
                expectDebugExit(t, g, try g.next(), "DR\(n) execute breakpoint", pc: g.address("bp"), dr6: DR6.reporting(breakpoints: [n]))
            }
        },
        Check("write_watchpoint_4_bytes_each_dr", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP"],
              requires: [needsGuestDebug], levels: .both, killedBy: [.debugDR6StatusLost, .debugPCOffByOne]) { t in
            let target = watched + 0x300
            let g = try t.guest { a in
                a.label("start"); a.mov(.eax, 0x4D2)
                a.mov(.absolute(target), .eax)
                a.label("after"); a.nop()
                a.ucallDone()
            }
            for n in 0..<4 {
                try g.setRIP(g.address("start"))
                let dr7 = DR7.fixed | DR7.arming(n, .write, length: 4)
                try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([n: target], dr7: dr7))
                expectDebugExit(t, g, try g.next(), "DR\(n) 4-byte write watchpoint", pc: g.address("after"),
                           dr6: DR6.reporting(breakpoints: [n]))
            }
        },
        selfIPIControlCheck,
        setLapicControlCheck,
        Check("blockirq_steps_sti_cpuid_wrmsr_with_self_ipi", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "x2APIC ICR"],
              requires: [needsBlockIRQ, .capability(.irqchip)], preconditions: [CheckRef("debug-regs", selfIPIControlCheck)],
              levels: .only(.cpl0),
              killedBy: [.blockirqIgnored, .blockirqRejected, .debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored, .singleStepDropped]) { t in
            // wrmsr is CPL0-only, and so is the guest's own x2APIC self-IPI.
            try upstreamStepCheck(t, pending: .selfIPI)
        },
        Check("blockirq_steps_sti_cpuid_wrmsr_with_set_lapic_irr", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
              requires: [needsBlockIRQ, .capability(.irqchip)], preconditions: [CheckRef("debug-regs", setLapicControlCheck)],
              levels: .only(.cpl0),
              killedBy: [.blockirqIgnored, .blockirqRejected, .debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored, .singleStepDropped]) { t in
            try upstreamStepCheck(t, pending: .setLapic)
        },
        Check("host_dr7_gd_exits_at_dr_access", uapi: debugUAPI + ["KVM_GUESTDBG_USE_HW_BP", "DR7.GD"],
              requires: [needsGuestDebug], levels: .only(.cpl0), killedBy: [.debugDR6StatusLost, .debugPCOffByOne, .guestDebugDisableIgnored]) { t in
            // MOV from a DR is CPL0-only (#GP at CPL3 comes before any #DB), so GD is CPL0 only.
            let g = try t.guest { a in
                a.ucallSync(1)
                a.label("bd"); a.mov(.rax, .dr0)
                a.ucallSync(2)
                a.ucallDone()
            }
            g.recordsDebugStatus = false
            try g.expectSync(1)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([0: 0], dr7: DR7.fixed | DR7.generalDetect))
            let first = try g.next()
            expectDebugExit(t, g, first, "host DR7.GD, guest mov from DR0", pc: g.address("bd"), dr6: DR6.reporting(registerAccess: true))
            try g.vcpu.setGuestDebug([])
            let rest = first.syncValues.isEmpty ? try g.next() : first // no exit: the guest already went on
            t.expect(rest == .sync(stage: 2, values: rest.syncValues), "with debugging off the mov runs and the guest goes on",
                         expected: "ucall SYNC 2", observed: "\(rest)")
            t.expectEqual(g.exceptionCount, 0, "exceptions the guest's handler took (the #DB was the host's)")
            t.expect((try? g.next()) == .done, "the guest runs to its end (upstream: UCALL_DONE)", expected: "ucall DONE", observed: "not done")
        },
    ])

extension GuestEvent {
    /// The values of a SYNC (to compare stage only), else none.
    var syncValues: [UInt64] { if case .sync(_, let v) = self { return v } else { return [] } }
}

enum PendingIRQSource { case selfIPI, setLapic }

/// Upstream's single-step sequence: `sti; xor eax,eax; cpuid; mov ecx,TSC_DEADLINE; wrmsr; cli`.
/// The wrmsr goes through KVM's fastpath, which must still exit for the step.
private func upstreamStepGuest(_ t: CheckContext, _ pending: PendingIRQSource) throws -> Guest {
    var options = GuestOptions()
    options.inKernelIRQChip = true
    let g = try t.guest(options) { a in
        if pending == .selfIPI {
            a.mov(.ecx, 0x1B); a.rdmsr(); a.or(.eax, 0xC00); a.wrmsr()      // APIC_BASE: EN | EXTD (x2APIC)
            a.mov(.ecx, 0x80F); a.rdmsr(); a.or(.eax, 0x1FF); a.wrmsr()     // SPIV: software-enabled
            a.mov(.ecx, 0x830); a.mov(.eax, 0x4_4000 | selfIPIVector); a.xor(.edx, .edx); a.wrmsr() // ICR: self, assert, fixed
        }
        a.ucallSync(1)
        a.label("sti"); a.sti()
        a.label("xor"); a.xor(.eax, .eax)
        a.label("cpuid"); a.cpuid()
        a.label("mov_ecx"); a.mov(.ecx, tscDeadlineMSR)
        a.label("wrmsr"); a.wrmsr()
        a.label("cli"); a.cli()
        a.label("end")
        a.ucallSync(2)
        a.ucallDone()
    }
    try g.expectSync(1)
    if pending == .setLapic { try markVectorPending(g.vcpu, Int(selfIPIVector)) }
    return g
}

/// KVM_SET_LAPIC with the APIC software-enabled, TPR 0 and `vector` in IRR.
private func markVectorPending(_ vcpu: VCPU, _ vector: Int) throws {
    var page = try vcpu.lapicRegisters()
    page[0xF0] = 0xFF; page[0xF1] |= 1 // SVR: enabled, spurious 0xFF
    page[0x80] = 0 // TPR
    page[0x200 + 0x10 * (vector / 32) + (vector % 32) / 8] |= UInt8(1 << (vector % 8))
    try vcpu.setLapicRegisters(page)
}

/// The control of upstream's BLOCKIRQ step, a check of its own (a precondition of the step
/// check): without BLOCKIRQ, the step after sti must land in the pending vector's handler, or
/// the setup raised nothing and BLOCKIRQ would get credit for nothing.
func pendingIRQControl(_ source: PendingIRQSource) -> Check {
    let name = source == .selfIPI ? "pending_self_ipi_delivered_while_stepping_without_blockirq"
                                  : "pending_lapic_irr_delivered_while_stepping_without_blockirq"
    let uapi = ["KVM_SET_GUEST_DEBUG", "KVM_GUESTDBG_SINGLESTEP", "KVM_CREATE_IRQCHIP"] + (source == .selfIPI ? ["x2APIC ICR"] : ["KVM_SET_LAPIC"])
    return Check(name, uapi: uapi, requires: [needsGuestDebug, .capability(.irqchip)], levels: .only(.cpl0),
                 killedBy: source == .selfIPI ? [.blockirqForced] : [.blockirqForced, .lapicIRRDropped]) { t in
        let control = try upstreamStepGuest(t, source)
        try control.vcpu.setGuestDebug([.enable, .singleStep])
        let (stops, interruption) = try control.stepUntil(control.address("end"), limit: 8)
        let stub = GuestEnvironment.handlerEntry(vector: Int(selfIPIVector))
        var landed = stops.contains { (stub..<stub + 16).contains($0.exit.pc) }
        if case .exception(let e)? = interruption, e.vector == ExceptionVector(selfIPIVector) { landed = true }
        try t.assert(landed, "without BLOCKIRQ, stepping from sti delivers the pending vector \(hex(selfIPIVector))",
                     expected: "a step into \(control.describe(address: stub))",
                     observed: "stops at [" + stops.map { control.describe(address: $0.exit.pc) }.joined(separator: ", ") + "]"
                        + (interruption.map { ", then \($0)" } ?? ""))
    }
}

let selfIPIControlCheck = pendingIRQControl(.selfIPI)
let setLapicControlCheck = pendingIRQControl(.setLapic)

func upstreamStepCheck(_ t: CheckContext, pending: PendingIRQSource) throws {
    let g = try upstreamStepGuest(t, pending)
    try g.vcpu.setGuestDebug([.enable, .singleStep, .blockIRQ])
    let order = ["sti", "xor", "cpuid", "mov_ecx", "wrmsr", "cli", "end"]
    for (i, label) in order.dropLast().enumerated() {
        let next = order[i + 1]
        let event = try g.next()
        expectDebugExit(t, g, event, "step \(i + 1) over \(label)", pc: g.address(next), dr6: DR6.reporting(singleStep: true))
        guard case .exit(.debug) = event else {
            if i + 2 < order.count {
                t.expect(false, "steps \(i + 2)-\(order.count - 1)", expected: "each stops after its instruction", observed: "not reached (the walk left the sequence)")
            }
            break
        }
    }
    try g.vcpu.setGuestDebug([])
    let rest = try g.next()
    t.expect(rest == .sync(stage: 2, values: rest.syncValues), "after cli, debugging off: no interrupt taken (IF=0)",
                 expected: "ucall SYNC 2", observed: "\(rest)")
}
