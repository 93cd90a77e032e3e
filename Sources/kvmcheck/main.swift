import ArgumentParser
import CheckKit
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KVMKit
import Suites

/// Exit codes: 0 pass, 1 a check failed, 2 bad usage or input, 4 nothing could run, 130 interrupted.
enum ExitStatus {
    static let usage: Int32 = 2
}

struct Kvmcheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kvmcheck",
        abstract: "Validate KVM patch series against the running kernel; report as TAP.",
        discussion: """
            Exit status: 0 every check that ran passed, 1 a check failed, 2 bad usage or input, \
            4 nothing could run (e.g. no /dev/kvm), 130 interrupted.
            """,
        version: kvmcheckVersion,
        subcommands: [Run.self, List.self, Caps.self, PlanCommand.self, BenchCommand.self, BenchLoop.self],
        defaultSubcommand: Run.self)
}

let kvmcheckVersion = "0.1.0"

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case tap, ktap, junit, json
}

struct DeviceOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "KVM device to open.")
    var device = "/dev/kvm"

    @Option(name: .customLong("debug-cr3-cap"), parsing: .unconditional,
            help: "KVM_CAP_X86_GUEST_DEBUG_CR3's number on the kernel under test (unmerged; no fixed number).")
    var debugCR3Cap: Int?

    func validate() throws {
        if let debugCR3Cap, debugCR3Cap <= 0 { throw ValidationError("--debug-cr3-cap must be a capability number above 0, not \(debugCR3Cap)") }
        if device.isEmpty { throw ValidationError("--device: empty path") }
    }

    @Option(help: "Directory of series manifests (default: $KVMCHECK_PATCHES, or the patches/ of this checkout).")
    var patches: String?

    /// Settings for checks: the CR3 cap number from the flag, else from the manifest that assigns it.
    /// A malformed manifest is bad input: one message, exit 2, before anything runs.
    var settings: CheckSettings {
        var s = CheckSettings()
        s.devicePath = device
        if let debugCR3Cap {
            s.debugCR3Capability = debugCR3Cap
            s.debugCR3CapabilitySource = "--debug-cr3-cap"
        } else if let found = manifestCapability(CheckSettings.debugCR3CapabilityName) {
            s.debugCR3Capability = found.number
            s.debugCR3CapabilitySource = found.source
        }
        return s
    }

    func manifestCapability(_ name: String) -> (number: Int, source: String)? {
        let located: String?
        do { located = try SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) } catch { fail("\(error)") }
        guard let dir = located else {
            if patches != nil { fail("--patches: no such directory") }
            return nil
        }
        // Only the series of suites people run: hidden test-only suites have no manifest.
        for series in Set(SuiteRegistry.all().map(\.series)).sorted() {
            let manifest: SeriesManifest
            do { manifest = try SeriesManifest.load(series: series, from: dir) } catch {
                fail("malformed series manifest: \(error)")
            }
            if let number = manifest.capabilities[name] { return (number, "patches/\(series).md") }
        }
        return nil
    }
}

enum LevelChoice: String, ExpressibleByArgument, CaseIterable {
    case zero = "0", three = "3", both
    var levels: [GuestCPL] {
        switch self {
        case .zero: return [.cpl0]
        case .three: return [.cpl3]
        case .both: return GuestCPL.allCases
        }
    }
}

struct SelectionOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Comma-separated suites to run (default: all).")
    var suite: String?

    @Option(parsing: .unconditional, help: "Comma-separated globs on check ids, e.g. 'sync-regs/*cpl3'.")
    var filter: String?

    @Option(help: "Privilege level(s) for guest payloads: 0, 3 or both.")
    var cpl: LevelChoice = .both

    /// A list given but naming nothing (`--suite ''`, an empty `$SUITES` in CI) is a usage error, not "all".
    var selection: Selection {
        func list(_ value: String?, _ option: String) -> [String] {
            guard let value else { return [] }
            let items = splitList(value)
            if items.isEmpty { fail("\(option) \(messageQuoted(value)) names nothing (leave \(option) out to select everything)") }
            return items
        }
        return Selection(suites: list(suite, "--suite"), filters: list(filter, "--filter"), levels: cpl.levels)
    }
}

func splitList(_ s: String) -> [String] {
    s.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
}

extension String {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

/// Writes a line to stdout at once (a pipe sees each result as it happens); a failed write is
/// remembered by the sink and turns the exit status into `ReportSink.failedExitStatus`.
func emit(_ line: String) { ReportSink.stdout.line(line) }

/// Exits with `code`, or with the failed-report status (after saying so) when stdout lost output.
func finish(_ code: Int32) -> Never {
    if let why = ReportSink.stdout.finish() {
        printError("kvmcheck: stdout: \(why); output incomplete")
        exit(code == 130 ? code : ReportSink.failedExitStatus)
    }
    exit(code)
}

func fail(_ message: String, code: Int32 = ExitStatus.usage) -> Never {
    printError("kvmcheck: \(message)")
    exit(code)
}

/// One line to stderr (stdout stays pure TAP).
func printError(_ line: String) {
    fflush(nil)
    let text = line + "\n"
    _ = text.withCString { write(2, $0, strlen($0)) }
}

/// This binary's path, so each check can run in a child of the same build.
func selfExecutable() -> String {
    var buffer = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
    return n > 0 ? String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
}

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

    @Option(help: "Checks run at once (default: the number of cores); exclusive checks always run alone.")
    var jobs: Int?

    @Option(name: .customLong("expect"),
            help: ArgumentHelp("Known outcomes on this kernel: lines '<check id or glob> <xfail|skip> <reason>'.", valueName: "FILE"))
    var expectFile: String?

    func validate() throws {
        guard tapVersion == 13 || tapVersion == 14 else { throw ValidationError("--tap-version must be 13 or 14") }
        if let problem = Runner.timeoutProblem(timeout) { throw ValidationError(problem) }
        if let jobs, !(1...256).contains(jobs) { throw ValidationError("--jobs must be between 1 and 256, not \(jobs)") }
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
        do { plan = try select(selectionOptions.selection, from: suites) } catch { fail("\(error)") }
        let expectations = loadExpectations()
        let settings = device.settings
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
            finishReports(sinks, status: 4)
        }
        var header = RunHeader(tool: "kvmcheck \(kvmcheckVersion)", host: host, apiVersion: apiVersion,
                               processCapabilities: ProcessCapability.currentText())
        withExtendedLifetime(system) {}
        if let doubles = activateKernelDoubles(settings) { header.notes.insert(doubles, at: 0) }
        // Host settings an earlier run changed and never put back (it was killed): restore them first.
        header.notes += HostRestore.applyOrphaned().map { "earlier run: \($0)" }
        if !expectations.entries.isEmpty { header.notes.append("expectations: \(TextInput.displayName(expectFile!)) (\(expectations.entries.count) entries)") }
        if let cap = settings.debugCR3Capability {
            header.notes.append("\(CheckSettings.debugCR3CapabilityName) taken as \(cap) (\(settings.debugCR3CapabilitySource ?? "?"))")
        }
        let runner = Runner(childExecutable: selfExecutable(), settings: settings, timeoutSeconds: timeout,
                            expectations: expectations, jobs: jobs ?? Runner.onlineCores)
        let summary = runner.run(plan, header: header, reporter: reporter)
        for line in HostRestore.applyOrphaned() { printError("kvmcheck: \(line)") }
        printError("kvmcheck: \(summary.fullLine)")
        finishReports(sinks, status: summary.exitCode)
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
    for name in names {
        guard let d = KernelDoubles.catalog.first(where: { $0.name == name }) else {
            fail("unknown kernel double '\(name)' in KVMCHECK_MUTANT/KVMCHECK_MODEL (see `kvmcheck list --mutants`)")
        }
        for model in d.requires where !names.contains(model) {
            fail("mutant '\(name)' perverts the '\(model)' model: set KVMCHECK_MODEL=\(model) too")
        }
    }
    KernelDoubles.debugCR3Capability = settings.debugCR3Capability
    do { try KernelDoubles.activate(names) } catch { fail("\(error)") }
    let described = names.compactMap { n in KernelDoubles.catalog.first { $0.name == n } }.map { "\($0.kind.rawValue) \($0.name)" }
    return "KERNEL DOUBLES ACTIVE (test-only; results describe them, not this kernel): " + described.joined(separator: ", ")
}

/// Test-only suites (names starting with "_") are visible when this is set.
func hiddenSuitesEnabled() -> Bool { getenv("KVMCHECK_HARNESS_SELFTEST").map { String(cString: $0) == "1" } ?? false }

struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List suites, checks and the uAPI each exercises.")

    @OptionGroup var selectionOptions: SelectionOptions

    @Flag(help: "For every check, the kernel mutants it kills (and every mutant and model).")
    var mutants = false

    func run() throws {
        let plan: [(Suite, [CheckInstance])]
        do { plan = try select(selectionOptions.selection, from: SuiteRegistry.all(includeHidden: hiddenSuitesEnabled())) } catch { fail("\(error)") }
        if mutants {
            for line in MutantCoverage.table(plan.flatMap(\.1)) { emit(line) }
            return
        }
        for (suite, instances) in plan {
            emit("\(suite.name) — \(suite.summary) [patches/\(suite.series).md]")
            for i in instances {
                let needs = i.check.requirements.map(\.summary)
                emit("  \(i.id)  uapi: \(i.check.uapi.joined(separator: ", "))"
                     + (needs.isEmpty ? "" : "  requires: \(needs.joined(separator: ", "))")
                     + (i.check.informational ? "  (informational)" : ""))
            }
        }
    }
}

struct Caps: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Table of each uAPI of the series: advertised by its cap, observed by a probe, and the verdict.")

    @OptionGroup var device: DeviceOptions

    func run() throws {
        let host = HostInfo.current()
        emit("kernel \(host.kernelRelease), KVM flavour \(host.kvmFlavour), CPU vendor \(host.cpuVendor)")
        let system: KVMSystem
        switch openKVM(device.device) {
        case .success(let opened): system = opened.0; emit("KVM API version \(opened.1)")
        case .failure(let reason): emit(reason.description); finish(4)
        }
        if let doubles = activateKernelDoubles(device.settings) { emit(doubles) }
        let rows = SuiteRegistry.all().flatMap { suite in suite.features.map { (suite.name, $0) } }
        // One row per uAPI and level, decided by the checks whose subject it is (run in-process
        // with their preconditions); "decided by" names the check, so the row can be reproduced.
        var table = [["uAPI", "CPL", "advertised by", "cap", "status", "decided by", "suite", "detail"]]
        for (suite, feature) in rows {
            let advertised = feature.advertised(system, device.settings)
            let cap = advertised.map { $0 ? "yes" : "no" } ?? "n/a"
            for row in feature.rows(system: system, settings: device.settings) {
                table.append([feature.name, row.level.map { "\($0.rawValue)" } ?? "-", feature.advertisement, cap,
                              row.status.rawValue, row.decidedBy, suite, row.detail])
            }
        }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
        for row in table {
            emit(row.enumerated().map { c, cell in c == row.count - 1 ? cell : cell.padding(to: widths[c]) }
                .joined(separator: "  "))
        }
    }
}

extension String {
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Read a patch series and say which suites cover the uAPI it adds, and what nothing covers.",
        discussion: "Exit status: 0 every added uAPI symbol is covered, 1 some symbol is not, 2 unreadable or malformed input.")

    @Argument(help: "A `git format-patch` directory, an mbox, or a single .patch file.")
    var series: String

    @Option(help: "Directory of series manifests (default: $KVMCHECK_PATCHES, or the patches/ of this checkout).")
    var patches: String?

    func run() throws {
        let input: [(name: String, text: String)]
        do { input = try loadSeries(at: series) } catch { fail("plan: \(error)") }
        var changes: [UAPIChange] = []
        var code = CodeTouched()
        for p in input {
            do {
                changes += try uapiChanges(in: p.text, name: p.name)
                code.formUnion(try codeTouched(in: p.text, name: p.name))
            } catch { fail("plan: \(error)") }
        }
        let located: String?
        do { located = try SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) } catch { fail("plan: \(error)") }
        guard let dir = located else { fail("plan: no patches/ directory found (use --patches DIR)") }
        let known = SuiteRegistry.all().map(\.name)
        let manifests: [SeriesManifest]
        do {
            manifests = try SeriesManifest.loadAll(from: dir)
            for m in manifests { try m.checkSuites(known: known) }
        } catch { fail("malformed series manifest: \(error)") }
        let plan = SeriesPlan(changes: changes, manifests: manifests, code: code, knownSuites: known)
        emit("series: \(input.count) patch(es) from \(TextInput.displayName(series))")
        if plan.changes.isEmpty {
            emit("no uAPI added or changed (no KVM_* #define or struct field in include/uapi, no api.rst section)")
        } else {
            emit("uAPI added or changed:")
            let width = plan.changes.map(\.symbol.count).max() ?? 0
            for c in plan.changes { emit("  \(c.symbol.padding(to: width))  \(c.kind.rawValue) in \(c.file) (\(c.patch))") }
        }
        if !plan.covered.isEmpty {
            emit("covered:")
            for (m, symbols) in plan.covered {
                emit("  patches/\(m.series).md [\(m.status)] suites \(m.suites.joined(separator: ", ")): \(symbols.joined(separator: ", "))")
            }
        }
        if !plan.touching.isEmpty {
            emit("kernel code named by manifests:")
            for (m, entries) in plan.touching {
                emit("  patches/\(m.series).md [\(m.status)] suites \(m.suites.joined(separator: ", ")): \(entries.joined(separator: ", "))")
            }
        }
        if !plan.changes.isEmpty {
            if plan.uncovered.isEmpty {
                emit("every symbol is covered")
            } else {
                emit("not covered by any suite:")
                for c in plan.uncovered { emit("  \(c.symbol)") }
            }
        }
        if !plan.suites.isEmpty { emit("run: kvmcheck run --suite \(plan.suites.joined(separator: ","))") }
        if !plan.uncovered.isEmpty { throw ExitCode(1) }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Nanoseconds per debug event for each way of reading vCPU state, and the harness's own overhead.",
        discussion: "Build with -c release for meaningful numbers. Unmerged uAPIs run through their test-only models, labelled SIMULATED.")

    @OptionGroup var device: DeviceOptions

    @Option(help: "Exits per batch.")
    var iterations = 5_000

    @Option(help: "Batches per variant (interleaved across variants).")
    var repeats = 21

    @Option(help: "Privilege level(s): 0, 3 or both.")
    var cpl: LevelChoice = .both

    @Flag(help: "One JSON document instead of the table.")
    var json = false

    @Flag(help: "Also count userspace instructions per exit (C vs Swift loop) with valgrind --tool=callgrind.")
    var callgrind = false

    func validate() throws {
        guard iterations > 0, repeats > 0 else { throw ValidationError("--iterations and --repeats must be positive") }
    }

    func run() throws {
        let system: KVMSystem
        switch openKVM(device.device) {
        case .success(let opened): system = opened.0
        case .failure(let reason): fail(reason.description, code: 4)
        }
        var plan = BenchPlan()
        plan.iterations = iterations
        plan.repeats = repeats
        plan.levels = cpl.levels
        plan.settings = device.settings
        let host = HostInfo.current()
        let results = Bench.run(plan, system: system) { line in if !json { printError("bench: \(line)") } }
        let instructions = callgrind ? countInstructions() : nil
        if json {
            struct Doc: Encodable {
                let kernel, kvmFlavour, cpuVendor: String
                let iterations, repeats: Int
                let results: [BenchResult]
                let callgrind: CallgrindCount?
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(Doc(kernel: host.kernelRelease, kvmFlavour: host.kvmFlavour, cpuVendor: host.cpuVendor,
                                              iterations: iterations, repeats: repeats, results: results, callgrind: instructions))
            emit(String(decoding: data, as: UTF8.self))
        } else {
            emit("kernel \(host.kernelRelease), KVM flavour \(host.kvmFlavour), CPU vendor \(host.cpuVendor)")
            Bench.table(results, plan: plan).forEach(emit)
            if let instructions { emit(instructions.line) }
        }
    }

    /// Userspace instructions per exit, C vs Swift, from two callgrind runs each (N and 2N exits),
    /// so process start-up cancels out.
    func countInstructions() -> CallgrindCount? {
        guard let valgrind = findOnPath("valgrind") else {
            printError("bench: valgrind not found; skipping the instruction count")
            return nil
        }
        let n = 20_000
        // Swift seeds its hashing randomly per process, which moves instruction counts run to run.
        setenv("SWIFT_DETERMINISTIC_HASHING", "1", 1)
        // Count a stripped copy of this release binary, as the numbers in the README are.
        var binary = selfExecutable()
        let stripped = "/tmp/kvmcheck-bench-\(getpid())"
        if let strip = findOnPath("strip"), spawnAndWait(strip, ["-o", stripped, binary]) == 0 { binary = stripped }
        defer { unlink(stripped) }
        func ir(_ kind: String, _ count: Int) -> Double? {
            let out = "/tmp/kvmcheck-callgrind-\(getpid())-\(kind)-\(count)"
            defer { unlink(out) }
            let status = spawnAndWait(valgrind, ["--tool=callgrind", "--callgrind-out-file=\(out)", binary,
                                                 "__bench-loop", kind, String(count), "--device", device.device])
            guard status == 0, let text = try? String(decoding: Data(contentsOf: URL(fileURLWithPath: out)), as: UTF8.self) else { return nil }
            let summary = text.split(separator: "\n").first { $0.hasPrefix("summary:") || $0.hasPrefix("totals:") }
            return summary.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        guard let c1 = ir("c", n), let c2 = ir("c", 2 * n), let s1 = ir("swift", n), let s2 = ir("swift", 2 * n) else {
            printError("bench: a callgrind run failed; skipping the instruction count")
            return nil
        }
        return CallgrindCount(exitsPerRun: n, cInstructionsPerExit: (c2 - c1) / Double(n), swiftInstructionsPerExit: (s2 - s1) / Double(n))
    }
}

struct CallgrindCount: Encodable {
    let exitsPerRun: Int
    let cInstructionsPerExit: Double
    let swiftInstructionsPerExit: Double
    var line: String {
        "userspace instructions per single-step exit (callgrind, CPL0): C loop \(Int(cInstructionsPerExit.rounded())), "
            + "Swift layer \(Int(swiftInstructionsPerExit.rounded())) (+\(Int((swiftInstructionsPerExit - cInstructionsPerExit).rounded())))"
    }
}

func findOnPath(_ tool: String) -> String? {
    for dir in (environment("PATH") ?? "/usr/bin:/bin").split(separator: ":") where access("\(dir)/\(tool)", X_OK) == 0 {
        return "\(dir)/\(tool)"
    }
    return nil
}

/// Runs a program with stdout/stderr discarded; returns its exit status (or -1).
func spawnAndWait(_ path: String, _ args: [String]) -> Int32 {
    var pid = pid_t()
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
    let argv = ([path] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}

/// `kvmcheck __bench-loop c|swift N`: N single-step exits at CPL0 in one loop (for callgrind).
struct BenchLoop: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__bench-loop", shouldDisplay: false)
    @Argument var kind: String
    @Argument var count: Int
    @OptionGroup var device: DeviceOptions

    func run() throws {
        do {
            let g = try Guest(system: try KVMSystem(path: device.device), cpl: .cpl0) { a in
                a.label("loop"); for _ in 0..<8 { a.nop() }; a.jmp("loop")
            }
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            if kind == "c" { try g.vcpu.runCReferenceLoop(count: count, expecting: UInt32(KVM_EXIT_DEBUG)) }
            else { try g.vcpu.runSwiftLoop(count: count, expecting: UInt32(KVM_EXIT_DEBUG)) }
        } catch { fail("\(error)", code: 1) }
    }
}

/// `kvmcheck __check ID …`: runs one check instance and writes its result to fd 3 (used by the
/// runner; not for people).  Parsed by hand: a child starts like a small C program.
func runChild(_ arguments: ArraySlice<String>) -> Never {
    let invocation: ChildInvocation
    switch ChildInvocation.parse(arguments) {
    case .success(let parsed): invocation = parsed
    case .failure(let error): fail(error.description)
    }
    _ = cproc_die_with_parent(invocation.parentPID, UInt32(clamping: invocation.deadlineSeconds))
    let all = SuiteRegistry.all(includeHidden: true).flatMap(\.instances)
    guard let instance = all.first(where: { $0.id == invocation.id }) else { fail("no check with id '\(invocation.id)'") }
    activateKernelDoubles(invocation.settings)
    ChildExecution.run(instance, settings: invocation.settings)
    exit(0)
}

// Nothing we open may become fd 0-2 (a --junit file receiving the TAP stream, say).
cproc_ensure_standard_fds()
if CommandLine.arguments.dropFirst().first == ChildInvocation.command { runChild(CommandLine.arguments.dropFirst()) }

// Usage errors exit 2 with one line (not ArgumentParser's 64 and its usage block), help and --version exit 0.
do {
    var command = try Kvmcheck.parseAsRoot()
    try command.run()
    finish(0)
} catch let code as ExitCode {
    finish(code.rawValue)
} catch {
    let status = Kvmcheck.exitCode(for: error)
    if status == .success {
        emit(Kvmcheck.fullMessage(for: error))
        finish(0)
    }
    let message = Kvmcheck.message(for: error).split(separator: "\n").first.map(String.init) ?? "bad usage"
    fail((message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message) + " (see 'kvmcheck --help')")
}
