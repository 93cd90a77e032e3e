import Foundation
import Testing

/// The runner end to end, through the real binary: isolation, timeouts, crashes.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct RunnerTests {
    let selftest = ["KVMCHECK_HARNESS_SELFTEST": "1"]

    @Test func hangCrashAndTripleFaultEachBecomeOneResultAndTheRunGoesOn() throws {
        let started = Date()
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "_harness/passes,_harness/guest_*,_harness/child_*,_harness/fails_*,_harness/skips", "--timeout", "1.5", "--tap-version", "14"], environment: selftest)
        let elapsed = Date().timeIntervalSince(started)
        #expect(r.status == 1)
        let lines = r.lines
        #expect(lines.contains("    ok 1 - passes"))
        #expect(lines.contains("    not ok 2 - guest_spins_forever # TIMEOUT 1.5 seconds"))
        #expect(lines.contains("      message: \"unexpected failure: KVM_RUN did not return within 300 ms (watchdog)\""))
        #expect(lines.contains("    not ok 4 - child_crashes"))
        #expect(r.stdout.contains("# child output: ") && r.stdout.contains("Fatal error: Index out of range"), "the crash says why")
        #expect(lines.contains("      observed: \"KVM_EXIT_SHUTDOWN (triple fault)\""))
        #expect(lines.contains("    ok 7 - skips # SKIP KVM_CAP_NOTHING (0) absent"), "checks after the hang still ran")
        #expect(lines.last { !$0.isEmpty } == "# 1 passed, 5 failed, 1 skipped")
        #expect(elapsed < 10, "one hang costs about one timeout, took \(elapsed) s")
    }

    @Test func resultsStreamBeforeTheRunEnds() throws {
        // The hanging check comes second: the first result must be on stdout before its timeout.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: kvmcheckBinary)
        process.arguments = ["run", "--suite", "_harness", "--filter", "passes,guest_spins_forever", "--timeout", "3", "--tap-version", "14"]
        process.environment = childEnvironment(selftest)
        let out = Pipe()
        process.standardOutput = out
        process.standardError = Pipe()
        try process.run()
        var seen = Data()
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline, !String(decoding: seen, as: UTF8.self).contains("ok 1 - passes") {
            seen.append(out.fileHandleForReading.availableData)
        }
        let early = String(decoding: seen, as: UTF8.self)
        process.waitUntilExit()
        #expect(early.contains("    ok 1 - passes"), "streamed before the timeout: \(early)")
    }
}

/// The real suites on the real kernel, read by real TAP consumers.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct EndToEndTests {
    @Test func defaultRunPrintsHeaderAndAtLeast25Checks() throws {
        let r = try kvmcheck(["run"])
        #expect([0, 1].contains(r.status), "0 or 1, never a usage error: \(r.stderr)")
        #expect(r.lines.first == "TAP version 13")
        #expect(r.lines[2].contains("kernel ") && r.lines[2].contains("KVM flavour ") && r.lines[2].contains("KVM API version "))
        let checkLines = r.lines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }
        #expect(checkLines.count >= 25, "\(checkLines.count) checks")
        if TapPy.available { #expect(try TapPy.problems(in: r.stdout) == nil) }
    }

    @Test(.enabled(if: which("prove") != nil, "prove not installed"))
    func proveParsesTheFlatRun() throws {
        let r = try kvmcheck(["run", "--tap-version", "13"])
        let file = try temporaryFile(r.stdout)
        let prove = try runProcess(which("prove")!, ["-e", "cat", file])
        #expect(!prove.stdout.contains("Parse errors"), "\(prove.stdout)")
        let count = r.lines.filter { $0.hasPrefix("ok ") || $0.hasPrefix("not ok ") }.count
        #expect(prove.stdout.contains("Tests=\(count)"), "\(prove.stdout)")
        // prove's verdict must agree with ours.
        #expect((prove.status == 0) == (r.status == 0), "prove \(prove.status), kvmcheck \(r.status)")
    }

    @Test(.enabled(if: TapPy.available, TapPy.unavailableReason))
    func tapPyParsesBothVersionsOfARealRun() throws {
        #expect(try TapPy.problems(in: kvmcheck(["run", "--suite", "one-reg"]).stdout) == nil)
        #expect(try TapPy.problems(in: kvmcheck(["run", "--tap-version", "13", "--suite", "sync-regs"]).stdout) == nil)
    }

    @Test func capsTableHasARowPerUAPIWithAVerdict() throws {
        let rows = try capsRows()
        for uapi in ["KVM_CAP_SYNC_REGS (REGS|SREGS|EVENTS)", "KVM_SYNC_REGS_CONDITIONAL (bit 63)",
                     "KVM_{GET,SET}_ONE_REG (x86 MSRs)", "KVM_GET_REG_LIST (x86)", "KVM_REG_GUEST_SSP"] {
            let row = rows.first { $0["uapi"] as? String == uapi }
            #expect(row != nil, "row \(uapi)")
            #expect(capsStatuses.contains(row?["status"] as? String ?? ""), "\(row as Any)")
        }
    }
}
