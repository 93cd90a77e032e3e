import Foundation
import Glibc
import Testing

/// The binary the parser, plan and fuzz tests run; `KVMCHECK_TEST_BINARY` points them at
/// another build (how these tests were shown to fail on the code before their fixes).
let binaryUnderTest = ProcessInfo.processInfo.environment["KVMCHECK_TEST_BINARY"] ?? kvmcheckBinary

/// How a bounded run ended.
struct BoundedResult: CustomStringConvertible {
    let status: Int32?
    let signal: Int32?
    let timedOut: Bool
    let stdout: String
    let stderr: String
    let seconds: Double
    var stderrLines: [Substring] { stderr.split(separator: "\n", omittingEmptySubsequences: false).dropLast() }
    var description: String {
        "status \(status.map(String.init) ?? "-") signal \(signal.map(String.init) ?? "-")\(timedOut ? " TIMED OUT" : "") "
            + "in \(String(format: "%.2f", seconds)) s; stderr: \(stderr.prefix(400).debugDescription)"
    }
}

/// Runs `arguments` with stdin from `stdinPath` (default /dev/null) and stdout/stderr in files
/// (no pipe can fill up), killing it at `timeout` seconds: a hang is a result, never a stuck test.
func runBounded(_ arguments: [String], executable: String = binaryUnderTest, stdinPath: String = "/dev/null",
                environment: [String: String] = [:], timeout: Double = 20) throws -> BoundedResult {
    let dir = NSTemporaryDirectory() + "kvmcheck-run-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, stdinPath, O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "\(dir)/out", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, "\(dir)/err", O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let env = childEnvironment(environment)
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
    var pid = pid_t()
    let start = Date()
    let rc = posix_spawn(&pid, executable, &actions, nil, argv, envp)
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
    var status: Int32 = 0
    var timedOut = false
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date().timeIntervalSince(start) > timeout {
            timedOut = true
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
            break
        }
        usleep(2_000)
    }
    let seconds = Date().timeIntervalSince(start)
    let read = { (name: String) in String(decoding: FileManager.default.contents(atPath: "\(dir)/\(name)") ?? Data(), as: UTF8.self) }
    let signal = status & 0x7f
    return BoundedResult(status: signal == 0 ? (status >> 8) & 0xff : nil, signal: signal == 0 ? nil : signal,
                         timedOut: timedOut, stdout: read("out"), stderr: read("err"), seconds: seconds)
}

/// A fresh directory holding a copy of patches/, for tests that break a manifest.
func copyOfPatches() throws -> String {
    let dir = NSTemporaryDirectory() + "kvmcheck-patches-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let source = repositoryRoot.appendingPathComponent("patches").path
    for file in try FileManager.default.contentsOfDirectory(atPath: source) where file.hasSuffix(".md") {
        try FileManager.default.copyItem(atPath: "\(source)/\(file)", toPath: "\(dir)/\(file)")
    }
    return dir
}

/// A usage error as the README promises: exit 2, nothing on stdout, one line on stderr.
func expectOneLineUsageError(_ r: BoundedResult, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(r.status == 2, "\(r)", sourceLocation: sourceLocation)
    #expect(r.stdout.isEmpty, "nothing on stdout: \(r.stdout.prefix(200))", sourceLocation: sourceLocation)
    #expect(r.stderrLines.count == 1 && r.stderr.hasSuffix("\n"), "one line: \(r)", sourceLocation: sourceLocation)
    #expect(r.stderr.contains(text), "\(r.stderr) should contain \(text)", sourceLocation: sourceLocation)
}
