// Reading and writing one setting file, and changing one from a second thread.
import Glibc
import KVMKit
import Synchronization

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
    return SystemIO.write(fd, bytes) == bytes.count
}

func lastErrno() -> String { Errno(rawValue: Glibc.errno).symbolicName }

/// Writes a setting's values in turn from a second thread until stopped (a host-side change
/// that lands while the vCPU thread is inside KVM_RUN).  The setting must already be recorded.
public final class SettingToggler: Sendable {
    private let path: String
    private let values: [String]
    private let state = Mutex<(stopping: Bool, writes: Int)>((false, 0))
    private let thread = Mutex<PosixThread?>(nil)

    private init(path: String, values: [String]) {
        self.path = path; self.values = values
    }

    public static func start(path: String, values: [String]) throws(HostSettingError) -> SettingToggler {
        let t = SettingToggler(path: path, values: values)
        // The thread holds `t` until its loop ends, which stop() brings about.
        switch PosixThread.start({ t.loop() }) {
        case .success(let thread): t.thread.withLock { $0 = thread }
        case .failure(let e):
            throw HostSettingError(path: path, reason: "cannot start the toggling thread (\(e.symbolicName))", kind: .unwritable)
        }
        return t
    }

    private func loop() {
        var i = 0
        while !state.withLock({ $0.stopping }) {
            _ = writeSetting(path, values[i % values.count])
            i += 1
            state.withLock { $0.writes = i }
            usleep(200)
        }
    }

    /// Stops the thread and returns how many writes it made.  Idempotent.
    @discardableResult
    public func stop() -> Int {
        state.withLock { $0.stopping = true }
        thread.withLock { $0?.join() }
        return state.withLock { $0.writes }
    }
}

/// getenv as a String.
public func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }
