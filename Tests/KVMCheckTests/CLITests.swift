import Foundation
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
