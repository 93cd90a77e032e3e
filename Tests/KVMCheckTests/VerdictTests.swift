@testable import CheckKit
import Foundation
import KVMKit
@testable import Suites
import Testing

/// Splats and the kernel log: pure logic, no KVM needed.
struct KernelLogTests {
    @Test func kmsgRecordsParseToSequenceAndFirstLine() {
        let r = parseKmsgRecord("4,1234,5678901,-;WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2\n SUBSYSTEM=kvm\n")
        #expect(r == KernelLogRecord(sequence: 1234, text: "WARNING: CPU: 0 PID: 1 at x.c:1 f+0x1/0x2"))
        #expect(parseKmsgRecord("no prefix here") == nil)
    }

    @Test func aSplatTurnsPassAndSkipNotOkAndQuotesItsFirstLines() {
        let log = ["kvm: harmless", "BUG: unable to handle page fault for address: 0000000000000008", "#PF: supervisor read access",
                   "Oops: 0000 [#1] PREEMPT SMP", "Call Trace:", " <TASK>", " a+0x1", " b+0x2", " c+0x3", " d+0x4", " e+0x5"]
        for before in [Verdict.pass, .skip(reason: "gap")] {
            guard case .fail(let f) = KernelSplat.judge(before, log: log) else { Issue.record("\(before) stayed"); continue }
            #expect(f.message == "the kernel logged a splat while the check ran: BUG: unable to handle page fault for address: 0000000000000008")
            #expect(f.observed?.split(separator: "\n").count == KernelSplat.quotedLines, "the first lines, from the splat on")
            #expect(f.observed?.hasPrefix("BUG:") == true)
        }
        let failed = Verdict.fail(Failure("the check's own finding"))
        #expect(KernelSplat.judge(failed, log: log) == failed, "a failing check keeps its own failure")
        #expect(KernelSplat.judge(.pass, log: ["kvm-pvm: INTERNAL_ERROR in batch emul: rip=0x20007 cpl=0 cr3=0x1000"]) == .pass,
                "an ordinary line is attached, not a splat")
        for marker in ["WARNING: at", "general protection fault, probably", "BUG: KASAN: slab-out-of-bounds", "UBSAN: shift-out-of-bounds",
                       "BUG: KFENCE: use-after-free", "WARNING: possible circular locking dependency detected", "Call Trace:"] {
            #expect(KernelSplat.first(in: [marker]) != nil, "\(marker)")
        }
    }

    @Test func linesBelongToTheWindowBetweenTwoMarks() throws {
        let path = NSTemporaryDirectory() + "kvmcheck-kmsg-\(getpid())"
        try "6,1,0,-;before the run\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        let log = KernelLog(source: try #require(FileLogSource.open(path)))
        let start = log.mark()
        let h = try #require(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Data("6,2,0,-;during the check\n4,3,0,-;Call Trace:\n".utf8))
        let end = log.mark()
        h.write(Data("6,4,0,-;after the check\n".utf8))
        try h.close()
        #expect(log.lines(after: start, through: end) == ["during the check", "Call Trace:"])
        let later = log.mark()
        #expect(log.lines(after: end, through: later) == ["after the check"])
    }
}

/// The harness's own misbehaving checks, through a real run, in every format.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct VerdictRunTests {
    static let selftest = ["KVMCHECK_HARNESS_SELFTEST": "1"]

    /// A run of `_harness` checks whose kernel log is a fresh file the checks append to.
    func run(_ filter: String, _ format: String) throws -> ProcessResult {
        let path = NSTemporaryDirectory() + "kvmcheck-injected-kmsg-\(getpid())-\(format)"
        try "6,1,0,-;printed before the run: no check's\n".write(toFile: path, atomically: true, encoding: .utf8)
        defer { unlink(path) }
        // One check at a time: the injected lines belong to whichever check's window they fall in.
        return try kvmcheck(["run", "--suite", "_harness", "--filter", filter, "--format", format, "--tap-version", "14", "--jobs", "1"],
                            environment: Self.selftest.merging(["KVMCHECK_KERNEL_LOG": path]) { $1 })
    }

    @Test(arguments: ["tap", "ktap", "junit", "json"])
    func aSplatInTheInjectedLogFailsTheCheckInEveryFormat(_ format: String) throws {
        let r = try run("_harness/kernel_splats_while_passing,_harness/kernel_logs_a_line", format)
        #expect(r.status == 1, "\(r.stderr)")
        #expect(!r.stdout.contains("printed before the run"), "lines from before the check started belong to no check")
        #expect(r.stdout.contains("harness line printed while the check ran"), "an ordinary line is attached to its check")
        #expect(r.stdout.contains("kvm_arch_vcpu_ioctl_run+0x5a"), "the splat lines are quoted")
        switch format {
        case "tap":
            #expect(r.lines.contains("    not ok 2 - kernel_splats_while_passing"))
            #expect(r.lines.contains("    ok 1 - kernel_logs_a_line"))
            #expect(r.lines.contains { $0.contains("kernel_log: \"WARNING: CPU: 1 PID: 4242") })
            #expect(r.stdout.contains("the kernel logged a splat while the check ran: WARNING: CPU: 1 PID: 4242"))
        case "ktap":
            #expect(r.lines.contains("  not ok 2 kernel_splats_while_passing"))
            #expect(r.lines.contains("  # kernel: Call Trace:"))
        case "junit":
            #expect(r.stdout.contains("message=\"the kernel logged a splat while the check ran: WARNING: CPU: 1 PID: 4242"))
            #expect(r.stdout.contains("kernel log while the check ran:"))
        default:
            let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let checks = try #require(doc["checks"] as? [[String: Any]])
            let splat = try #require(checks.first { $0["name"] as? String == "kernel_splats_while_passing" })
            #expect(splat["status"] as? String == "fail")
            #expect((splat["kernelLog"] as? [String])?.count == 5)
            let line = try #require(checks.first { $0["name"] as? String == "kernel_logs_a_line" })
            #expect(line["status"] as? String == "pass")
            #expect(line["kernelLog"] as? [String] == ["kvm: harness line printed while the check ran"])
        }
    }

    @Test func aFailedPreconditionSkipsItsDependentNamingItAndFailsItself() throws {
        let r = try run("_harness/*precondition*", "json")
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let checks = try #require(doc["checks"] as? [[String: Any]])
        func check(_ name: String) -> [String: Any]? { checks.first { $0["name"] as? String == name } }
        #expect(check("failing_precondition")?["status"] as? String == "fail", "the precondition's own check carries the not ok")
        #expect(check("depends_on_failing_precondition")?["status"] as? String == "skip")
        #expect(check("depends_on_failing_precondition")?["reason"] as? String
                == "precondition failed: _harness/failing_precondition: the behaviour a dependent relies on")
        #expect(check("depends_on_passing_precondition")?["status"] as? String == "pass")
        #expect((check("depends_on_passing_precondition")?["notes"] as? [String])?.first?
            .hasPrefix("precondition _harness/passing_precondition holds (checked in ") == true)
    }

    /// A race's "no splat" half cannot be judged without a kernel log: its own result says so,
    /// and a check whose evidence does not include the log gets no such note.
    @Test func aCheckJudgedByTheKernelLogSaysWhenTheLogIsUnreadable() throws {
        let filter = "_harness/judged_by_the_kernel_log,_harness/passes"
        func notes(_ log: String?) throws -> [String: [String]] {
            var env = Self.selftest
            env["KVMCHECK_KERNEL_LOG"] = log
            let r = try kvmcheck(["run", "--suite", "_harness", "--filter", filter, "--format", "json"], environment: env)
            let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
            let checks = try #require(doc["checks"] as? [[String: Any]])
            return Dictionary(uniqueKeysWithValues: checks.map { ($0["name"] as! String, $0["notes"] as? [String] ?? []) })
        }
        let unreadable = try notes("/nonexistent-kvmcheck-dir/kmsg")
        #expect(unreadable["judged_by_the_kernel_log"] == ["kernel log unreadable (cannot read /nonexistent-kvmcheck-dir/kmsg): this check's \"no splat\" half was not judged"])
        #expect(unreadable["passes"] == [])
        let path = try temporaryFile("", suffix: ".kmsg")
        #expect(try notes(path)["judged_by_the_kernel_log"] == [])
    }

    /// Under --jobs 2 a kernel log line may be another check's, and the result says so, unless
    /// the check is exclusive: it ran alone, so its lines are its own (a race's evidence).
    @Test func anExclusiveCheckIsNotToldItsLogLinesMayBeAnotherChecks() throws {
        let path = try temporaryFile("", suffix: ".kmsg")
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "_harness/kernel_logs_a_line,_harness/exclusive_check_logs_a_line",
                              "--format", "json", "--jobs", "2"], environment: Self.selftest.merging(["KVMCHECK_KERNEL_LOG": path]) { $1 })
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let checks = try #require(doc["checks"] as? [[String: Any]])
        func notes(_ name: String) -> [String] { checks.first { $0["name"] as? String == name }?["notes"] as? [String] ?? [] }
        func log(_ name: String) -> [String] { checks.first { $0["name"] as? String == name }?["kernelLog"] as? [String] ?? [] }
        #expect(log("exclusive_check_logs_a_line") == ["kvm: harness line printed while an exclusive check ran"])
        #expect(!notes("exclusive_check_logs_a_line").contains { $0.contains("may be another check's") })
        #expect(notes("kernel_logs_a_line").contains { $0.contains("may be another check's") }, "the shared case still says so")
    }

    @Test func everySubCaseIsReportedInOneFailureBlock() throws {
        let r = try run("_harness/reports_every_sub_case,_harness/cannot_be_observed", "tap")
        #expect(r.stdout.contains("message: \"4 of 5 sub-cases failed: sub-case 0; sub-case 1; sub-case 3; a sub-case that stops early: stopped\""),
                "\(r.stdout)")
        #expect(r.stdout.contains("# every sub-case ran"))
        let counted = try run("_harness/counts_sub_cases_not_comparisons", "tap")
        #expect(counted.stdout.contains("message: \"2 of 3 sub-cases failed: DR0: pc; DR0: dr6; DR2: pc; DR2: dr6\""),
                "k of n counts sub-cases, not the comparisons inside them: \(counted.stdout)")
        #expect(r.lines.contains("    ok 2 - cannot_be_observed # SKIP cannot be observed here: no positive control in the harness"))
    }

    @Test func vmmRFLAGSNotReachingTheGuestFailsThePreconditionAndSkipsBlockIRQNamingIt() throws {
        let r = try kvmcheck(["run", "--suite", "guest-debug,blockirq", "--filter", "*rflags_if_set*,blockirq/*", "--cpl", "0",
                              "--format", "json"], environment: ["KVMCHECK_MUTANT": "vmm-rflags-dropped", "KVMCHECK_HARNESS_SELFTEST": "1"])
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let checks = try #require(doc["checks"] as? [[String: Any]])
        let status = Dictionary(uniqueKeysWithValues: checks.map { ($0["id"] as! String, ($0["status"] as! String, $0["reason"] as? String)) })
        #expect(status["guest-debug/vmm_rflags_if_set_reaches_guest/cpl0"]?.0 == "fail")
        guard status["blockirq/steps_land_on_next_instruction/cpl0"]?.1?.contains("KVM_CHECK_EXTENSION") != true else { return } // no BLOCKIRQ
        for id in ["blockirq/pending_lapic_irq_delivered_without_blockirq/cpl0", "blockirq/steps_land_on_next_instruction/cpl0",
                   "blockirq/irq_delivered_after_blockirq_cleared/cpl0", "blockirq/irq_held_while_running_with_blockirq/cpl0"] {
            #expect(status[id]?.0 == "skip", "\(id)")
            #expect(status[id]?.1?.hasPrefix("precondition failed: guest-debug/vmm_rflags_if_set_reaches_guest/cpl0: ") == true, "\(id): \(status[id] as Any)")
        }
        let row = try capsRows(["KVMCHECK_MUTANT": "vmm-rflags-dropped", "KVMCHECK_HARNESS_SELFTEST": "1"])
            .first { $0["uapi"] as? String == "KVM_GUESTDBG_BLOCKIRQ" && $0["cpl"] as? Int == 0 }
        #expect(row?["status"] as? String == "precondition failed"
                && (row?["decidedBy"] as? String)?.contains("blockirq/steps_land_on_next_instruction/cpl0") == true, "\(row as Any)")
    }
}

/// Typed references: every precondition and every caps row names a registered check.
struct CheckReferenceTests {
    @Test func everyReferenceResolvesToARegisteredCheckOfThatName() {
        let suites = SuiteRegistry.all()
        let ids = Set(suites.flatMap(\.instances).map(\.id))
        for suite in suites {
            for instance in suite.instances {
                for ref in instance.check.preconditions {
                    #expect(ids.contains(ref.id(for: instance.cpl)), "\(instance.id) relies on \(ref.id(for: instance.cpl)), which is not a check")
                    #expect(ref.check.name != instance.check.name || ref.suite != suite.name, "\(instance.id) relies on itself")
                }
            }
            for feature in suite.features {
                for ref in feature.decidingChecks {
                    for level in feature.levels {
                        #expect(ids.contains(ref.id(for: level)), "caps row \(feature.name) names \(ref.id(for: level))")
                    }
                }
            }
        }
    }

    @Test func checkRefLevelsFollowTheDependent() {
        let both = Check("b", uapi: [], levels: .both) { _ in }
        let only0 = Check("o", uapi: [], levels: .only(.cpl0)) { _ in }
        let none = Check("n", uapi: []) { _ in }
        #expect(CheckRef("s", both).id(for: .cpl3) == "s/b/cpl3")
        #expect(CheckRef("s", only0).id(for: .cpl3) == "s/o/cpl0")
        #expect(CheckRef("s", none).id(for: .cpl3) == "s/n")
    }
}
