// Reading and writing one setting file, and changing one from a second thread.
import Glibc
import KVMKit

func readSetting(_ path: String) -> String? {
    guard let text = readText(path, limit: 4096, followSymlinks: false) else { return nil }
    return String(text.reversed().drop { $0 == "\n" || $0 == " " }.reversed())
}

/// Writes an existing setting file (never creates one, never follows a final symlink).
func writeSetting(_ path: String, _ value: String) -> Bool {
    let fd = open(path, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    let bytes = Array(value.utf8)
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
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
            t.joined = true
            throw HostSettingError(path: path, reason: "cannot start the toggling thread (\(Errno(rawValue: rc).symbolicName))", kind: .unwritable)
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
