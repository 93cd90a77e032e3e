import CProcess
import Glibc
import GuestKit
import KVMKit
import SystemPackage

/// Runs selected checks, each in its own child process with a deadline, streaming results.
public struct Runner {
    /// The executable that understands `__check ID` (normally this very binary).
    public var childExecutable: String
    public var settings: CheckSettings
    public var timeoutSeconds: Double
    /// Known outcomes on this kernel (--expect).
    public var expectations: Expectations
    /// What the kernel printed while each check ran (attached to its result; a splat fails it).
    public var kernelLog: KernelLog = .fromEnvironment()

    public init(childExecutable: String, settings: CheckSettings, timeoutSeconds: Double = 10,
                expectations: Expectations = Expectations()) {
        self.childExecutable = childExecutable; self.settings = settings; self.timeoutSeconds = timeoutSeconds
        self.expectations = expectations
    }

    /// The arguments that make the child run `instance`.
    func childArguments(_ instance: CheckInstance) -> [String] {
        var args = [childExecutable, "__check", instance.id, "--device", settings.devicePath]
        if let cap = settings.debugCR3Capability { args += ["--debug-cr3-cap", String(cap)] }
        if let source = settings.debugCR3CapabilitySource { args += ["--debug-cr3-cap-source=\(source)"] } // "=": the value may start with "--"
        return args
    }

    /// Runs one instance in a child and turns whatever happened into a result.
    public func run(_ instance: CheckInstance) -> CheckResult {
        let args = childArguments(instance)
        var blob: [CChar] = []
        for a in args { blob += a.utf8CString }
        var outcome = cproc_outcome()
        let logStart = kernelLog.mark()
        let rc = cproc_run(blob, blob.count, CInt(args.count), Int(timeoutSeconds * 1000), &outcome)
        defer { cproc_free(&outcome) }
        let resultText = outcome.result.map { String(cString: $0) } ?? ""
        let output = outcome.output.map { String(cString: $0) } ?? ""
        let logged = kernelLog.lines(after: logStart, through: kernelLog.mark())
        var notes: [String] = []
        var verdict: Verdict
        if rc < 0 {
            verdict = .crash("could not supervise the child: \(Errno(rawValue: -rc).symbolicName)")
        } else if outcome.spawn_errno != 0 {
            verdict = .crash("could not start \(childExecutable): \(Errno(rawValue: outcome.spawn_errno).symbolicName)")
        } else if let report = decodeChildReport(resultText) {
            notes = report.notes
            switch report.outcome {
            case .pass: verdict = .pass
            case .skip: verdict = .skip(reason: report.reason ?? "skipped")
            case .fail: verdict = .fail(report.failure?.failure ?? Failure("failed without details"))
            }
        } else if outcome.timed_out != 0 {
            verdict = .timeout(seconds: timeoutSeconds)
        } else if cproc_interrupted() != 0 {
            verdict = .crash("interrupted by \(signalName(cproc_interrupted()))")
        } else if outcome.signal != 0 {
            verdict = .crash("child killed by \(signalName(outcome.signal)) before reporting")
        } else {
            verdict = .crash("child exited with status \(outcome.exit_code) without reporting")
        }
        // A child that died (timeout, crash, signal) may have left a host setting changed.
        notes += HostRestore.applyOrphaned()
        if verdict.isFailure && !output.isEmpty {
            // The reason a child died precedes Swift's stack dump; keep the reason.
            let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
            let reason = lines.prefix { !$0.hasPrefix("Current stack trace:") }
            notes += reason.suffix(12).map { "child output: \($0)" }
        }
        verdict = KernelSplat.judge(verdict, log: logged)
        return CheckResult(id: instance.id, suite: instance.suite.name, name: instance.localName, verdict: verdict,
                           notes: notes, informational: instance.check.informational,
                           milliseconds: Int(outcome.elapsed_ms), kernelLog: logged)
    }

    /// Runs every selected instance in order, reporting as it goes.  Stops early on SIGINT/SIGTERM.
    public func run(_ plan: [(Suite, [CheckInstance])], header: RunHeader, reporter: Reporter) -> RunSummary {
        cproc_install_interrupt_handler()
        // A crashing child should say why in one line, not print a full symbolicated backtrace.
        setenv("SWIFT_BACKTRACE", "enable=no", 0)
        var summary = RunSummary()
        var header = header
        if let why = kernelLog.unavailableReason { header.notes.append("kernel log: not attached to results (\(why))") }
        reporter.begin(header: header, plan: plan.map { ($0.0.name, $0.1.count) })
        for (suite, instances) in plan {
            reporter.suiteBegan(suite.name, count: instances.count)
            var results: [CheckResult] = []
            for instance in instances {
                let result = expectations.apply(to: run(instance))
                results.append(result)
                summary.add(result)
                reporter.report(result, index: results.count)
                if cproc_interrupted() != 0 { break }
            }
            reporter.suiteEnded(suite.name, results: results)
            if cproc_interrupted() != 0 {
                summary.interruptedBy = signalName(cproc_interrupted())
                reporter.bailOut("interrupted by \(summary.interruptedBy!)")
                break
            }
        }
        reporter.end(summary)
        return summary
    }
}

/// Totals and the process exit code (kselftest conventions).
public struct RunSummary: Sendable, Equatable {
    public var passed = 0, failed = 0, skipped = 0, informational = 0
    /// Failures the expectations file lists (not counted in `failed`).
    public var expectedFailures = 0
    /// Checks the expectations file lists as failing that passed (counted in `failed` too).
    public var unexpectedPasses = 0
    public var interruptedBy: String?

    public init() {}

    public mutating func add(_ r: CheckResult) {
        switch r.expectation {
        case .expectedFailure?: expectedFailures += 1; return
        case .unexpectedPass?: unexpectedPasses += 1; failed += 1; return
        default: break
        }
        switch r.verdict {
        case .pass: passed += 1
        case .skip: skipped += 1
        case .fail, .timeout, .crash:
            if r.informational { informational += 1 } else { failed += 1 }
        }
    }

    /// 0: all ran checks passed; 1: any failed; 4: nothing could run (all skipped); 130: interrupted.
    public var exitCode: Int32 {
        if interruptedBy != nil { return 130 }
        if failed > 0 { return 1 }
        return passed + informational + expectedFailures == 0 ? 4 : 0
    }

    public var line: String {
        "\(passed) passed, \(failed) failed, \(skipped) skipped"
            + (expectedFailures > 0 ? ", \(expectedFailures) expected failures" : "")
            + (unexpectedPasses > 0 ? ", \(unexpectedPasses) unexpected passes" : "")
    }
}

func signalName(_ sig: CInt) -> String {
    let names: [CInt: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGILL: "SIGILL", SIGBUS: "SIGBUS",
                                 SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGTRAP: "SIGTRAP",
                                 SIGFPE: "SIGFPE", SIGUSR2: "SIGUSR2"]
    return names[sig] ?? "signal \(sig)"
}
