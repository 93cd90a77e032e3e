// stdout, stderr and the few process helpers every command uses.
import ArgumentParser
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

/// Lines no wider than `width`: `first` starts the first line, `indent` the others; words are
/// kept whole (a word longer than a line gets a line of its own).
func wrapped(_ text: String, first: String, indent: String, width: Int = 120) -> [String] {
    var lines: [String] = []
    var line = first
    var lineHasWord = false
    for word in text.split(separator: " ", omittingEmptySubsequences: true) {
        if lineHasWord && line.count + 1 + word.count > width {
            lines.append(line)
            line = indent
            lineHasWord = false
        }
        line += (lineHasWord ? " " : "") + word
        lineHasWord = true
    }
    lines.append(line)
    return lines
}

/// Formats for `list` and `caps`: a table for people, or one JSON document.
enum ListingFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// One JSON document on stdout (sorted keys, so two runs compare as text).
func emitJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    emit(String(decoding: try encoder.encode(value), as: UTF8.self))
}
