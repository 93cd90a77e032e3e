import Glibc
import KVMKit
import SystemPackage
import Synchronization

/// One kernel log record: its sequence number and its text (the first line of the message).
public struct KernelLogRecord: Sendable, Equatable {
    public let sequence: UInt64
    public let text: String
    public init(sequence: UInt64, text: String) { self.sequence = sequence; self.text = text }
}

/// Where kernel log records come from: /dev/kmsg, or a file the harness's own tests write.
public protocol KernelLogSource: Sendable {
    /// Records printed since the last call (never blocks).
    func readNew() -> [KernelLogRecord]
}

/// What the kernel printed while each check ran.  The runner takes a mark before it starts a
/// child and another when the child has ended; the records between the two belong to that
/// check.  Records are numbered, so with checks running in parallel a record goes to every
/// check whose window contains it (and such a result says it may be another check's line).
/// The ring buffer is only read, never cleared.
public final class KernelLog: Sendable {
    private let source: (any KernelLogSource)?
    /// Why the log cannot be read (the report header says so once); nil when it can.
    public let unavailableReason: String?
    private let state = Mutex<(records: [KernelLogRecord], last: UInt64)>(([], 0))

    public init(source: (any KernelLogSource)?, unavailableReason: String? = nil) {
        self.source = source
        self.unavailableReason = source == nil ? (unavailableReason ?? "no kernel log source") : nil
    }

    /// /dev/kmsg from its current end, or (for the harness's tests, with KVMCHECK_HARNESS_SELFTEST=1)
    /// the file named by KVMCHECK_KERNEL_LOG, from its current end.
    public static func fromEnvironment() -> KernelLog {
        if environment("KVMCHECK_HARNESS_SELFTEST") == "1", let path = environment("KVMCHECK_KERNEL_LOG") {
            return FileLogSource.open(path).map { KernelLog(source: $0) }
                ?? KernelLog(source: nil, unavailableReason: "cannot read \(path)")
        }
        switch KmsgSource.open() {
        case .success(let s): return KernelLog(source: s)
        case .failure(let why): return KernelLog(source: nil, unavailableReason: why.description)
        }
    }

    /// Reads what the source has and returns the newest sequence number seen so far.
    public func mark() -> UInt64 {
        let new = source?.readNew() ?? []
        return state.withLock { s in
            for r in new where r.sequence > s.last || s.records.isEmpty {
                s.records.append(r)
                s.last = max(s.last, r.sequence)
            }
            // Keep the buffer bounded: nothing older than the oldest window still open matters
            // to a serial runner; a generous tail serves parallel ones.
            if s.records.count > 20_000 { s.records.removeFirst(s.records.count - 10_000) }
            return s.last
        }
    }

    /// The lines printed after mark `start` up to mark `end`.
    public func lines(after start: UInt64, through end: UInt64) -> [String] {
        state.withLock { s in s.records.filter { $0.sequence > start && $0.sequence <= end }.map(\.text) }
    }
}

/// The kernel's own ring buffer, read through /dev/kmsg (one record per read(2)).
final class KmsgSource: KernelLogSource, @unchecked Sendable {
    private let fd: CInt
    private let lock = Mutex(())

    private init(fd: CInt) { self.fd = fd }
    deinit { close(fd) }

    static func open(_ path: String = "/dev/kmsg") -> Result<KmsgSource, KernelLogUnavailable> {
        let fd = Glibc.open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return .failure(KernelLogUnavailable("cannot open \(path): \(Errno(rawValue: errno).symbolicName)")) }
        // From now on: what was printed before the run is not any check's.
        guard lseek(fd, 0, SEEK_END) >= 0 else {
            let e = errno
            close(fd)
            return .failure(KernelLogUnavailable("cannot seek \(path): \(Errno(rawValue: e).symbolicName)"))
        }
        return .success(KmsgSource(fd: fd))
    }

    func readNew() -> [KernelLogRecord] {
        lock.withLock { _ in
            var out: [KernelLogRecord] = []
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                let n = SystemIO.read(fd, into: &buffer)
                if n > 0 {
                    if let r = parseKmsgRecord(String(decoding: buffer.prefix(n), as: UTF8.self)) { out.append(r) }
                    continue
                }
                // EPIPE: records were overwritten before we read them; the next read goes on.
                if n < 0 && errno == EPIPE { continue }
                if n < 0 && errno == EINTR { continue }
                return out
            }
        }
    }
}

/// A plain file of kmsg-format ("prio,seq,ts,flags;text") or bare lines, read from the end it
/// had when opened: the harness's tests append a "splat" to it while a check runs.
final class FileLogSource: KernelLogSource, @unchecked Sendable {
    private let path: String
    private let state: Mutex<(offset: Int, sequence: UInt64)>

    private init(path: String, offset: Int) {
        self.path = path
        state = Mutex((offset, 0))
    }

    static func open(_ path: String) -> FileLogSource? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        fseek(f, 0, SEEK_END)
        return FileLogSource(path: path, offset: ftell(f))
    }

    func readNew() -> [KernelLogRecord] {
        state.withLock { s in
            guard let f = fopen(path, "r") else { return [] }
            defer { fclose(f) }
            fseek(f, s.offset, SEEK_SET)
            var out: [KernelLogRecord] = []
            // SAFETY: getline(3) owns `line` (malloc'd, grown as needed, `capacity` bytes); it is read
            // only up to the n bytes getline returned, and freed once, after the loop.
            var line: UnsafeMutablePointer<CChar>?
            var capacity = 0
            defer { free(line) }
            while true {
                let n = getline(&line, &capacity, f)
                guard n > 0, let line, line[n - 1] == 0x0A else { break } // only whole lines
                s.offset += n
                let text = String(cString: line).dropLast()
                s.sequence += 1
                let record = parseKmsgRecord(String(text)) ?? KernelLogRecord(sequence: s.sequence, text: String(text))
                out.append(KernelLogRecord(sequence: s.sequence, text: record.text))
            }
            return out
        }
    }
}

struct KernelLogUnavailable: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// "6,1234,5678901,-;message\n KEY=value…" → (1234, "message").
func parseKmsgRecord(_ raw: String) -> KernelLogRecord? {
    guard let semicolon = raw.firstIndex(of: ";") else { return nil }
    let prefix = raw[..<semicolon].split(separator: ",")
    guard prefix.count >= 3, let sequence = UInt64(prefix[1]) else { return nil }
    let message = raw[raw.index(after: semicolon)...].prefix { $0 != "\n" }
    return KernelLogRecord(sequence: sequence, text: String(message).replacing("\\x0a", with: " "))
}

/// Kernel reports that mean the kernel went wrong while a check ran, whatever the check compared.
public enum KernelSplat {
    static let markers = ["WARNING:", "BUG:", "Oops", "general protection fault", "KASAN", "UBSAN", "KFENCE",
                          "possible circular locking dependency", "inconsistent lock state", "possible recursive locking",
                          "lockdep", "Call Trace:"]
    /// How many lines of a splat a failure block quotes.
    static let quotedLines = 8

    /// The splat's first lines (from the first line that matches a marker), or nil.
    public static func first(in lines: [String]) -> [String]? {
        guard let i = lines.firstIndex(where: { line in markers.contains { line.contains($0) } }) else { return nil }
        return Array(lines[i...].prefix(quotedLines))
    }

    /// A splat turns a pass or skip `not ok`; a result that already fails keeps its failure
    /// (the log lines are attached to it either way).
    public static func judge(_ verdict: Verdict, log: [String]) -> Verdict {
        guard let splat = first(in: log) else { return verdict }
        switch verdict {
        case .pass, .skip:
            return .fail(Failure("the kernel logged a splat while the check ran: \(splat[0])",
                                 expected: "no WARNING/BUG/Oops/KASAN/UBSAN/KFENCE/lockdep/Call Trace in the kernel log",
                                 observed: splat.joined(separator: "\n")))
        case .fail, .timeout, .crash, .harnessError:
            return verdict
        }
    }
}
