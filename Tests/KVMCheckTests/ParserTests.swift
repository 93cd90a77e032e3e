import CheckKit
import Reporting
import SeriesPlan
import Foundation
import Glibc
import Testing

/// Issue 12's parser and input items: CRLF (9), manifests without a capability line (13),
/// unknown suites in manifests (14), bounded regular-file reads (16), linear parsing (17),
/// empty lists and stdin (18).
@Suite struct ParserTests {
    let fixtures = repositoryRoot.appendingPathComponent("Tests/Fixtures/series").path
    let harnessEnv = ["KVMCHECK_HARNESS_SELFTEST": "1"]

    func crlf(_ text: String) -> String { text.replacingOccurrences(of: "\n", with: "\r\n") }

    // MARK: item 9, CRLF

    @Test func textLinesSplitCRLFAndLFAlike() {
        #expect(textLines("a\r\nb\nc\r\n").map(String.init) == ["a", "b", "c", ""])
        #expect(textLines("no newline").map(String.init) == ["no newline"])
        #expect(textLines("lone\rcr\n").map(String.init) == ["lone\rcr", ""], "only a CR before LF is a line end")
        #expect(textLines("").map(String.init) == [""])
    }

    @Test func crlfExpectationsParseLikeLF() throws {
        let text = "# known\n_harness/passes xfail was broken\n_harness/skips   skip  cap absent here\n"
        let ids = ["_harness/passes", "_harness/skips"]
        let lf = try Expectations.parse(text, file: "e.txt", knownIDs: ids)
        let cr = try Expectations.parse(crlf(text), file: "e.txt", knownIDs: ids)
        #expect(cr.entries.count == 2)
        #expect(cr == lf)
        #expect(cr.entries.map(\.reason) == ["was broken", "cap absent here"], "no CR left in a reason")
    }

    /// Before: the CRLF file was one line, so a typo on line 2 went unseen (exit 4 here).
    @Test func crlfExpectationsFileIsReadLineByLine() throws {
        let file = try temporaryFile(crlf("_harness/passes xfail ok\n_harness/typo xfail typo\n"), suffix: ".txt")
        let r = try runBounded(["run", "--expect", file, "--device", "/nonexistent/kvm"], environment: harnessEnv)
        expectOneLineUsageError(r, containing: "\(file):2: '_harness/typo' matches no check")
    }

    @Test func crlfManifestParsesLikeLF() throws {
        let text = try String(contentsOfFile: repositoryRoot.appendingPathComponent("patches/cr3-debug-exit.md").path, encoding: .utf8)
        let lf = try SeriesManifest.parse(text, series: "s", file: "s.md")
        let cr = try SeriesManifest.parse(crlf(text), series: "s", file: "s.md")
        #expect(cr == lf)
        #expect(cr.title == "KVM: x86: Accelerate reading CR3 for guest debug (+ conditional sync regs)")
        #expect(cr.capabilities == ["KVM_CAP_X86_GUEST_DEBUG_CR3": 245])
    }

    /// Before: "no diff found".
    @Test func crlfPatchIsPlannedLikeLF() throws {
        let text = try String(contentsOfFile: "\(fixtures)/blockirq.patch", encoding: .utf8)
        let file = try temporaryFile(crlf(text), suffix: ".patch")
        let r = try runBounded(["plan", file])
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("patches/guestdbg-blockirq.md [merged, Linux 5.15] suites blockirq, guest-debug, debug-regs: KVM_GUESTDBG_BLOCKIRQ\n"))
        #expect(try uapiChanges(in: crlf(text), name: "p") == uapiChanges(in: text, name: "p"))
    }

    // MARK: item 13, a manifest without a capability line; the hidden suite's series

    /// Before: exit 2, ".../none.md: cannot read the file" (the `_harness` suite's series).
    @Test func manifestWithoutCapabilityLineDoesNotStopARun() throws {
        let dir = try copyOfPatches()
        let path = "\(dir)/cr3-debug-exit.md"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("- **capability**:") }
            .joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runBounded(["run", "--suite", "_harness", "--device", "/nonexistent/kvm", "--patches", dir], environment: harnessEnv)
        #expect(r.status == 4, "the run goes on to its skip-all: \(r)")
        #expect(!r.stderr.contains("none.md"))
        #expect(r.stdout.contains("1..0 # SKIP cannot open /nonexistent/kvm"))
    }

    // MARK: item 14, unknown suites in a manifest

    @Test func unknownSuiteInAManifestIsAFileLineError() throws {
        let m = try SeriesManifest.parse("""
            # T
            - **subject**: s
            - **link**: l
            - **status**: unmerged
            - **suites**: one-reg, nosuchsuite, later (planned)
            """, series: "t", file: "t.md")
        #expect(m.plannedSuites == ["later"])
        #expect(throws: ManifestError.self) { try m.checkSuites(known: ["one-reg"]) }
        do { try m.checkSuites(known: ["one-reg"]) } catch {
            #expect(error.file == "t.md" && error.line == 5)
            #expect(error.reason.hasPrefix("unknown suite 'nosuchsuite' (known: one-reg;"))
        }
        #expect(throws: Never.self) { try m.checkSuites(known: ["one-reg", "nosuchsuite"]) }
        #expect(m.runnableSuites(known: ["one-reg", "nosuchsuite"]) == ["one-reg", "nosuchsuite"], "'(planned)' and absent: never suggested")
    }

    /// Before: exit 0 and "run: kvmcheck run --suite …,nosuchsuite".
    @Test func planRejectsAManifestNamingASuiteThatDoesNotExist() throws {
        let dir = try copyOfPatches()
        let path = "\(dir)/guestdbg-blockirq.md"
        let text = try String(contentsOfFile: path, encoding: .utf8)
        try text.replacingOccurrences(of: "- **suites**: blockirq, guest-debug", with: "- **suites**: blockirq, nosuchsuite")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runBounded(["plan", "\(fixtures)/blockirq.patch", "--patches", dir])
        expectOneLineUsageError(r, containing: "malformed series manifest: \(path):6: unknown suite 'nosuchsuite'")
    }

    // MARK: item 16, regular files only, bounded

    @Test func readerRefusesWhatIsNotARegularFileAndCapsTheSize() throws {
        #expect(throws: TextInputError(path: "/dev/zero", reason: "is a character device, not a regular file (give a file, or '-' for stdin)")) {
            try TextInput.read("/dev/zero")
        }
        #expect(throws: TextInputError.self) { try TextInput.read("/tmp") }
        #expect(throws: TextInputError(path: "''", reason: "empty path")) { try TextInput.read("") }
        let big = try temporaryFile(String(repeating: "x", count: 4097), suffix: ".txt")
        #expect(throws: TextInputError(path: big, reason: "larger than 4096 bytes; kvmcheck reads at most that much")) {
            try TextInput.read(big, limit: 4096)
        }
        #expect(try TextInput.read(big, limit: 4097).count == 4097)
        #expect(throws: TextInputError.self) { try TextInput.read("-", allowStdin: false) }
    }

    /// A FIFO with no writer, /dev/zero and a symlink to it, as a patch, an expectations file
    /// or a manifest: one line, exit 2, at once. Before: a hang, or memory growing until OOM.
    @Test func fifosAndDevicesAreOneLineErrorsNotHangs() throws {
        let dir = NSTemporaryDirectory() + "kvmcheck-fifo-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        #expect(mkfifo("\(dir)/fifo.patch", 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: "\(dir)/zero.patch", withDestinationPath: "/dev/zero")
        for (args, text) in [(["plan", "\(dir)/fifo.patch"], "is a FIFO, not a regular file"),
                             (["plan", "/dev/zero"], "/dev/zero: is a character device"),
                             (["plan", "\(dir)/zero.patch"], "zero.patch: is a character device"),
                             (["run", "--expect", "\(dir)/fifo.patch", "--device", "/nonexistent/kvm"], "--expect: \(dir)/fifo.patch: is a FIFO"),
                             (["run", "--expect", "/dev/zero", "--device", "/nonexistent/kvm"], "--expect: /dev/zero: is a character device")] {
            let r = try runBounded(args, timeout: 10)
            #expect(!r.timedOut && r.seconds < 5, "\(args): \(r)")
            expectOneLineUsageError(r, containing: text)
        }
        // A manifest that is a FIFO or a link to /dev/zero.
        let patches = try copyOfPatches()
        try FileManager.default.removeItem(atPath: "\(patches)/x86-one-reg.md")
        #expect(mkfifo("\(patches)/x86-one-reg.md", 0o600) == 0)
        let fifo = try runBounded(["plan", "\(fixtures)/blockirq.patch", "--patches", patches], timeout: 10)
        expectOneLineUsageError(fifo, containing: "x86-one-reg.md: is a FIFO")
        try FileManager.default.removeItem(atPath: "\(patches)/x86-one-reg.md")
        try FileManager.default.createSymbolicLink(atPath: "\(patches)/x86-one-reg.md", withDestinationPath: "/dev/zero")
        let zero = try runBounded(["plan", "\(fixtures)/blockirq.patch", "--patches", patches], timeout: 10)
        expectOneLineUsageError(zero, containing: "x86-one-reg.md: is a character device")
    }

    @Test func stdinIsReadForDash() throws {
        let patch = "\(fixtures)/blockirq.patch"
        let r = try runBounded(["plan", "-"], stdinPath: patch)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.hasPrefix("series: 1 patch(es) from <stdin>\n"))
        #expect(r.stdout.contains("run: kvmcheck run --suite blockirq,guest-debug"))
        let zero = try runBounded(["plan", "-"], stdinPath: "/dev/zero", timeout: 30)
        expectOneLineUsageError(zero, containing: "<stdin>: larger than 64 MiB")
    }

    // MARK: item 18, empty lists, empty KVMCHECK_PATCHES, --expect -

    /// Before: each ran every suite (an empty $SUITES in CI meant "all").
    @Test func emptySuiteAndFilterListsAreUsageErrors() throws {
        for (args, text) in [(["run", "--suite", "", "--device", "/nonexistent/kvm"], "--suite '' names nothing"),
                             (["run", "--suite", ",,", "--device", "/nonexistent/kvm"], "--suite ',,' names nothing"),
                             (["run", "--filter", ",,,", "--device", "/nonexistent/kvm"], "--filter ',,,' names nothing"),
                             (["list", "--suite", " , "], "--suite ' , ' names nothing")] {
            expectOneLineUsageError(try runBounded(args), containing: text)
        }
    }

    /// Before: taken as "/" ("//cr3-debug-exit.md: cannot read the file", or `plan` reading /).
    @Test func emptyPatchesDirectoryIsAUsageError() throws {
        let env = ["KVMCHECK_PATCHES": ""]
        expectOneLineUsageError(try runBounded(["plan", "\(fixtures)/blockirq.patch"], environment: env),
                                containing: "KVMCHECK_PATCHES: set but empty")
        expectOneLineUsageError(try runBounded(["run", "--device", "/nonexistent/kvm"], environment: env),
                                containing: "KVMCHECK_PATCHES: set but empty")
        expectOneLineUsageError(try runBounded(["plan", "\(fixtures)/blockirq.patch", "--patches", ""]), containing: "--patches: empty path")
        #expect(throws: ManifestError.self) { try SeriesManifest.locateDirectory(explicit: "", executable: "/x/kvmcheck") }
    }

    /// Before: "--expect: cannot read -".
    @Test func expectationsFromStdin() throws {
        let file = try temporaryFile("_harness/passes xfail was broken\n_harness/typo xfail x\n", suffix: ".txt")
        let r = try runBounded(["run", "--expect", "-", "--device", "/nonexistent/kvm"], stdinPath: file, environment: harnessEnv)
        expectOneLineUsageError(r, containing: "malformed expectations file: <stdin>:2: '_harness/typo' matches no check")
        let good = try temporaryFile("_harness/passes xfail was broken\n", suffix: ".txt")
        let ok = try runBounded(["run", "--expect", "-", "--device", "/nonexistent/kvm"], stdinPath: good, environment: harnessEnv)
        #expect(ok.status == 4, "read, then the skip-all: \(ok)")
    }

    @Test(.enabled(if: kvmUsable, kvmUnusableReason))
    func expectationsFromStdinApply() throws {
        let file = try temporaryFile("_harness/fails_with_details\txfail\tknown broken\r\n", suffix: ".txt")
        let r = try runBounded(["run", "--suite", "_harness", "--filter", "*/fails_with_details", "--expect", "-"],
                               stdinPath: file, environment: harnessEnv)
        #expect(r.status == 0, "\(r)")
        #expect(r.stdout.contains("ok 1 - _harness/fails_with_details # XFAIL known broken\n"), "\(r.stdout)")
    }

    // MARK: item 17, linear parsing (measured: before 22 s for 100k lines / 89 s for 10k #defines)

    @Test func hundredThousandExpectationLinesParseFast() throws {
        let ids = (0..<300).map { "suite\($0 % 9)/check_\($0)/cpl\($0 % 2 == 0 ? 0 : 3)" }
        var lines: [String] = []
        for i in 0..<100_000 {
            let id = ids[i % ids.count]
            lines.append(i % 2 == 0 ? "\(id) xfail reason \(i)" : "\(id.split(separator: "/")[0])/check_\(i % 300)/* skip r \(i)")
        }
        let text = lines.joined(separator: "\n")
        let start = threadCPUSeconds()
        let e = try Expectations.parse(text, file: "big.txt", knownIDs: ids)
        let parsed = threadCPUSeconds() - start
        #expect(e.entries.count == 100_000)
        for id in ids { _ = e.entry(for: id) }
        #expect(e.entry(for: ids[1])?.location == "big.txt:2", "the first entry naming an id wins")
        let total = threadCPUSeconds() - start
        // CPU time, so a loaded machine does not fail it: ~0.1 s in release, ~1 s in debug; before: 22 s.
        #expect(parsed < 4 && total < 5, "parse \(parsed) s, with lookups \(total) s")
    }

    @Test func tenThousandDefinesPlanFast() throws {
        var patch = "diff --git a/include/uapi/linux/kvm.h b/include/uapi/linux/kvm.h\n--- a/include/uapi/linux/kvm.h\n+++ b/include/uapi/linux/kvm.h\n@@ -1,1 +1,10001 @@\n"
        for i in 0..<10_000 { patch += "+#define KVM_SYM_\(i) \(i)\n" }
        let start = threadCPUSeconds()
        let changes = try uapiChanges(in: patch, name: "p")
        let code = try codeTouched(in: patch, name: "p")
        let manifest = try SeriesManifest.parse("# T\n- **subject**: s\n- **link**: l\n- **status**: s\n- **suites**: a\n## uAPI symbols\n- `KVM_SYM_5`\n",
                                                series: "t", file: "t.md")
        let plan = SeriesPlan(changes: changes + changes, manifests: [manifest], code: code)
        let seconds = threadCPUSeconds() - start
        #expect(plan.changes.count == 10_000 && plan.uncovered.count == 9_999 && plan.suites == ["a"])
        #expect(seconds < 4, "\(seconds) s of CPU (before: 89 s)")
    }

    /// CPU time of this thread: what the parser costs, whatever else the machine runs.
    func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    // MARK: messages stay one line

    @Test func controlCharactersInInputAreEscapedInMessages() {
        #expect(messageQuoted("a\nb\t\u{1b}[0m") == "'a\\nb\\t\\u{1b}[0m'")
        #expect(messageSafe("/tmp/plain path") == "/tmp/plain path")
        #expect(messageSafe("/tmp/x\ny") == "/tmp/x\\ny")
        do {
            _ = try Expectations.parse("x\u{85}y xfail r", file: "e\n.txt", knownIDs: ["a"])
            Issue.record("should throw")
        } catch {
            #expect(!"\(error)".contains("\n") && !"\(error)".contains("\u{85}"), "\(error)")
        }
    }
}
