import CheckKit
import Glibc
import KVMKit

/// Where one report goes (stdout or a `--junit`/`--json`/… file), with every write checked.
///
/// A write that fails (ENOSPC on /dev/full, EPIPE on a closed pipe, EIO) is remembered and the
/// sink stops writing; the other sinks carry on, and the run ends with a failed report named on
/// stderr and exit status `ReportSink.failedExitStatus`.  Nothing is silently lost.
public final class ReportSink: @unchecked Sendable {
    /// Exit status when a report could not be written completely (kselftest leaves 5 unused).
    public static let failedExitStatus: Int32 = 5

    /// How the sink is named in messages: "stdout" or "--junit results.xml".
    public let label: String
    private var fd: CInt
    private let ownsDescriptor: Bool
    /// Why the report is incomplete, once a write or the close failed.
    public private(set) var failure: String?

    /// The process's stdout (one for the whole process, so every writer shares its failure state).
    public static let stdout = ReportSink(label: "stdout", fd: 1, owns: false)

    private init(label: String, fd: CInt, owns: Bool) { self.label = label; self.fd = fd; self.ownsDescriptor = owns }

    /// Creates or truncates `path` for writing.  A symlink is refused (kvmcheck runs as root and
    /// must not be steered into another file), and so is anything but a regular file or a
    /// character device (a FIFO would block the run).
    public init(path: String, option: String) throws(ReportSinkError) {
        label = "\(option) \(path)"
        guard !path.isEmpty else { throw ReportSinkError("\(option): empty file name") }
        let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0o644)
        guard f >= 0 else {
            let e = Glibc.errno
            let why = e == ELOOP ? "it is a symlink; refusing to write through it" : Errno(rawValue: e).symbolicName
            throw ReportSinkError("\(option) \(path): cannot write: \(why)")
        }
        var st = stat()
        guard fstat(f, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFCHR else {
            close(f)
            throw ReportSinkError("\(option) \(path): not a regular file")
        }
        _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK)
        fd = f
        ownsDescriptor = true
    }

    deinit { if ownsDescriptor && fd >= 0 { close(fd) } }

    public func line(_ text: String) { write(text + "\n") }

    /// Writes all of `text`, or records why not and writes nothing more.
    public func write(_ text: String) {
        guard failure == nil, fd >= 0 else { return }
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let n = SystemIO.write(fd, bytes)
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                failure = "write failed: \(Errno(rawValue: Glibc.errno).symbolicName)"
                return
            }
            bytes = bytes.dropFirst(n)
        }
    }

    /// Closes the file (checking the close, where delayed write errors surface) and returns why
    /// the report is incomplete, or nil.
    @discardableResult
    public func finish() -> String? {
        if ownsDescriptor && fd >= 0 {
            if close(fd) != 0 && failure == nil { failure = "close failed: \(Errno(rawValue: Glibc.errno).symbolicName)" }
            fd = -1
        }
        return failure
    }
}

public struct ReportSinkError: Error, Sendable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
