import ArgumentParser
import CheckKit
import CKVM
import Foundation
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
        subcommands: [Run.self, List.self, Caps.self, PlanCommand.self, BenchCommand.self, ChildCheck.self, BenchLoop.self],
        defaultSubcommand: Run.self)
}

let kvmcheckVersion = "0.1.0"

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case tap, ktap, junit, json
}

struct DeviceOptions: ParsableArguments {
    @Option(help: "KVM device to open.")
    var device = "/dev/kvm"

    @Option(name: .customLong("debug-cr3-cap"),
            help: "KVM_CAP_X86_GUEST_DEBUG_CR3's number on the kernel under test (unmerged; no fixed number).")
    var debugCR3Cap: Int?

    @Option(name: .customLong("debug-cr3-cap-source"), help: .hidden)
    var debugCR3CapSource: String?

    @Option(help: "Directory of series manifests (default: $KVMCHECK_PATCHES, or the patches/ of this checkout).")
    var patches: String?

    /// Settings for checks: the CR3 cap number from the flag, else from the manifest that assigns it.
    /// A malformed manifest is bad input: one message, exit 2, before anything runs.
    var settings: CheckSettings {
        var s = CheckSettings()
        s.devicePath = device
        if let debugCR3Cap {
            s.debugCR3Capability = debugCR3Cap
            s.debugCR3CapabilitySource = debugCR3CapSource ?? "--debug-cr3-cap"
        } else if let found = manifestCapability(CheckSettings.debugCR3CapabilityName) {
            s.debugCR3Capability = found.number
            s.debugCR3CapabilitySource = found.source
        }
        return s
    }

    func manifestCapability(_ name: String) -> (number: Int, source: String)? {
        guard let dir = SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) else {
            if patches != nil { fail("--patches: no such directory") }
            return nil
        }
        for series in Set(SuiteRegistry.all(includeHidden: true).map(\.series)).sorted() {
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
    @Option(help: "Comma-separated suites to run (default: all).")
    var suite: String?

    @Option(help: "Comma-separated globs on check ids, e.g. 'sync-regs/*cpl3'.")
    var filter: String?

    @Option(help: "Privilege level(s) for guest payloads: 0, 3 or both.")
    var cpl: LevelChoice = .both

    var selection: Selection {
        Selection(suites: suite.map(splitList) ?? [], filters: filter.map(splitList) ?? [], levels: cpl.levels)
    }
}

func splitList(_ s: String) -> [String] {
    s.split(separator: ",").map { String($0).trimmingSpaces }.filter { !$0.isEmpty }
}

extension String {
    var trimmingSpaces: String { String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed()) }
}

/// Prints a line and flushes, so a pipe sees each result as it happens.
func emit(_ line: String) {
    print(line)
    fflush(nil)
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

    @Option(help: "Seconds each check may take before it is killed and reported as TIMEOUT.")
    var timeout: Double = 10

    @Option(name: .customLong("tap-version"), help: "13 (flat, for prove) or 14 (nested subtests).")
    var tapVersion = 14

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

    @Option(name: .customLong("expect"),
            help: ArgumentHelp("Known outcomes on this kernel: lines '<check id or glob> <xfail|skip> <reason>'.", valueName: "FILE"))
    var expectFile: String?

    func validate() throws {
        guard tapVersion == 13 || tapVersion == 14 else { throw ValidationError("--tap-version must be 13 or 14") }
        guard timeout > 0 else { throw ValidationError("--timeout must be positive") }
    }

    /// stdout in --format, plus every requested file; files are opened before anything runs.
    func makeReporter() -> Reporter {
        func reporter(_ format: OutputFormat, _ line: @escaping (String) -> Void, _ whole: @escaping (String) -> Void) -> Reporter {
            switch format {
            case .tap: return TAPReporter(version: tapVersion, write: line)
            case .ktap: return KTAPReporter(write: line)
            case .junit: return JUnitReporter(write: whole)
            case .json: return JSONReporter(write: whole)
            }
        }
        var all = [reporter(format, emit, { print($0, terminator: ""); fflush(nil) })]
        for (path, kind) in [(tapFile, OutputFormat.tap), (ktapFile, .ktap), (junitFile, .junit), (jsonFile, .json)] {
            guard let path else { continue }
            let file: ReportFile
            do { file = try ReportFile(path: path) } catch { fail("--\(kind.rawValue): \(error)") }
            all.append(reporter(kind, file.line, file.write))
        }
        return all.count == 1 ? all[0] : MultiReporter(all)
    }

    func loadExpectations() -> Expectations {
        guard let expectFile else { return Expectations() }
        guard let text = try? String(contentsOfFile: expectFile, encoding: .utf8) else {
            fail("--expect: cannot read \(expectFile)")
        }
        let ids = SuiteRegistry.all(includeHidden: true).flatMap(\.instances).map(\.id)
        do { return try Expectations.parse(text, file: expectFile, knownIDs: ids) } catch {
            fail("malformed expectations file: \(error)")
        }
    }

    func run() throws {
        let suites = SuiteRegistry.all(includeHidden: hiddenSuitesEnabled())
        let plan: [(Suite, [CheckInstance])]
        do { plan = try select(selectionOptions.selection, from: suites) } catch { fail("\(error)") }
        let expectations = loadExpectations()
        let settings = device.settings
        let reporter = makeReporter()
        let host = HostInfo.current()
        let system: KVMSystem
        do { system = try KVMSystem(path: device.device) } catch {
            let header = RunHeader(tool: "kvmcheck \(kvmcheckVersion)", host: host, apiVersion: nil,
                                   processCapabilities: ProcessCapability.currentText())
            reporter.skipAll(header: header, reason: "cannot open \(device.device): \(error.errno?.symbolicName ?? "") (\(error.errno?.message ?? "\(error)"))")
            throw ExitCode(4)
        }
        var header = RunHeader(tool: "kvmcheck \(kvmcheckVersion)", host: host, apiVersion: try? system.apiVersion(),
                               processCapabilities: ProcessCapability.currentText())
        if let doubles = activateKernelDoubles(settings) { header.notes.insert(doubles, at: 0) }
        // Host settings an earlier run changed and never put back (it was killed): restore them first.
        header.notes += HostRestore.applyOrphaned().map { "earlier run: \($0)" }
        if !expectations.entries.isEmpty { header.notes.append("expectations: \(expectFile!) (\(expectations.entries.count) entries)") }
        if let cap = settings.debugCR3Capability {
            header.notes.append("\(CheckSettings.debugCR3CapabilityName) taken as \(cap) (\(settings.debugCR3CapabilitySource ?? "?"))")
        }
        let runner = Runner(childExecutable: selfExecutable(), settings: settings, timeoutSeconds: timeout,
                            expectations: expectations)
        let summary = runner.run(plan, header: header, reporter: reporter)
        for line in HostRestore.applyOrphaned() { printError("kvmcheck: \(line)") }
        printError("kvmcheck: \(summary.fullLine)")
        throw ExitCode(summary.exitCode)
    }
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
        do { system = try KVMSystem(path: device.device) } catch {
            emit("cannot open \(device.device): \(error)")
            throw ExitCode(4)
        }
        emit("KVM API version \((try? system.apiVersion()).map(String.init) ?? "unknown")")
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
        for p in input {
            do { changes += try uapiChanges(in: p.text, name: p.name) } catch { fail("plan: \(error)") }
        }
        guard let dir = SeriesManifest.locateDirectory(explicit: patches, executable: selfExecutable()) else {
            fail("plan: no patches/ directory found (use --patches DIR)")
        }
        let manifests: [SeriesManifest]
        do { manifests = try SeriesManifest.loadAll(from: dir) } catch { fail("malformed series manifest: \(error)") }
        let plan = SeriesPlan(changes: changes, manifests: manifests)
        emit("series: \(input.count) patch(es) from \(series)")
        guard !plan.changes.isEmpty else {
            emit("no uAPI added or changed (no KVM_* #define or struct field in include/uapi, no api.rst section)")
            return
        }
        emit("uAPI added or changed:")
        let width = plan.changes.map(\.symbol.count).max() ?? 0
        for c in plan.changes { emit("  \(c.symbol.padding(to: width))  \(c.kind.rawValue) in \(c.file) (\(c.patch))") }
        if !plan.covered.isEmpty {
            emit("covered:")
            for (m, symbols) in plan.covered {
                emit("  patches/\(m.series).md [\(m.status)] suites \(m.suites.joined(separator: ", ")): \(symbols.joined(separator: ", "))")
            }
        }
        if plan.uncovered.isEmpty {
            emit("every symbol is covered")
        } else {
            emit("not covered by any suite:")
            for c in plan.uncovered { emit("  \(c.symbol)") }
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
    var iterations = 20_000

    @Option(help: "Batches per variant (interleaved across variants).")
    var repeats = 7

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
        do { system = try KVMSystem(path: device.device) } catch {
            fail("cannot open \(device.device): \(error.errno?.symbolicName ?? "\(error)")", code: 4)
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
            guard status == 0, let text = try? String(contentsOfFile: out, encoding: .utf8) else { return nil }
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

/// Runs one check instance and writes its result to fd 3 (used by the runner; not for people).
struct ChildCheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "__check", shouldDisplay: false)

    @Argument var id: String
    @OptionGroup var device: DeviceOptions

    func run() throws {
        let all = SuiteRegistry.all(includeHidden: true).flatMap(\.instances)
        guard let instance = all.first(where: { $0.id == id }) else { fail("no check with id '\(id)'") }
        let settings = device.settings
        activateKernelDoubles(settings)
        ChildExecution.run(instance, settings: settings)
    }
}

// Usage errors exit 2 (not ArgumentParser's 64), help and --version exit 0.
do {
    var command = try Kvmcheck.parseAsRoot()
    try command.run()
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let status = Kvmcheck.exitCode(for: error)
    if status == .success {
        print(Kvmcheck.fullMessage(for: error))
        exit(0)
    }
    let message = Kvmcheck.fullMessage(for: error)
    fail(message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message)
}
