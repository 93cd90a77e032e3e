import Glibc
import KVMKit

/// A host setting the harness knows how to change and put back.  A restore record can only
/// name one of these, by `name`; the path written is always this table's, never the record's.
public struct KnownHostSetting: Sendable, Equatable {
    /// The record's key: lowercase letters, digits and `_` only.
    public let name: String
    public let path: String

    /// The settings of this run.  Stand-in files (for the harness's own tests) are honoured only
    /// with KVMCHECK_HARNESS_SELFTEST=1 and an absolute path.
    public static var all: [KnownHostSetting] {
        if let override = HostRestore.override { return override.settings }
        var list = [KnownHostSetting(name: "freeze_on_smi", path: standIn("KVMCHECK_FREEZE_ON_SMI") ?? "/sys/devices/cpu/freeze_on_smi")]
        if let harness = standIn("KVMCHECK_HARNESS_SETTING") { list.append(KnownHostSetting(name: "harness_setting", path: harness)) }
        return list
    }

    public init(name: String, path: String) { self.name = name; self.path = path }

    static func standIn(_ variable: String) -> String? {
        guard environment("KVMCHECK_HARNESS_SELFTEST") == "1", let path = environment(variable), path.hasPrefix("/") else { return nil }
        return path
    }

    static func named(_ name: String) -> KnownHostSetting? { all.first { $0.name == name } }

    /// The path of the known setting `name` this run would change (its stand-in only under the
    /// harness's self-test), so a check probes exactly the file it may write.
    public static func path(of name: String) -> String? { named(name)?.path }
}

/// A host setting a check changes (a sysfs/procfs file such as /sys/devices/cpu/freeze_on_smi).
///
/// Before the first change the original value is written to a *restore record*, while holding
/// an exclusive `flock` on the setting that lasts until it is put back.  That makes every path safe:
/// - the check restores the setting when its body ends, whether it passed, failed or threw;
/// - the runner applies records a dead child left behind (timeout, crash, signal);
/// - the next run applies records left by a runner that died itself (kill -9, power loss);
/// - a second run that wants the same setting waits for the lock, so it never records the
///   first run's changed value as "original", and never touches a live run's record.
public final class HostSetting {
    public let path: String
    /// The value read before any change (without the trailing newline), under the lock.
    public let original: String
    private let known: KnownHostSetting
    private var lock: RestoreLock?
    private var recorded = false

    /// Takes the setting's lock (waiting up to `wait` seconds for another run to finish with it),
    /// applies a record a dead owner left, then reads the original value.
    public init(path: String, wait: Double = 5) throws(HostSettingError) {
        guard let known = KnownHostSetting.all.first(where: { $0.path == path }) else {
            throw HostSettingError(path: path, reason: "not a host setting kvmcheck knows how to restore", kind: .unknownSetting)
        }
        let directory = try RestoreDirectory.open()
        let lock = try directory.lock(known, waitingUpTo: wait)
        // Holding the lock, any record for this setting is an orphan: put its value back first.
        if let problem = directory.applyRecord(of: known, lockHeld: true) , !problem.restored {
            throw HostSettingError(path: path, reason: problem.line, kind: .restoreDirectory)
        }
        guard let value = readSetting(path), RestoreRecord.isValidValue(value) else {
            throw HostSettingError(path: path, reason: "cannot read a value (\(lastErrno()))", kind: .unreadable)
        }
        self.known = known
        self.path = path
        self.original = value
        self.lock = lock
    }

    /// Writes `value`, recording the original first.
    public func set(_ value: String) throws(HostSettingError) {
        if !recorded {
            guard let lock else { throw HostSettingError(path: path, reason: "already restored", kind: .unreadable) }
            try lock.directory.writeRecord(RestoreRecord(setting: known, original: original, pid: getpid()))
            recorded = true
        }
        guard writeSetting(path, value) else {
            throw HostSettingError(path: path, reason: "cannot write '\(value)' (\(lastErrno()))", kind: .unwritable)
        }
    }

    /// Puts the original value back, drops the record and releases the lock.  Idempotent.
    /// When the write fails, the record and the lock stay: the runner applies the record once
    /// this process has gone.
    @discardableResult
    public func restore() -> Bool {
        guard recorded else { lock = nil; return true }
        guard writeSetting(path, original) else { return false }
        lock?.directory.removeRecord(of: known)
        recorded = false
        lock = nil
        return true
    }
}

public struct HostSettingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case unknownSetting, unreadable, unwritable
        /// The restore directory or record cannot be trusted or written: the check cannot
        /// change the setting safely, which is a gap of this machine, not a kernel verdict.
        case restoreDirectory
        /// Another kvmcheck run holds the setting.
        case busy
    }
    public let path: String
    public let reason: String
    public let kind: Kind
    public init(path: String, reason: String, kind: Kind) { self.path = path; self.reason = reason; self.kind = kind }
    public var description: String { "\(path): \(reason)" }
}
