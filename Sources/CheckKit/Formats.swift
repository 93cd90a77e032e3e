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

/// KTAP descriptions may not contain `#` at all (kunit_parser reads the name as `[^#]*`).
func ktapDescription(_ s: String) -> String { lineSafe(s).replacing("#", with: "no.") }

/// A directive's reason, one line; a `#` followed by a space is escaped, so a reason holding " # SKIP"
/// cannot become kunit_parser's SKIP (`#GP` stays as it is).
func ktapReason(_ s: String) -> String { lineSafe(s).replacing("# ", with: "\\# ") }

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

/// JUnit XML as Jenkins and GitLab read it, valid against Jenkins' junit-10.xsd: a testsuite
/// per suite, the run's properties once (in the first testsuite: xunitparser merges all
/// suites' properties and rejects a repeated name), and every failure, error and skip with its
/// message in the element body (GitLab shows only the body) as well as the attribute.
/// Expected failures and informational findings are `<skipped>` (pytest's encoding of xfail).
public final class JUnitReporter: DocumentReporter, Reporter {

    public func skipAll(header: RunHeader?, reason: String) {
        record.header = header
        record.skippedAll = reason
        end(RunSummary())
    }

    public func end(_ summary: RunSummary) {
        var x: [String] = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?>"]
        let all = record.suites.flatMap(\.results)
        let total = record.skippedAll == nil ? all.count : 1
        let failures = all.filter { $0.junitKind == "failure" }.count
        let errors = all.filter { $0.junitKind == "error" }.count
        x.append("<testsuites name=\"kvmcheck\" tests=\"\(total)\" failures=\"\(failures)\" errors=\"\(errors)\" "
                 + "time=\"\(junitSeconds(all.reduce(0) { $0 + $1.milliseconds }))\">")
        var properties = propertiesXML()
        if let reason = record.skippedAll {
            x.append("  <testsuite name=\"kvmcheck\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"1\" time=\"0.000\">")
            x += properties
            properties = []
            x.append("    <testcase classname=\"kvmcheck\" name=\"open KVM device\" time=\"0.000\">")
            x.append("      " + element("skipped", type: "skip", message: reason, body: reason))
            x.append("    </testcase>")
            x.append("  </testsuite>")
        }
        for (suite, results) in record.suites {
            x.append("  <testsuite name=\"\(xmlEscape(suite))\" tests=\"\(results.count)\" "
                     + "failures=\"\(results.filter { $0.junitKind == "failure" }.count)\" "
                     + "errors=\"\(results.filter { $0.junitKind == "error" }.count)\" "
                     + "skipped=\"\(results.filter { $0.junitKind == "skipped" }.count)\" "
                     + "time=\"\(junitSeconds(results.reduce(0) { $0 + $1.milliseconds }))\">")
            x += properties
            properties = []
            for r in results { x += testcaseXML(r) }
            x.append("  </testsuite>")
        }
        x.append("</testsuites>")
        write(x.joined(separator: "\n") + "\n")
    }

    private func propertiesXML() -> [String] {
        guard let h = record.header else { return [] }
        var props: [(String, String)] = [("kernel", h.host.kernelRelease), ("kvm_flavour", h.host.kvmFlavour),
                                         ("cpu_vendor", h.host.cpuVendor), ("tool", h.tool)]
        if let v = h.apiVersion { props.append(("kvm_api_version", String(v))) }
        props += h.notes.enumerated().map { ("note\($0.offset + 1)", $0.element) }
        if let b = record.bailOut { props.append(("bail_out", b)) }
        return ["    <properties>"] + props.map { "      <property name=\"\($0.0)\" value=\"\(xmlEscape($0.1))\"/>" } + ["    </properties>"]
    }

    private func testcaseXML(_ r: CheckResult) -> [String] {
        let open = "    <testcase classname=\"kvmcheck.\(xmlEscape(r.suite))\" name=\"\(xmlEscape(r.name))\" "
            + "time=\"\(junitSeconds(r.milliseconds))\""
        var body: [String] = []
        let details = r.failureDetails
        /// The message first, then expected/observed/ioctl/errno, one per line.
        func text(_ message: String) -> String {
            ([message] + details.fields.dropFirst().map { "\($0.0): \($0.1)" }).joined(separator: "\n")
        }
        switch r.status {
        case .pass: break
        case .skip(let reason):
            body.append(element("skipped", type: "skip", message: reason, body: reason))
        case .informational(let f):
            let message = "informational: " + f.message
            body.append(element("skipped", type: "informational", message: message, body: text(message)))
        case .expectedFailure(let why):
            let message = "expected failure: \(why): \(details.message)"
            body.append(element("skipped", type: "xfail", message: message, body: text(message)))
        case .fail, .unexpectedPass:
            body.append(element("failure", type: r.junitType, message: details.message, body: text(details.message)))
        case .timeout, .crash, .harnessError:
            body.append(element("error", type: r.junitType, message: details.message, body: text(details.message)))
        }
        let out = r.notes + (r.kernelLog.isEmpty ? [] : ["kernel log while the check ran:"] + r.kernelLog)
        if !out.isEmpty { body.append("<system-out>\(xmlEscape(out.joined(separator: "\n")))</system-out>") }
        return body.isEmpty ? [open + "/>"] : [open + ">"] + body.map { "      " + $0 } + ["    </testcase>"]
    }

    private func element(_ name: String, type: String, message: String, body: String) -> String {
        "<\(name) type=\"\(xmlEscape(type))\" message=\"\(xmlEscape(message))\">\(xmlEscape(body))</\(name)>"
    }
}

/// Seconds with three decimals: junit-10.xsd's SUREFIRE_TIME allows no more (and no exponent).
func junitSeconds(_ milliseconds: Int) -> String {
    let ms = max(0, milliseconds)
    let fraction = String(ms % 1000)
    return "\(ms / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
}

extension CheckResult {
    /// Which JUnit element the result becomes: nil (passed), failure, error or skipped.
    var junitKind: String? {
        switch status {
        case .pass: return nil
        case .fail, .unexpectedPass: return "failure"
        case .timeout, .crash, .harnessError: return "error"
        case .skip, .informational, .expectedFailure: return "skipped"
        }
    }

    var junitType: String {
        switch status {
        case .unexpectedPass: return "unexpected pass"
        case .timeout: return "timeout"
        case .crash: return "crash"
        case .harnessError: return "harness error"
        default: return "not ok"
        }
    }
}

/// Text for an XML 1.0 attribute or element: markup escaped, tab/LF/CR as character
/// references (kept through attribute normalisation), and every character XML 1.0 cannot
/// hold at all (NUL, other C0 controls, U+FFFE/U+FFFF), and C1 controls, as a visible `\xNN`.
func xmlEscape(_ s: String) -> String {
    var out = ""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "\n": out += "&#10;"
        case "\t": out += "&#9;"
        case "\r": out += "&#13;"
        default:
            out += isLineUnsafe(scalar) && scalar.value != 0x2028 && scalar.value != 0x2029 && scalar.value != 0xFEFF
                ? visibleEscape(scalar) : String(scalar)
        }
    }
    return out
}

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

/// A message folded onto one line (for a SKIP reason or a caps cell built from a failure).
func oneLine(_ s: String) -> String { s.replacing("\n", with: " ") }
