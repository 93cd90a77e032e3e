import Foundation
import Testing

/// Whether /dev/kvm can be opened read-write here; KVM-backed tests skip (saying why) otherwise.
let kvmUsable: Bool = {
    let fd = open("/dev/kvm", O_RDWR | O_CLOEXEC)
    if fd >= 0 { close(fd); return true }
    return false
}()

let kvmUnusableReason: Comment = "/dev/kvm cannot be opened read-write here (missing, or no permission): KVM-backed harness tests skipped"

/// The repository root (for the TAP consumer script and patches/).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// The kvmcheck binary built next to this test bundle.
let kvmcheckBinary: String = {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("kvmcheck").path
}()

struct ProcessResult {
    let status: Int32
    let stdout: String
    let stderr: String
    var lines: [String] { stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) }
}

/// The variables the kvmcheck binary itself reads (`ChildEnvironmentTests` keeps this in step with
/// Sources). A test's child gets one only when the test passes it, never from the shell that
/// ran `swift test`: a self-test switch or a mutant left in a developer's shell must not change
/// what every harness test sees.
let kvmcheckSwitches: Set<String> = [
    "KVMCHECK_FREEZE_ON_SMI", "KVMCHECK_HARNESS_SELFTEST", "KVMCHECK_HARNESS_SETTING",
    "KVMCHECK_KERNEL_LOG", "KVMCHECK_MODEL", "KVMCHECK_MUTANT", "KVMCHECK_PATCHES",
    "KVMCHECK_RESTORE_DIR",
]

/// The environment for a test's child: this process's, without kvmcheck's own switches, plus `extra`.
func childEnvironment(_ extra: [String: String] = [:],
                      inheriting base: [String: String] = ProcessInfo.processInfo.environment) -> [String: String] {
    base.filter { !kvmcheckSwitches.contains($0.key) }.merging(extra) { $1 }
}

/// Runs a command to completion, capturing both streams.
func runProcess(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = childEnvironment(environment)
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read before waiting so a full pipe cannot deadlock the child.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

func kvmcheck(_ arguments: [String], environment: [String: String] = [:]) throws -> ProcessResult {
    try runProcess(kvmcheckBinary, arguments, environment: environment)
}

/// Finds a tool on PATH.
func which(_ tool: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let candidate = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    return nil
}

/// Writes text to a fresh temporary file and returns its path.
func temporaryFile(_ text: String, suffix: String = ".tap") throws -> String {
    let path = NSTemporaryDirectory() + "kvmcheck-\(UUID().uuidString)\(suffix)"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

/// tap.py's verdict on a TAP file: nil when it parsed cleanly under its own rules and PyYAML loads
/// every YAML block, else why not (ConsumerTests.swift runs the consumers).
enum TapPy {
    static let available: Bool = Consumers.available(["tappy", "yaml"])
    static let unavailableReason: Comment = "PyPI tap.py[yaml] not importable by python3 (scripts/install-deps installs it)"

    static func problems(in tap: String) throws -> String? {
        try Consumers.problems(tap, suffix: ".tap", ["tappy", "yaml"])
    }
}

/// `kvmcheck caps --format json`: one object per uAPI and CPL.
func capsRows(_ environment: [String: String] = [:]) throws -> [[String: Any]] {
    let r = try kvmcheck(["caps", "--format", "json"], environment: environment)
    #expect(r.status == 0, "\(r.stderr)")
    let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stdout)")
    return try #require(doc["rows"] as? [[String: Any]])
}

let capsStatuses = ["present", "absent", "broken", "untestable here", "precondition failed"]
