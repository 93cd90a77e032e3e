import CheckKit
import Reporting
import SeriesPlan
import Foundation
import KVMKit
import Testing

/// What a consumer should count, given kvmcheck's summary (README, "Consumers").
struct ConsumerView: Equatable, CustomStringConvertible {
    var passed, failed, skipped: Int
    var verdict: String
    var description: String { "\(passed) passed, \(failed) failed, \(skipped) skipped, verdict \(verdict)" }

    /// TAP and KTAP readers (prove, tap.py, kunit_parser, LKFT): `ok … # XFAIL` is a pass.
    static func tap(_ s: [String: Any]) -> ConsumerView {
        ConsumerView(passed: int(s, "passed") + int(s, "expectedFailures") + int(s, "informational"),
                     failed: int(s, "failed") + int(s, "unexpectedPasses"), skipped: int(s, "skipped"), verdict: verdict(s))
    }

    /// JUnit readers: expected failures and informational findings are `<skipped>` (pytest's xfail).
    static func junit(_ s: [String: Any]) -> ConsumerView {
        ConsumerView(passed: int(s, "passed"), failed: int(s, "failed") + int(s, "unexpectedPasses"),
                     skipped: int(s, "skipped") + int(s, "expectedFailures") + int(s, "informational"), verdict: verdict(s))
    }

    /// kvmcheck's exit code as a consumer's overall verdict: 1 fail, 4 (nothing could run) skip, 0 pass.
    static func verdict(_ s: [String: Any]) -> String {
        switch int(s, "exitCode") {
        case 1: return "fail"
        case 4: return "skip"
        default: return "pass"
        }
    }

    static func int(_ s: [String: Any], _ key: String) -> Int { s[key] as? Int ?? -1 }

    init(passed: Int, failed: Int, skipped: Int, verdict: String) {
        self.passed = passed; self.failed = failed; self.skipped = skipped; self.verdict = verdict
    }

    init(_ seen: [String: Any]) {
        self.init(passed: seen["passed"] as? Int ?? -1, failed: seen["failed"] as? Int ?? -1,
                  skipped: seen["skipped"] as? Int ?? -1, verdict: seen["verdict"] as? String ?? "?")
    }
}

/// The summary kvmcheck's JSON reporter writes for a rendered sample.
func jsonSummary(_ expectations: Expectations = Expectations()) throws -> [String: Any] {
    try #require(Consumers.json(render({ JSONReporter(write: $0) }, expectations: expectations))["summary"] as? [String: Any])
}

let tapConsumers = ["prove", "tappy", "kunit", "lkft"]
let junitConsumers = ["junitparser", "xunitparser"]

/// Feeds each report to its consumers and compares with kvmcheck's own summary and exit code.
/// Returns one line per disagreement.
func disagreements(summary: [String: Any], tap13: String?, ktap: String?, junit: String?, skipAll: Bool = false) throws -> [String] {
    var out: [String] = []
    func compare(_ name: String, _ seen: [String: Any], _ want: ConsumerView, format: String) {
        let got = ConsumerView(seen)
        // A skip-all document is one pseudo-test for some consumers and none for others: verdict only.
        let agrees = skipAll ? got.verdict == want.verdict && got.passed == 0 && got.failed == 0 : got == want
        if !agrees { out.append("\(name) on \(format): \(got), kvmcheck: \(want)") }
        // kunit_parser calls TAP's skip-all (`1..0 # SKIP`) "0 tests run!"; its verdict still agrees.
        let ignored = skipAll && name == "kunit" && format == "TAP 13"
        if let problems = seen["problems"] as? [String], !problems.isEmpty, !ignored { out.append("\(name) on \(format): \(problems)") }
    }
    if let tap13 {
        let seen = try Consumers.run(tap13, suffix: ".tap", tapConsumers + ["yaml"])
        for name in tapConsumers { compare(name, seen[name]!, .tap(summary), format: "TAP 13") }
        let exit = summary["exitCode"] as? Int
        if let proveExit = seen["prove"]?["exit"] as? Int, (proveExit != 0) != (exit == 1) {
            out.append("prove exits \(proveExit), kvmcheck \(exit ?? -1)")
        }
        if let tappyExit = seen["tappy"]?["exit"] as? Int, (tappyExit != 0) != (exit == 1) {
            out.append("tappy exits \(tappyExit), kvmcheck \(exit ?? -1)")
        }
        if let yamlProblems = seen["yaml"]?["problems"] as? [String], !yamlProblems.isEmpty { out.append("PyYAML: \(yamlProblems)") }
    }
    if let ktap {
        let seen = try Consumers.run(ktap, suffix: ".ktap", ["kunit", "lkft"])
        compare("kunit_parser", seen["kunit"]!, .tap(summary), format: "KTAP")
        // LKFT also counts each suite's own result line in KTAP: its verdict must still agree.
        if seen["lkft"]?["verdict"] as? String != ConsumerView.verdict(summary), !(skipAll && seen["lkft"]?["failed"] as? Int == 0) {
            out.append("lkft on KTAP: verdict \(seen["lkft"]?["verdict"] ?? "?"), kvmcheck exit \(summary["exitCode"] ?? "?")")
        }
        // kunit.py parse exits 0 only for SUCCESS: an all-skipped run is a failure to it, as exit 4 is to CI.
        if let kunitExit = seen["kunit"]?["exit"] as? Int, (kunitExit == 0) != (summary["exitCode"] as? Int == 0) {
            out.append("kunit.py parse exits \(kunitExit), kvmcheck \(summary["exitCode"] ?? "?")")
        }
    }
    if let junit {
        let seen = try Consumers.run(junit, suffix: ".xml", junitConsumers + ["xsd"])
        for name in junitConsumers { compare(name, seen[name]!, .junit(summary), format: "JUnit") }
        if let problems = seen["xsd"]?["problems"] as? [String], !problems.isEmpty { out.append("junit-10.xsd: \(problems)") }
    }
    return out
}

let allConsumers = tapConsumers + junitConsumers + ["xsd", "yaml"]

@Suite(.enabled(if: Consumers.available(allConsumers), Consumers.missing))
struct ConsumerAgreementTests {
    /// The sample run has a pass, a failure, a timeout, skips and an informational finding.
    @Test(arguments: ["", "alpha/bad_check xfail known\nalpha/slow xfail hangs\n", "alpha/ok_check/* xfail was broken\n"])
    func everyConsumerCountsTheSampleAsKvmcheckDoes(expectationsText: String) throws {
        let e = try Expectations.parse(expectationsText, file: "e.txt", knownIDs: sampleIDs)
        let summary = try jsonSummary(e)
        let found = try disagreements(summary: summary, tap13: render({ TAPReporter(version: 13, write: $0) }, expectations: e),
                                      ktap: render({ KTAPReporter(write: $0) }, expectations: e),
                                      junit: render({ JUnitReporter(write: $0) }, expectations: e))
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    @Test func theComparisonCanFail() throws {
        // The old encoding (expected failure as `not ok … # TODO`) must be caught: LKFT fails it.
        let e = try Expectations.parse("alpha/bad_check xfail known\nalpha/slow xfail hangs\n", file: "e.txt", knownIDs: sampleIDs)
        let tap = render({ TAPReporter(version: 13, write: $0) }, expectations: e)
            .replacingOccurrences(of: "ok 2 - alpha/bad_check # XFAIL", with: "not ok 2 - alpha/bad_check # TODO")
        let found = try disagreements(summary: jsonSummary(e), tap13: tap, ktap: nil, junit: nil)
        #expect(found.contains { $0.hasPrefix("lkft on TAP 13") }, "\(found)")
    }

    @Test func tap14IsReadByTapPyWithTheSameVerdict() throws {
        for text in ["", "alpha/bad_check xfail known\nalpha/slow xfail hangs\n"] {
            let e = try Expectations.parse(text, file: "e.txt", knownIDs: sampleIDs)
            let doc = render({ TAPReporter(version: 14, write: $0) }, expectations: e)
            let seen = try Consumers.run(doc, suffix: ".tap", ["tappy", "yaml", "prove"])
            #expect(seen["tappy"]?["problems"] as? [String] == [])
            #expect(seen["tappy"]?["verdict"] as? String == ConsumerView.verdict(try jsonSummary(e)))
            #expect(seen["yaml"]?["problems"] as? [String] == [])
            // The README's table: tap.py counts one test per suite (the subtest lines are unknown
            // to it), and prove refuses version 14 outright.
            let suites = doc.split(separator: "\n").filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }.count
            let tappyTotal = ["passed", "failed", "skipped"].compactMap { seen["tappy"]?[$0] as? Int }.reduce(0, +)
            #expect(suites > 1 && tappyTotal == suites, "tap.py counted \(tappyTotal) tests for \(suites) suites")
            #expect((seen["prove"]?["problems"] as? [String])?.contains { $0.contains("versions later than 13") } == true, "\(seen["prove"] ?? [:])")
        }
    }

    @Test func skipAllIsASkipToEveryConsumer() throws {
        func doc(_ make: (@escaping (String) -> Void) -> Reporter) -> String {
            var out = ""
            make { out += $0.hasSuffix("\n") ? $0 : $0 + "\n" }.skipAll(header: sampleHeader, reason: "cannot open /dev/kvm: ENOENT")
            return out
        }
        let json = try Consumers.json(doc { JSONReporter(write: $0) })
        let summary = try #require(json["summary"] as? [String: Any])
        #expect(summary["exitCode"] as? Int == 4)
        let found = try disagreements(summary: summary, tap13: doc { TAPReporter(version: 13, write: $0) },
                                      ktap: doc { KTAPReporter(write: $0) }, junit: doc { JUnitReporter(write: $0) }, skipAll: true)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }
}

/// A full run of the hidden `_harness` suite: pass, failure, XFAIL, XPASS, skip, timeout, crash and
/// an informational finding, and a skip-all; every consumer against kvmcheck's summary and exit code.
@Suite(.enabled(if: kvmUsable && Consumers.available(allConsumers), "needs /dev/kvm and the consumers (scripts/install-deps)"),
       .serialized)
struct ConsumerFullRunTests {
    struct Reports {
        let result: ProcessResult
        let summary: [String: Any]
        let tap13, ktap, junit: String
    }

    func run(_ arguments: [String], expectations: String?) throws -> Reports {
        let dir = NSTemporaryDirectory() + "kvmcheck-consumers-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var args = ["run", "--ktap", "\(dir)/r.ktap", "--junit", "\(dir)/r.xml", "--json", "\(dir)/r.json"] + arguments
        if let expectations { args += ["--expect", try temporaryFile(expectations, suffix: ".txt")] }
        // stdout is the default format, which must be one prove, tap.py and kunit_parser all accept.
        let r = try kvmcheck(args, environment: ["KVMCHECK_HARNESS_SELFTEST": "1"])
        let read = { (name: String) in try String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8) }
        let json = try Consumers.json(read("r.json"))
        return Reports(result: r, summary: try #require(json["summary"] as? [String: Any]), tap13: r.stdout,
                       ktap: try read("r.ktap"), junit: try read("r.xml"))
    }

    @Test func everyOutcomeCountedAlikeByEveryConsumer() throws {
        let r = try run(["--suite", "_harness", "--timeout", "1", "--filter",
                         "*/passes,*/fails_with_details,*/guest_triple_faults,*/skips,*/child_crashes,*/guest_spins_forever,*/informational_finding"],
                        expectations: "_harness/fails_with_details xfail known broken on this kernel\n")
        #expect(r.result.stdout.hasPrefix("TAP version 13\n"), "the default is TAP 13: prove rejects 14")
        let s = r.summary
        #expect(ConsumerView.int(s, "passed") == 1 && ConsumerView.int(s, "expectedFailures") == 1 && ConsumerView.int(s, "skipped") == 1
                && ConsumerView.int(s, "informational") == 1 && ConsumerView.int(s, "failed") == 3, "\(s)")
        #expect(Int(r.result.status) == ConsumerView.int(s, "exitCode") && r.result.status == 1)
        let found = try disagreements(summary: s, tap13: r.tap13, ktap: r.ktap, junit: r.junit)
        #expect(found.isEmpty, "\(found.joined(separator: "\n"))")
    }

    @Test func anExpectedFailureAloneIsGreenAndAnUnexpectedPassRedEverywhere() throws {
        let green = try run(["--suite", "_harness", "--filter", "*/passes,*/fails_with_details,*/informational_finding"],
                            expectations: "_harness/fails_with_details xfail known\n")
        #expect(green.result.status == 0)
        #expect(try disagreements(summary: green.summary, tap13: green.tap13, ktap: green.ktap, junit: green.junit) == [])
        let red = try run(["--suite", "_harness", "--filter", "*/passes,*/skips"], expectations: "_harness/passes xfail was broken\n")
        #expect(red.result.status == 1)
        #expect(ConsumerView.int(red.summary, "unexpectedPasses") == 1 && ConsumerView.int(red.summary, "failed") == 0,
                "an unexpected pass is counted once: \(red.summary)")
        #expect(red.result.stderr.contains("0 passed, 0 failed, 1 skipped, 1 unexpected passes"), "\(red.result.stderr)")
        #expect(try disagreements(summary: red.summary, tap13: red.tap13, ktap: red.ktap, junit: red.junit) == [])
    }

    @Test func skipAllAgrees() throws {
        let r = try run(["--device", "/nonexistent/kvm"], expectations: nil)
        #expect(r.result.status == 4 && r.result.lines[1].hasPrefix("1..0 # SKIP cannot open /nonexistent/kvm"))
        #expect(try disagreements(summary: r.summary, tap13: r.tap13, ktap: r.ktap, junit: r.junit, skipAll: true) == [])
    }
}
