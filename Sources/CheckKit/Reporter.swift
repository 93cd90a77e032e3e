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

/// TAP output: version 14 nests one subtest block per suite; version 13 is flat (for prove).
public final class TAPReporter: Reporter {
    public let version: Int
    private let write: (String) -> Void
    private var flatIndex = 0

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
        header.lines.forEach { write("# " + $0) }
        write("1..\(nested ? plan.count : plan.reduce(0) { $0 + $1.count })")
    }

    public func suiteBegan(_ suite: String, count: Int) {
        if nested {
            write("# Subtest: \(suite)")
            write(indent + "1..\(count)")
        }
    }

    public func report(_ result: CheckResult, index: Int) {
        flatIndex += 1
        let number = nested ? index : flatIndex
        let name = escape(nested ? result.name : result.id)
        for note in result.notes { write(indent + "# " + note) }
        pendingKernelLog = result.kernelLog
        defer { if !pendingKernelLog.isEmpty { yaml([]) } } // ok/skip: the log gets a YAML block of its own
        switch result.status {
        case .pass:
            write(indent + "ok \(number) - \(name)")
        case .skip(let reason):
            write(indent + "ok \(number) - \(name) # SKIP \(escape(reason))")
        case .fail(let f):
            write(indent + "not ok \(number) - \(name)")
            yaml(f.fields)
        case .informational(let f):
            write(indent + "not ok \(number) - \(name) # TODO informational: \(escape(f.message))")
            yaml(f.fields)
        case .timeout(let s):
            write(indent + "not ok \(number) - \(name) # TIMEOUT \(formatSeconds(s)) seconds")
            yaml(result.failureDetails.fields)
        case .crash:
            write(indent + "not ok \(number) - \(name)")
            yaml(result.failureDetails.fields)
        case .expectedFailure(let reason):
            write(indent + "not ok \(number) - \(name) # TODO expected failure: \(escape(reason))")
            yaml(result.failureDetails.fields)
        case .unexpectedPass:
            write(indent + "not ok \(number) - \(name)")
            yaml(result.failureDetails.fields)
        }
    }

    public func suiteEnded(_ suite: String, results: [CheckResult]) {
        guard nested else { return }
        let failed = results.contains { $0.failsRun }
        let allSkipped = results.allSatisfy { if case .skip = $0.verdict { return true } else { return false } }
        suiteIndex += 1
        let index = suiteIndex
        if failed {
            write("not ok \(index) - \(suite)")
        } else if allSkipped {
            write("ok \(index) - \(suite) # SKIP every check skipped")
        } else {
            write("ok \(index) - \(suite)")
        }
    }

    private var suiteIndex = 0

    public func bailOut(_ reason: String) { write("Bail out! \(reason)") }

    public func end(_ summary: RunSummary) {
        write("# \(summary.fullLine)")
    }

    public func skipAll(header: RunHeader?, reason: String) {
        write("TAP version \(version)")
        header?.lines.forEach { write("# " + $0) }
        write("1..0 # SKIP \(reason)")
    }

    /// The current result's kernel log lines, added to its YAML block (once).
    private var pendingKernelLog: [String] = []

    private func yaml(_ fields: [(String, String)]) {
        let fields = fields + (pendingKernelLog.isEmpty ? [] : [("kernel_log", pendingKernelLog.joined(separator: "\n"))])
        pendingKernelLog = []
        let pad = indent + "  "
        write(pad + "---")
        for (key, value) in fields {
            if value.contains("\n") {
                write(pad + "\(key): |")
                value.split(separator: "\n", omittingEmptySubsequences: false).forEach { write(pad + "  " + $0) }
            } else {
                write(pad + "\(key): \(yamlQuote(value))")
            }
        }
        write(pad + "...")
    }
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

/// TAP descriptions may not contain an unescaped `#`.
func escape(_ s: String) -> String {
    s.replacing("\\", with: "\\\\").replacing("#", with: "\\#").replacing("\n", with: " ")
}

func yamlQuote(_ s: String) -> String {
    "\"" + s.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
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
        switch verdict {
        case .pass: return .pass
        case .skip(let reason): return .skip(reason)
        case .fail(let f): return informational ? .informational(f) : .fail(f)
        case .timeout(let s): return .timeout(s)
        case .crash(let why): return .crash(why)
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
        case .skip(let reason): return Failure("skipped: \(reason)")
        case .pass: return Failure("passed")
        }
    }
}

extension RunSummary {
    /// The summary with informational and expectation counts, as every format prints it.
    public var fullLine: String { line + (informational > 0 ? ", \(informational) informational" : "") }
}
