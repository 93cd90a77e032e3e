import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// The conditional-sync patch's kvm_run_wants_regs() reads kvm_run.exit_reason back from the page
// userspace shares with KVM, after KVM wrote the real reason.  A second userspace thread can put
// a reason past the 1024-bit kvm_save_regs_on_exit there in between; the guard
// `if (reason >= nr_reasons) return false;` must then stop the bitmap read (0xffffffff would read
// 512 MiB past the page).  gcov has no counter for that line, so the check shows it ran: the
// register copy is skipped on an exit whose real reason is marked.

let exitReasonRaceCheck = Check(
    "race_exit_reason_past_bitmap", uapi: ["KVM_SYNC_REGS_CONDITIONAL", "kvm_run.kvm_save_regs_on_exit", "kvm_run.exit_reason"],
    requires: [allSyncSets], preconditions: [CheckRef("sync-regs", conditionalSyncOnMarkedExitsCheck)],
    // Alone: the racer must run beside the vCPU thread, on a CPU no other check's child takes.
    exclusive: true, fixedDuration: true, judgesKernelLog: true, killedBy: [.conditionalSyncBitmapOverread]) { t in
    var tallies: [String] = [], guardShown = false
    for kind in [SyncRegsRacer.Kind.exitReasonMax, .exitReason1024] {
        t.subCase("racer writing \(kind)") {
            let tally = try exitReasonRace(t, kind)
            t.note(tally.summary(kind, raceMilliseconds: t.settings.raceMilliseconds)
                   + (tally.racerReasonRead == 0 ? " (no marked run saw this value reach KVM's read)" : ""))
            tallies.append("\(kind): \(tally.counts(kind))")
            if kind == .exitReason1024 { guardShown = tally.racerReasonRead > 0 }
        }
    }
    // Only the 1024 race shows the guard: bit 1024 is set just past the bitmap, so a missing or
    // off-by-one guard copies there, and an intact canary means the guard returned false.  At
    // 0xffffffff an intact canary shows only that KVM read the racer's reason (an unguarded read
    // 512 MiB away may find a 0 bit; its evidence is the kernel log).  No 1024 run read the
    // racer's reason (e.g. one CPU): the subject was not exercised.  Not a pass.
    if !guardShown && tallies.count == 2 {
        throw Skip.cannotObserve("no KVM_RUN read the racer's exit reason 1024, which alone tells the guard from a read past the bitmap (\(tallies.joined(separator: "; ")))")
    }
}

/// What the KVM_RUNs of one race did with kvm_run.s.regs.
struct ExitReasonRaceTally {
    /// Runs with the I/O exit marked in the bitmap: copied (KVM read the real reason) or not (KVM
    /// read the racer's reason: at 1024 that is the guard, see the check).
    var marked = 0, racerReasonRead = 0
    /// Runs with nothing marked: a copy means KVM read a bit outside the bitmap.
    var unmarked = 0, unmarkedCopied = 0
    var racerRounds: UInt = 0

    func counts(_ kind: SyncRegsRacer.Kind) -> String {
        let read = kind == .exitReason1024 ? "guard taken in" : "no copy (KVM read the racer's reason) in"
        return "\(read) \(racerReasonRead) of \(marked) marked runs, \(unmarkedCopied) of \(unmarked) unmarked runs copied, \(racerRounds) racer stores over KVM's reason"
    }

    func summary(_ kind: SyncRegsRacer.Kind, raceMilliseconds: Int) -> String {
        "\(kind), \(raceMilliseconds) ms (--race-seconds): \(counts(kind))"
    }
}

/// The guest: `inc rbx; out 0x80, al` until the VMM stores a non-zero stop flag, then done.
private let racePort: UInt16 = 0x80
private let rbxStart: Int64 = 0x5A17_0000

/// kvm_run.s.regs before run `n`: a pattern no copy-out can produce (rip is non-canonical)
/// and a different rbx per run, so neither an earlier run's canary nor a zeroed page matches.
private func canary(_ n: Int) -> kvm_regs {
    let c: UInt64 = 0xC6C6_C6C6_C6C6_C6C6
    return kvm_regs(rax: c, rbx: 0xCA7A_0000_0000_0000 | UInt64(n), rcx: c, rdx: c, rsi: c, rdi: c, rsp: c, rbp: c,
                    r8: c, r9: c, r10: c, r11: c, r12: c, r13: c, r14: c, r15: c, rip: c, rflags: c)
}

private enum RegsCopy { case copied, untouched, neither }

/// Whether KVM replaced the canary with the vCPU's registers, left it, or wrote something else.
private func regsCopy(_ g: Guest, canary: kvm_regs) throws -> RegsCopy {
    let synced = uapiBytes(of: g.vcpu.syncedRegs)
    if synced == uapiBytes(of: canary) { return .untouched }
    return synced == uapiBytes(of: try g.vcpu.regs()) ? .copied : .neither
}

func exitReasonRace(_ t: CheckContext, _ kind: SyncRegsRacer.Kind) throws -> ExitReasonRaceTally {
    let stopFlag = GuestLayout.data
    var options = GuestOptions()
    options.maxExits = .max // bounded by time, not exits
    let g = try t.guest(options) { a in
        a.mov(.rbx, rbxStart)
        a.xor(.rcx, .rcx)
        a.label("loop")
        a.inc(.rbx)
        a.out(UInt8(racePort), .al)
        a.cmp(.rcx, .absolute(stopFlag))
        a.jcc(.e, "loop")
        a.ucallDone()
    }
    let words = Int(CKVM_SAVE_REGS_ON_EXIT_WORDS)
    let markIO = [1 << UInt64(KVM_EXIT_IO)] + [UInt64](repeating: 0, count: words - 1)
    let markNone = [UInt64](repeating: 0, count: words)
    g.vcpu.syncValidRegs = [.regs, .conditional]
    // Bit 1024 set just past the bitmap: a guard off by one copies on an unmarked run that read 1024.
    g.vcpu.wordPastSaveRegsBitmap = 1
    var runs = 0, notIO: [String] = [], neither = 0
    /// One KVM_RUN with a fresh canary; nil when it was not the guest's OUT (then `notIO` says what).
    func run(marked: Bool) throws -> RegsCopy? {
        g.vcpu.saveRegsOnExitBitmap = marked ? markIO : markNone
        let poison = canary(runs)
        g.vcpu.syncedRegs = poison
        g.vcpu.ioExitPortField = 0xC0DE // KVM rewrites it on the I/O exit; exit_reason is the racer's to write
        runs += 1
        try g.vcpu.runRaw()
        guard g.vcpu.ioExitPortField == racePort else {
            notIO.append("run \(runs): kvm_run.io.port \(hex(g.vcpu.ioExitPortField)), exit_reason \(hex(g.vcpu.lastExit.reason))")
            return nil
        }
        let copy = try regsCopy(g, canary: poison)
        if copy == .neither { neither += 1 }
        return copy
    }

    // Positive control, no racer: every marked I/O exit replaces the canary.
    var controlCopies = 0
    try Watchdog.guarding(milliseconds: 2000) {
        for _ in 0..<4 { if try run(marked: true) == .copied { controlCopies += 1 } }
    }
    try t.assert(controlCopies == 4 && notIO.isEmpty, "control without the racer: kvm_run.s.regs on 4 marked KVM_EXIT_IO exits",
                 expected: "copied each time (the observation can see a copy)",
                 observed: "copied \(controlCopies) time(s)\(notIO.isEmpty ? "" : "; " + notIO.joined(separator: "; "))")

    var tally = ExitReasonRaceTally()
    let racer = try SyncRegsRacer(g.vcpu, kind)
    // The race time starts once the thread runs (under TCG a new thread takes tens of ms to).
    let running = racer.waitUntilRunning(milliseconds: 1000)
    if !running { t.note("\(kind): the racer thread made no round within 1 s of its start") }
    let deadline = monotonicSeconds() + Double(t.settings.raceMilliseconds) / 1000
    // Alternating marked and unmarked exits; stop at the first non-I/O exit (its reason is unknowable here).
    let raced = Result {
        try Watchdog.guarding(milliseconds: t.settings.raceMilliseconds + 5000) {
            while monotonicSeconds() < deadline && notIO.isEmpty {
                let marked = tally.marked <= tally.unmarked
                guard let copy = try run(marked: marked) else { break }
                if marked {
                    tally.marked += 1
                    if copy == .untouched { tally.racerReasonRead += 1 }
                } else {
                    tally.unmarked += 1
                    if copy != .untouched { tally.unmarkedCopied += 1 }
                }
            }
        }
    }
    tally.racerRounds = racer.stop() - (running ? 1 : 0) // not the warm-up overwrite
    try raced.get()
    t.expect(notIO.isEmpty, "every KVM_RUN while the racer wrote \(kind)", expected: "the guest's OUT 0x80 (kvm_run.io.port rewritten)",
             observed: notIO.joined(separator: "; "))
    t.expect(neither == 0, "kvm_run.s.regs after each KVM_RUN of the race", expected: "the canary, or exactly KVM_GET_REGS",
             observed: "\(neither) run(s) left something else (a partial or foreign copy)")
    t.expect(tally.unmarkedCopied == 0, "kvm_run.s.regs on unmarked I/O exits while the racer wrote \(kind)",
             expected: "never copied: the real reason is unmarked, and a reason >= 1024 stops at the guard",
             observed: "copied on \(tally.unmarkedCopied) of \(tally.unmarked): KVM read a bit past the 1024-bit bitmap")
    // A racer that never overwrote KVM's reason (one CPU, never scheduled) leaves the guard
    // unobserved: the check SKIPs "cannot be observed here", not a failure.  No runs is a failure.
    try t.assert(tally.marked > 0, "setup: KVM_RUN looped while the racer ran",
                 expected: "marked runs > 0", observed: tally.counts(kind))
    // The vCPU after the race: the guest sees the stop flag, reaches its end, and counted every exit once.
    g.memory.store(UInt64(0x5709), at: stopFlag)
    g.vcpu.syncValidRegs = []
    try g.expectDone(because: "the stop flag is set once the racer is gone")
    t.expectEqual(try g.vcpu.regs().rbx, UInt64(rbxStart) + UInt64(runs), "guest rbx at its end (one inc per OUT exit, \(runs) exits)")
    return tally
}
