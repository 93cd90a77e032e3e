import CheckKit
import FoundationEssentials
import Glibc
import KVMKit

/// Everything a run produced, kept for the formats written once at the end (JUnit, JSON).
final class RunRecord {
    var header: RunHeader?
    var suites: [(name: String, results: [CheckResult])] = []
    var skippedAll: String?
    var bailOut: String?
}

/// A reporter that keeps the run and writes its document in `end` (JUnit, JSON).
public class DocumentReporter {
    let record = RunRecord()
    let write: (String) -> Void

    /// `write` receives the whole document once, at the end.
    public init(write: @escaping (String) -> Void) { self.write = write }

    public func begin(header: RunHeader, plan: [(suite: String, count: Int)]) { record.header = header }
    public func suiteBegan(_ suite: String, count: Int) { record.suites.append((suite, [])) }
    public func report(_ result: CheckResult, index: Int) { record.suites[record.suites.count - 1].results.append(result) }
    public func suiteEnded(_ suite: String, results: [CheckResult]) {}
    public func bailOut(_ reason: String) { record.bailOut = reason }
}


/// Sends every event to several reporters (stdout in one format, files in others).
public final class MultiReporter: Reporter {
    private let reporters: [Reporter]
    public init(_ reporters: [Reporter]) { self.reporters = reporters }
    public func begin(header: RunHeader, plan: [(suite: String, count: Int)]) { reporters.forEach { $0.begin(header: header, plan: plan) } }
    public func suiteBegan(_ suite: String, count: Int) { reporters.forEach { $0.suiteBegan(suite, count: count) } }
    public func report(_ result: CheckResult, index: Int) { reporters.forEach { $0.report(result, index: index) } }
    public func suiteEnded(_ suite: String, results: [CheckResult]) { reporters.forEach { $0.suiteEnded(suite, results: results) } }
    public func bailOut(_ reason: String) { reporters.forEach { $0.bailOut(reason) } }
    public func end(_ summary: RunSummary) { reporters.forEach { $0.end(summary) } }
    public func skipAll(header: RunHeader?, reason: String) { reporters.forEach { $0.skipAll(header: header, reason: reason) } }
}

/// A file a reporter writes to, line by line (flushed), opened before anything runs.
public final class ReportFile: @unchecked Sendable {
    // SAFETY: the FILE * from fopen is owned here: used only through stdio, closed once in deinit.
    private let file: UnsafeMutablePointer<FILE>
    public let path: String

    public init(path: String) throws(ManifestError) {
        guard let f = fopen(path, "w") else {
            throw ManifestError(file: path, line: nil, reason: "cannot write: \(Errno(rawValue: Glibc.errno).symbolicName)")
        }
        self.file = f
        self.path = path
    }

    deinit { fclose(file) }

    public func line(_ text: String) { write(text + "\n") }

    public func write(_ text: String) {
        fputs(text, file)
        fflush(file)
    }
}

