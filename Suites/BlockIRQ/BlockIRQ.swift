import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// KVM_GUESTDBG_BLOCKIRQ (5.15, seed 001): while set, KVM injects no new IRQ/NMI/SMI, so a
// single-step lands on the next instruction instead of in the IRQ handler.
// The guest enters with IF=1 set by the VMM (no `sti`, whose behaviour at CPL3 depends on IOPL)
// and vector 0xAA pending in the in-kernel LAPIC.  That the IRQ is delivered without BLOCKIRQ
// is a check of its own (pending_lapic_irq_delivered_without_blockirq), a precondition of
// every BLOCKIRQ check, as are IF reaching the guest and single-step at that CPL.

@section("kvmcheck_suites") @used
let blockIRQEntry: SuiteEntryPoint = { registerSuite(blockIRQSuite) }

let blockIRQUAPI = ["KVM_GUESTDBG_BLOCKIRQ", "KVM_SET_GUEST_DEBUG", "KVM_CAP_SET_GUEST_DEBUG2"]
let needsBlockIRQ = Requirement.capability(.setGuestDebug2, includes: UInt64(GuestDebugControl.blockIRQ.rawValue),
                                           named: "KVM_GUESTDBG_BLOCKIRQ")
/// The pending interrupt (as in the upstream selftest).
private let pendingVector = 0xAA
private let rflagsIF: UInt64 = 1 << 9

private let ifReachesGuest = CheckRef("guest-debug", vmmRFLAGSIFSetCheck)
private let singleStepWorks = CheckRef("guest-debug", singleStepCheck)

/// The control every BLOCKIRQ check relies on: with IF=1 at entry, the LAPIC's pending vector
/// is delivered before the first instruction, exactly once.
let lapicIRQDeliveredCheck = Check(
    "pending_lapic_irq_delivered_without_blockirq", uapi: ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC", "KVM_SET_REGS"],
    requires: [.capability(.irqchip)], preconditions: [ifReachesGuest], levels: .both, killedBy: [.lapicIRRDropped]) { t in
    let g = try pendingIRQGuest(t)
    let e = try g.expectException(ExceptionVector(pendingVector), because: "delivered at entry (IF=1, IRR set with KVM_SET_LAPIC)")
    t.expect((g.address("start")..<g.address("nop0")).contains(e.rip), "RIP in the interrupt frame (delivered at entry, not after the loop)",
             expected: "in the first loop, from \(g.describe(address: g.address("start")))", observed: g.describe(address: e.rip))
    try g.expectSync(1)
    try g.expectSync(2)
    t.expectEqual(g.exceptionCount, 1, "interrupts the guest's handler took (the pending one, once)")
}
private let irqDeliveredWithoutBlockIRQ = CheckRef("blockirq", lapicIRQDeliveredCheck)

let blockIRQSuite: Suite = Suite(
    "blockirq", summary: "KVM_GUESTDBG_BLOCKIRQ: no interrupt injection while single-stepping",
    series: "guestdbg-blockirq", features: [blockIRQFeature], checks: [
        lapicIRQDeliveredCheck,
        blockIRQStepsCheck,
        blockIRQClearedCheck,
        blockIRQRunningCheck,
        Check("kvm_interrupt_with_userspace_irqchip", uapi: blockIRQUAPI + ["KVM_INTERRUPT"],
              requires: [needsBlockIRQ], preconditions: [ifReachesGuest, singleStepWorks], levels: .both, informational: true,
              killedBy: [.blockirqRejected]) { t in
            var options = GuestOptions()
            options.extraRFLAGS = rflagsIF
            let g = try t.guest(options, irqWindowPayload)
            try g.setRIP(g.address("nop0"))
            try g.vcpu.setGuestDebug([.enable, .singleStep, .blockIRQ])
            let first = try g.nextDebugStop(expecting: "a step over nop0")
            try t.assert(first.exit.pc == g.address("nop1"), "setup: the first step",
                         expected: g.describe(address: g.address("nop1")), observed: g.describe(address: first.exit.pc))
            try g.vcpu.interrupt(vector: UInt32(pendingVector))
            let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 6)
            let duringBlockIRQ = deliveredIRQ(interruption, stops)
            let seen = "stops at [" + stops.map { g.describe(address: $0.exit.pc) }.joined(separator: ", ") + "]"
                + (interruption.map { ", then \($0)" } ?? "")
            try g.vcpu.setGuestDebug([])
            var afterClear = "nothing"
            var deliveredAfterClear = false
            if !duringBlockIRQ {
                let event = try g.next()
                afterClear = "\(event)"
                if case .exception(let e) = event, e.vector == ExceptionVector(pendingVector) { deliveredAfterClear = true }
            }
            t.note("KVM_INTERRUPT after the first step; \(seen); after clearing BLOCKIRQ: \(afterClear)")
            try t.assert(!duringBlockIRQ, "an IRQ queued with KVM_INTERRUPT (userspace irqchip) while BLOCKIRQ is set",
                         expected: "held until BLOCKIRQ is cleared (api.rst: avoid injecting interrupts)",
                         observed: "delivered during the steps: \(seen)")
            // "Held", not dropped: the queued IRQ must arrive once BLOCKIRQ is cleared.
            try t.assert(deliveredAfterClear, "the KVM_INTERRUPT IRQ once BLOCKIRQ is cleared",
                         expected: "vector \(hex(UInt64(pendingVector))) in the guest's handler at the next KVM_RUN", observed: afterClear)
        },
    ])

/// Single-step + BLOCKIRQ with the IRQ deliverable: each step lands on the next instruction.
let blockIRQStepsCheck = Check(
    "steps_land_on_next_instruction", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
    requires: [needsBlockIRQ, .capability(.irqchip)], preconditions: [ifReachesGuest, singleStepWorks, irqDeliveredWithoutBlockIRQ],
    levels: .both, killedBy: [.blockirqIgnored, .blockirqRejected]) { t in
    let g = try stepWithBlockIRQ(t)
    t.expectEqual(g.exceptionCount, 0, "interrupts the guest's handler took while BLOCKIRQ was set")
}

/// The same steps, then BLOCKIRQ cleared: the held IRQ is delivered, exactly once.
let blockIRQClearedCheck = Check(
    "irq_delivered_after_blockirq_cleared", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
    requires: [needsBlockIRQ, .capability(.irqchip)], preconditions: [ifReachesGuest, singleStepWorks, irqDeliveredWithoutBlockIRQ],
    levels: .both, killedBy: [.blockirqIgnored, .blockirqRejected, .guestDebugDisableIgnored]) { t in
    let g = try stepWithBlockIRQ(t)
    try g.vcpu.setGuestDebug([])
    try expectDeliveredOnceThenDone(t, g)
}

/// Without single-step: a guest loop runs with BLOCKIRQ set (the IRQ must stay pending), then
/// with it cleared (delivered exactly once).
let blockIRQRunningCheck = Check(
    "irq_held_while_running_with_blockirq", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
    requires: [needsBlockIRQ, .capability(.irqchip)], preconditions: [ifReachesGuest, irqDeliveredWithoutBlockIRQ],
    levels: .both, killedBy: [.blockirqIgnored, .blockirqRejected, .guestDebugDisableIgnored]) { t in
    let g = try pendingIRQGuest(t)
    try g.vcpu.setGuestDebug([.enable, .blockIRQ])
    let event = try g.next()
    guard case .sync(1, _) = event else {
        throw Failure("the pending IRQ was delivered while BLOCKIRQ was set (no single-step)",
                      expected: "ucall SYNC 1 after a \(loopIterations)-iteration loop with the IRQ held", observed: "\(event)")
    }
    t.expectEqual(g.exceptionCount, 0, "interrupts the guest's handler took during the loop with BLOCKIRQ set")
    try g.vcpu.setGuestDebug([])
    try expectDeliveredOnceThenDone(t, g)
}

/// Iterations of each guest loop: long enough for a held IRQ to have been delivered (an
/// injectable IRQ is delivered at a VM entry, and the control check shows it lands in loop1), short enough to be cheap where the loop is slow (at CPL0 on
/// kvm_pvm each iteration costs about one exit's round trip, ~5 us: 10,000 took 50 ms per loop,
/// most of a full run's BLOCKIRQ time).  On VMX/SVM the loop takes about a microsecond either way.
private let loopIterations: Int64 = 1_000

/// start: a loop, ucallSync(1), nop0..end, another loop, ucallSync(2), done.
/// No `sti`/`cli`/port I/O: the same at CPL0 and CPL3.
private func irqWindowPayload(_ a: inout Assembler) {
    a.label("start")
    a.mov(.rcx, loopIterations)
    a.label("loop1"); a.dec(.rcx); a.jcc(.nz, "loop1")
    a.ucallSync(1)
    a.label("nop0"); a.nop()
    a.label("nop1"); a.nop()
    a.label("nop2"); a.nop()
    a.label("nop3"); a.nop()
    a.label("end"); a.nop()
    a.mov(.rcx, loopIterations)
    a.label("loop2"); a.dec(.rcx); a.jcc(.nz, "loop2")
    a.ucallSync(2)
    a.ucallDone()
}

/// A guest entered with IF=1 whose in-kernel LAPIC holds vector 0xAA pending (IRR), set
/// through KVM_SET_LAPIC so no guest instruction is needed (the same at CPL0 and CPL3).
private func pendingIRQGuest(_ t: CheckContext) throws -> Guest {
    let g = try irqWindowGuest(t)
    try makeIRQPending(g)
    return g
}

/// The IRQ-window guest with IF=1 and an in-kernel LAPIC, nothing pending yet.
private func irqWindowGuest(_ t: CheckContext) throws -> Guest {
    var options = GuestOptions()
    options.inKernelIRQChip = true
    options.extraRFLAGS = rflagsIF
    return try t.guest(options, irqWindowPayload)
}

/// Vector 0xAA pending in the LAPIC's IRR (APIC enabled, TPR 0), set with KVM_SET_LAPIC.
private func makeIRQPending(_ g: Guest) throws {
    var page = try g.vcpu.lapicRegisters()
    func store32(_ offset: Int, _ value: UInt32) {
        for i in 0..<4 { page[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }
    store32(0xF0, 0x1FF) // SVR: APIC software-enabled, spurious vector 0xFF
    store32(0x80, 0) // TPR: accept every priority
    let irr = 0x200 + 0x10 * (pendingVector / 32)
    page[irr + (pendingVector % 32) / 8] |= UInt8(1 << ((pendingVector % 32) % 8))
    try g.vcpu.setLapicRegisters(page)
}

/// With BLOCKIRQ and single-step set and the IRQ pending: every stop over nop0..end must be on
/// the next instruction (none in the IRQ's stub).  Stepping is armed after a first exit (the
/// sync before nop0), as upstream's debug_regs.c does: an emulated VMX (Bochs) repeats the
/// first stop when single-step is armed before the vCPU's first entry, which is not BLOCKIRQ's
/// doing.  The IRQ is made pending only then, so nothing is delivered before the walk.
private func stepWithBlockIRQ(_ t: CheckContext) throws -> Guest {
    let g = try irqWindowGuest(t)
    try g.expectSync(1)
    try makeIRQPending(g)
    try g.vcpu.setGuestDebug([.enable, .singleStep, .blockIRQ])
    let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 6)
    try assertSteps(t, g, stops, interruption, expectedPCs: ["nop1", "nop2", "nop3", "end"].map(g.address))
    return g
}

/// After BLOCKIRQ is cleared: vector 0xAA exactly once, then the guest runs to its end.
private func expectDeliveredOnceThenDone(_ t: CheckContext, _ g: Guest) throws {
    try g.expectException(ExceptionVector(pendingVector), because: "delivered once BLOCKIRQ is cleared (IF=1, IRQ pending)")
    try g.expectSync(2)
    try g.expectDone()
    t.expectEqual(g.exceptionCount, 1, "interrupts the guest's handler took (the pending one, exactly once)")
}

/// Did the pending vector reach the guest: its handler reported it, or a step stopped in its stub?
private func deliveredIRQ(_ interruption: GuestEvent?, _ stops: [DebugStop]) -> Bool {
    if case .exception(let e)? = interruption, e.vector == ExceptionVector(pendingVector) { return true }
    let stub = GuestEnvironment.handlerEntry(vector: pendingVector)
    return stops.contains { (stub..<stub + 16).contains($0.exit.pc) }
}

let blockIRQFeature: Feature = Feature(
    "KVM_GUESTDBG_BLOCKIRQ", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & BLOCKIRQ",
    advertised: guestDebugMaskIncludes(.blockIRQ),
    decidedBy: [CheckRef("blockirq", blockIRQStepsCheck), CheckRef("blockirq", blockIRQClearedCheck),
                CheckRef("blockirq", blockIRQRunningCheck)])
