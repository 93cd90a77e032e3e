import GuestKit

/// The checks' declarations (`killedBy:`, `unkillable:`, `gapUnder:`, `positiveControls:`)
/// inverted per mutant: what MutantTests holds each mutant to, and `kvmcheck list --mutants`.
public enum MutantCoverage {
    /// Instances with neither a killer nor a reason they cannot be killed (each one a defect).
    public static func uncovered(_ instances: [CheckInstance]) -> [CheckInstance] {
        instances.filter { !$0.check.informational && $0.check.killedBy.isEmpty && $0.check.unkillable == nil }
    }

    /// What one mutant must do to a set of instances (ids in the given order).
    public struct Duty: Sendable, Equatable {
        public let mutant: MutantID
        /// Must turn `not ok` (where they pass without it), and only these.
        public var kills: [String] = []
        /// May turn SKIP instead of keeping their verdict.
        public var gaps: [String] = []
        /// May get a verdict where they SKIP without it (the mutant is their positive control).
        public var controls: [String] = []
        /// The suites holding any of them: the only ones the mutant can change.
        public var suites: [String] = []
    }

    public static func duty(of mutant: MutantID, over instances: [CheckInstance]) -> Duty {
        var duty = Duty(mutant: mutant)
        for i in instances {
            if i.check.killedBy.contains(mutant) { duty.kills.append(i.id) }
            else if isGap(i.check, cpl: i.cpl, under: mutant) { duty.gaps.append(i.id) }
            if i.check.positiveControls.contains(mutant) { duty.controls.append(i.id) }
        }
        let named = Set(duty.kills + duty.gaps + duty.controls)
        for i in instances where named.contains(i.id) && !duty.suites.contains(i.suite.name) { duty.suites.append(i.suite.name) }
        return duty
    }

    /// Whether `mutant` may make `check` (at `cpl`) SKIP: declared, or through a precondition it
    /// kills or makes a gap (the runner then skips the check naming that precondition).
    public static func isGap(_ check: Check, cpl: GuestCPL?, under mutant: MutantID) -> Bool {
        if check.gapUnder.contains(mutant) { return true }
        return check.preconditions.contains { ref in
            ref.check.killedBy.contains(mutant) || isGap(ref.check, cpl: ref.level(for: cpl), under: mutant)
        }
    }

    /// The mutants declared to kill an instance.
    public static func killers(of instance: CheckInstance) -> [MutantID] { instance.check.killedBy }
}
