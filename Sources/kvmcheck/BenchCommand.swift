// `kvmcheck bench`, and its callgrind runner (which runs `__bench-loop`).
import ArgumentParser
import Bench
import CheckKit
import Reporting
import SeriesPlan
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KVMKit
import Suites

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
        plan.settings = try device.resolvedSettings()
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
        // A private directory (mkdtemp, 0700): root must not write through a name someone else
        // could have planted in /tmp.
        var template = Array("/tmp/kvmcheck-bench.XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            printError("bench: cannot create a private directory in /tmp; skipping the instruction count")
            return nil
        }
        let work = String(cString: made)
        defer { _ = spawnAndWait("/bin/rm", ["-rf", work]) }
        var binary = selfExecutable()
        let stripped = work + "/kvmcheck"
        if let strip = findOnPath("strip"), spawnAndWait(strip, ["-o", stripped, binary]) == 0 { binary = stripped }
        func ir(_ kind: String, _ count: Int) -> Double? {
            let out = work + "/callgrind-\(kind)-\(count)"
            let status = spawnAndWait(valgrind, ["--tool=callgrind", "--callgrind-out-file=\(out)", binary,
                                                 "__bench-loop", kind, String(count), "--device=\(device.device)"])
            guard status == 0, let text = readText(out, limit: 64 << 20) else { return nil }
            let summary = text.split(separator: "\n").first { $0.hasPrefix("summary:") || $0.hasPrefix("totals:") }
            return summary.flatMap { Double($0.split(separator: " ").last ?? "") }
        }
        guard let r1 = ir("raw", n), let r2 = ir("raw", 2 * n), let c1 = ir("c", n), let c2 = ir("c", 2 * n),
              let s1 = ir("swift", n), let s2 = ir("swift", 2 * n) else {
            printError("bench: a callgrind run failed; skipping the instruction count")
            return nil
        }
        return CallgrindCount(exitsPerRun: n, rawSyscallInstructionsPerExit: (r2 - r1) / Double(n),
                              cInstructionsPerExit: (c2 - c1) / Double(n), swiftInstructionsPerExit: (s2 - s1) / Double(n))
    }
}

struct CallgrindCount: Encodable {
    let exitsPerRun: Int
    /// A bare `syscall` loop: the floor any userspace pays per exit.
    let rawSyscallInstructionsPerExit: Double
    let cInstructionsPerExit: Double
    let swiftInstructionsPerExit: Double
    var line: String {
        func n(_ v: Double) -> Int { Int(v.rounded()) }
        return "userspace instructions per single-step exit (callgrind, CPL0): raw syscall loop \(n(rawSyscallInstructionsPerExit)), "
            + "C loop \(n(cInstructionsPerExit)) (libc ioctl + errno + hook seam), "
            + "Swift layer \(n(swiftInstructionsPerExit)) (+\(n(swiftInstructionsPerExit - cInstructionsPerExit)) over C)"
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
    // SAFETY: posix_spawn copies argv; each strdup'd string is freed once, after it returns.
    let argv = ([path] + args).map { strdup($0) } + [nil]
    defer { argv.forEach { free($0) } }
    guard posix_spawn(&pid, path, &actions, nil, argv, environ) == 0 else { return -1 }
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
}
