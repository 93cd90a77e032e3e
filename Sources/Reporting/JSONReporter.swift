import CheckKit
import FoundationEssentials
import Glibc
import KVMKit

/// One JSON document: the header, one object per check, and the summary.
public final class JSONReporter: DocumentReporter, Reporter {

    public func skipAll(header: RunHeader?, reason: String) {
        record.header = header
        record.skippedAll = reason
        end(RunSummary())
    }

    public func end(_ summary: RunSummary) {
        let h = record.header
        let doc = JSONRun(
            tool: h?.tool ?? "kvmcheck", kernel: h?.host.kernelRelease ?? "unknown", kvmFlavour: h?.host.kvmFlavour ?? "unknown",
            cpuVendor: h?.host.cpuVendor ?? "unknown", kvmAPIVersion: h?.apiVersion, notes: h?.notes ?? [],
            skippedAll: record.skippedAll, bailOut: record.bailOut,
            checks: record.suites.flatMap(\.results).map(JSONCheck.init),
            summary: JSONSummary(passed: summary.passed, failed: summary.failed, skipped: summary.skipped,
                                 informational: summary.informational, expectedFailures: summary.expectedFailures,
                                 unexpectedPasses: summary.unexpectedPasses, harnessErrors: summary.harnessErrors,
                                 interruptedBy: summary.interruptedBy,
                                 exitCode: Int(summary.exitCode)))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = (try? encoder.encode(doc)) ?? Data("{}".utf8)
        write(String(decoding: data, as: UTF8.self) + "\n")
    }
}

struct JSONRun: Codable {
    var tool, kernel, kvmFlavour, cpuVendor: String
    var kvmAPIVersion: Int?
    var notes: [String]
    var skippedAll, bailOut: String?
    var checks: [JSONCheck]
    var summary: JSONSummary
}

struct JSONCheck: Codable {
    var id, suite, name, status: String
    var message, expected, observed, ioctl, errno, reason: String?
    var notes: [String]
    var milliseconds: Int
    /// Kernel log lines printed while the check ran.
    var kernelLog: [String]

    init(_ r: CheckResult) {
        id = r.id; suite = r.suite; name = r.name; notes = r.notes; milliseconds = r.milliseconds; kernelLog = r.kernelLog
        switch r.status {
        case .pass: status = "pass"
        case .skip(let why): status = "skip"; reason = why
        case .fail: status = "fail"
        case .informational: status = "informational"
        case .timeout: status = "timeout"
        case .crash: status = "crash"
        case .harnessError: status = "error"
        case .expectedFailure(let why): status = "xfail"; reason = why
        case .unexpectedPass(let why): status = "xpass"; reason = why
        }
        switch r.status {
        case .pass, .skip: break
        default:
            let f = r.failureDetails
            message = f.message; expected = f.expected; observed = f.observed; ioctl = f.ioctl; errno = f.errno
        }
    }
}

struct JSONSummary: Codable {
    var passed, failed, skipped, informational, expectedFailures, unexpectedPasses: Int
    /// Of `failed`: checks the harness could not run (status "error"); not kernel verdicts.
    var harnessErrors: Int
    var interruptedBy: String?
    var exitCode: Int
}

