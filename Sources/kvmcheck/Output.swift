// stdout, stderr and the few process helpers every command uses.
import ArgumentParser
import CheckKit
import CProcess
import CKVM
import FoundationEssentials
import Glibc
import GuestKit
import KVMKit
import Suites

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

extension String {
    func padding(to width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
