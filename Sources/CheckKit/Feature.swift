import GuestKit
import KVMKit

/// One uAPI of a series, as `kvmcheck caps` reports it: advertised by its cap? and, at each
/// level, what the checks whose subject it is concluded (the first one that does not pass
/// decides the row; every row names its deciding check).
public struct Feature: Sendable {
    public let name: String
    /// What advertises it, e.g. "KVM_CAP_SET_GUEST_DEBUG2 & BLOCKIRQ", or "no capability (unmerged)".
    public let advertisement: String
    /// nil when no capability exists (or its number is not configured).
    public let advertised: @Sendable (KVMSystem, CheckSettings) -> Bool?
    /// The checks whose subject is this uAPI, in the order they decide a row.
    public let decidingChecks: [CheckRef]
    /// The levels `caps` reports a row for (checks without a guest give one row whatever this says).
    public let levels: [GuestCPL]

    /// `caps` runs the deciding checks as a run would (requirements, preconditions, body).
    public init(_ name: String, advertisement: String,
                advertised: @escaping @Sendable (KVMSystem, CheckSettings) -> Bool?,
                decidedBy checks: [CheckRef], levels: [GuestCPL] = [.cpl0, .cpl3]) {
        precondition(!checks.isEmpty, "a caps row is decided by at least one check")
        self.name = name; self.advertisement = advertisement; self.advertised = advertised
        self.decidingChecks = checks; self.levels = levels
    }

    /// One `caps` row per level, each naming the check that decided it; a uAPI its capability
    /// advertises but whose check finds it absent is broken.
    public func rows(system: KVMSystem, settings: CheckSettings) -> [CapsRow] {
        Feature.judged(Feature.rows(decidingChecks, levels: levels, system: system, settings: settings),
                       advertised: advertised(system, settings))
    }

    /// A capability that claims what its checks find absent makes the row broken.
    public static func judged(_ rows: [CapsRow], advertised: Bool?) -> [CapsRow] {
        guard advertised == true else { return rows }
        return rows.map { row in
            guard row.status == .absent else { return row }
            var r = row; r.status = .broken; r.detail = "advertised, but " + row.detail
            return r
        }
    }

    static func rows(_ checks: [CheckRef], levels: [GuestCPL], system: KVMSystem, settings: CheckSettings) -> [CapsRow] {
        let levelBound = checks.contains { if case .notApplicable = $0.check.levels { return false } else { return true } }
        // Every deciding check runs; the worst outcome decides the row (broken, absent,
        // precondition failed, untestable here, present), and the checks that passed are named.
        let rank: [FeatureStatus: Int] = [.broken: 0, .absent: 1, .preconditionFailed: 2, .untestable: 3, .present: 4]
        return (levelBound ? levels.map(Optional.some) : [nil]).map { level in
            var passed: [String] = []
            var worst: CapsRow?
            for ref in checks {
                let id = ref.id(for: level)
                let r = CheckEvaluation.evaluate(ref.check, cpl: ref.level(for: level), system: system, settings: settings)
                let row: CapsRow
                switch r.outcome {
                case .pass: passed.append(id); continue
                case .fail(let f): row = CapsRow(level: level, status: .broken, decidedBy: id, detail: oneLine(f.message))
                case .skip(let why) where Skip.isPreconditionFailure(why):
                    row = CapsRow(level: level, status: .preconditionFailed, decidedBy: id, detail: oneLine(why))
                case .skip(let why) where Skip.isUntestable(why):
                    row = CapsRow(level: level, status: .untestable, decidedBy: id, detail: oneLine(why))
                case .skip(let why): row = CapsRow(level: level, status: .absent, decidedBy: id, detail: oneLine(why))
                case .harnessError(let why):
                    // The harness could not run the check here: nothing is known of the uAPI.
                    row = CapsRow(level: level, status: .untestable, decidedBy: id, detail: "harness error: " + oneLine(why))
                }
                if worst == nil || rank[row.status]! < rank[worst!.status]! { worst = row }
            }
            guard var row = worst else {
                let first = (passed.first ?? "") + (passed.count > 1 ? " (+\(passed.count - 1) more)" : "")
                return CapsRow(level: level, status: .present, decidedBy: first, detail: "passed: " + passed.joined(separator: ", "))
            }
            if !passed.isEmpty { row.detail += " (passed: " + passed.joined(separator: ", ") + ")" }
            return row
        }
    }
}

/// One row of `kvmcheck caps`: a uAPI at one level, and the check that decided it.
public struct CapsRow: Sendable, Equatable {
    public var level: GuestCPL?
    public var status: FeatureStatus
    public var decidedBy: String
    public var detail: String

    public init(level: GuestCPL?, status: FeatureStatus, decidedBy: String, detail: String) {
        self.level = level; self.status = status; self.decidedBy = decidedBy; self.detail = detail
    }
}

/// The verdict of one `caps` row.
public enum FeatureStatus: String, Sendable, Equatable {
    case present, absent, broken
    /// No positive control exists on this kernel: the deciding check could not have seen the opposite.
    case untestable = "untestable here"
    /// A behaviour the deciding check relies on (another check) fails: this uAPI gets no verdict.
    case preconditionFailed = "precondition failed"
}
