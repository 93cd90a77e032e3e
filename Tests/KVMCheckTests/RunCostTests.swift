@testable import CheckKit
import Foundation
import GuestKit
import KVMKit
import Testing
import X86Asm

// Issue 14: what makes a full run short must not make a check weaker.  The race time is a
// setting that reaches the race; a precondition shared in a chain runs once; the IDT stubs at
// fixed offsets still send every vector to its own stub; the bench's raw-syscall loop runs.

@Suite struct RaceSettingTests {
    @Test func raceSecondsOutsideItsRangeIsAUsageError() throws {
        for args in [["--race-seconds", "0"], ["--race-seconds", "-1"], ["--race-seconds", "nan"],
                     ["--race-seconds", "10"], ["--race-seconds", "3", "--timeout", "2"]] {
            let r = try kvmcheck(["run"] + args)
            #expect(r.status == 2 && r.stdout.isEmpty && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    @Test func theChildGetsTheRaceTime() throws {
        var settings = CheckSettings()
        settings.raceMilliseconds = 2000
        let invocation = ChildInvocation(id: "a/b", settings: settings, parentPID: 42, deadlineSeconds: 15)
        #expect(invocation.arguments.contains("--race-ms=2000"))
        #expect(try ChildInvocation.parse(invocation.arguments).get().settings.raceMilliseconds == 2000)
        for bad in ["--race-ms=0", "--race-ms=-5", "--race-ms=x"] {
            let parsed = ChildInvocation.parse(["__check", "a/b", "--parent=42", "--deadline=15", bad])
            guard case .failure(let e) = parsed else { Issue.record("\(bad) was accepted"); continue }
            #expect(e.description.contains("--race-ms"))
        }
    }
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct RaceDurationTests {
    /// The race's own note: how long it raced and how many KVM_RUNs it made; nil when it skipped.
    func race(_ seconds: String) throws -> (ms: Int, runs: Int)? {
        let r = try kvmcheck(["run", "--filter", "sync-regs-upstream/race_invalid_exception_vector",
                              "--race-seconds", seconds, "--format", "json", "--jobs", "1"])
        let doc = try #require(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let check = try #require((doc["checks"] as? [[String: Any]])?.first)
        if check["status"] as? String == "skip" { return nil }
        let notes = check["notes"] as? [String] ?? []
        let note = try #require(notes.first { $0.contains(" KVM_RUNs in ") }, "\(notes)")
        let words = note.split(separator: " ")
        let runs = try #require(words.firstIndex(of: "KVM_RUNs").flatMap { Int(words[$0 - 1]) })
        let ms = try #require(words.firstIndex(of: "ms").flatMap { Int(words[$0 - 1]) })
        return (ms, runs)
    }

    @Test func theRaceRunsForTheRequestedTime() throws {
        guard let short = try race("0.05"), let long = try race("0.4") else { return } // no sync regs here
        #expect((50..<400).contains(short.ms), "0.05 s raced \(short.ms) ms")
        #expect(long.ms >= 400, "0.4 s raced \(long.ms) ms")
        #expect(long.runs > short.runs && short.runs > 0, "KVM_RUNs: \(short.runs) in 0.05 s, \(long.runs) in 0.4 s")
    }
}

@Suite struct ChildReportEncodingTests {
    /// The child writes its report by hand; the runner reads it with JSONDecoder: every text a
    /// check can produce comes back unchanged.
    @Test func everyReportDecodesToItself() {
        let awkward = "quote \" backslash \\ newline \n cr \r tab \t nul \u{0} esc \u{1B} del \u{7F} ä € 𝄞 \u{2028} end"
        let reports = [
            ChildReport(outcome: .pass, notes: []),
            ChildReport(outcome: .skip, reason: awkward, notes: [awkward, ""]),
            ChildReport(outcome: .fail, failure: FailureRecord(Failure(awkward, expected: "e\u{1}", observed: nil, ioctl: "KVM_RUN", errno: "EINVAL")),
                        notes: ["precondition x holds (checked in 3 ms)"]),
            ChildReport(outcome: .error, reason: "", notes: []),
        ]
        for report in reports {
            #expect(decodeChildReport(report.json) == report, "\(report.json)")
        }
    }
}

/// Counts how often a check body ran (bodies are @Sendable; the test is serial).
final class RunCounter: @unchecked Sendable {
    var count = 0
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct SharedPreconditionTests {
    /// A BLOCKIRQ check names `if_reaches_guest` and `irq_delivered`, which names it again: one
    /// evaluation runs it once.  (The old evaluation ran it twice.)
    @Test func aPreconditionSharedInAChainRunsOnce() throws {
        let ran = RunCounter()
        let root = Check("root", uapi: []) { _ in ran.count += 1 }
        let middle = Check("middle", uapi: [], preconditions: [CheckRef("t", root)]) { _ in }
        let top = Check("top", uapi: [], preconditions: [CheckRef("t", root), CheckRef("t", middle)]) { _ in }
        let result = CheckEvaluation.evaluate(top, cpl: nil, system: try KVMSystem(), settings: CheckSettings())
        #expect(result.outcome == .pass)
        #expect(ran.count == 1)
        #expect(result.notes.count == 2 && result.notes[0].hasPrefix("precondition t/root holds")
                && result.notes[1].hasPrefix("precondition t/middle holds"), "\(result.notes)")
        // Each evaluation runs it afresh: nothing is carried from one check to the next.
        _ = CheckEvaluation.evaluate(top, cpl: nil, system: try KVMSystem(), settings: CheckSettings())
        #expect(ran.count == 2)
    }

    @Test func aFailedPreconditionIsNotReused() throws {
        let ran = RunCounter()
        let root = Check("root", uapi: []) { _ in
            ran.count += 1
            throw Failure("root fails")
        }
        let middle = Check("middle", uapi: [], preconditions: [CheckRef("t", root)]) { _ in }
        let top = Check("top", uapi: [], preconditions: [CheckRef("t", middle), CheckRef("t", root)]) { _ in }
        let result = CheckEvaluation.evaluate(top, cpl: nil, system: try KVMSystem(), settings: CheckSettings())
        guard case .skip(let why) = result.outcome else { Issue.record("\(result.outcome)"); return }
        #expect(why.contains("t/middle") && ran.count == 1, "\(why)")
    }
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct IDTStubTests {
    /// The IDT's stubs sit at fixed 16-byte offsets: each exception must still be reported with
    /// its own vector and frame, with and without a CPU-pushed error code.  At CPL3 (the gates
    /// are DPL3); `int N` is not used: kvm_pvm raises #UD for it above 3 at CPL3 and cannot
    /// emulate it at CPL0.  Vector 0xAA (an IRQ) is the BLOCKIRQ suite's.
    @Test(arguments: [("int3", 3), ("ud2", 6), ("rdmsr", 13)])
    func eachVectorReachesItsOwnStub(instruction: String, vector: Int) throws {
        let g = try Guest(system: KVMSystem(), cpl: .cpl3) { a in
            a.onFault(resumeAt: "after")
            a.label("fault")
            switch instruction {
            case "int3": a.int3()
            case "ud2": a.ud2()
            default: a.mov(.ecx, 0x10); a.rdmsr()
            }
            a.label("after")
            a.clearFault()
            a.ucallDone()
        }
        let event = try g.next()
        guard case .exception(let e) = event else { Issue.record("\(instruction): \(event)"); return }
        #expect(e.vector == ExceptionVector(vector), "\(instruction)")
        // #BP is a trap (RIP after the int3); #UD and #GP are faults (RIP of the instruction).
        let expectedRIP = instruction == "int3" ? g.address("after") : instruction == "ud2" ? g.address("fault") : g.address("fault") + 5
        #expect(e.rip == expectedRIP, "\(instruction): frame RIP")
        try g.expectDone()
        #expect(GuestEnvironment.handlerEntry(vector: vector) == GuestLayout.handlers + UInt64(16 * vector))
    }
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct BenchLoopTests {
    @Test func everyLoopKindRunsAndABadKindIsAUsageError() throws {
        for kind in ["raw", "c", "swift"] {
            let r = try kvmcheck(["__bench-loop", kind, "50"])
            #expect(r.status == 0, "\(kind): \(r.stderr)")
        }
        #expect(try kvmcheck(["__bench-loop", "asm", "5"]).status == 2)
    }
}

/// Under --jobs, a race (a check that runs for a set time) starts first; results keep check order.
@Suite struct DispatchOrderTests {
    static func check(_ name: String, fixed: Bool = false) -> Check { Check(name, uapi: [], fixedDuration: fixed) { _ in } }

    @Test func fixedDurationChecksStartFirstOnlyWhenSeveralRun() {
        let checks = [Self.check("a"), Self.check("race1", fixed: true), Self.check("b"), Self.check("race2", fixed: true)]
        #expect(Runner.dispatchOrder(checks, workers: 2) == [1, 3, 0, 2])
        #expect(Runner.dispatchOrder(checks, workers: 1) == [0, 1, 2, 3], "serial runs keep check order")
    }

    @Test func theBoardHandsOutThatOrderAndAnswersByCheckIndex() {
        let board = ResultBoard(order: [1, 3, 0, 2])
        var claimed: [Int] = []
        while let i = board.claim(exclusive: { _ in false }) {
            claimed.append(i)
            board.finish(i, CheckResult(id: "s/\(i)", suite: "s", name: "\(i)", verdict: .pass, notes: [], informational: false, milliseconds: 0))
        }
        #expect(claimed == [1, 3, 0, 2])
        #expect((0..<4).map { board.result($0)?.id } == ["s/0", "s/1", "s/2", "s/3"])
    }
}
