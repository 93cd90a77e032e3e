// Restore records: the directory that holds them, their locks, and applying the ones dead
// owners left behind (see HostSetting).
import Glibc
import KVMKit

/// A restore record: which known setting, its original value, and the process that changed it.
struct RestoreRecord: Equatable {
    static let magic = "kvmcheck-restore-record 2"
    static let maximumSize = 4096
    let setting: KnownHostSetting
    let original: String
    let pid: pid_t

    var text: String { "\(Self.magic)\nname=\(setting.name)\npath=\(setting.path)\noriginal=\(original)\npid=\(pid)\n" }

    /// A value short enough and plain enough to be a sysfs setting (no newline, no control bytes).
    static func isValidValue(_ value: String) -> Bool {
        value.utf8.count <= 256 && value.utf8.allSatisfy { $0 >= 0x20 && $0 < 0x7f }
    }

    /// Parses a record; the path must be the known setting's path of this run.
    static func parse(_ text: String) -> Result<RestoreRecord, RecordProblem> {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.first == magic else { return .failure(.malformed("not a kvmcheck restore record (or an older format)")) }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() where !line.isEmpty {
            guard let eq = line.firstIndex(of: "=") else { return .failure(.malformed("line without '='")) }
            fields[String(line[..<eq])] = String(line[line.index(after: eq)...])
        }
        guard let name = fields["name"], let path = fields["path"], let original = fields["original"],
              let pid = fields["pid"].flatMap({ pid_t($0) }) else { return .failure(.malformed("missing field")) }
        guard let setting = KnownHostSetting.named(name) else { return .failure(.untrusted("names '\(name)', not a setting kvmcheck knows")) }
        guard setting.path == path else { return .failure(.untrusted("names \(path), but this run's \(name) is \(setting.path)")) }
        guard isValidValue(original) else { return .failure(.untrusted("its value is not a plain setting value")) }
        return .success(RestoreRecord(setting: setting, original: original, pid: pid))
    }
}

enum RecordProblem: Error, Equatable {
    case malformed(String), untrusted(String)
    var why: String { switch self { case .malformed(let w), .untrusted(let w): return w } }
}

/// What applying one record did.
struct RecordOutcome {
    let restored: Bool
    let line: String
}

/// The directory of restore records: $KVMCHECK_RESTORE_DIR, else /run/kvmcheck (root) or
/// /tmp/kvmcheck-restore-UID.  It must be a real directory (not a symlink) owned by this user
/// and writable by nobody else; it is created 0700 when missing.  Every file in it is opened
/// relative to the verified directory with O_NOFOLLOW.
final class RestoreDirectory {
    let path: String
    let fd: CInt

    private init(path: String, fd: CInt) { self.path = path; self.fd = fd }
    deinit { close(fd) }

    /// Why $KVMCHECK_RESTORE_DIR is unusable as given (empty or relative), or nil.
    static func environmentProblem() -> String? {
        guard let value = environment("KVMCHECK_RESTORE_DIR") else { return nil }
        if value.isEmpty { return "KVMCHECK_RESTORE_DIR is empty (unset it, or give an absolute directory)" }
        if !value.hasPrefix("/") { return "KVMCHECK_RESTORE_DIR must be an absolute path, not '\(value)'" }
        return nil
    }

    static var defaultPath: String { getuid() == 0 ? "/run/kvmcheck" : "/tmp/kvmcheck-restore-\(getuid())" }

    static var configuredPath: String {
        if let override = HostRestore.override { return override.directory }
        if let value = environment("KVMCHECK_RESTORE_DIR"), environmentProblem() == nil { return value }
        return defaultPath
    }

    static func open(creating: Bool = true) throws(HostSettingError) -> RestoreDirectory {
        if let problem = environmentProblem() { throw HostSettingError(path: "KVMCHECK_RESTORE_DIR", reason: problem, kind: .restoreDirectory) }
        let path = configuredPath
        if creating, mkdir(path, 0o700) != 0, Glibc.errno != EEXIST {
            throw HostSettingError(path: path, reason: "cannot create the restore directory (\(lastErrno()))", kind: .restoreDirectory)
        }
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            throw HostSettingError(path: path, reason: "cannot open the restore directory (\(lastErrno()); a symlink is refused)", kind: .restoreDirectory)
        }
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR, st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
            close(fd)
            throw HostSettingError(path: path, reason: "the restore directory is not safe: it must be owned by uid \(geteuid()) and writable by nobody else (owner \(st.st_uid), mode \(String(st.st_mode & 0o7777, radix: 8)))", kind: .restoreDirectory)
        }
        return RestoreDirectory(path: path, fd: fd)
    }

    /// Opens a file inside the directory, never following a symlink, and checks it is a regular
    /// file of ours that nobody else can write.
    func openFile(_ name: String, _ flags: CInt) -> CInt? {
        let f = openat(fd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard f >= 0 else { return nil }
        var st = stat()
        guard fstat(f, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_uid == geteuid(), st.st_mode & 0o022 == 0 else {
            close(f)
            Glibc.errno = EPERM
            return nil
        }
        return f
    }

    func lock(_ setting: KnownHostSetting, waitingUpTo seconds: Double) throws(HostSettingError) -> RestoreLock {
        guard let f = openFile(setting.name + ".lock", O_RDWR | O_CREAT) else {
            throw HostSettingError(path: setting.path, reason: "cannot open its lock in \(path) (\(lastErrno()))", kind: .restoreDirectory)
        }
        var waited = 0.0
        while flock(f, LOCK_EX | LOCK_NB) != 0 {
            guard Glibc.errno == EWOULDBLOCK || Glibc.errno == EINTR, waited < seconds else {
                close(f)
                throw HostSettingError(path: setting.path, reason: "another kvmcheck run is changing it (lock \(path)/\(setting.name).lock held for \(Int(seconds)) s)", kind: .busy)
            }
            usleep(20_000)
            waited += 0.02
        }
        return RestoreLock(directory: self, fd: f)
    }

    func writeRecord(_ record: RestoreRecord) throws(HostSettingError) {
        let name = record.setting.name + ".restore"
        // O_EXCL: never overwrite a record (under the lock, one left behind was applied already).
        guard let f = openFile(name, O_WRONLY | O_CREAT | O_EXCL) else {
            throw HostSettingError(path: record.setting.path, reason: "cannot write the restore record in \(path) (\(lastErrno())); not changing it", kind: .restoreDirectory)
        }
        defer { close(f) }
        let bytes = Array(record.text.utf8)
        let n = SystemIO.write(f, bytes)
        guard n == bytes.count, fsync(f) == 0 else {
            unlinkat(fd, name, 0)
            throw HostSettingError(path: record.setting.path, reason: "cannot write the restore record in \(path) (\(lastErrno())); not changing it", kind: .restoreDirectory)
        }
    }

    func removeRecord(of setting: KnownHostSetting) { unlinkat(fd, setting.name + ".restore", 0) }

    /// Applies the record of `setting` if there is one and nobody holds its lock.  Returns nil
    /// when there is nothing to do (no record, or its owner still runs).
    func applyRecord(of setting: KnownHostSetting, lockHeld: Bool) -> RecordOutcome? {
        applyRecord(named: setting.name + ".restore", lockHeld: lockHeld)
    }

    func applyRecord(named name: String, lockHeld: Bool) -> RecordOutcome? {
        let where_ = "\(path)/\(name)"
        guard let f = openFile(name, O_RDONLY) else {
            if Glibc.errno == ENOENT { return nil }
            return RecordOutcome(restored: false, line: "restore record \(where_) left alone: not a regular file of uid \(geteuid()) that only it can write (\(lastErrno()))")
        }
        let text = try? readToEnd(f, limit: RestoreRecord.maximumSize).map { String(decoding: $0, as: UTF8.self) }.get()
        close(f)
        guard let text else { return RecordOutcome(restored: false, line: "restore record \(where_) left alone: unreadable or over \(RestoreRecord.maximumSize) bytes") }
        let record: RestoreRecord
        switch RestoreRecord.parse(text) {
        case .failure(let problem): return RecordOutcome(restored: false, line: "restore record \(where_) left alone: \(problem.why)")
        case .success(let r): record = r
        }
        guard "\(record.setting.name).restore" == name else {
            return RecordOutcome(restored: false, line: "restore record \(where_) left alone: its name does not match the setting it names")
        }
        var held: RestoreLock?
        if !lockHeld {
            // The owner holds the lock for as long as the setting is changed: a lock we can
            // take means the owner is gone, whatever its pid is now used for.
            guard let l = try? lock(record.setting, waitingUpTo: 0) else { return nil }
            held = l
        }
        defer { _ = held }
        guard writeSetting(record.setting.path, record.original) else {
            return RecordOutcome(restored: false, line: "could not restore \(record.setting.path) to \(record.original) (\(lastErrno())); record kept: \(where_)")
        }
        unlinkat(fd, name, 0)
        return RecordOutcome(restored: true, line: "restored \(record.setting.path) to \(record.original) (changed by pid \(record.pid), which ended without restoring it)")
    }

    func recordNames() -> [String] {
        ((try? directoryEntries(fd: fd)) ?? []).filter { $0.hasSuffix(".restore") }
    }
}

/// An exclusive flock on one setting; released when this goes away (or the process dies).
final class RestoreLock {
    let directory: RestoreDirectory
    private let fd: CInt
    init(directory: RestoreDirectory, fd: CInt) { self.directory = directory; self.fd = fd }
    deinit { close(fd) }
}

/// Applying records that dead owners left behind.
public enum HostRestore {
    /// The restore directory in use (for messages and tests).
    public static var directory: String { RestoreDirectory.configuredPath }

    /// Why $KVMCHECK_RESTORE_DIR cannot be used as given, or nil (checked before anything runs).
    public static func environmentProblem() -> String? { RestoreDirectory.environmentProblem() }

    nonisolated(unsafe) private static var reported: Set<String> = []
    nonisolated(unsafe) static var override: (settings: [KnownHostSetting], directory: String)?

    /// For the harness's own in-process tests: these known settings and this record directory
    /// instead of the environment's, while `body` runs (not thread-safe: serialize such tests).
    public static func withConfiguration<R>(settings: [KnownHostSetting], directory: String, _ body: () throws -> R) rethrows -> R {
        let saved = override
        override = (settings, directory)
        defer { override = saved; reported = [] }
        return try body()
    }

    /// Applies every record whose owner is gone; returns what was restored, and each problem
    /// record once per process (a record that fails a rule is left alone).
    public static func applyOrphaned() -> [String] {
        guard let directory = try? RestoreDirectory.open(creating: false) else {
            if access(RestoreDirectory.configuredPath, F_OK) != 0 { return [] } // nothing was ever recorded
            return once(["restore directory \(RestoreDirectory.configuredPath) is not safe to use: its records were left alone"])
        }
        var lines: [String] = []
        for name in directory.recordNames() {
            guard let outcome = directory.applyRecord(named: name, lockHeld: false) else { continue }
            lines.append(outcome.line)
        }
        return once(lines)
    }

    private static func once(_ lines: [String]) -> [String] {
        lines.filter { line in
            if line.hasPrefix("restored ") { return true }
            return reported.insert(line).inserted
        }
    }
}
