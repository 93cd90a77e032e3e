// `kvmcheck run` (the default): checks in isolated children, reports in every format.
import ArgumentParser
import CheckKit
import Reporting
import SeriesPlan
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KernelDoubles
import KVMKit
import Suites

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run checks (the default).")

    @OptionGroup var selectionOptions: SelectionOptions
    @OptionGroup var device: DeviceOptions

    @Option(parsing: .unconditional, help: "Seconds each check may take before it is killed and reported as TIMEOUT (above 0, at most a day).")
    var timeout: Double = 10

    @Option(name: .customLong("tap-version"),
            help: "13 (flat; the default, read by prove, tap.py and kunit_parser) or 14 (nested; prove rejects it).")
    var tapVersion = 13

    @Option(help: "Format on stdout: tap (default), ktap, junit or json.")
    var format: OutputFormat = .tap

    @Option(name: .customLong("tap"), help: ArgumentHelp("Also write TAP to FILE.", valueName: "FILE"))
    var tapFile: String?
    @Option(name: .customLong("ktap"), help: ArgumentHelp("Also write KTAP v1 to FILE.", valueName: "FILE"))
    var ktapFile: String?
    @Option(name: .customLong("junit"), help: ArgumentHelp("Also write JUnit XML to FILE.", valueName: "FILE"))
    var junitFile: String?
    @Option(name: .customLong("json"), help: ArgumentHelp("Also write JSON to FILE.", valueName: "FILE"))
    var jsonFile: String?

    @Option(name: .customLong("race-seconds"), parsing: .unconditional,
            help: "Seconds each timed race (sync-regs-upstream/race_*) runs (default 0.1; upstream's sync_regs_test runs 2).")
    var raceSeconds: Double = Double(CheckSettings.defaultRaceMilliseconds) / 1000

    @Option(help: "Checks run at once (default: the number of cores); exclusive checks always run alone.")
    var jobs: Int?

    @Option(name: .customLong("expect"),
            help: ArgumentHelp("Known outcomes on this kernel: lines '<check id or glob> <xfail|skip> <reason>'.", valueName: "FILE"))
    var expectFile: String?

    @Option(name: .customLong("coverage"),
            help: ArgumentHelp("On a gcov kernel: save each check's KVM gcov counters under DIR (new or empty; forces --jobs 1). See ci/coverage-report.", valueName: "DIR"))
    var coverageDirectory: String?

    func validate() throws {
        guard tapVersion == 13 || tapVersion == 14 else { throw ValidationError("--tap-version must be 13 or 14") }
        if let problem = Runner.timeoutProblem(timeout) { throw ValidationError(problem) }
        if let jobs, !(1...256).contains(jobs) { throw ValidationError("--jobs must be between 1 and 256, not \(jobs)") }
        if coverageDirectory?.isEmpty == true { throw ValidationError("--coverage needs a directory name") }
        guard raceSeconds.isFinite, raceSeconds >= 0.001, raceSeconds < timeout else {
            throw ValidationError("--race-seconds must be at least 0.001 and below --timeout (\(timeout)), not \(raceSeconds)")
        }
    }

    /// stdout in --format, plus every requested file; files are opened before anything runs.
    /// Every sink checks its writes; `sinks` are finished (closed, checked) at the end.
    func makeReporter() -> (reporter: Reporter, sinks: [ReportSink]) {
        func reporter(_ format: OutputFormat, _ sink: ReportSink) -> Reporter {
            switch format {
            case .tap: return TAPReporter(version: tapVersion, write: sink.line)
            case .ktap: return KTAPReporter(write: sink.line)
            case .junit: return JUnitReporter(write: sink.write)
            case .json: return JSONReporter(write: sink.write)
            }
        }
        var sinks = [ReportSink.stdout]
        var all = [reporter(format, ReportSink.stdout)]
        for (path, kind) in [(tapFile, OutputFormat.tap), (ktapFile, .ktap), (junitFile, .junit), (jsonFile, .json)] {
            guard let path else { continue }
            let sink: ReportSink
            do { sink = try ReportSink(path: path, option: "--\(kind.rawValue)") } catch { fail("\(error)") }
            sinks.append(sink)
            all.append(reporter(kind, sink))
        }
        return (all.count == 1 ? all[0] : MultiReporter(all), sinks)
    }

    /// `--expect FILE` (a regular file) or `--expect -` (stdin).
    func loadExpectations() -> Expectations {
        guard let expectFile else { return Expectations() }
        let text: String
        do { text = try TextInput.read(expectFile) } catch { fail("--expect: \(error)") }
        let ids = SuiteRegistry.all(includeHidden: true).flatMap(\.instances).map(\.id)
        do { return try Expectations.parse(text, file: TextInput.displayName(expectFile), knownIDs: ids) } catch {
            fail("malformed expectations file: \(error)")
        }
    }

    func run() throws {
        if let problem = HostRestore.environmentProblem() { fail(problem) }
        let suites = SuiteRegistry.all(includeHidden: hiddenSuitesEnabled())
        let plan: [(Suite, [CheckInstance])]
        do { plan = try select(try selectionOptions.selection(), from: suites) } catch { fail("\(error)") }
        let expectations = loadExpectations()
        var settings = try device.resolvedSettings()
        settings.raceMilliseconds = Int((raceSeconds * 1000).rounded())
        // Before any report file is opened: an unsafe --coverage DIR ends the run with the
        // user's earlier reports untouched.
        let coverage = coverageDirectory.flatMap(openCoverage)
        let (reporter, sinks) = makeReporter()
        let host = HostInfo.current()
        let system: KVMSystem
        let apiVersion: Int
        switch openKVM(device.device) {
        case .success(let opened): (system, apiVersion) = opened
        case .failure(let reason):
            let header = RunHeader(tool: "kvmcheck \(kvmcheckVersion)", host: host, apiVersion: nil,
                                   processCapabilities: ProcessCapability.currentText())
            reporter.skipAll(header: header, reason: reason.description)
            if let coverage { CoverageCollector.releaseDebugfs(notes: coverage.notes) }
            finishReports(sinks, status: 4)
        }
        var header = RunHeader(tool: "kvmcheck \(kvmcheckVersion)", host: host, apiVersion: apiVersion,
                               processCapabilities: ProcessCapability.currentText())
        withExtendedLifetime(system) {}
        if let doubles = activateKernelDoubles(settings) {
            header.notes.insert(doubles, at: 0)
            // Also on stderr: a CI log shows it even when stdout is a machine-read report.
            printError("kvmcheck: \(doubles)")
        }
        // Host settings an earlier run changed and never put back (it was killed): restore them first.
        header.notes += HostRestore.applyOrphaned().map { "earlier run: \($0)" }
        if !expectations.entries.isEmpty { header.notes.append("expectations: \(TextInput.displayName(expectFile!)) (\(expectations.entries.count) entries)") }
        header.notes += settings.proposedCapabilities.notes
        var runner = Runner(childExecutable: selfExecutable(), settings: settings, timeoutSeconds: timeout,
                            expectations: expectations, jobs: jobs ?? Runner.onlineCores)
        if let coverage {
            runner.coverage = coverage
            header.notes += coverage.notes
            if let jobs, jobs > 1 { header.notes.append("coverage: --jobs \(jobs) ignored: one check at a time") }
            runner.jobs = 1
        }
        let summary = runner.run(plan, header: header, reporter: reporter)
        if let coverage { CoverageCollector.releaseDebugfs(notes: coverage.notes) }
        for line in HostRestore.applyOrphaned() { printError("kvmcheck: \(line)") }
        printError("kvmcheck: \(summary.fullLine)")
        finishReports(sinks, status: summary.exitCode)
    }

    /// The collector for --coverage, or nil (said once on stderr) when the kernel has no gcov.
    /// A directory that is unsafe to write to ends the run before anything runs.
    func openCoverage(_ directory: String) -> CoverageCollector? {
        var notes: [String] = []
        switch CoverageCollector.locateGcov(notes: &notes) {
        case .failure(let why):
            printError("kvmcheck: --coverage: \(why); running without coverage")
            return nil
        case .success(let root):
            do { return try CoverageCollector(directory: directory, gcovRoot: root, notes: notes) } catch {
                CoverageCollector.releaseDebugfs(notes: notes)
                fail("\(error)")
            }
        }
    }

    /// Closes every report, names each one that is incomplete on stderr, and exits: a lost report
    /// outranks the checks' verdicts (CI must not go green on missing results), an interruption outranks both.
    func finishReports(_ sinks: [ReportSink], status: Int32) -> Never {
        var lost = false
        for sink in sinks {
            guard let why = sink.finish() else { continue }
            printError("kvmcheck: \(sink.label): \(why); that report is incomplete")
            lost = true
        }
        Glibc.exit(status == 130 || !lost ? status : ReportSink.failedExitStatus)
    }
}

/// Opens the KVM device and makes sure it is one: KVM_GET_API_VERSION must answer 12, or the
/// run has nothing to test (a reason for `1..0 # SKIP`).
func openKVM(_ path: String) -> Result<(KVMSystem, Int), KVMOpenFailure> {
    let system: KVMSystem
    do { system = try KVMSystem(path: path) } catch {
        return .failure(KVMOpenFailure("cannot open \(path): \(error.errno?.symbolicName ?? "") (\(error.errno?.message ?? "\(error)"))"))
    }
    do {
        let version = try system.apiVersion()
        guard version == KVMSystem.expectedAPIVersion else {
            return .failure(KVMOpenFailure("\(path) is not a KVM device: KVM_GET_API_VERSION = \(version), expected \(KVMSystem.expectedAPIVersion)"))
        }
        return .success((system, version))
    } catch {
        return .failure(KVMOpenFailure("\(path) is not a KVM device: KVM_GET_API_VERSION failed: \(error.shortName)"))
    }
}

struct KVMOpenFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Installs the test-only mutants/models named in KVMCHECK_MUTANT / KVMCHECK_MODEL, and returns
/// the header line that says so (nil when none): results under them do not describe the kernel.
@discardableResult
func activateKernelDoubles(_ settings: CheckSettings) -> String? {
    let names = KernelDoubles.namesFromEnvironment()
    guard !names.isEmpty else { return nil }
    // Like every test-only switch, honoured only under the harness's self-test: a variable left
    // in a root shell must not silently pervert a real run's verdicts.
    guard hiddenSuitesEnabled() else {
        fail("KVMCHECK_MUTANT/KVMCHECK_MODEL are test-only (they pervert or simulate the kernel): set KVMCHECK_HARNESS_SELFTEST=1 to use them")
    }
    for name in names {
        guard let d = KernelDoubles.named(name) else {
            fail("unknown kernel double '\(name)' in KVMCHECK_MUTANT/KVMCHECK_MODEL (see `kvmcheck list --mutants`)")
        }
        for model in d.requires where !names.contains(model.rawValue) {
            fail("mutant '\(name)' perverts the '\(model.rawValue)' model: set KVMCHECK_MODEL=\(model.rawValue) too")
        }
    }
    KernelDoubles.proposedCapabilities = settings.proposedCapabilities.numbers
    do { try KernelDoubles.activate(names) } catch { fail("\(error)") }
    let described = names.compactMap(KernelDoubles.named).map { "\($0.kind) \($0.name)" }
    return "KERNEL DOUBLES ACTIVE (test-only; results describe them, not this kernel): " + described.joined(separator: ", ")
}

/// Test-only suites (names starting with "_") are visible when this is set.
func hiddenSuitesEnabled() -> Bool { getenv("KVMCHECK_HARNESS_SELFTEST").map { String(cString: $0) == "1" } ?? false }
