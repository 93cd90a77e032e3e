import CLibcap
import KVMKit

/// Something a check needs from the kernel or the process; unmet → SKIP with the exact reason.
public struct Requirement: Sendable {
    /// What is required, for `kvmcheck list`.
    public let summary: String
    /// nil when met; otherwise the skip reason (which cap, which probe, which errno).
    public let unmetReason: @Sendable (KVMSystem) -> String?

    /// The same, for a requirement that depends on the run's settings (a configured cap number).
    let unmetWithSettings: (@Sendable (KVMSystem, CheckSettings) -> String?)?
    /// The unmerged capability this requires (see `proposedCapability(_:)`), so `--cap` can
    /// tell a name some check needs from a typo.
    public let proposedCapability: String?

    public init(_ summary: String, unmetReason: @escaping @Sendable (KVMSystem) -> String?) {
        self.summary = summary; self.unmetReason = unmetReason; self.unmetWithSettings = nil; self.proposedCapability = nil
    }

    /// A requirement judged with the run's settings.
    public static func configured(_ summary: String, _ body: @escaping @Sendable (KVMSystem, CheckSettings) -> String?) -> Requirement {
        Requirement(summary: summary, proposedCapability: nil, body)
    }

    init(proposedCapability name: String, _ body: @escaping @Sendable (KVMSystem, CheckSettings) -> String?) {
        self.init(summary: name, proposedCapability: name, body)
    }

    private init(summary: String, proposedCapability: String?, _ body: @escaping @Sendable (KVMSystem, CheckSettings) -> String?) {
        self.summary = summary; self.unmetReason = { _ in nil }; self.unmetWithSettings = body
        self.proposedCapability = proposedCapability
    }

    /// nil when met; otherwise the skip reason.  Requirements are judged before preconditions:
    /// a missing capability is the more precise reason to skip.
    public func unmet(_ system: KVMSystem, _ settings: CheckSettings) -> String? {
        unmetWithSettings?(system, settings) ?? unmetReason(system)
    }

    /// KVM_CHECK_EXTENSION(cap) must be non-zero.
    public static func capability(_ cap: Capability) -> Requirement {
        Requirement(cap.name) { kvm in
            do {
                let v = try kvm.checkExtension(cap)
                return v == 0 ? "KVM_CHECK_EXTENSION(\(cap)) = 0: capability absent" : nil
            } catch { return "\(error)" }
        }
    }

    /// KVM_CHECK_EXTENSION(cap) must return a mask that includes `bits` (e.g. SYNC_REGS, GUEST_DEBUG2).
    public static func capability(_ cap: Capability, includes bits: UInt64, named: String) -> Requirement {
        Requirement("\(cap.name) & \(named)") { kvm in
            do {
                let v = UInt64(try kvm.checkExtension(cap))
                if v & bits == bits { return nil }
                return "KVM_CHECK_EXTENSION(\(cap)) = \(hex(v)) lacks \(named) (\(hex(bits & ~v)))"
            } catch { return "\(error)" }
        }
    }

    /// The process must hold a capability in its effective set (checked with libcap).
    public static func processCapability(_ cap: ProcessCapability) -> Requirement {
        Requirement(cap.name) { _ in
            switch cap.isEffective() {
            case .success(true): return nil
            case .success(false): return "process lacks \(cap.name) in its effective set"
            case .failure(let why): return "cannot read process capabilities: \(why)"
            }
        }
    }

    /// A behavioural probe: returns nil when the feature is usable, or why not.
    public static func probe(_ summary: String, _ body: @escaping @Sendable (KVMSystem) -> String?) -> Requirement {
        Requirement(summary, unmetReason: body)
    }
}

/// A Linux capability(7) the process may hold.
public struct ProcessCapability: Sendable, Hashable {
    public let name: String
    let value: cap_value_t

    public static let sysAdmin = ProcessCapability(name: "CAP_SYS_ADMIN", value: cap_value_t(CAP_SYS_ADMIN))

    public func isEffective() -> Result<Bool, CapabilityReadError> {
        guard let caps = cap_get_proc() else { return .failure(CapabilityReadError(text: "cap_get_proc failed")) }
        // SAFETY: libcap allocated `caps`; it is freed once, after its last use (cap_free takes void *).
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        var flag = cap_flag_value_t(rawValue: 0)
        guard cap_get_flag(caps, value, CAP_EFFECTIVE, &flag) == 0 else {
            return .failure(CapabilityReadError(text: "cap_get_flag(\(name)) failed"))
        }
        return .success(flag == CAP_SET)
    }

    /// The process's capability text, e.g. "=ep cap_sys_resource-ep".
    public static func currentText() -> String {
        guard let caps = cap_get_proc() else { return "unknown" }
        // SAFETY: libcap allocated `caps` and `text`; each is freed once, after its last use.
        defer { cap_free(UnsafeMutableRawPointer(caps)) }
        guard let text = cap_to_text(caps, nil) else { return "unknown" }
        defer { cap_free(UnsafeMutableRawPointer(text)) }
        return String(cString: text)
    }
}

public struct CapabilityReadError: Error, Sendable, CustomStringConvertible {
    public let text: String
    public var description: String { text }
}
