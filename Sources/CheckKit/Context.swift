import GuestKit
import X86Asm
import KVMKit
import SystemPackage

/// Settings that reach every check (from the command line).
public struct CheckSettings: Sendable, Equatable {
    public var devicePath: String = "/dev/kvm"
    /// Numbers of unmerged capabilities on the kernel under test, and where each came from.
    public var proposedCapabilities = ProposedCapabilities()
    /// How long each timed race (sync-regs-upstream) runs.  Upstream's sync_regs_test runs each
    /// for "2 seconds, roughly"; the default keeps a full run short while every race still makes
    /// about a thousand KVM_RUNs against the racer (each check notes its counts).
    public var raceMilliseconds: Int = CheckSettings.defaultRaceMilliseconds
    public static let defaultRaceMilliseconds = 100
    public init() {}
}

/// What a check body gets: the open KVM system, its privilege level, and ways to report.
public final class CheckContext {
    public let system: KVMSystem
    /// The level this instance runs its guest at (CPL0 when the check is level-agnostic).
    public let cpl: GuestCPL
    public let settings: CheckSettings
    public private(set) var notes: [String] = []

    public init(system: KVMSystem, cpl: GuestCPL, settings: CheckSettings) {
        self.system = system; self.cpl = cpl; self.settings = settings
    }

    /// A fresh VM running `code` at this instance's privilege level.
    public func guest(_ options: GuestOptions = GuestOptions(), _ code: (inout Assembler) -> Void) throws -> Guest {
        try Guest(system: system, cpl: cpl, options: options, code: code)
    }

    private var changedSettings: [HostSetting] = []

    /// A host setting this check will change; it is restored when the check ends, on every
    /// path (see HostSetting).
    /// A restore directory that cannot be trusted, or another run holding the setting, is a
    /// gap of this machine (SKIP with the reason), not a kernel verdict.
    public func hostSetting(_ path: String) throws -> HostSetting {
        let setting: HostSetting
        switch Result(catching: { () throws(HostSettingError) in try HostSetting(path: path) }) {
        case .success(let s): setting = s
        case .failure(let e) where e.kind == .restoreDirectory || e.kind == .busy:
            throw Skip("cannot change \(path) safely: \(e.reason)")
        case .failure(let e): throw e
        }
        changedSettings.append(setting)
        return setting
    }

    /// Restores every setting the body changed (called by the runner's child after the body).
    func restoreHostSettings() {
        for s in changedSettings.reversed() where !s.restore() {
            note("could not restore \(s.path) to \(s.original); its restore record stays for the runner")
        }
    }

    /// A diagnostic line that appears in the report whatever the verdict.
    public func note(_ line: String) { notes.append(line) }

    /// What the record-and-continue assertions have seen so far (Context+Assertions.swift).
    var record = SubCaseRecord()

    /// Any error a check body can throw, as the failure it reports.
    static func failure(from error: any Error) -> Failure {
        switch error {
        case let f as Failure: return f
        case let e as KVMError: return Failure(unexpected: e)
        case let e as GuestError:
            if case .unexpectedEvent(let expected, let observed) = e {
                return Failure("guest did not do what the check expected", expected: expected, observed: "\(observed)")
            }
            return Failure("guest: \(e)")
        case let s as Skip: return Failure("sub-case could not run: \(s.reason)")
        default: return Failure("unexpected error: \(error)")
        }
    }
}

/// Formats values the way kernel developers read them: integers in hex.
public func describe<T>(_ value: T) -> String {
    switch value {
    case let v as UInt64: return hex(v)
    case let v as UInt32: return hex(v)
    case let v as Int: return String(v)
    case let v as [UInt64]: return "[" + v.map { hex($0) }.joined(separator: ", ") + "]"
    case let v as CustomStringConvertible: return v.description
    default: return String(describing: value)
    }
}

func hexBytes(_ bytes: [UInt8], around offset: Int) -> String {
    let lo = max(0, offset - 4), hi = min(bytes.count, offset + 12)
    let text = bytes[lo..<hi].map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
    return "[\(lo)..<\(hi)] \(text)"
}
