import CheckKit
import Reporting
import SeriesPlan
import Foundation
import KVMKit
@testable import Suites
import Testing

/// Renders the sample run (ReporterTests) through any reporter, expectations applied.
func render(_ make: (@escaping (String) -> Void) -> Reporter, expectations: Expectations = Expectations()) -> String {
    var out = ""
    let reporter = make { out += $0.hasSuffix("\n") ? $0 : $0 + "\n" }
    reporter.begin(header: sampleHeader, plan: sampleResults.map { ($0.suite, $0.results.count) })
    var summary = RunSummary()
    for (suite, results) in sampleResults {
        reporter.suiteBegan(suite, count: results.count)
        let applied = results.map(expectations.apply)
        for (i, r) in applied.enumerated() { reporter.report(r, index: i + 1); summary.add(r) }
        reporter.suiteEnded(suite, results: applied)
    }
    reporter.end(summary)
    return out
}

/// The real consumers of each format (Tests/Consumers/consumers.py; scripts/install-deps installs them).
enum Consumers {
    static let script = repositoryRoot.appendingPathComponent("Tests/Consumers/consumers.py").path
    static let xmllint = which("xmllint")
    static let xmllintMissing: Comment = "xmllint or the cached junit-10.xsd missing (scripts/install-deps installs them)"
    static let missing: Comment = "a consumer is not installed (run scripts/install-deps)"

    /// The consumers installed here, asked once (one python3 start, not one per test).
    static let installed: Set<String> = {
        guard let python = which("python3"), let r = try? runProcess(python, [script, "--installed"]), r.status == 0 else { return [] }
        return Set(r.stdout.split(separator: "\n").map(String.init))
    }()

    /// Whether every named consumer is installed.
    static func available(_ names: [String]) -> Bool { installed.isSuperset(of: names) }

    /// What each named consumer saw in `text`: counts, verdict, problems (see consumers.py).
    static func run(_ text: String, suffix: String, _ names: [String]) throws -> [String: [String: Any]] {
        try run(file: temporaryFile(text, suffix: suffix), names)
    }

    static func run(file: String, _ names: [String]) throws -> [String: [String: Any]] {
        let r = try runProcess(which("python3")!, [script, file] + names)
        guard r.status == 0, let doc = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: [String: Any]] else {
            throw ConsumerError(description: "consumers.py \(names) on \(file): exit \(r.status): \(r.stderr)")
        }
        return doc
    }

    /// Every problem the named consumers reported, or nil when they had none.
    static func problems(_ text: String, suffix: String, _ names: [String]) throws -> String? {
        let seen = try run(text, suffix: suffix, names)
        let all = names.flatMap { name in (seen[name]?["problems"] as? [String] ?? []).map { "\(name): \($0)" } }
        return all.isEmpty ? nil : all.joined(separator: "\n")
    }

    /// nil when the kernel's kunit_parser reads the text as KTAP without a complaint, else what it said.
    static func ktapProblems(_ text: String) throws -> String? {
        guard text.hasPrefix("KTAP version 1\n") else { return "not KTAP: the first line is not 'KTAP version 1'" }
        return try problems(text, suffix: ".ktap", ["kunit"])
    }

    /// nil when the XML is valid against Jenkins' junit-10.xsd and junitparser and xunitparser read it cleanly.
    static func junitProblems(_ xml: String) throws -> String? {
        try problems(xml, suffix: ".xml", ["xsd", "junitparser", "xunitparser"])
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }
}

struct ConsumerError: Error, CustomStringConvertible { let description: String }

/// The sample's `beta/info`-style entries, for expectation tests.
let sampleIDs = sampleResults.flatMap(\.results).map(\.id)

@Suite struct FormatTests {
    @Test(.enabled(if: Consumers.available(["kunit"]), Consumers.missing))
    func ktapHasAVersionLinePerBlockTwoSpaceNestingAndNoYAML() throws {
        let text = render { KTAPReporter(write: $0) }
        let lines = text.split(separator: "\n").map(String.init)
        #expect(lines.first == "KTAP version 1")
        #expect(lines.filter { $0 == "  KTAP version 1" }.count == 3, "one per suite")
        #expect(lines.contains("  not ok 3 slow # TIMEOUT 10 seconds"))
        #expect(lines.contains("  ok 2 info # XFAIL informational: kernel keeps stale bits"), "kunit_parser counts not ok … # XFAIL as a failure")
        #expect(Array(lines.prefix(3)) == ["KTAP version 1", "1..3", "# kvmcheck test: kernel 6.18.0, KVM flavour kvm_amd, CPU vendor AuthenticAMD, KVM API version 12"],
                "the plan right after the version line")
        #expect(lines.contains("  # expected: 0xbad1dea0"), "expected/observed as diagnostics before the result")
        #expect(!text.contains("---"))
        #expect(lines.contains("not ok 1 alpha") && lines.contains("ok 2 beta") && lines.contains("ok 3 gamma # SKIP every check skipped"))
        #expect(try Consumers.ktapProblems(text) == nil)
    }

    @Test(.enabled(if: Consumers.available(["kunit"]), Consumers.missing))
    func kunitParserRejectsBrokenKTAP() throws {
        #expect(try Consumers.ktapProblems("KTAP version 1\n1..2\nok 1 a\n") != nil, "plan mismatch")
        #expect(try Consumers.ktapProblems("KTAP version 1\n1..1\n  KTAP version 1\n  # Subtest: parent\n  1..1\n  not ok 1 x\nok 1 parent\n") != nil,
                "a parent must fail when a child fails")
        #expect(try Consumers.ktapProblems("TAP version 14\n1..1\nok 1 a\n") != nil, "KTAP needs its own version line")
    }

    @Test(.enabled(if: Consumers.available(["xsd", "junitparser", "xunitparser"]), Consumers.xmllintMissing))
    func junitValidatesAgainstJenkinsSchemaWithMessagesInTheBody() throws {
        let xml = render { JUnitReporter(write: $0) }
        #expect(try Consumers.junitProblems(xml) == nil)
        #expect(xml.contains("<testsuites name=\"kvmcheck\" tests=\"6\" failures=\"1\" errors=\"1\" time=\"10.010\">"),
                "junit-10.xsd has no skipped attribute on <testsuites>")
        #expect(xml.contains("<testsuite name=\"alpha\" tests=\"3\" failures=\"1\" errors=\"1\" skipped=\"0\""))
        #expect(xml.contains("<failure type=\"not ok\" message=\"rbx # after &quot;write&quot;\">rbx # after &quot;write&quot;&#10;expected: 0xbad1dea0&#10;observed: 0x1111&#10;ioctl: KVM_RUN&#10;errno: EINVAL</failure>"),
                "GitLab shows only the body: the message is there too")
        #expect(xml.contains("<error type=\"timeout\" message=\"check did not finish within 10 s; the child was killed\">check did not finish"))
        #expect(xml.contains("<skipped type=\"skip\" message=\"KVM_CAP_X (1) = 0\">KVM_CAP_X (1) = 0</skipped>"), "every skip has a body")
        #expect(xml.components(separatedBy: "<properties>").count == 2, "properties once, not per testsuite")
        #expect(xml.contains("<property name=\"kernel\" value=\"6.18.0\"/>"))
    }

    @Test(.enabled(if: Consumers.available(["xsd", "junitparser", "xunitparser"]), Consumers.xmllintMissing))
    func junitConsumersRejectBrokenJUnit() throws {
        #expect(try Consumers.junitProblems("<testsuites name=\"x\"><testsuite/></testsuites>") != nil)
        #expect(try Consumers.junitProblems("<testsuites name=\"k\" tests=\"1\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\"0\"><testsuite name=\"s\" tests=\"1\" failures=\"0\" errors=\"0\" time=\"0\"><testcase classname=\"c\" name=\"n\" time=\"0\"/></testsuite></testsuites>") != nil,
                "junit-10.xsd: no skipped attribute on <testsuites>")
        let twice = "<properties><property name=\"kernel\" value=\"x\"/></properties>"
        #expect(try Consumers.junitProblems("<testsuites><testsuite name=\"a\" tests=\"0\" failures=\"0\" errors=\"0\">\(twice)</testsuite><testsuite name=\"b\" tests=\"0\" failures=\"0\" errors=\"0\">\(twice)</testsuite></testsuites>")?.contains("xunitparser") == true,
                "xunitparser rejects properties repeated per testsuite")
        #expect(try Consumers.junitProblems("<testsuites><testsuite name=\"a\" tests=\"1\" failures=\"1\" errors=\"0\"><testcase name=\"n\"><failure message=\"only here\"/></testcase></testsuite></testsuites>")?.contains("no body") == true,
                "a failure whose message GitLab would not show")
    }

    @Test func jsonIsOneDocumentWithAnObjectPerCheckAndASummary() throws {
        let doc = try Consumers.json(render { JSONReporter(write: $0) })
        let checks = try #require(doc["checks"] as? [[String: Any]])
        #expect(checks.count == 6)
        #expect(checks.map { $0["status"] as? String } == ["pass", "fail", "timeout", "skip", "informational", "skip"])
        #expect(checks[1]["expected"] as? String == "0xbad1dea0" && checks[1]["errno"] as? String == "EINVAL")
        #expect(checks[3]["reason"] as? String == "KVM_CAP_X (1) = 0")
        let summary = try #require(doc["summary"] as? [String: Any])
        #expect(summary["failed"] as? Int == 2 && summary["exitCode"] as? Int == 1)
        #expect(doc["kernel"] as? String == "6.18.0")
    }
}

@Suite struct SkipAllFormatTests {
    @Test func noDeviceIsASkipAllInEveryFormatWithExit4() throws {
        let xmlPath = NSTemporaryDirectory() + "kvmcheck-skipall-\(UUID().uuidString).xml"
        let json = try kvmcheck(["run", "--device", "/nonexistent/kvm", "--format", "json", "--junit", xmlPath])
        #expect(json.status == 4)
        let doc = try Consumers.json(json.stdout)
        #expect((doc["skippedAll"] as? String)?.contains("ENOENT") == true)
        #expect((doc["summary"] as? [String: Any])?["exitCode"] as? Int == 4)
        let xml = try String(contentsOfFile: xmlPath, encoding: .utf8)
        #expect(xml.contains("message=\"cannot open /nonexistent/kvm: ENOENT"))
        if Consumers.available(["xsd", "junitparser", "xunitparser"]) { #expect(try Consumers.junitProblems(xml) == nil) }
        let ktap = try kvmcheck(["run", "--device", "/nonexistent/kvm", "--format", "ktap"])
        #expect(ktap.status == 4 && ktap.lines[1] == "1..1" && ktap.lines.contains { $0.hasPrefix("ok 1 kvmcheck # SKIP cannot open /nonexistent/kvm: ENOENT") })
        if Consumers.available(["kunit"]) { #expect(try Consumers.ktapProblems(ktap.stdout) == nil) }
        let unwritable = try kvmcheck(["run", "--junit", "/nonexistent/dir/x.xml"])
        #expect(unwritable.status == 2 && unwritable.stdout.isEmpty)
        #expect(unwritable.stderr == "kvmcheck: --junit /nonexistent/dir/x.xml: cannot write: ENOENT\n")
    }
}

@Suite struct ExpectationTests {
    func parse(_ text: String) throws -> Expectations { try Expectations.parse(text, file: "e.txt", knownIDs: sampleIDs) }

    @Test func listedFailuresBecomeXFAILAndNoLongerFailTheRun() throws {
        let e = try parse("""
            # known on the sample kernel
            alpha/bad_check   xfail  known: the kernel keeps rbx
            alpha/slow        xfail  hangs on this kernel
            """)
        let tap = render({ TAPReporter(version: 14, write: $0) }, expectations: e)
        #expect(tap.contains("    ok 2 - bad_check # XFAIL known: the kernel keeps rbx"))
        #expect(tap.contains("    ok 3 - slow # XFAIL hangs on this kernel"))
        #expect(tap.contains("ok 1 - alpha"), "a suite with only expected failures does not fail")
        let ktap = render({ KTAPReporter(write: $0) }, expectations: e)
        #expect(ktap.contains("  ok 2 bad_check # XFAIL known: the kernel keeps rbx"))
        if Consumers.available(["kunit"]) { #expect(try Consumers.ktapProblems(ktap) == nil) }
        var summary = RunSummary()
        for r in sampleResults.flatMap(\.results).map(e.apply) { summary.add(r) }
        #expect(summary.failed == 0 && summary.expectedFailures == 2 && summary.exitCode == 0)
    }

    @Test func reasonsKeepTheirHashesOnlyWholeLinesAreComments() throws {
        let e = try parse("  # a comment line\nalpha/bad_check xfail `out` at CPL3 raises #GP (IOPL ignored)\n")
        #expect(e.entries.map(\.reason) == ["`out` at CPL3 raises #GP (IOPL ignored)"])
    }

    @Test func aListedFailureThatPassesIsAnUnexpectedPassAndFails() throws {
        let e = try parse("alpha/ok_check/*  xfail  was broken in 6.17")
        let r = e.apply(to: sampleResults[0].results[0])
        #expect(r.status == .unexpectedPass("was broken in 6.17"))
        #expect(r.failsRun)
        var summary = RunSummary()
        summary.add(r)
        #expect(summary.unexpectedPasses == 1 && summary.failed == 0 && summary.total == 1 && summary.exitCode == 1,
                "counted once, as an unexpected pass, and it still fails the run")
        let tap = render({ TAPReporter(version: 14, write: $0) }, expectations: e)
        #expect(tap.contains("    not ok 1 - ok_check/cpl0\n      ---\n      message: \"unexpected pass: the expectations file lists this check as failing (was broken in 6.17); update the file\""))
    }

    @Test func unlistedFailuresStillFail() throws {
        let e = try parse("beta/gap skip cap absent here")
        let results = sampleResults.flatMap(\.results).map(e.apply)
        #expect(results.filter(\.failsRun).map(\.id) == ["alpha/bad_check", "alpha/slow"])
        #expect(results[3].expectation == .expectedSkip("cap absent here"))
    }

    @Test func shippedExpectationFilesParseAgainstTheRealChecks() throws {
        let dir = repositoryRoot.appendingPathComponent("ci/expectations").path
        let ids = SuiteRegistry.all(includeHidden: true).flatMap(\.instances).map(\.id)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".txt") }
        #expect(!files.isEmpty)
        for f in files {
            let e = try Expectations.parse(String(contentsOfFile: "\(dir)/\(f)", encoding: .utf8), file: f, knownIDs: ids)
            #expect(!e.entries.isEmpty, "\(f)")
        }
    }

    @Test func malformedLinesNameFileLineAndReason() {
        #expect(throws: ManifestError(file: "e.txt", line: 2, reason: "unknown outcome 'fails' (use xfail or skip)")) {
            try parse("alpha/bad_check xfail ok\nalpha/slow fails because")
        }
        #expect(throws: ManifestError(file: "e.txt", line: 1, reason: "expected '<check id or glob> <xfail|skip> <reason>', got 'alpha/slow xfail'")) {
            try parse("alpha/slow xfail")
        }
        #expect(throws: ManifestError(file: "e.txt", line: 1, reason: "'alpha/typo' matches no check (see `kvmcheck list`)")) {
            try parse("alpha/typo xfail reason")
        }
    }
}

@Suite struct PlanTests {
    let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/series").path

    @Test func formatPatchDirectoryIsCoveredByTheDebugCR3Manifest() throws {
        let r = try kvmcheck(["plan", "\(fixtures)/cr3-in-debug-exit"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("series: 2 patch(es)"))
        #expect(r.stdout.contains("KVM_CAP_X86_GUEST_DEBUG_CR3     #define in include/uapi/linux/kvm.h"))
        #expect(r.stdout.contains("struct kvm_debug_exit_arch.cr3  struct field in arch/x86/include/uapi/asm/kvm.h"))
        #expect(r.stdout.contains("patches/cr3-debug-exit.md"))
        #expect(r.stdout.contains("every symbol is covered"))
        #expect(r.stdout.contains("run: kvmcheck run --suite sync-regs,debug-cr3"))
        #expect(!r.stdout.contains("debug_regs.c"), "the selftest patch adds no uAPI")
    }

    @Test func mboxWithAnUncoveredCapExits1AndNamesIt() throws {
        let r = try kvmcheck(["plan", "\(fixtures)/conditional-sync.mbox"])
        #expect(r.status == 1)
        #expect(r.stdout.contains("struct kvm_run.kvm_save_regs_on_exit"), "a field added after a nested union is still kvm_run's")
        #expect(r.stdout.contains("not covered by any suite:\n  KVM_CAP_X86_SYNC_REGS_CONDITIONAL\n"))
    }

    @Test func singlePatchMatchesTheBlockIRQManifest() throws {
        let r = try kvmcheck(["plan", "\(fixtures)/blockirq.patch"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("patches/guestdbg-blockirq.md [merged, Linux 5.15] suites blockirq, guest-debug, debug-regs: KVM_GUESTDBG_BLOCKIRQ"))
    }

    @Test func theProjectsOwnKernelPatchesAreFullyCovered() throws {
        let r = try kvmcheck(["plan", repositoryRoot.appendingPathComponent("patches/kernel/6.12").path])
        #expect(r.status == 0, "\(r.stdout)")
        for symbol in ["struct kvm_debug_exit_arch.cr3", "KVM_CAP_X86_GUEST_DEBUG_CR3", "struct kvm_run.kvm_save_regs_on_exit",
                       "KVM_SYNC_REGS_CONDITIONAL"] {
            #expect(r.stdout.contains("  \(symbol) "), "\(symbol) found in the diffs")
        }
        #expect(r.stdout.contains("every symbol is covered"))
    }

    @Test func badInputIsOneLineAndExit2() throws {
        for (input, message) in [("not-a-patch.txt", "no diff found"), ("bad-hunk.patch", "bad-hunk.patch:7: malformed hunk header"),
                                 ("missing.patch", "ENOENT")] {
            let r = try kvmcheck(["plan", "\(fixtures)/\(input)"])
            #expect(r.status == 2, "\(input)")
            #expect(r.stdout.isEmpty && r.stderr.hasPrefix("kvmcheck: plan: ") && r.stderr.contains(message), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1)
        }
    }

    @Test func fieldAndDefineExtraction() throws {
        let patch = """
            diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h
            --- a/include/uapi/linux/kvm.h
            +++ b/include/uapi/linux/kvm.h
            @@ -1,3 +1,9 @@
            +struct kvm_new_thing {
            +	__u32 flags;
            +	__u64 data[4];	/* four of them */
            +};
            +#define KVM_NEW_THING _IOW(KVMIO, 0xff, struct kvm_new_thing)
             /* unchanged */
            """
        let symbols = try uapiChanges(in: patch, name: "p").map(\.symbol)
        #expect(symbols == ["struct kvm_new_thing.flags", "struct kvm_new_thing.data", "KVM_NEW_THING"])
    }
}

/// Every format from a real run, read by its consumer.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct FormatEndToEndTests {
    @Test func oneRunWritesTAPKTAPJUnitAndJSONThatTheirConsumersAccept() throws {
        let dir = NSTemporaryDirectory() + "kvmcheck-formats-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try kvmcheck(["run", "--suite", "guest-debug,sync-regs", "--ktap", "\(dir)/r.ktap", "--junit", "\(dir)/r.xml",
                              "--json", "\(dir)/r.json", "--tap", "\(dir)/r13.tap"])
        #expect([0, 1].contains(r.status))
        let ktap = try String(contentsOfFile: "\(dir)/r.ktap", encoding: .utf8)
        if Consumers.available(["kunit"]) { #expect(try Consumers.ktapProblems(ktap) == nil) }
        if Consumers.available(["xsd", "junitparser", "xunitparser"]) {
            #expect(try Consumers.junitProblems(String(contentsOfFile: "\(dir)/r.xml", encoding: .utf8)) == nil)
        }
        let json = try Consumers.json(String(contentsOfFile: "\(dir)/r.json", encoding: .utf8))
        let checks = try #require(json["checks"] as? [[String: Any]])
        let stdoutChecks = r.lines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        #expect(checks.count == stdoutChecks.count, "every format reports every check")
        #expect((json["summary"] as? [String: Any])?["exitCode"] as? Int == Int(r.status))
        if TapPy.available { #expect(try TapPy.problems(in: String(contentsOfFile: "\(dir)/r13.tap", encoding: .utf8)) == nil) }
    }

    @Test func stdoutFormatsSwitch() throws {
        let junit = try kvmcheck(["run", "--suite", "sync-regs", "--format", "junit"])
        #expect(junit.stdout.hasPrefix("<?xml"))
        if Consumers.available(["xsd", "junitparser", "xunitparser"]) { #expect(try Consumers.junitProblems(junit.stdout) == nil) }
        let json = try kvmcheck(["run", "--suite", "sync-regs", "--format", "json"])
        #expect(try (Consumers.json(json.stdout)["checks"] as? [Any])?.count == 21)
        let bad = try kvmcheck(["run", "--format", "yaml"])
        #expect(bad.status == 2 && bad.stdout.isEmpty)
    }

    @Test func expectationsTurnKnownFailuresIntoXFAILAndPassesIntoXPASS() throws {
        let env = ["KVMCHECK_HARNESS_SELFTEST": "1"]
        let file = try temporaryFile("_harness/fails_with_details xfail known broken\n", suffix: ".txt")
        let known = try kvmcheck(["run", "--suite", "_harness", "--filter", "*fails_with_details,*passes", "--expect", file], environment: env)
        #expect(known.status == 0, "an expected failure does not fail the run: \(known.stdout)")
        #expect(known.stdout.contains(" # XFAIL known broken"))
        let stale = try temporaryFile("_harness/passes xfail was broken\n", suffix: ".txt")
        let xpass = try kvmcheck(["run", "--suite", "_harness", "--filter", "*passes", "--expect", stale], environment: env)
        #expect(xpass.status == 1, "an unexpected pass fails the run so the file is updated")
        #expect(xpass.stdout.contains("unexpected pass"))
        let malformed = try temporaryFile("_harness/passes maybe\n", suffix: ".txt")
        let bad = try kvmcheck(["run", "--expect", malformed], environment: env)
        #expect(bad.status == 2 && bad.stdout.isEmpty, "rejected before anything runs")
        #expect(bad.stderr == "kvmcheck: malformed expectations file: \(malformed):1: expected '<check id or glob> <xfail|skip> <reason>', got '_harness/passes maybe'\n")
    }
}
