import KVMKit

/// What the report header says about the machine under test.
public struct RunHeader: Sendable, Equatable {
    public var tool: String
    public var host: HostInfo
    public var apiVersion: Int?
    public var processCapabilities: String
    public var notes: [String] = []

    public init(tool: String, host: HostInfo, apiVersion: Int?, processCapabilities: String, notes: [String] = []) {
        self.tool = tool; self.host = host; self.apiVersion = apiVersion
        self.processCapabilities = processCapabilities; self.notes = notes
    }

    public var lines: [String] {
        ["\(tool): kernel \(host.kernelRelease), KVM flavour \(host.kvmFlavour), CPU vendor \(host.cpuVendor), "
            + "KVM API version \(apiVersion.map(String.init) ?? "unknown")",
         "process capabilities: \(processCapabilities)"] + notes
    }
}

/// Receives results as they arrive; every line is written (and flushed) immediately.
public protocol Reporter: AnyObject {
    func begin(header: RunHeader, plan: [(suite: String, count: Int)])
    func suiteBegan(_ suite: String, count: Int)
    func report(_ result: CheckResult, index: Int)
    func suiteEnded(_ suite: String, results: [CheckResult])
    func bailOut(_ reason: String)
    func end(_ summary: RunSummary)
    /// Nothing can run at all (e.g. no /dev/kvm): the whole document is a skip.
    func skipAll(header: RunHeader?, reason: String)
}

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

/// Whether a scalar may not appear raw inside one report line: C0 and C1 controls (CR, LF,
/// NUL, ESC…), DEL, Unicode line/paragraph separators (Python's splitlines() breaks on them),
/// the BOM and the noncharacters U+FFFE/U+FFFF.
func isLineUnsafe(_ v: Unicode.Scalar) -> Bool {
    switch v.value {
    case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF: return true
    default: return false
    }
}

/// `\xNN` for scalars up to 0xFF, `\u{NNNN}` above: visible, and never a line break.
func visibleEscape(_ v: Unicode.Scalar) -> String {
    let hex = String(v.value, radix: 16, uppercase: true)
    return v.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                           : "\\u{" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "}"
}

/// Text that stays one line: unsafe scalars become visible escapes; scalars in `special`
/// get a backslash in front (TAP's `\\` and `\#`).
func lineSafe(_ s: String, escaping special: String = "") -> String {
    var out = String.UnicodeScalarView()
    for v in s.unicodeScalars {
        if isLineUnsafe(v) {
            out.append(contentsOf: visibleEscape(v).unicodeScalars)
        } else {
            if special.unicodeScalars.contains(v) { out.append("\\") }
            out.append(v)
        }
    }
    return String(out)
}

/// A TAP description or directive reason: one line, `\` and `#` escaped (TAP 13/14 spec).
func tapDescription(_ s: String) -> String { lineSafe(s, escaping: "\\#") }

/// A TAP/KTAP diagnostic line.
func tapComment(_ s: String) -> String { "# " + lineSafe(s) }

/// A YAML 1.1 double-quoted scalar that PyYAML loads back to the same text: every character
/// YAML may not hold raw (or would fold as a line break) is an escape.
func yamlQuote(_ s: String) -> String {
    var out = "\""
    for v in s.unicodeScalars {
        switch v {
        case "\\": out += "\\\\"
        case "\"": out += "\\\""
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        case "\0": out += "\\0"
        case "\u{1B}": out += "\\e"
        default:
            if isLineUnsafe(v) || v.value == 0x85 {
                let hex = String(v.value, radix: 16, uppercase: true)
                out += v.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                                       : "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(v)
            }
        }
    }
    return out + "\""
}

func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}

/// A result as every format presents it, with expectations applied.
public enum ResultStatus: Equatable {
    case pass
    case skip(String)
    case fail(Failure)
    /// A failed informational check: reported, never fails the run.
    case informational(Failure)
    case timeout(Double)
    case crash(String)
    /// The harness, not the kernel, failed (see Verdict.harnessError).
    case harnessError(String)
    /// Failed as the expectations file says (XFAIL).
    case expectedFailure(String)
    /// Listed as failing, but passed (XPASS): fails the run so the file gets updated.
    case unexpectedPass(String)
}

extension CheckResult {
    public var status: ResultStatus {
        switch expectation {
        case .expectedFailure(let why)?: return .expectedFailure(why)
        case .unexpectedPass(let why)?: return .unexpectedPass(why)
        default: break
        }
        if case .harnessError(let why) = verdict { return .harnessError(why) }
        // An informational check never fails the run, however it ended (RunSummary counts it so).
        if informational && verdict.isFailure { return .informational(failureDetails) }
        switch verdict {
        case .pass: return .pass
        case .skip(let reason): return .skip(reason)
        case .fail(let f): return .fail(f)
        case .timeout(let s): return .timeout(s)
        case .crash(let why): return .crash(why)
        case .harnessError(let why): return .harnessError(why)
        }
    }

    /// What went wrong, for every non-passing status (message, expected, observed, ioctl, errno).
    public var failureDetails: Failure {
        if case .unexpectedPass(let why)? = expectation {
            return Failure("unexpected pass: the expectations file lists this check as failing (\(why)); update the file",
                           expected: "failure (xfail in the expectations file)", observed: "pass")
        }
        switch verdict {
        case .fail(let f): return f
        case .timeout(let s): return Failure("check did not finish within \(formatSeconds(s)) s; the child was killed")
        case .crash(let why): return Failure(why)
        case .harnessError(let why): return Failure("harness error (not a kernel verdict): \(why)")
        case .skip(let reason): return Failure("skipped: \(reason)")
        case .pass: return Failure("passed")
        }
    }
}

extension RunSummary {
    /// The summary with informational and expectation counts, as every format prints it.
    public var fullLine: String { line + (informational > 0 ? ", \(informational) informational" : "") }
}
