import CheckKit
import GuestKit
import KVMKit

// Helpers every debugging suite shares (guest-debug, debug-regs, blockirq, debug-cr3,
// pvm-guest-debug): the requirement, the uAPI names, the quiet watch area, the caps-row
// advertisement, and the comparisons of single-step walks and debug exits.

let debugUAPI = ["KVM_SET_GUEST_DEBUG", "KVM_EXIT_DEBUG", "kvm_debug_exit_arch"]
let needsGuestDebug = Requirement.capability(.setGuestDebug)
/// A quiet data area for watchpoints (identity-mapped, user-accessible).
let watched = GuestLayout.data

/// A caps row's advertisement: `flag` in KVM_CAP_SET_GUEST_DEBUG2's mask (nil: no mask).
func guestDebugMaskIncludes(_ flag: GuestDebugControl) -> @Sendable (KVMSystem, CheckSettings) -> Bool? {
    { kvm, _ in
        guard let mask = try? kvm.checkExtension(.setGuestDebug2), mask != 0 else { return nil }
        return UInt32(truncatingIfNeeded: mask) & flag.rawValue == flag.rawValue
    }
}

/// Compares the walk's stop addresses with the instruction boundaries (no step lost or
/// doubled), then checks each stop is a single-step #DB (exception 1, DR6.BS).
func assertSteps(_ t: CheckContext, _ g: Guest, _ stops: [DebugStop], _ interruption: GuestEvent?, expectedPCs: [UInt64]) throws {
    try assertStopAddresses(t, g, stops, interruption, expectedPCs: expectedPCs)
    for (i, s) in stops.enumerated() {
        try t.assertEqual(s.exit.exception, .db, "step \(i + 1): kvm_debug_exit_arch.exception (#DB)")
        try t.assert(s.exit.dr6.isSingleStep, "step \(i + 1) at \(g.describe(address: s.exit.pc)): kvm_debug_exit_arch.dr6",
                     expected: "BS (bit 14) set", observed: "\(s.exit.dr6)")
    }
}

func assertStopAddresses(_ t: CheckContext, _ g: Guest, _ stops: [DebugStop], _ interruption: GuestEvent?, expectedPCs: [UInt64]) throws {
    let seen = stops.map(\.exit.pc)
    if let interruption {
        throw Failure("single-step walk interrupted after \(stops.count) stop(s)",
                      expected: "stops at " + expectedPCs.map(g.describe).joined(separator: ", "),
                      observed: "stops at [" + seen.map(g.describe).joined(separator: ", ") + "], then \(interruption)")
    }
    guard seen != expectedPCs else { return }
    let i = zip(seen, expectedPCs).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(seen.count, expectedPCs.count)
    let what: String
    if i < seen.count, i + 1 < expectedPCs.count, seen[i] == expectedPCs[i + 1] {
        what = "a step was lost (no stop at \(g.describe(address: expectedPCs[i])))"
    } else if i > 0, i < seen.count, seen[i] == seen[i - 1] {
        what = "a step was doubled (two stops at \(g.describe(address: seen[i])))"
    } else if i == seen.count {
        what = "the walk ended early"
    } else {
        what = "step \(i + 1) stopped elsewhere"
    }
    throw Failure("single-step stops do not match the instruction boundaries: \(what)",
                  expected: expectedPCs.map(g.describe).joined(separator: ", "),
                  observed: seen.map(g.describe).joined(separator: ", "))
}

/// Records the fields of one KVM_EXIT_DEBUG that say which breakpoint fired (exception, pc,
/// dr6) and goes on; dr7 is debug_exit_dr7_equals_debugreg7's subject.
func expectDebugExit(_ t: CheckContext, _ g: Guest, _ d: DebugExit, _ what: String, exception: ExceptionVector = .db,
                     pc: UInt64, dr6: DR6) {
    t.expectEqual(d.exception, exception, "\(what): kvm_debug_exit_arch.exception")
    t.expect(d.pc == pc, "\(what): kvm_debug_exit_arch.pc", expected: g.describe(address: pc), observed: g.describe(address: d.pc))
    t.expect(d.dr6 == dr6, "\(what): kvm_debug_exit_arch.dr6", expected: "\(dr6)", observed: "\(d.dr6)")
}

/// As above for the next event, which must be a KVM_EXIT_DEBUG (anything else is recorded as
/// this sub-case's mismatch).
func expectDebugExit(_ t: CheckContext, _ g: Guest, _ event: GuestEvent, _ what: String, pc: UInt64, dr6: DR6) {
    guard case .exit(.debug(let d)) = event else {
        t.expect(false, "\(what): KVM_EXIT_DEBUG", expected: "KVM_EXIT_DEBUG at \(g.describe(address: pc))", observed: "\(event)")
        return
    }
    expectDebugExit(t, g, d, what, pc: pc, dr6: dr6)
}
