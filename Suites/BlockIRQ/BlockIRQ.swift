import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// KVM_GUESTDBG_BLOCKIRQ (5.15, seed 001): while set, KVM injects no new IRQ/NMI/SMI, so a
// single-step over `sti` lands on the next instruction instead of in the IRQ handler.
// Every check first runs the control without BLOCKIRQ: if the pending IRQ is not delivered
// there, the setup is broken and BLOCKIRQ gets no credit.

@section("kvmcheck_suites") @used
let blockIRQEntry: SuiteEntryPoint = { registerSuite(blockIRQSuite) }

let blockIRQUAPI = ["KVM_GUESTDBG_BLOCKIRQ", "KVM_SET_GUEST_DEBUG", "KVM_CAP_SET_GUEST_DEBUG2"]
let needsBlockIRQ = Requirement.capability(.setGuestDebug2, includes: UInt64(GuestDebugControl.blockIRQ.rawValue),
                                           named: "KVM_GUESTDBG_BLOCKIRQ")
/// The pending interrupt (as in the upstream selftest).
let pendingVector = 0xAA

let blockIRQSuite: Suite = Suite(
    "blockirq", summary: "KVM_GUESTDBG_BLOCKIRQ: no interrupt injection while single-stepping",
    series: "guestdbg-blockirq", features: [blockIRQFeature], checks: [
        Check("steps_land_on_next_instruction", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
              requires: [needsBlockIRQ, .capability(.irqchip)], levels: .both) { t in
            try stepOverSTIWithBlockIRQ(t)
        },
        Check("irq_delivered_after_blockirq_cleared", uapi: blockIRQUAPI + ["KVM_CREATE_IRQCHIP", "KVM_SET_LAPIC"],
              requires: [needsBlockIRQ, .capability(.irqchip)], levels: .both) { t in
            let g = try stepOverSTIWithBlockIRQ(t)
            try g.vcpu.setGuestDebug([])
            let event = try g.next()
            guard case .exception(let e) = event, e.vector == UInt64(pendingVector) else {
                throw t.unexpected(event, expected: "vector 0x\(String(pendingVector, radix: 16)) delivered once BLOCKIRQ is cleared (IF=1, IRQ pending)")
            }
            try g.expectSync(1)
            try t.expectEqual(g.exceptionCount, 1, "interrupts the guest's handler took (the pending one, once)")
        },
        Check("kvm_interrupt_with_userspace_irqchip", uapi: blockIRQUAPI + ["KVM_INTERRUPT"],
              requires: [needsBlockIRQ], levels: .both, informational: true) { t in
            let g = try t.guest(GuestOptions(), stepOverSTI)
            try g.vcpu.setGuestDebug([.enable, .singleStep, .blockIRQ])
            let first = try g.nextDebugStop(expecting: "a step over sti")
            try t.expect(first.exit.pc == g.address("nop1"), "setup: the step over sti",
                         expected: g.describe(address: g.address("nop1")), observed: g.describe(address: first.exit.pc))
            try g.vcpu.interrupt(vector: UInt32(pendingVector))
            let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 6)
            let duringBlockIRQ = deliveredIRQ(interruption, stops)
            let seen = "stops at [" + stops.map { g.describe(address: $0.exit.pc) }.joined(separator: ", ") + "]"
                + (interruption.map { ", then \($0)" } ?? "")
            try g.vcpu.setGuestDebug([])
            var afterClear = "nothing"
            if !duringBlockIRQ {
                let event = try g.next()
                afterClear = "\(event)"
            }
            t.note("KVM_INTERRUPT after the step over sti; \(seen); after clearing BLOCKIRQ: \(afterClear)")
            try t.expect(!duringBlockIRQ, "an IRQ queued with KVM_INTERRUPT (userspace irqchip) while BLOCKIRQ is set",
                         expected: "held until BLOCKIRQ is cleared (api.rst: avoid injecting interrupts)",
                         observed: "delivered during the steps: \(seen)")
        },
    ])

/// The control, then the same steps with BLOCKIRQ: each must land on the next instruction.
@discardableResult
func stepOverSTIWithBlockIRQ(_ t: CheckContext) throws -> Guest {
    try expectIRQLandsWithoutBlockIRQ(t)
    let g = try pendingIRQGuest(t)
    try g.vcpu.setGuestDebug([.enable, .singleStep, .blockIRQ])
    let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 6)
    try expectSteps(t, g, stops, interruption, expectedPCs: ["nop1", "nop2", "nop3", "end"].map(g.address))
    return g
}

/// `sti` followed by a few one-byte instructions; IRQs become deliverable after `nop1`.
func stepOverSTI(_ a: inout Assembler) {
    a.label("sti"); a.sti()
    a.label("nop1"); a.nop()
    a.label("nop2"); a.nop()
    a.label("nop3"); a.nop()
    a.label("end"); a.nop()
    a.ucallSync(1)
    a.ucallDone()
}

/// A guest with an in-kernel LAPIC holding vector 0xAA pending (IRR) while IF=0, set through
/// KVM_SET_LAPIC so no guest instruction is needed (works the same at CPL0 and CPL3).
func pendingIRQGuest(_ t: CheckContext) throws -> Guest {
    var options = GuestOptions()
    options.inKernelIRQChip = true
    let g = try t.guest(options, stepOverSTI)
    var page = try g.vcpu.lapicRegisters()
    func store32(_ offset: Int, _ value: UInt32) {
        for i in 0..<4 { page[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(i))) }
    }
    store32(0xF0, 0x1FF) // SVR: APIC software-enabled, spurious vector 0xFF
    store32(0x80, 0) // TPR: accept every priority
    let irr = 0x200 + 0x10 * (pendingVector / 32)
    page[irr + (pendingVector % 32) / 8] |= UInt8(1 << ((pendingVector % 32) % 8))
    try g.vcpu.setLapicRegisters(page)
    return g
}

/// Did the pending vector reach the guest: its handler reported it, or a step stopped in its stub?
func deliveredIRQ(_ interruption: GuestEvent?, _ stops: [DebugStop]) -> Bool {
    if case .exception(let e)? = interruption, e.vector == UInt64(pendingVector) { return true }
    let stub = GuestEnvironment.handlerEntry(vector: pendingVector)
    return stops.contains { (stub..<stub + 16).contains($0.exit.pc) }
}

/// The control: without BLOCKIRQ, stepping over `sti; nop…` must deliver the pending IRQ.
func expectIRQLandsWithoutBlockIRQ(_ t: CheckContext) throws {
    let g = try pendingIRQGuest(t)
    try g.vcpu.setGuestDebug([.enable, .singleStep])
    let (stops, interruption) = try g.stepUntil(g.address("end"), limit: 6)
    guard deliveredIRQ(interruption, stops) else {
        throw Failure("control failed: without BLOCKIRQ the pending IRQ was not delivered while stepping, so this setup cannot show what BLOCKIRQ does",
                      expected: "vector 0x\(String(pendingVector, radix: 16)) delivered during the steps over sti; nop",
                      observed: "stops at [" + stops.map { g.describe(address: $0.exit.pc) }.joined(separator: ", ") + "]"
                        + (interruption.map { ", then \($0)" } ?? ""))
    }
    t.note("control: without BLOCKIRQ the step after sti lands in the vector 0x\(String(pendingVector, radix: 16)) handler")
}

let blockIRQFeature: Feature = Feature(
    "KVM_GUESTDBG_BLOCKIRQ", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & BLOCKIRQ",
    advertised: guestDebugMaskIncludes(.blockIRQ)) { kvm, settings in
    Feature.probe(running: blockIRQSuite.bodies("steps_land_on_next_instruction"),
                  works: "steps land on the next instruction; the control without it lands in the handler (CPL0 and CPL3)")(kvm, settings)
}
