import CheckKit
import KVMKit

/// TAP output: version 13 is flat (one line per check, named by id: what prove, tap.py and
/// kunit_parser all read); version 14 nests one subtest block per suite.
///
/// Encodings chosen so every consumer's verdict equals kvmcheck's (README, "Consumers"):
/// the plan comes right after the version line (tap.py requires it there), expected failures
/// and informational findings are `ok … # XFAIL` (kselftest's own encoding; prove, tap.py,
/// kunit_parser and LKFT all count it as not failing), an unexpected pass is `not ok`.
public final class TAPReporter: Reporter {
    public let version: Int
    private let write: (String) -> Void
    private var flatIndex = 0
    private var suiteIndex = 0

    /// `write` receives one line at a time, without the newline.
    public init(version: Int, write: @escaping (String) -> Void) {
        precondition(version == 13 || version == 14, "TAP version 13 or 14")
        self.version = version
        self.write = write
    }

    private var nested: Bool { version == 14 }
    private var indent: String { nested ? "    " : "" }

    public func begin(header: RunHeader, plan: [(suite: String, count: Int)]) {
        write("TAP version \(version)")
        write("1..\(nested ? plan.count : plan.reduce(0) { $0 + $1.count })")
        header.lines.forEach { write(tapComment($0)) }
    }

    public func suiteBegan(_ suite: String, count: Int) {
        if nested {
            write("# Subtest: \(tapDescription(suite))")
            write(indent + "1..\(count)")
        }
    }

    public func report(_ result: CheckResult, index: Int) {
        flatIndex += 1
        let number = nested ? index : flatIndex
        let name = tapDescription(nested ? result.name : result.id)
        for note in result.notes { write(indent + tapComment(note)) }
        pendingKernelLog = result.kernelLog
        defer { if !pendingKernelLog.isEmpty { yaml([]) } } // ok/skip: the log gets a YAML block of its own
        switch result.status {
        case .pass:
            write(indent + "ok \(number) - \(name)")
        case .skip(let reason):
            write(indent + "ok \(number) - \(name) # SKIP \(tapDescription(reason))")
        case .fail(let f):
            write(indent + "not ok \(number) - \(name)")
            yaml(f.fields)
        case .informational(let f):
            write(indent + "ok \(number) - \(name) # XFAIL informational: \(tapDescription(f.message))")
            yaml(f.fields)
        case .timeout(let s):
            write(indent + "not ok \(number) - \(name) # TIMEOUT \(formatSeconds(s)) seconds")
            yaml(result.failureDetails.fields)
        case .crash, .harnessError:
            write(indent + "not ok \(number) - \(name)")
            yaml(result.failureDetails.fields)
        case .expectedFailure(let reason):
            write(indent + "ok \(number) - \(name) # XFAIL \(tapDescription(reason))")
            yaml(result.failureDetails.fields)
        case .unexpectedPass:
            write(indent + "not ok \(number) - \(name)")
            yaml(result.failureDetails.fields)
        }
    }

    public func suiteEnded(_ suite: String, results: [CheckResult]) {
        guard nested else { return }
        suiteIndex += 1
        write(suiteLine(ok: "ok \(suiteIndex) - \(tapDescription(suite))", results: results))
    }

    public func bailOut(_ reason: String) { write("Bail out! \(lineSafe(reason))") }

    public func end(_ summary: RunSummary) { write(tapComment(summary.fullLine)) }

    public func skipAll(header: RunHeader?, reason: String) {
        write("TAP version \(version)")
        write("1..0 # SKIP \(tapDescription(reason))")
        header?.lines.forEach { write(tapComment($0)) }
    }

    /// The current result's kernel log lines, added to its YAML block (once).
    private var pendingKernelLog: [String] = []

    private func yaml(_ fields: [(String, String)]) {
        let fields = fields + (pendingKernelLog.isEmpty ? [] : [("kernel_log", pendingKernelLog.joined(separator: "\n"))])
        pendingKernelLog = []
        let pad = indent + "  "
        write(pad + "---")
        for (key, value) in fields { write(pad + "\(key): \(yamlQuote(value))") }
        write(pad + "...")
    }
}

/// A suite's own result line (TAP 14, KTAP): not ok when a check fails the run, SKIP when all skipped.
func suiteLine(ok line: String, results: [CheckResult]) -> String {
    if results.contains(where: \.failsRun) { return "not " + line }
    if results.allSatisfy({ if case .skip = $0.status { return true } else { return false } }) {
        return line + " # SKIP every check skipped"
    }
    return line
}

extension Failure {
    /// Fields for a YAML diagnostic block, in reading order.
    var fields: [(String, String)] {
        var f: [(String, String)] = [("message", message)]
        if let expected { f.append(("expected", expected)) }
        if let observed { f.append(("observed", observed)) }
        if let ioctl { f.append(("ioctl", ioctl)) }
        if let errno { f.append(("errno", errno)) }
        return f
    }
}

// MARK: - Escaping: every text that reaches a report passes through one of these.
