import KVMKit

// The seam between the runner and the formats: the header, the reporter protocol, and the one
// projection of verdict + expectation onto the status every format prints.

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

public func formatSeconds(_ s: Double) -> String {
    s == s.rounded() ? String(Int(s)) : String(s)
}
