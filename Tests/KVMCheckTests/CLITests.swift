import CheckKit
import Foundation
import SeriesPlan
import Testing

@Suite struct CLITests {
    @Test func unknownSuiteIsOneLineAndExit2() throws {
        let r = try kvmcheck(["run", "--suite", "nope"])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty, "nothing on stdout for a usage error")
        #expect(r.stderr.hasPrefix("kvmcheck: unknown suite 'nope' (known: "), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "one line: \(r.stderr)")
    }

    @Test func badFlagAndBadValuesExit2() throws {
        #expect(try kvmcheck(["--no-such-flag"]).status == 2)
        #expect(try kvmcheck(["run", "--tap-version", "12"]).status == 2)
        #expect(try kvmcheck(["run", "--cpl", "1"]).status == 2)
        #expect(try kvmcheck(["run", "--timeout", "0"]).status == 2)
        #expect(try kvmcheck(["run", "--filter", "no-such-check-anywhere"]).status == 2)
    }

    @Test func helpAndVersionExit0() throws {
        let help = try kvmcheck(["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.contains("Exit status"))
        #expect(try kvmcheck(["--version"]).stdout.hasPrefix("0."))
    }

    @Test func missingDeviceIsASkipAllWithExit4() throws {
        let r = try kvmcheck(["run", "--device", "/nonexistent/kvm"])
        #expect(r.status == 4)
        #expect(r.lines.first == "TAP version 13")
        #expect(r.stdout.contains("\n1..0 # SKIP cannot open /nonexistent/kvm: ENOENT (No such file or directory)\n"), "\(r.stdout)")
        let nested = try kvmcheck(["run", "--device", "/nonexistent/kvm", "--tap-version", "14"])
        #expect(nested.status == 4 && nested.lines.first == "TAP version 14")
    }

    @Test func listNamesEveryCheckWithItsUAPI() throws {
        let r = try kvmcheck(["list"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("  sync-regs/synced_regs_equal_get_regs/cpl3\n      uapi: KVM_CAP_SYNC_REGS"))
        #expect(r.stdout.contains("  one-reg/vm_fd_enotty\n      uapi: KVM_GET_ONE_REG"))
        #expect(!r.stdout.contains("_harness"), "test-only suites stay hidden")
        #expect(r.lines.allSatisfy { $0.count <= 120 }, "fits 120 columns")
        let json = try kvmcheck(["list", "--format", "json"])
        let entries = try #require(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(entries.contains { $0["id"] as? String == "one-reg/vm_fd_enotty" && ($0["uapi"] as? [String])?.contains("KVM_GET_ONE_REG") == true })
    }

    @Test func repeatedSelectionsAddUpAndExcludeLeavesChecksOut() throws {
        let r = try kvmcheck(["list", "--suite", "one-reg", "--suite", "sync-regs", "--exclude", "sync-regs/*", "--exclude", "one-reg/vm_fd_*"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("one-reg/one_reg_cap_matches_behaviour") && !r.stdout.contains("one-reg/vm_fd_enotty"))
        #expect(!r.stdout.contains("sync-regs/"), "both --suite values count, and --exclude drops checks")
        let help = try kvmcheck(["list", "--help"])
        #expect(!help.stdout.contains("suites to run"))
        let all = try kvmcheck(["list", "--exclude", "*"])
        #expect(all.status == 2 && all.stderr.hasPrefix("kvmcheck: no check matches"), "\(all.stderr)")
    }
}

/// `--cap NAME=N` (repeatable) and its alias `--debug-cr3-cap N`: bad input is one usage line
/// and exit 2 before anything runs; good input reaches every child as one argument.
@Suite struct ProposedCapabilityOptionTests {
    static let cr3 = "KVM_CAP_X86_GUEST_DEBUG_CR3"

    /// A temporary copy of patches/*.md, each file's text passed through `edit`; the caller removes it.
    static func patchesCopy(_ edit: (_ file: String, _ text: String) -> String) throws -> String {
        let dir = NSTemporaryDirectory() + "kvmcheck-patches-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let source = repositoryRoot.appendingPathComponent("patches")
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file.hasSuffix(".md") {
            let text = try String(contentsOfFile: source.appendingPathComponent(file).path, encoding: .utf8)
            try edit(file, text).write(toFile: "\(dir)/\(file)", atomically: true, encoding: .utf8)
        }
        return dir
    }

    @Test(arguments: [
        (["--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3"], "expected NAME=NUMBER"),
        (["--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3=abc"], "'abc' is not a number"),
        (["--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3=0"], "a capability number is above 0"),
        (["--cap=KVM_CAP_X86_GUEST_DEBUG_CR3=-3"], "a capability number is above 0"),
        (["--cap", "=5"], "the name must be a capability name"),
        (["--cap", "KVM_CAP_NO_SUCH_THING=5"], "no check requires it (known: "),
        (["--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3=250", "--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3=251"],
         "KVM_CAP_X86_GUEST_DEBUG_CR3 is 250 (--cap) and 251 (--cap): give one number"),
        (["--cap", "KVM_CAP_X86_GUEST_DEBUG_CR3=250", "--debug-cr3-cap", "251"],
         "KVM_CAP_X86_GUEST_DEBUG_CR3 is 250 (--cap) and 251 (--debug-cr3-cap): give one number"),
        (["--debug-cr3-cap", "0"], "--debug-cr3-cap must be a capability number above 0, not 0"),
    ] as [([String], String)])
    func badCapIsOneUsageLine(arguments: [String], message: String) throws {
        for command in ["run", "caps", "bench"] {
            let r = try kvmcheck([command] + arguments)
            #expect(r.status == 2, "\(command) \(arguments): \(r.stderr)")
            #expect(r.stdout.isEmpty, "nothing runs")
            #expect(r.stderr.hasPrefix("kvmcheck: ") && r.stderr.contains(message), "\(arguments): \(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
    }

    @Test func theSameNumberTwiceIsNoConflict() throws {
        var caps = ProposedCapabilities()
        try caps.assign(Self.cr3, 250, source: "--cap")
        try caps.assign(Self.cr3, 250, source: "--debug-cr3-cap")
        #expect(caps[Self.cr3] == .init(number: 250, source: "--cap"), "the first source stays")
        #expect(throws: ProposedCapabilityError.self) { try caps.assign(Self.cr3, 251, source: "patches/x.md") }
    }

    @Test func flagsWinOverManifests() throws {
        var flags = ProposedCapabilities(), manifests = ProposedCapabilities()
        try flags.assign("KVM_CAP_A", 300, source: "--cap")
        try manifests.assign("KVM_CAP_A", 245, source: "patches/a.md")
        try manifests.assign("KVM_CAP_B", 246, source: "patches/b.md")
        let merged = flags.filling(from: manifests)
        #expect(merged.numbers == ["KVM_CAP_A": 300, "KVM_CAP_B": 246])
        #expect(merged.notes == ["KVM_CAP_A taken as 300 (--cap)", "KVM_CAP_B taken as 246 (patches/b.md)"])
    }

    @Test func parseAssignmentSplitsAtTheFirstEquals() throws {
        let parsed = try ProposedCapabilities.parseAssignment("KVM_CAP_FOO_2=250")
        #expect(parsed.name == "KVM_CAP_FOO_2" && parsed.number == 250)
        #expect(throws: ProposedCapabilityError.self) { try ProposedCapabilities.parseAssignment("KVM_CAP_FOO=25=0") }
    }

    /// The child gets every number with its source in one argument, and reads back the same settings.
    @Test func childArgumentRoundTrip() throws {
        var settings = CheckSettings()
        try settings.proposedCapabilities.assign(Self.cr3, 9999, source: "--debug-cr3-cap")
        try settings.proposedCapabilities.assign("KVM_CAP_OTHER", 12, source: "patches/odd, name=x \"q\".md")
        let invocation = ChildInvocation(id: "debug-cr3/x/cpl0", settings: settings, parentPID: 7, deadlineSeconds: 3)
        let capArguments = invocation.arguments.filter { $0.hasPrefix("--caps=") }
        #expect(capArguments.count == 1, "\(invocation.arguments)")
        #expect(try ChildInvocation.parse(invocation.arguments).get() == invocation)
        #expect(ChildInvocation(id: "a/b", settings: CheckSettings(), parentPID: 7, deadlineSeconds: 3).arguments
            .allSatisfy { !$0.hasPrefix("--caps") }, "no numbers, no argument")
        for bad in ["--caps=", "--caps={\"K\":{\"number\":0,\"source\":\"s\"}}", "--caps=K=5"] {
            #expect(throws: ChildArgumentError.self, "\(bad)") {
                try ChildInvocation.parse(["__check", "a/b", "--parent=7", "--deadline=3", bad]).get()
            }
        }
    }

    /// Two manifests giving one capability two numbers is bad input (exit 2, one line), flag or not.
    @Test func manifestsDisagreeingIsAUsageError() throws {
        let dir = try Self.patchesCopy { file, text in
            file != "guestdbg-blockirq.md" ? text
                : text.replacingOccurrences(of: "- **suites**:", with: "- **capability**: \(Self.cr3) = 246\n- **suites**:")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try kvmcheck(["run", "--suite", "debug-cr3", "--patches", dir, "--device", "/nonexistent/kvm"])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(r.stdout)")
        #expect(r.stderr.hasPrefix("kvmcheck: series manifests: \(Self.cr3) is 245 (patches/cr3-debug-exit.md) and 246 (patches/guestdbg-blockirq.md)"),
                "\(r.stderr)")
        let settled = try kvmcheck(["run", "--suite", "debug-cr3", "--patches", dir, "--device", "/nonexistent/kvm", "--cap", "\(Self.cr3)=247"])
        #expect(settled.status == 2, "a flag does not hide a contradiction in patches/: \(settled.stderr)")
    }

    @Test func oneManifestGivingACapabilityTwoNumbersIsAFileLineError() {
        let text = "# T\n- **subject**: s\n- **link**: l\n- **status**: s\n- **suites**: x\n"
            + "- **capability**: KVM_CAP_A = 250\n- **capability**: KVM_CAP_A = 251\n"
        #expect(throws: ManifestError(file: "m.md", line: 7, reason: "KVM_CAP_A is already 250 above: one number per capability")) {
            try SeriesManifest.parse(text, series: "m", file: "m.md")
        }
    }

    @Test func theSuiteNamesItsCapability() {
        // Other series may add capabilities of their own: only this one's entry is pinned.
        #expect(ProposedCapabilities.required(by: SuiteRegistry.all(includeHidden: true))[Self.cr3] == "cr3-debug-exit")
    }

    /// End to end (needs KVM): each way of giving the number reaches the child's SKIP text and the header.
    @Test(.enabled(if: kvmUsable, kvmUnusableReason))
    func theNumberAndItsSourceReachTheCheck() throws {
        let select = ["run", "--suite", "debug-cr3", "--filter", "*sw_breakpoint_two_roots/cpl0"]
        for (flags, source) in [(["--cap", "\(Self.cr3)=9998"], "--cap"), (["--debug-cr3-cap", "9997"], "--debug-cr3-cap"),
                                (["--cap=\(Self.cr3)=9996", "--debug-cr3-cap=9996"], "--cap")] {
            let number = flags.last!.split(separator: "=").last.map(String.init)!
            let r = try kvmcheck(select + flags)
            #expect(r.status == 4, "every selected check skipped: \(r.stderr)")
            #expect(r.stdout.contains("\(Self.cr3) taken as \(number) (\(source))"), "\(r.stdout)")
            #expect(r.stdout.contains("# SKIP KVM_CHECK_EXTENSION(\(number)) = 0: \(Self.cr3) absent (number \(number) from \(source))"),
                    "\(r.stdout)")
        }
    }

    /// Without a number anywhere, the SKIP says where to give one (needs KVM).
    @Test(.enabled(if: kvmUsable, kvmUnusableReason))
    func noNumberNamesTheOptionAndTheManifest() throws {
        let dir = try Self.patchesCopy { _, text in
            text.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("- **capability**:") }.joined(separator: "\n")
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try kvmcheck(["run", "--suite", "debug-cr3", "--filter", "*sw_breakpoint_two_roots/cpl0", "--patches", dir])
        #expect(r.status == 4, "every selected check skipped: \(r.stderr)")
        #expect(!r.stdout.contains("taken as"))
        #expect(r.stdout.contains("# SKIP no number configured for \(Self.cr3) (unmerged, no fixed number): "
                                  + "pass --cap \(Self.cr3)=N or add a capability line to patches/cr3-debug-exit.md"), "\(r.stdout)")
    }
}
