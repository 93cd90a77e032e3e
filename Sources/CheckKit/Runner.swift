import CProcess
import Glibc
import GuestKit
import KVMKit
import SystemPackage

/// Runs selected checks, each in its own child process with a deadline, streaming results.
public struct Runner: Sendable {
    /// The executable that understands `__check ID` (normally this very binary).
    public var childExecutable: String
    public var settings: CheckSettings
    public var timeoutSeconds: Double
    /// Known outcomes on this kernel (--expect).
    public var expectations: Expectations
    /// How many check children may run at once (exclusive checks always run alone).
    public var jobs: Int
    /// What the kernel printed while each check ran (attached to its result; a splat fails it).
    public var kernelLog: KernelLog = .fromEnvironment()
    /// `--coverage`: the kernel's gcov counters, zeroed before each child and saved after it
    /// (Coverage.swift).  Kernel-global, so a run with it runs one check at a time.
    public var coverage: CoverageCollector?

    public init(childExecutable: String, settings: CheckSettings, timeoutSeconds: Double = 10,
                expectations: Expectations = Expectations(), jobs: Int = 1) {
        self.childExecutable = childExecutable; self.settings = settings; self.timeoutSeconds = timeoutSeconds
        self.expectations = expectations
        self.jobs = max(1, jobs)
    }

    /// The default for --jobs: the cores this process may run on.
    public static var onlineCores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// The arguments that make the child run `instance`.
    func childArguments(_ instance: CheckInstance) -> [String] {
        // The child's own deadline backs up the runner's: it ends even if the runner is stopped.
        let invocation = ChildInvocation(id: instance.id, settings: settings, parentPID: getpid(),
                                         deadlineSeconds: Int(timeoutSeconds.rounded(.up)) + 5)
        return [childExecutable] + invocation.arguments
    }

    /// The largest --timeout (a day): anything longer is a typo, and the millisecond deadline must fit.
    public static let maximumTimeoutSeconds = 86_400.0

    /// Why `seconds` is not a usable per-check timeout, or nil.
    public static func timeoutProblem(_ seconds: Double) -> String? {
        guard seconds.isFinite, seconds > 0, seconds <= maximumTimeoutSeconds else {
            return "--timeout must be a number of seconds above 0 and at most \(Int(maximumTimeoutSeconds)), not \(seconds)"
        }
        return nil
    }

    /// Runs one instance in a child and turns whatever happened into a result.
    public func run(_ instance: CheckInstance) -> CheckResult {
        let args = childArguments(instance)
        var blob: [CChar] = []
        for a in args { blob += a.utf8CString }
        var outcome = cproc_outcome()
        let logStart = kernelLog.mark()
        var coverageNotes = coverage?.reset().map { [$0] } ?? []
        let rc = cproc_run(blob, blob.count, CInt(args.count), Int(timeoutSeconds * 1000), &outcome)
        coverageNotes += coverage?.collect(checkID: instance.id) ?? []
        defer { cproc_free(&outcome) }
        let resultText = outcome.result.map { String(cString: $0) } ?? ""
        let output = outcome.output.map { String(cString: $0) } ?? ""
        let logged = kernelLog.lines(after: logStart, through: kernelLog.mark())
        var notes: [String] = []
        var verdict: Verdict
        if rc < 0 {
            verdict = .harnessError("could not supervise the child: \(Errno(rawValue: -rc).symbolicName)")
        } else if outcome.spawn_errno != 0 {
            verdict = .harnessError("could not start \(childExecutable): \(Errno(rawValue: outcome.spawn_errno).symbolicName)")
        } else if let report = decodeChildReport(resultText) {
            notes = report.notes
            switch report.outcome {
            case .pass: verdict = .pass
            case .skip: verdict = .skip(reason: report.reason ?? "skipped")
            case .fail: verdict = .fail(report.failure?.failure ?? Failure("failed without details"))
            case .error: verdict = .harnessError(report.reason ?? "the check's child could not do its part")
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
        notes += HostRestore.applyOrphaned() + coverageNotes
        if verdict.isFailure && !output.isEmpty {
            // The reason a child died precedes Swift's stack dump; keep the reason.
            let lines = output.split(separator: "\n", omittingEmptySubsequences: true)
            let reason = lines.prefix { !$0.hasPrefix("Current stack trace:") }
            notes += reason.suffix(12).map { "child output: \($0)" }
        }
        if instance.check.judgesKernelLog, let why = kernelLog.unavailableReason {
            notes.append("kernel log unreadable (\(why)): this check's \"no splat\" half was not judged")
        }
        if jobs > 1 && !logged.isEmpty && !instance.check.exclusive { // an exclusive check ran alone
            notes.append("kernel log: up to \(jobs) checks ran at once (--jobs \(jobs)); a line here may be another check's")
        }
        verdict = KernelSplat.judge(verdict, log: logged)
        return CheckResult(id: instance.id, suite: instance.suite.name, name: instance.localName, verdict: verdict,
                           notes: notes, informational: instance.check.informational,
                           milliseconds: Int(outcome.elapsed_ms), kernelLog: logged)
    }

    /// The order checks start in: with several workers, those that run for a set time come first
    /// (so the rest fill the cores around them); otherwise check order.  Results are reported in
    /// check order either way.
    static func dispatchOrder(_ checks: [Check], workers: Int) -> [Int] {
        guard workers > 1 else { return Array(checks.indices) }
        return checks.indices.filter { checks[$0].fixedDuration } + checks.indices.filter { !checks[$0].fixedDuration }
    }

    /// Runs every selected instance, `jobs` at a time, and reports the results in check order as
    /// soon as each one and all before it are known, so every format is the same as a serial
    /// run's (timings aside).  Stops dispatching on SIGINT/SIGTERM/SIGHUP; what ran is reported
    /// before the `Bail out!`.
    public func run(_ plan: [(Suite, [CheckInstance])], header: RunHeader, reporter: Reporter) -> RunSummary {
        cproc_install_interrupt_handler()
        // A crashing child should say why in one line, not print a full symbolicated backtrace.
        setenv("SWIFT_BACKTRACE", "enable=no", 0)
        let instances = plan.flatMap(\.1)
        let workerCount = min(coverage == nil ? jobs : 1, max(1, instances.count))
        let board = ResultBoard(order: Self.dispatchOrder(instances.map(\.check), workers: workerCount))
        let workers = (0..<workerCount).map { _ in
            WorkerThread { [self] in
                while let index = board.claim(exclusive: { instances[$0].check.exclusive }) {
                    let result = expectations.apply(to: run(instances[index]))
                    board.finish(index, result)
                }
            }
        }
        var summary = RunSummary()
        var header = header
        if let why = kernelLog.unavailableReason { header.notes.append("kernel log: not attached to results (\(why))") }
        reporter.begin(header: header, plan: plan.map { ($0.0.name, $0.1.count) })
        var index = 0
        reporting: for (suite, suiteInstances) in plan {
            reporter.suiteBegan(suite.name, count: suiteInstances.count)
            var results: [CheckResult] = []
            for _ in suiteInstances {
                guard let result = board.result(index) else { break }
                index += 1
                results.append(result)
                summary.add(result)
                reporter.report(result, index: results.count)
            }
            reporter.suiteEnded(suite.name, results: results)
            if results.count < suiteInstances.count { break reporting }
        }
        workers.forEach { $0.join() }
        if cproc_interrupted() != 0 {
            summary.interruptedBy = signalName(cproc_interrupted())
            reporter.bailOut("interrupted by \(summary.interruptedBy!)")
        }
        reporter.end(summary)
        return summary
    }
}

/// The runner's shared state: which check runs next, and the results by index.
final class ResultBoard: @unchecked Sendable {
    /// Guards everything below.
    private let lock = ConditionLock()
    private var results: [CheckResult?]
    private var claimed: [Bool]
    /// The dispatch order (indices into results), and how far it has been dispatched.
    private let order: [Int]
    private var next = 0
    private var running = 0
    private var exclusiveRunning = false

    init(order: [Int]) {
        self.order = order
        results = Array(repeating: nil, count: order.count)
        claimed = Array(repeating: false, count: order.count)
    }

    /// The next index to run, waiting while an exclusive check runs (or, for an exclusive one,
    /// until nothing else runs); nil when all are claimed or the run was interrupted.
    func claim(exclusive: (Int) -> Bool) -> Int? {
        lock.withLock {
            while true {
                guard next < order.count, cproc_interrupted() == 0 else { return nil }
                let index = order[next]
                let alone = exclusive(index)
                if !exclusiveRunning && (!alone || running == 0) {
                    running += 1
                    exclusiveRunning = alone
                    next += 1
                    claimed[index] = true
                    return index
                }
                lock.wait()
            }
        }
    }

    func finish(_ index: Int, _ result: CheckResult) {
        lock.withLock {
            results[index] = result
            running -= 1
            exclusiveRunning = false
            lock.broadcast()
        }
    }

    /// The result at `index` once it is known; nil when it will never be (interrupted before it ran).
    func result(_ index: Int) -> CheckResult? {
        lock.withLock {
            while results[index] == nil {
                if !claimed[index] && cproc_interrupted() != 0 { return nil }
                lock.wait(milliseconds: 50) // wake to notice an interruption
            }
            return results[index]
        }
    }
}

/// A POSIX thread running one closure (the runner's workers; no Foundation or Dispatch needed).
final class WorkerThread: Sendable {
    private let thread: PosixThread?

    init(_ body: @escaping @Sendable () -> Void) {
        switch PosixThread.start(body) {
        case .success(let t): thread = t
        case .failure:
            // No thread to be had: run the work here, serially (the run is slower, not different).
            thread = nil
            body()
        }
    }

    func join() { thread?.join() }
}

/// Totals and the process exit code (kselftest conventions).  Every check lands in exactly one
/// count, so the six counts add up to the number of checks that ran.
public struct RunSummary: Sendable, Equatable {
    public var passed = 0, failed = 0, skipped = 0, informational = 0
    /// Failures the expectations file lists (XFAIL): they do not fail the run.
    public var expectedFailures = 0
    /// Checks the expectations file lists as failing that passed (XPASS): they fail the run,
    /// but are not also counted in `failed`.
    public var unexpectedPasses = 0
    public var interruptedBy: String?
    /// Of `failed`: checks the harness could not run (a resource it needed was refused).
    public var harnessErrors = 0

    public init() {}

    public mutating func add(_ r: CheckResult) {
        switch r.expectation {
        case .expectedFailure?: expectedFailures += 1; return
        case .unexpectedPass?: unexpectedPasses += 1; return
        default: break
        }
        switch r.verdict {
        case .pass: passed += 1
        case .skip: skipped += 1
        case .fail, .timeout, .crash:
            if r.informational { informational += 1 } else { failed += 1 }
        case .harnessError:
            failed += 1
            harnessErrors += 1
        }
    }

    /// How many checks were counted.
    public var total: Int { passed + failed + skipped + informational + expectedFailures + unexpectedPasses }

    /// 0: all ran checks passed; 1: any failed or passed unexpectedly; 4: nothing could run (all skipped);
    /// 130: interrupted.
    public var exitCode: Int32 {
        if interruptedBy != nil { return 130 }
        if failed + unexpectedPasses > 0 { return 1 }
        return passed + informational + expectedFailures == 0 ? 4 : 0
    }

    public var line: String {
        "\(passed) passed, \(failed) failed"
            + (harnessErrors > 0 ? " (\(harnessErrors) harness errors, not kernel verdicts)" : "")
            + ", \(skipped) skipped"
            + (expectedFailures > 0 ? ", \(expectedFailures) expected failures" : "")
            + (unexpectedPasses > 0 ? ", \(unexpectedPasses) unexpected passes (fail the run)" : "")
    }
}

func signalName(_ sig: CInt) -> String {
    let names: [CInt: String] = [SIGSEGV: "SIGSEGV", SIGABRT: "SIGABRT", SIGILL: "SIGILL", SIGBUS: "SIGBUS",
                                 SIGKILL: "SIGKILL", SIGTERM: "SIGTERM", SIGINT: "SIGINT", SIGTRAP: "SIGTRAP",
                                 SIGFPE: "SIGFPE", SIGUSR2: "SIGUSR2", SIGHUP: "SIGHUP", SIGPIPE: "SIGPIPE",
                                 SIGALRM: "SIGALRM (the child's own deadline)"]
    return names[sig] ?? "signal \(sig)"
}
