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

    public init(_ name: String, advertisement: String,
                advertised: @escaping @Sendable (KVMSystem, CheckSettings) -> Bool?,
                probe: @escaping @Sendable (KVMSystem, CheckSettings) -> ProbeResult) {
        self.name = name; self.advertisement = advertisement; self.advertised = advertised; self.probe = probe
    }
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
