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
