import GuestKit
import KVMKit

/// One uAPI of a series, as `kvmcheck caps` reports it: advertised by its cap? observed by a probe?
public struct Feature: Sendable {
    public let name: String
    /// What advertises it, e.g. "KVM_CAP_SET_GUEST_DEBUG2 & BLOCKIRQ", or "no capability (unmerged)".
    public let advertisement: String
    /// nil when no capability exists (or its number is not configured).
    public let advertised: @Sendable (KVMSystem, CheckSettings) -> Bool?
    public let probe: @Sendable (KVMSystem, CheckSettings) -> ProbeResult
    /// The checks whose subject is this uAPI, in the order they decide a row; empty for a
    /// feature described by a probe closure alone.
    public let decidingChecks: [CheckRef]
    /// The levels `caps` reports a row for (checks without a guest give one row whatever this says).
    public let levels: [GuestCPL]

    public init(_ name: String, advertisement: String,
                advertised: @escaping @Sendable (KVMSystem, CheckSettings) -> Bool?,
                probe: @escaping @Sendable (KVMSystem, CheckSettings) -> ProbeResult) {
        self.name = name; self.advertisement = advertisement; self.advertised = advertised; self.probe = probe
        self.decidingChecks = []; self.levels = [.cpl0]
    }

    /// A feature decided by the checks whose subject it is, at each level: `caps` runs them as
    /// a run would (requirements, preconditions, body) and the first one that does not pass
    /// decides the row.
    public init(_ name: String, advertisement: String,
                advertised: @escaping @Sendable (KVMSystem, CheckSettings) -> Bool?,
                decidedBy checks: [CheckRef], levels: [GuestCPL] = [.cpl0, .cpl3]) {
        self.name = name; self.advertisement = advertisement; self.advertised = advertised
        self.decidingChecks = checks; self.levels = levels
        self.probe = { kvm, settings in
            let rows = Feature.rows(checks, levels: levels, system: kvm, settings: settings)
            if let bad = rows.first(where: { $0.status != .present }) {
                return bad.status == .absent ? .absent(bad.detail) : .misbehaves("\(bad.decidedBy): \(bad.detail)")
            }
            return .works(rows.map(\.detail).joined(separator: "; "))
        }
    }

    /// One `caps` row per level, each naming the check that decided it.
    public func rows(system: KVMSystem, settings: CheckSettings) -> [CapsRow] {
        if decidingChecks.isEmpty {
            let probed = probe(system, settings)
            let status = FeatureStatus.of(advertised: advertised(system, settings), probe: probed)
            let detail: String
            switch probed { case .works(let d), .absent(let d), .misbehaves(let d): detail = d }
            return [CapsRow(level: nil, status: status, decidedBy: "probe", detail: detail)]
        }
        var rows = Feature.rows(decidingChecks, levels: levels, system: system, settings: settings)
        if advertised(system, settings) == true {
            for i in rows.indices where rows[i].status == .absent { rows[i].status = .broken; rows[i].detail = "advertised, but " + rows[i].detail }
        }
        return rows
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
}

/// What a behavioural probe saw.
public enum ProbeResult: Sendable, Equatable {
    case works(String)
    case absent(String)
    case misbehaves(String)
}

/// The verdict of one `caps` row.
public enum FeatureStatus: String, Sendable, Equatable {
    case present, absent, broken
    /// No positive control exists on this kernel: the deciding check could not have seen the opposite.
    case untestable = "untestable here"
    /// A behaviour the deciding check relies on (another check) fails: this uAPI gets no verdict.
    case preconditionFailed = "precondition failed"

    /// Present when the probe saw it work; broken when it misbehaves or the cap claims what the probe cannot see.
    public static func of(advertised: Bool?, probe: ProbeResult) -> FeatureStatus {
        switch probe {
        case .works: return .present
        case .misbehaves: return .broken
        case .absent: return advertised == true ? .broken : .absent
        }
    }
}

extension Feature {
    /// A probe that runs check bodies in-process at each level: "works" when all pass, the
    /// first failure (with its level) otherwise, "absent" when a body skips for a gap.
    /// This keeps `kvmcheck caps` in step with what the suite's checks observe.
    public static func probe(running bodies: [(name: String, body: @Sendable (CheckContext) throws -> Void)],
                             levels: [GuestCPL] = [.cpl0, .cpl3], works: String) -> @Sendable (KVMSystem, CheckSettings) -> ProbeResult {
        { kvm, settings in
            for level in levels {
                for (name, body) in bodies {
                    let where_ = "\(name) at CPL\(level.rawValue)"
                    do { try body(CheckContext(system: kvm, cpl: level, settings: settings)) } catch let skip as Skip {
                        return .absent("\(where_): \(skip.reason)")
                    } catch let f as Failure {
                        return .misbehaves("\(where_): \(f.message)" + (f.observed.map { " (observed \($0))" } ?? ""))
                    } catch {
                        return .misbehaves("\(where_): \(error)")
                    }
                }
            }
            return .works(works)
        }
    }
}

extension Suite {
    /// The named checks' bodies, for `Feature.probe(running:)`; a typo is a programming error.
    public func bodies(_ names: String...) -> [(name: String, body: @Sendable (CheckContext) throws -> Void)] {
        names.map { name in
            guard let check = checks.first(where: { $0.name == name }) else { preconditionFailure("no check '\(name)' in \(self.name)") }
            return (name, check.body)
        }
    }
}
