import Glibc
import KVMKit

/// A host setting a check changes (a sysfs/procfs file such as /sys/devices/cpu/freeze_on_smi).
///
/// Before the first change, the original value is written to a *restore record*. The record
/// is what makes every path safe:
/// - the check restores the setting when its body ends, whether it passed, failed or threw;
/// - the runner applies records a dead child left behind (timeout, crash, SIGINT/SIGTERM);
/// - the next run applies records left by a runner that died itself (kill -9, power loss).
public final class HostSetting {
    public let path: String
    /// The value read before any change (without the trailing newline).
    public let original: String
    private var recorded = false

    public init(path: String) throws(HostSettingError) {
        guard let value = readSetting(path) else { throw HostSettingError(path: path, reason: "cannot read (\(lastErrno()))") }
        self.path = path
        self.original = value
    }

    /// Writes `value`, recording the original first.
    public func set(_ value: String) throws(HostSettingError) {
        if !recorded {
            try HostRestore.writeRecord(path: path, original: original)
            recorded = true
        }
        guard writeSetting(path, value) else { throw HostSettingError(path: path, reason: "cannot write '\(value)' (\(lastErrno()))") }
    }

    /// Puts the original value back and drops the record.  Idempotent.
    @discardableResult
    public func restore() -> Bool {
        guard recorded else { return true }
        let ok = writeSetting(path, original)
        if ok {
            HostRestore.removeRecord(path: path)
            recorded = false
        }
        return ok
    }
}

public struct HostSettingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Restore records: one file per changed setting, in $KVMCHECK_RESTORE_DIR, else
/// /run/kvmcheck (root) or /tmp/kvmcheck-restore-UID.
public enum HostRestore {
    public static var directory: String {
        if let d = getenv("KVMCHECK_RESTORE_DIR") { return String(cString: d) }
        return getuid() == 0 ? "/run/kvmcheck" : "/tmp/kvmcheck-restore-\(getuid())"
    }

    static func recordPath(for setting: String) -> String {
        directory + "/" + setting.map { $0.isLetter || $0.isNumber ? $0 : "_" } + ".restore"
    }

    static func writeRecord(path: String, original: String) throws(HostSettingError) {
        mkdir(directory, 0o700)
        let text = "\(path)\n\(original)\n\(getpid())\n"
        guard writeSetting(recordPath(for: path), text, sync: true) else {
            throw HostSettingError(path: path, reason: "cannot write the restore record in \(directory) (\(lastErrno())); not changing it")
        }
    }

    static func removeRecord(path: String) { unlink(recordPath(for: path)) }

    /// Applies every record whose owner process is gone; returns what was restored (or could not be).
    public static func applyOrphaned() -> [String] {
        guard let dir = opendir(directory) else { return [] }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".restore") { names.append(name) }
        }
        closedir(dir)
        var done: [String] = []
        for name in names.sorted() {
            let record = directory + "/" + name
            guard let text = readSetting(record, trimming: false) else { continue }
            let fields = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard fields.count >= 3, let pid = pid_t(fields[2]) else {
                done.append("unreadable restore record \(record) left in place")
                continue
            }
            if pid != getpid(), kill(pid, 0) == 0 { continue } // its owner still runs
            if writeSetting(fields[0], fields[1]) {
                unlink(record)
                done.append("restored \(fields[0]) to \(fields[1]) (changed by pid \(pid), which ended without restoring it)")
            } else {
                done.append("could not restore \(fields[0]) to \(fields[1]) (\(lastErrno())); record kept: \(record)")
            }
        }
        return done
    }
}

func readSetting(_ path: String, trimming: Bool = true) -> String? {
    guard let text = readTextFile(path) else { return nil }
    return trimming ? String(text.reversed().drop { $0 == "\n" || $0 == " " }.reversed()) : text
}

func writeSetting(_ path: String, _ value: String, sync: Bool = false) -> Bool {
    let fd = open(path, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(value.utf8)
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    if sync { fsync(fd) }
    return n == bytes.count
}

func lastErrno() -> String { Errno(rawValue: Glibc.errno).symbolicName }

/// Writes a setting's values in turn from a second thread until stopped (a host-side change
/// that lands while the vCPU thread is inside KVM_RUN).  The setting must already be recorded.
public final class SettingToggler: @unchecked Sendable {
    private let path: String
    private let values: [String]
    private let lock = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private var stopping = false
    private var writes = 0
    private var thread = pthread_t()
    private var joined = false

    private init(path: String, values: [String]) {
        self.path = path; self.values = values
        pthread_mutex_init(lock, nil)
    }

    deinit {
        stop()
        pthread_mutex_destroy(lock)
        lock.deallocate()
    }

    public static func start(path: String, values: [String]) throws(HostSettingError) -> SettingToggler {
        let t = SettingToggler(path: path, values: values)
        let box = Unmanaged.passRetained(t).toOpaque()
        let rc = pthread_create(&t.thread, nil, { arg in
            let me = Unmanaged<SettingToggler>.fromOpaque(arg!).takeRetainedValue()
            me.loop()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<SettingToggler>.fromOpaque(box).release()
            throw HostSettingError(path: path, reason: "cannot start the toggling thread (\(Errno(rawValue: rc).symbolicName))")
        }
        return t
    }

    private func loop() {
        var i = 0
        while true {
            pthread_mutex_lock(lock)
            let stop = stopping
            pthread_mutex_unlock(lock)
            if stop { return }
            _ = writeSetting(path, values[i % values.count])
            i += 1
            pthread_mutex_lock(lock)
            writes = i
            pthread_mutex_unlock(lock)
            usleep(200)
        }
    }

    /// Stops the thread and returns how many writes it made.  Idempotent.
    @discardableResult
    public func stop() -> Int {
        pthread_mutex_lock(lock)
        stopping = true
        pthread_mutex_unlock(lock)
        if !joined {
            pthread_join(thread, nil)
            joined = true
        }
        pthread_mutex_lock(lock)
        defer { pthread_mutex_unlock(lock) }
        return writes
    }
}

/// getenv as a String.
public func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
