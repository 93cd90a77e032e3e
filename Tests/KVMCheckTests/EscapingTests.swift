import CheckKit
import Reporting
import SeriesPlan
import Foundation
import KVMKit
import Testing

/// Every scalar U+0000…U+00FF (every byte value: NUL, CR, LF, ESC, DEL, C1…), the Unicode line and
/// paragraph separators, the BOM, the noncharacters U+FFFE/U+FFFF and an emoji.
let hostileText: String = {
    var v = String.UnicodeScalarView()
    for i in 0...0xFF { v.append(Unicode.Scalar(UInt8(i))) }
    for x: UInt32 in [0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF, 0x1F642] { v.append(Unicode.Scalar(x)!) }
    return String(v)
}()

/// A scalar that would break a report line for some reader (Python's splitlines, a terminal, XML).
func breaksALine(_ v: Unicode.Scalar) -> Bool {
    switch v.value {
    case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF: return true
    default: return false
    }
}

/// The sample run with hostile text in every string a report carries.
let hostileResults: [(suite: String, results: [CheckResult])] = [
    ("hostile", [
        CheckResult(id: "hostile/pass", suite: "hostile", name: "pass", verdict: .pass, notes: [hostileText],
                    informational: false, milliseconds: 1),
        CheckResult(id: "hostile/fail", suite: "hostile", name: "fail " + hostileText,
                    verdict: .fail(Failure(hostileText, expected: hostileText, observed: hostileText, ioctl: hostileText, errno: hostileText)),
                    notes: ["child output: " + hostileText], informational: false, milliseconds: 1),
        CheckResult(id: "hostile/skip", suite: "hostile", name: "skip", verdict: .skip(reason: hostileText), notes: [],
                    informational: false, milliseconds: 1),
        CheckResult(id: "hostile/info", suite: "hostile", name: "info", verdict: .fail(Failure(hostileText)), notes: [],
                    informational: true, milliseconds: 1),
        CheckResult(id: "hostile/xfail", suite: "hostile", name: "xfail", verdict: .fail(Failure(hostileText)), notes: [],
                    informational: false, milliseconds: 1, expectation: .expectedFailure(hostileText)),
        CheckResult(id: "hostile/xpass", suite: "hostile", name: "xpass", verdict: .pass, notes: [],
                    informational: false, milliseconds: 1, expectation: .unexpectedPass(hostileText)),
        CheckResult(id: "hostile/crash", suite: "hostile", name: "crash", verdict: .crash(hostileText), notes: [],
                    informational: false, milliseconds: 1),
    ]),
]

let hostileHeader = RunHeader(tool: "kvmcheck " + hostileText, host: HostInfo(kernelRelease: hostileText, kvmFlavour: hostileText,
                                                                             cpuVendor: hostileText),
                              apiVersion: 12, processCapabilities: hostileText, notes: [hostileText])

func renderHostile(_ make: (@escaping (String) -> Void) -> Reporter, bailOut: Bool = false) -> (text: String, summary: RunSummary) {
    var out = ""
    let reporter = make { out += $0.hasSuffix("\n") ? $0 : $0 + "\n" }
    reporter.begin(header: hostileHeader, plan: hostileResults.map { ($0.suite, $0.results.count) })
    var summary = RunSummary()
    for (suite, results) in hostileResults {
        reporter.suiteBegan(suite, count: results.count)
        for (i, r) in results.enumerated() { reporter.report(r, index: i + 1); summary.add(r) }
        reporter.suiteEnded(suite, results: results)
    }
    if bailOut { reporter.bailOut(hostileText) }
    reporter.end(summary)
    return (out, summary)
}

/// Lines a TAP/KTAP reader may see: nothing else may appear, whatever the input held.
let reportLinePattern = #"^( *)((K?TAP version 1[34]?)|(1\.\.\d+( # SKIP .*)?)|(# .*)|((not )?ok \d+ .*)|(---)|(\.\.\.)|([a-z]+: ".*")|(Bail out! .*))$"#

func lineProblems(_ text: String) -> [String] {
    let reportLine = try! Regex(reportLinePattern)
    return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().enumerated().compactMap { i, line in
        if line.unicodeScalars.contains(where: breaksALine) { return "line \(i + 1) holds a control character: \(line.debugDescription)" }
        if (try? reportLine.wholeMatch(in: String(line))) == nil { return "line \(i + 1) is not a report line: \(line.debugDescription)" }
        return nil
    }
}

func renderSkipAll(reason: String, _ make: (@escaping (String) -> Void) -> Reporter) -> String {
    var out = ""
    make { out += $0.hasSuffix("\n") ? $0 : $0 + "\n" }.skipAll(header: hostileHeader, reason: reason)
    return out
}

@Suite struct EscapingTests {
    @Test(arguments: [13, 14])
    func tapLinesStayLinesWhateverTheTextHolds(version: Int) {
        let (tap, _) = renderHostile({ TAPReporter(version: version, write: $0) }, bailOut: true)
        #expect(lineProblems(tap) == [])
        #expect(tap.split(separator: "\n").filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") || $0.hasPrefix("    ok ") || $0.hasPrefix("    not ok ") }.count
                == (version == 13 ? 7 : 8), "no injected result lines")
    }

    @Test func ktapLinesStayLines() {
        let (ktap, _) = renderHostile({ KTAPReporter(write: $0) }, bailOut: true)
        #expect(lineProblems(ktap) == [])
        #expect(!ktap.contains("---"))
    }

    @Test func yamlQuotingEscapesEverything() {
        var lines: [String] = []
        TAPReporter(version: 13) { lines.append($0) }.report(hostileResults[0].results[1], index: 1)
        let message = lines.first { $0.hasPrefix("  message: ") }!
        #expect(message.hasPrefix(#"  message: "\0\x01\x02"#))
        #expect(message.contains(#"\a"#) == false, "\\x07 spelled out, not a YAML 1.2-only escape")
        #expect(message.contains(#"\t\n\x0B\x0C\r"#) && message.contains(#"\e"#) && message.contains(#"\x7F\x80"#)
                && message.contains(#"\x85"#) && message.contains(#"\u2028\u2029\uFEFF\uFFFE\uFFFF🙂""#), "\(message)")
    }

    @Test func junitHoldsOnlyCharactersXMLAllows() {
        let (xml, _) = renderHostile({ JUnitReporter(write: $0) }, bailOut: true)
        let forbidden = xml.unicodeScalars.filter { v in
            !(v == "\n" || v.value >= 0x20 && v.value < 0xD800 || v.value >= 0xE000 && v.value <= 0xFFFD || v.value >= 0x10000)
        }
        #expect(forbidden.isEmpty, "\(forbidden.map { String($0.value, radix: 16) })")
        #expect(xml.contains(#"\x00\x01"#) && xml.contains("&#9;&#10;\\x0B\\x0C&#13;"), "visible, reversible escapes")
    }

    @Test func jsonRoundTripsEveryCharacter() throws {
        let (json, _) = renderHostile({ JSONReporter(write: $0) })
        let doc = try Consumers.json(json)
        let checks = try #require(doc["checks"] as? [[String: Any]])
        #expect(checks[2]["reason"] as? String == hostileText)
        #expect(checks[1]["observed"] as? String == hostileText)
        #expect((doc["notes"] as? [String]) == [hostileText])
    }

    @Test(.enabled(if: Consumers.available(allConsumers), Consumers.missing))
    func everyConsumerReadsTheHostileRunAndCountsItAsKvmcheckDoes() throws {
        let (tap13, summary) = renderHostile({ TAPReporter(version: 13, write: $0) }, bailOut: false)
        let json = try #require(Consumers.json(renderHostile({ JSONReporter(write: $0) }).text)["summary"] as? [String: Any])
        #expect(ConsumerView.int(json, "failed") == summary.failed)
        let found = try disagreements(summary: json, tap13: tap13, ktap: renderHostile({ KTAPReporter(write: $0) }).text,
                                      junit: renderHostile({ JUnitReporter(write: $0) }).text)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
        let yaml = try Consumers.run(tap13, suffix: ".tap", ["yaml"])["yaml"]!
        #expect(yaml["problems"] as? [String] == [])
        let values = try #require(yaml["values"] as? [String])
        // fail: message, expected, observed, ioctl, errno; info, xfail and crash: message.
        #expect(values.filter { $0 == hostileText }.count == 8, "PyYAML loads every field back to the exact text")
        #expect(values.contains { $0.hasPrefix("unexpected pass: ") && $0.contains(hostileText) })
        for version in [13, 14] {
            let bailed = renderHostile({ TAPReporter(version: version, write: $0) }, bailOut: true).text
            let seen = try Consumers.run(bailed, suffix: ".tap", ["tappy", "yaml"])
            #expect((seen["tappy"]?["problems"] as? [String])?.allSatisfy { $0.hasPrefix("Bailed: ") } == true,
                    "tap.py sees the bail-out and nothing else wrong: \(seen)")
            #expect(seen["yaml"]?["problems"] as? [String] == [])
        }
    }

    @Test(.enabled(if: Consumers.available(["kunit", "lkft"]), Consumers.missing))
    func aReasonCannotTurnAnXFAILIntoKunitsSkip() throws {
        let r = CheckResult(id: "s/x", suite: "s", name: "x", verdict: .fail(Failure("f")), notes: [], informational: false,
                            milliseconds: 1, expectation: .expectedFailure("`out` raises #GP # SKIP not really"))
        var lines: [String] = []
        let reporter = KTAPReporter { lines.append($0) }
        reporter.begin(header: sampleHeader, plan: [("s", 1)])
        reporter.suiteBegan("s", count: 1)
        reporter.report(r, index: 1)
        reporter.suiteEnded("s", results: [r])
        #expect(lines.contains("  ok 1 x # XFAIL `out` raises #GP \\# SKIP not really"))
        let kunit = try Consumers.run(lines.joined(separator: "\n") + "\n", suffix: ".ktap", ["kunit"])["kunit"]!
        #expect(kunit["passed"] as? Int == 1 && kunit["skipped"] as? Int == 0, "\(kunit)")
    }

    /// A device path holding every byte but NUL (argv cannot): the skip-all reason names it.
    @Test(.enabled(if: Consumers.available(allConsumers), Consumers.missing))
    func aHostileDevicePathStaysInsideItsSkipLine() throws {
        let path = "/nonexistent/" + String(hostileText.dropFirst())
        let dir = NSTemporaryDirectory() + "kvmcheck-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try kvmcheck(["run", "--device", path, "--ktap", "\(dir)/r.ktap", "--junit", "\(dir)/r.xml", "--json", "\(dir)/r.json",
                              "--tap", "\(dir)/r13.tap"])
        #expect(r.status == 4)
        #expect(lineProblems(r.stdout) == [])
        #expect(r.lines.filter { $0.hasPrefix("1..") }.count == 1 && r.lines[1].hasPrefix("1..0 # SKIP cannot open /nonexistent/"))
        let ktap = try String(contentsOfFile: "\(dir)/r.ktap", encoding: .utf8)
        let tap13 = try String(contentsOfFile: "\(dir)/r13.tap", encoding: .utf8)
        #expect(lineProblems(ktap) == [] && tap13 == r.stdout)
        let tap14 = renderSkipAll(reason: "cannot open \(path): ENOENT") { TAPReporter(version: 14, write: $0) }
        #expect(lineProblems(tap14) == [] && lineProblems(renderSkipAll(reason: path) { KTAPReporter(write: $0) }) == [])
        let json = try Consumers.json(String(contentsOfFile: "\(dir)/r.json", encoding: .utf8))
        #expect((json["skippedAll"] as? String)?.contains(path) == true, "JSON keeps the exact path")
        let summary = try #require(json["summary"] as? [String: Any])
        let found = try disagreements(summary: summary, tap13: r.stdout, ktap: ktap,
                                      junit: String(contentsOfFile: "\(dir)/r.xml", encoding: .utf8), skipAll: true)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }
}

/// `--expect` reasons holding every byte but NUL and LF (a line each): an unexpected pass carries the
/// reason into a YAML block, which PyYAML must load back.
@Suite(.enabled(if: kvmUsable && Consumers.available(allConsumers), "needs /dev/kvm and the consumers (scripts/install-deps)"))
struct HostileExpectationsRunTests {
    @Test func hostileReasonsReachEveryReportIntact() throws {
        let raw = String(String.UnicodeScalarView(hostileText.unicodeScalars.filter { $0 != "\0" && $0 != "\n" }))
        // The expectations parser splits a reason into words and joins them with one space.
        let reason = raw.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
        let dir = NSTemporaryDirectory() + "kvmcheck-hostile-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = try temporaryFile("_harness/passes xfail \(raw)\n_harness/fails_with_details xfail \(raw)\n", suffix: ".txt")
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "*/passes,*/fails_with_details,*/skips", "--expect", file,
                              "--ktap", "\(dir)/r.ktap", "--junit", "\(dir)/r.xml", "--json", "\(dir)/r.json"],
                             // The host's own kernel lines (another test's checks print some) are not this test's subject.
                             environment: ["KVMCHECK_HARNESS_SELFTEST": "1", "KVMCHECK_KERNEL_LOG": try temporaryFile("", suffix: ".kmsg")])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(lineProblems(r.stdout) == [])
        let json = try Consumers.json(String(contentsOfFile: "\(dir)/r.json", encoding: .utf8))
        let checks = try #require(json["checks"] as? [[String: Any]])
        #expect(checks.map { $0["reason"] as? String } == [reason, reason, "KVM_CAP_NOTHING (0) absent"], "JSON keeps the exact reason")
        let yaml = try Consumers.run(r.stdout, suffix: ".tap", ["yaml"])["yaml"]!
        #expect(yaml["problems"] as? [String] == [])
        #expect((yaml["values"] as? [String])?.contains { $0.contains(reason) } == true, "PyYAML loads the reason back")
        let found = try disagreements(summary: try #require(json["summary"] as? [String: Any]), tap13: r.stdout,
                                      ktap: String(contentsOfFile: "\(dir)/r.ktap", encoding: .utf8),
                                      junit: String(contentsOfFile: "\(dir)/r.xml", encoding: .utf8))
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }
}
