import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// "KVM: x86: Add CR3 to guest debug info" (seed 000, unmerged): every KVM_EXIT_DEBUG carries
// the vCPU's CR3 after dr7, advertised by KVM_CAP_X86_GUEST_DEBUG_CR3, whose number is not
// fixed (the RFC's 245 is taken upstream) and so comes from --cap or patches/.

@section("kvmcheck_suites") @used
let debugCR3Entry: SuiteEntryPoint = { registerSuite(debugCR3Suite) }

/// The series' capability: unmerged, so its number is configured (see ProposedCapabilities).
let debugCR3Capability = "KVM_CAP_X86_GUEST_DEBUG_CR3"
let cr3UAPI = [debugCR3Capability, "kvm_debug_exit_arch.cr3", "KVM_EXIT_DEBUG"]
/// Each check's two "processes": identity maps at roots no other check (and not the
/// environment's default root) uses, so a CR3 left over from elsewhere cannot match.
private struct CR3Roots {
    let boot: UInt64
    let second: UInt64
    init(check index: Int) {
        boot = GuestLayout.spareTables + UInt64(index) * 0x20000
        second = boot + 0x10000
    }
    /// Guest options booting on `boot`.
    func options(_ base: GuestOptions = GuestOptions()) -> GuestOptions {
        var o = base
        o.pageTableRoot = boot
        return o
    }
}
private let pcide: UInt64 = 1 << 17

let debugCR3Suite = Suite(
    "debug-cr3", summary: "CR3 in KVM_EXIT_DEBUG (proposed; cap number configurable)",
    series: "cr3-debug-exit", features: [debugCR3Feature], checks: [
        Check("cr3_slot_canary", uapi: cr3UAPI, requires: [needsGuestDebug], levels: .both, killedBy: [.cr3SlotScribbled]) { t in
            let advertised = try debugCR3Advertised(t.system, t.settings)
            let g = try t.guest { a in a.nop(); a.nop(); a.ucallDone() }
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            let stop = try stopWithCanary(g)
            let cr3 = try g.vcpu.sregs().cr3
            let finding = CR3SlotFinding(slot: stop.exit.cr3Slot, canary: cr3Canary(for: g), cr3: cr3)
            let verdict = judgeCR3Slot(finding, advertised: advertised.map { $0.value != 0 })
            t.note("\(advertised.map { "KVM_CHECK_EXTENSION(\($0.number)) = \($0.value)" } ?? "no cap number configured"); "
                   + "slot after a single-step exit: \(finding)")
            try t.assert(verdict.consistent, "kvm_run.debug.arch.cr3 slot (canary \(hex(cr3Canary(for: g))) planted before KVM_RUN): \(verdict.summary)",
                         expected: advertised?.value != 0 && advertised != nil ? "CR3 \(hex(cr3))" : "canary intact (cap not advertised)",
                         observed: "\(finding)")
        },
        cr3OnSingleStepCheck,
        cr3OnHWBreakpointCheck,
        cr3OnSWBreakpointCheck,
        cr3KeepsPCIDCheck,
    ])

/// The configured cap number and what KVM_CHECK_EXTENSION says of it; nil when none is configured.
public func debugCR3Advertised(_ kvm: KVMSystem, _ settings: CheckSettings) throws -> (number: Int, value: Int)? {
    try settings.proposedCapability(debugCR3Capability, on: kvm)
}

/// The configured cap must be advertised: judged before the checks' preconditions, so a
/// kernel without the series SKIPs for that, not for a behaviour the checks rely on.
let needsDebugCR3 = Requirement.proposedCapability(debugCR3Capability)

/// Skips, naming the gap exactly, unless the configured cap is advertised.
private func requireDebugCR3(_ t: CheckContext) throws {
    if let why = needsDebugCR3.unmet(t.system, t.settings) { throw Skip(why) }
}

/// Plants the canary in the cr3 slot, then runs to the next KVM_EXIT_DEBUG.
private func stopWithCanary(_ g: Guest) throws -> DebugStop {
    g.vcpu.debugExitCR3Slot = cr3Canary(for: g)
    return try g.nextDebugStop(expecting: "KVM_EXIT_DEBUG")
}

/// The exit's cr3 must equal KVM_GET_SREGS.cr3 and the root the "process" runs on.
private func assertCR3(_ t: CheckContext, _ g: Guest, _ stop: DebugStop, root: UInt64, _ what: String) throws {
    let sregsCR3 = try g.vcpu.sregs().cr3
    let finding = CR3SlotFinding(slot: stop.exit.cr3Slot, canary: cr3Canary(for: g), cr3: sregsCR3)
    try t.assert(finding == .filled, "\(what) at \(g.describe(address: stop.exit.pc)): kvm_debug_exit_arch.cr3",
                 expected: "KVM_GET_SREGS.cr3 \(hex(sregsCR3))", observed: "\(finding)")
    try t.assert(sregsCR3 == root, "\(what): KVM_GET_SREGS.cr3", expected: "the loaded root \(hex(root))",
                 observed: "\(hex(sregsCR3))")
}

/// Two "processes": at CPL0 the payload itself switches CR3 between the boot root and a
/// second one; at CPL3 (no MOV CR3) the host switches it between steps.
private func twoProcessGuest(_ t: CheckContext, _ roots: CR3Roots) throws -> Guest {
    let g = try t.guest(roots.options()) { a in
        a.nop()
        if t.cpl == .cpl0 {
            a.movabs(.rax, roots.second); a.mov(.cr3, .rax)
            a.label("inB"); a.nop()
            a.movabs(.rax, roots.boot); a.mov(.cr3, .rax)
            a.label("inA"); a.nop()
        } else {
            for _ in 0..<6 { a.nop() }
        }
        a.label("end")
        a.ucallDone()
    }
    g.installPageTables(root: roots.second)
    return g
}

/// At CPL0: the root the payload has loaded when a step stops at `pc`.
private func rootLoaded(at pc: UInt64, in g: Guest, _ roots: CR3Roots) -> UInt64 {
    (g.address("inB")..<g.address("inA")).contains(pc) ? roots.second : roots.boot
}

let debugCR3Feature = Feature(
    debugCR3Capability, advertisement: "configured cap number (--cap / patches/)",
    advertised: { kvm, settings in (try? debugCR3Advertised(kvm, settings))??.value != 0 ? true : (settings.proposedCapabilities[debugCR3Capability] == nil ? nil : false) },
    decidedBy: [CheckRef("debug-cr3", cr3OnSingleStepCheck), CheckRef("debug-cr3", cr3OnHWBreakpointCheck),
                CheckRef("debug-cr3", cr3OnSWBreakpointCheck), CheckRef("debug-cr3", cr3KeepsPCIDCheck)])

let cr3OnSingleStepCheck = Check("cr3_on_single_step_two_roots", uapi: cr3UAPI + ["KVM_GUESTDBG_SINGLESTEP"],
      requires: [needsGuestDebug, needsDebugCR3],
      preconditions: [CheckRef("guest-debug", singleStepCheck)], levels: .both, killedBy: [.cr3StaleRoot]) { t in
    try requireDebugCR3(t)
    let roots = CR3Roots(check: 1)
    let g = try twoProcessGuest(t, roots)
    try g.vcpu.setGuestDebug([.enable, .singleStep])
    var seenRoots: Set<UInt64> = []
    for step in 1...8 {
        if t.cpl == .cpl3 && step == 4 { try g.setCR3(roots.second) } // the "scheduler" switches process
        let stop = try stopWithCanary(g)
        let payload = GuestLayout.code..<GuestLayout.code + UInt64(g.program.bytes.count)
        try t.assert(payload.contains(stop.exit.pc), "single-step stop \(step): kvm_debug_exit_arch.pc",
                     expected: "inside the stepped payload", observed: g.describe(address: stop.exit.pc))
        let expected = t.cpl == .cpl3 ? (step >= 4 ? roots.second : roots.boot) : rootLoaded(at: stop.exit.pc, in: g, roots)
        try assertCR3(t, g, stop, root: expected, "single-step stop \(step)")
        seenRoots.insert(expected)
        if stop.exit.pc == g.address("end") { break }
    }
    try t.assertEqual(seenRoots.count, 2, "distinct roots seen across the steps (both processes)")
}

let cr3OnHWBreakpointCheck = Check("cr3_on_hw_breakpoint_two_roots", uapi: cr3UAPI + ["KVM_GUESTDBG_USE_HW_BP"],
      requires: [needsGuestDebug, needsDebugCR3],
      preconditions: [CheckRef("guest-debug", hwExecuteBreakpointCheck)], levels: .both, killedBy: [.cr3StaleRoot]) { t in
    try requireDebugCR3(t)
    let roots = CR3Roots(check: 2)
    let g = try t.guest(roots.options()) { a in a.label("bp"); a.nop(); a.ucallDone() }
    g.installPageTables(root: roots.second)
    let dr7 = DR7.fixed | DR7.arming(0, .execute)
    try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: GuestDebugRegisters([0: g.address("bp")], dr7: dr7))
    for root in [roots.boot, roots.second] {
        try g.setCR3(root)
        try g.setRIP(g.address("bp"))
        try assertCR3(t, g, try stopWithCanary(g), root: root, "DR0 breakpoint with root \(hex(root))")
    }
}

let cr3OnSWBreakpointCheck = Check("cr3_on_sw_breakpoint_two_roots", uapi: cr3UAPI + ["KVM_GUESTDBG_USE_SW_BP"],
      requires: [needsGuestDebug, needsDebugCR3],
      preconditions: [CheckRef("guest-debug", swBreakpointCheck)], levels: .both, killedBy: [.cr3StaleRoot]) { t in
    try requireDebugCR3(t)
    let roots = CR3Roots(check: 3)
    let g = try t.guest(roots.options()) { a in a.label("bp"); a.int3(); a.ucallDone() }
    g.installPageTables(root: roots.second)
    try g.vcpu.setGuestDebug([.enable, .useSoftwareBreakpoints])
    for root in [roots.boot, roots.second] {
        try g.setCR3(root)
        try g.setRIP(g.address("bp"))
        try assertCR3(t, g, try stopWithCanary(g), root: root, "int3 with root \(hex(root))")
    }
}

let cr3KeepsPCIDCheck = Check("cr3_keeps_pcid_bits", uapi: cr3UAPI + ["CR4.PCIDE"], requires: [needsGuestDebug, needsDebugCR3],
      preconditions: [CheckRef("guest-debug", singleStepCheck)], levels: .both, killedBy: [.cr3StaleRoot]) { t in
    try requireDebugCR3(t)
    guard try t.system.supportedCPUID().contains(where: { $0.function == 1 && $0.ecx & (1 << 17) != 0 }) else {
        throw Skip("CPUID.01H:ECX.PCID (bit 17) not in KVM_GET_SUPPORTED_CPUID: CR4.PCIDE cannot be set")
    }
    var options = GuestOptions()
    options.extraCR4 = pcide
    let roots = CR3Roots(check: 4)
    let g = try t.guest(roots.options(options)) { a in for _ in 0..<4 { a.nop() }; a.ucallDone() }
    g.installPageTables(root: roots.second)
    try g.vcpu.setGuestDebug([.enable, .singleStep])
    for root in [roots.boot | 0x001, roots.second | 0x002] {
        try g.setCR3(root)
        try assertCR3(t, g, try stopWithCanary(g), root: root, "single-step with CR3 \(hex(root)) (PCID \(root & 0xFFF))")
    }
}
