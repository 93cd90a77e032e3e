import CheckKit
import FoundationEssentials
import Glibc
import KVMKit

/// KTAP v1 (Documentation/dev-tools/ktap.rst): a version line and then the plan per block,
/// 2-space nesting, diagnostics as `#` lines before the result, no YAML.  Expected failures and
/// informational findings are `ok … # XFAIL` (as kselftest writes them; kunit_parser counts
/// `not ok … # XFAIL` as a failure), timeouts `not ok … # TIMEOUT`, crashes `not ok … # ERROR`.
public final class KTAPReporter: Reporter {
    private let write: (String) -> Void
    private var suiteIndex = 0

    public init(write: @escaping (String) -> Void) { self.write = write }

    public func begin(header: RunHeader, plan: [(suite: String, count: Int)]) {
        write("KTAP version 1")
        write("1..\(plan.count)")
        header.lines.forEach { write(tapComment($0)) }
    }

    public func suiteBegan(_ suite: String, count: Int) {
        write("  KTAP version 1")
        write("  # Subtest: \(ktapDescription(suite))")
        write("  1..\(count)")
    }

    public func report(_ result: CheckResult, index: Int) {
        let name = ktapDescription(result.name)
        result.notes.forEach { write("  " + tapComment($0)) }
        result.kernelLog.forEach { write("  " + tapComment("kernel: " + $0)) }
        switch result.status {
        case .pass:
            write("  ok \(index) \(name)")
        case .skip(let reason):
            write("  ok \(index) \(name) # SKIP \(ktapReason(reason))")
        case .fail, .unexpectedPass, .crash, .harnessError:
            diagnostics(result.failureDetails)
            let directive = { switch result.status { case .crash, .harnessError: return " # ERROR"; default: return "" } }()
            write("  not ok \(index) \(name)\(directive)")
        case .informational(let f):
            diagnostics(f)
            write("  ok \(index) \(name) # XFAIL informational: \(ktapReason(f.message))")
        case .expectedFailure(let reason):
            diagnostics(result.failureDetails)
            write("  ok \(index) \(name) # XFAIL \(ktapReason(reason))")
        case .timeout(let s):
            diagnostics(result.failureDetails)
            write("  not ok \(index) \(name) # TIMEOUT \(formatSeconds(s)) seconds")
        }
    }

    public func suiteEnded(_ suite: String, results: [CheckResult]) {
        suiteIndex += 1
        write(suiteLine(ok: "ok \(suiteIndex) \(ktapDescription(suite))", results: results))
    }

    public func bailOut(_ reason: String) { write(tapComment("Bail out! " + reason)) }

    public func end(_ summary: RunSummary) { write(tapComment(summary.fullLine)) }

    /// One skipped test rather than TAP's `1..0 # SKIP`: kunit_parser reports an empty plan as an error.
    public func skipAll(header: RunHeader?, reason: String) {
        write("KTAP version 1")
        write("1..1")
        header?.lines.forEach { write(tapComment($0)) }
        write("ok 1 kvmcheck # SKIP \(ktapReason(reason))")
    }

    private func diagnostics(_ f: Failure) {
        for (key, value) in f.fields { write("  " + tapComment("\(key): \(value)")) }
    }
}

