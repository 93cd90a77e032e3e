import CheckKit
import Reporting
import SeriesPlan
import Foundation
import KVMKit
@testable import Suites
import Testing

@Suite struct DebugRegisterDecodingTests {
    @Test func dr7ArmingMatchesTheUpstreamSelftestValues() {
        for i in 0..<4 {
            // debug_regs.c: execute = 1 << (2i+1); write len 4 adds 0x000d0000 << 4i.
            #expect(DR7.arming(i, .execute).rawValue == 1 << UInt64(2 * i + 1))
            #expect(DR7.arming(i, .write, length: 4).rawValue == 1 << UInt64(2 * i + 1) | 0x000d_0000 << UInt64(4 * i))
        }
        #expect(DR7.arming(0, .readWrite, length: 8).rawValue == 0x000b_0002, "RW=11, LEN=10 (8 bytes)")
        #expect(DR7.arming(3, .write, length: 2, global: false).rawValue == 0x5000_0040, "L3, RW=01, LEN=01")
    }

    @Test func dr7DecodesEveryArmingItEncodes() {
        for n in 0..<4 {
            for access in [DR7.Access.write, .readWrite] {
                for length in [1, 2, 4, 8] {
                    let decoded = (DR7.fixed | DR7.arming(n, access, length: length)).breakpoints
                    #expect(decoded == [DR7.Breakpoint(index: n, access: access, length: length, local: false, global: true)])
                }
            }
            #expect(DR7.arming(n, .execute).breakpoints.map(\.length) == [1])
        }
        #expect(DR7(0x400).description == "0x400 (nothing armed)")
        #expect((DR7.fixed | .generalDetect | .arming(1, .write, length: 4)).description == "0xd02408 (G1 write len 4, GD)")
    }

    @Test func dr6ValuesAndNames() {
        #expect(DR6.reporting().rawValue == 0xFFFF_0FF0)
        #expect(DR6.reporting(singleStep: true).rawValue == 0xFFFF_4FF0, "BS, as debug_regs.c expects on each step")
        #expect(DR6.reporting(registerAccess: true).rawValue == 0xFFFF_2FF0, "BD for DR7.GD")
        for i in 0..<4 { #expect(DR6.reporting(breakpoints: [i]).rawValue == 0xFFFF_0FF0 | 1 << UInt64(i)) }
        #expect(DR6(0xFFFF_0FF5).breakpointsHit == [0, 2])
        #expect(DR6(0xFFFF_4FF1).description == "0xffff4ff1 (B0|BS)")
        #expect(DR6(0).description.contains("active-low"), "a zero DR6 is not a DR6 value and says so")
    }
}

@Suite struct CR3CanaryRuleTests {
    let cr3: UInt64 = 0x1000

    @Test func findingTellsTheCanaryFromCR3FromAnythingElse() {
        #expect(CR3SlotFinding(slot: cr3CanaryBase, canary: cr3CanaryBase, cr3: cr3) == .untouched)
        #expect(CR3SlotFinding(slot: cr3, canary: cr3CanaryBase, cr3: cr3) == .filled)
        #expect(CR3SlotFinding(slot: 0, canary: cr3CanaryBase, cr3: cr3) == .overwritten(0), "a zero read is not 'untouched'")
        #expect(cr3CanaryBase >> 52 != 0, "the canary has reserved CR3 bits set, so no real CR3 equals it")
    }

    @Test func onlyTheConsistentCasesPass() {
        let cases: [(CR3SlotFinding, Bool?, Bool)] = [
            (.filled, true, true),
            (.untouched, true, false), // advertised but not written
            (.overwritten(0), true, false), // zero is not CR3
            (.untouched, false, true), // the honest gap
            (.untouched, nil, true),
            (.filled, false, false), // written but not advertised: wrong cap number?
            (.filled, nil, false),
            (.overwritten(0x2000), false, false), // scribbles past the struct
            (.overwritten(0), nil, false),
        ]
        for (finding, advertised, consistent) in cases {
            #expect(judgeCR3Slot(finding, advertised: advertised).consistent == consistent, "\(finding), advertised \(String(describing: advertised))")
        }
    }
}

@Suite struct ManifestTests {
    let good = """
        # A series
        - **subject**: [PATCH 0/3] something
        - **link**: https://lore.kernel.org/all/x@y/
        - **status**: unmerged
        - **suites**: debug-cr3, sync-regs (planned)
        - **capability**: KVM_CAP_X86_GUEST_DEBUG_CR3 = 245 (the RFC's number)

        ## uAPI symbols
        - `KVM_CAP_X86_GUEST_DEBUG_CR3` — the cap
        - `struct kvm_debug_exit_arch.cr3` — the field
        """

    @Test func parsesFieldsCapabilitiesAndSymbols() throws {
        let m = try SeriesManifest.parse(good, series: "s", file: "s.md")
        #expect(m.title == "A series" && m.status == "unmerged")
        #expect(m.suites == ["debug-cr3", "sync-regs"])
        #expect(m.capabilities == ["KVM_CAP_X86_GUEST_DEBUG_CR3": 245])
        #expect(m.symbols == ["KVM_CAP_X86_GUEST_DEBUG_CR3", "struct kvm_debug_exit_arch.cr3"])
    }

    @Test func malformedInputNamesFileLineAndReason() {
        let badCap = good.replacingOccurrences(of: "= 245", with: "= soon")
        #expect(throws: ManifestError(file: "s.md", line: 6, reason: "capability must read 'KVM_CAP_NAME = NUMBER', got 'KVM_CAP_X86_GUEST_DEBUG_CR3 = soon (the RFC's number)'")) {
            try SeriesManifest.parse(badCap, series: "s", file: "s.md")
        }
        let noLink = good.replacingOccurrences(of: "- **link**: https://lore.kernel.org/all/x@y/\n", with: "")
        #expect(throws: ManifestError(file: "s.md", line: nil, reason: "missing '- **link**:' line")) {
            try SeriesManifest.parse(noLink, series: "s", file: "s.md")
        }
        let badSymbol = good + "\n- KVM_NO_BACKTICKS"
        #expect(throws: ManifestError.self) { try SeriesManifest.parse(badSymbol, series: "s", file: "s.md") }
    }

    @Test func everyManifestInPatchesParsesAndListsItsSuites() throws {
        let dir = repositoryRoot.appendingPathComponent("patches").path
        for suite in SuiteRegistry.all() {
            let m = try SeriesManifest.load(series: suite.series, from: dir)
            #expect(m.suites.contains(suite.name), "patches/\(suite.series).md lists suite \(suite.name)")
            #expect(!m.symbols.isEmpty)
        }
        let cr3 = try SeriesManifest.load(series: debugCR3Suite.series, from: dir)
        #expect(cr3.capabilities[debugCR3Capability] != nil, "the CR3 cap number lives in the manifest")
    }
}

/// The guest-debug suites against the real kernel: enough checks, fast, each failure explained.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct GuestDebugSuitesEndToEndTests {
    static let suites = "guest-debug,pvm-guest-debug,blockirq,debug-cr3"

    @Test func atLeast40ChecksAndEveryFailureSaysExpectedAndObserved() throws {
        let r = try kvmcheck(["run", "--suite", Self.suites, "--tap-version", "14"])
        #expect([0, 1].contains(r.status), "\(r.stderr)")
        let checks = r.lines.filter { $0.hasPrefix("    ok ") || $0.hasPrefix("    not ok ") }
        #expect(checks.count >= 40, "\(checks.count) checks")
        #expect(!r.stdout.contains("child killed") && !r.stdout.contains("# TIMEOUT"), "no check crashed or hung")
        // Each `not ok` is followed by a YAML block with expected and observed.
        for (i, line) in r.lines.enumerated() where line.hasPrefix("    not ok ") {
            let block = r.lines[(i + 1)...].prefix { !$0.hasPrefix("      ...") }
            #expect(block.contains { $0.hasPrefix("      expected:") } && block.contains { $0.hasPrefix("      observed:") }, "\(line)")
        }
        if TapPy.available { #expect(try TapPy.problems(in: r.stdout) == nil) }
    }

    @Test func cr3CapNumberComesFromTheFlagOrTheManifest() throws {
        let fromManifest = try kvmcheck(["run", "--suite", "debug-cr3", "--filter", "*two_roots/cpl0"])
        #expect(fromManifest.stdout.contains("KVM_CAP_X86_GUEST_DEBUG_CR3 taken as 245 (patches/cr3-debug-exit.md)"))
        let fromFlag = try kvmcheck(["run", "--suite", "debug-cr3", "--filter", "*two_roots/cpl0", "--debug-cr3-cap", "9999"])
        #expect(fromFlag.stdout.contains("taken as 9999 (--debug-cr3-cap)"))
        #expect(fromFlag.stdout.contains("KVM_CHECK_EXTENSION(9999) = 0: KVM_CAP_X86_GUEST_DEBUG_CR3 absent (number 9999 from --debug-cr3-cap)"))
    }

    @Test func malformedManifestIsOneMessageAndExit2() throws {
        let dir = NSTemporaryDirectory() + "kvmcheck-patches-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("patches").path) {
            try FileManager.default.copyItem(atPath: repositoryRoot.appendingPathComponent("patches/\(file)").path, toPath: "\(dir)/\(file)")
        }
        let path = "\(dir)/cr3-debug-exit.md"
        let text = try String(contentsOfFile: path, encoding: .utf8).replacingOccurrences(of: "= 245", with: "= ?")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try kvmcheck(["run", "--suite", "debug-cr3", "--patches", dir])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty, "nothing runs")
        #expect(r.stderr.hasPrefix("kvmcheck: malformed series manifest: \(path):"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1)
    }

    @Test func capsHasARowPerGuestDebugUAPI() throws {
        let rows = try capsRows()
        for uapi in ["KVM_GUESTDBG_SINGLESTEP", "KVM_GUESTDBG_USE_HW_BP", "KVM_GUESTDBG_USE_SW_BP", "KVM_GUESTDBG_BLOCKIRQ",
                     "KVM_CAP_X86_GUEST_DEBUG_CR3", "guest-owned DR7 (#DB to the guest)", "guest int3 (#BP to the guest)"] {
            let row = rows.first { $0["uapi"] as? String == uapi }
            #expect(capsStatuses.contains(row?["status"] as? String ?? ""), "\(uapi): \(row as Any)")
        }
        let text = try kvmcheck(["caps"])
        #expect(text.lines.allSatisfy { $0.count <= 120 }, "the table fits 120 columns")
        #expect(text.lines.contains { $0.hasPrefix("present") || $0.hasPrefix("broken") || $0.hasPrefix("absent") }, "verdict first")
    }
}
