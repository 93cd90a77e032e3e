import CheckKit
import CKVM
import Glibc
import GuestKit
import KVMKit
import X86Asm

// sync-regs-upstream: the assertions of the kernel's sync_regs_test.c that sync-regs does not
// already make — the three races (a second thread rewriting kvm_run.s while KVM_RUN loops),
// valid = 0 with every set dirty, apic_base through dirty SREGS, and the advertised mask.

@section("kvmcheck_suites") @used
let syncRegsUpstreamEntry: SuiteEntryPoint = { registerSuite(syncRegsUpstreamSuite) }

let syncRegsUpstreamSuite = Suite(
    "sync-regs-upstream", summary: "sync_regs_test.c parity: races on kvm_run.s, valid=0 with all dirty, apic_base, cap mask",
    series: "cr3-debug-exit", checks: [
        Check("race_cr4_pae_toggle_with_translate", uapi: dirtyUAPI + ["KVM_TRANSLATE"], requires: [allSyncSets], fixedDuration: true, judgesKernelLog: true,
              killedBy: [.syncRegsInvalidStateEntered, .syncRegsStale]) { t in
            try raceCheck(t, .cr4PAEToggle)
        },
        Check("race_invalid_exception_vector", uapi: dirtyUAPI + ["kvm_vcpu_events.exception"], requires: [allSyncSets], fixedDuration: true, judgesKernelLog: true,
              killedBy: [.syncRegsInvalidStateEntered, .syncRegsStale]) { t in
            try raceCheck(t, .invalidExceptionVector)
        },
        Check("race_exception_pending_and_injected", uapi: dirtyUAPI + ["kvm_vcpu_events.exception"], requires: [allSyncSets], fixedDuration: true, judgesKernelLog: true,
              killedBy: [.syncRegsInvalidStateEntered, .syncRegsStale]) { t in
            try raceCheck(t, .pendingAndInjected)
        },
        Check("dirty_all_sets_with_valid_zero_reach_guest_copy_nothing", uapi: dirtyUAPI + ["kvm_run.kvm_valid_regs"],
              requires: [allSyncSets], killedBy: [.dirtyRegsIgnored, .syncRegsCopiedUnasked, .syncRegsStale]) { t in
            let g = try countingGuest(t)
            g.vcpu.syncValidRegs = .all
            try g.expectSync(1)
            var regs = g.vcpu.syncedRegs
            regs.rbx = 0xBBBB_5A5A_0000
            g.vcpu.syncedRegs = regs
            g.vcpu.syncValidRegs = []
            g.vcpu.syncDirtyRegs = .all
            let before = uapiBytes(of: g.vcpu.syncedRegs) + uapiBytes(of: g.vcpu.syncedSregs) + uapiBytes(of: g.vcpu.syncedEvents)
            let seen = try g.expectSync(1)[0]
            t.expectEqual(seen, 0xBBBB_5A5A_0001, "rbx the guest counted from the dirty REGS value (0xbbbb5a5a0000 + 1)")
            t.expectEqual(try g.vcpu.regs().rbx, 0xBBBB_5A5A_0001, "KVM_GET_REGS rbx after the run")
            let after = uapiBytes(of: g.vcpu.syncedRegs) + uapiBytes(of: g.vcpu.syncedSregs) + uapiBytes(of: g.vcpu.syncedEvents)
            let changed = zip(before, after).filter { $0 != $1 }.count
            t.expect(changed == 0, "kvm_run.s (regs, sregs, events) with kvm_valid_regs = 0",
                         expected: "not written (nothing copied out)", observed: "\(changed) byte(s) rewritten, s.regs.rbx = \(hex(g.vcpu.syncedRegs.rbx))")
        },
        Check("apic_base_via_dirty_sregs", uapi: dirtyUAPI + ["kvm_sregs.apic_base"], requires: [allSyncSets],
              killedBy: [.dirtyRegsIgnored, .syncRegsStale]) { t in
            let g = try countingGuest(t)
            g.vcpu.syncValidRegs = .all
            try g.expectSync(1)
            let base: UInt64 = 0xFEBF_E800 // enabled (bit 11), not BSP, base 0xfebfe000: no reset value
            var sregs = g.vcpu.syncedSregs
            let before = sregs.apic_base
            sregs.apic_base = base
            g.vcpu.syncedSregs = sregs
            g.vcpu.syncDirtyRegs = .sregs
            try g.expectSync(1)
            t.expectEqual(g.vcpu.syncedSregs.apic_base, base, "kvm_run.s.sregs.apic_base synced out after the run (was \(hex(before)))")
            t.expectEqual(try g.vcpu.sregs().apic_base, base, "KVM_GET_SREGS apic_base")
        },
        Check("all_sets_plus_undefined_dirty_bit_einval_before_entry", uapi: dirtyUAPI, requires: [allSyncSets],
              killedBy: [.dirtyRegsIgnored, .undefinedSyncBitsAccepted]) { t in
            try expectDirtyRejected(t, dirty: SyncRegSet.all.union(undefinedSyncBit))
        },
        Check("cap_advertises_no_undefined_bit", uapi: ["KVM_CAP_SYNC_REGS"], requires: [allSyncSets], killedBy: [.syncRegsCapUndefinedBit]) { t in
            let mask = UInt64(try t.system.checkExtension(.syncRegs))
            try t.assert(mask & ~SyncRegSet.all.rawValue == 0, "KVM_CHECK_EXTENSION(KVM_CAP_SYNC_REGS)",
                         expected: "only REGS|SREGS|EVENTS (0x7); bit 31 is the one upstream's tests use as invalid",
                         observed: "\(hex(mask)): undefined bits \(hex(mask & ~SyncRegSet.all.rawValue))")
        },
    ])

/// upstream's guest: exits in a loop, counting in rbx (here `inc rbx` then a ucall).
func countingGuest(_ t: CheckContext, exitLimit: Int = GuestOptions().maxExits) throws -> Guest {
    var options = GuestOptions()
    options.maxExits = exitLimit
    return try t.guest(options) { a in
        a.label("loop")
        a.ucallSync(1, .rbx)
        a.inc(.rbx)
        a.jmp("loop")
    }
}

/// KVM_RUN in a loop for the run's race time (`--race-seconds`; upstream runs "2 seconds,
/// roughly") while a second thread rewrites kvm_run.s; every
/// return must be a sane exit or a clean EINVAL.  A shutdown (or a guest parked in its
/// handler) reloads the state saved before the racer started, as upstream does.
func raceCheck(_ t: CheckContext, _ kind: SyncRegsRacer.Kind) throws {
    let g = try countingGuest(t, exitLimit: .max) // the loop is bounded by time, not exits
    g.vcpu.syncValidRegs = .sregs
    try g.expectSync(1)
    g.vcpu.syncValidRegs = []
    let sregs = g.vcpu.syncedSregs
    // The CR4 race is only a race if the state it toggles against is long mode.
    try t.assert(sregs.cr4 & 0x20 != 0 && sregs.efer & 0x100 != 0, "setup: kvm_run.s.sregs is in long mode",
                 expected: "CR4.PAE and EFER.LME set", observed: "cr4 \(hex(sregs.cr4)) efer \(hex(sregs.efer))")
    let saved = try g.vcpu.saveState()
    var outcomes: [String: Int] = [:]
    var insane: [String: Int] = [:]
    let racer = try SyncRegsRacer(g.vcpu, kind)
    // The race time starts once the thread runs: on a loaded host (or under TCG) a new thread
    // can take longer to start than a short --race-seconds lasts.
    if !racer.waitUntilRunning(milliseconds: 1000) { t.note("\(kind): the racer thread made no round within 1 s of its start") }
    let start = monotonicSeconds()
    let deadline = start + Double(t.settings.raceMilliseconds) / 1000
    while monotonicSeconds() < deadline {
        let (outcome, sane) = raceStep(g)
        outcomes[outcome, default: 0] += 1
        if !sane { insane[outcome, default: 0] += 1 }
        if outcome == "KVM_EXIT_SHUTDOWN" || outcome == "KVM_EXIT_HLT" { try? g.vcpu.restore(saved) }
        if kind == .cr4PAEToggle { _ = try? g.vcpu.translate(0) }
    }
    let rounds = racer.stop()
    let raced = Int(((monotonicSeconds() - start) * 1000).rounded())
    let summary = outcomes.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", ")
    t.note("\(kind): \(outcomes.values.reduce(0, +)) KVM_RUNs in \(raced) ms (--race-seconds) against \(rounds) racer rounds: \(summary)")
    try t.assert(insane.isEmpty, "KVM_RUN while another thread writes \(kind)",
                 expected: "only sane exits (the guest's ucalls or exceptions, HLT, SHUTDOWN) or -1 EINVAL",
                 observed: insane.sorted { $0.key < $1.key }.map { "\($0.key) x\($0.value)" }.joined(separator: ", "))
    // No racer round (or no KVM_RUN) means nothing raced: "only sane exits" would be vacuous.
    let runs = outcomes.values.reduce(0, +)
    try t.assert(rounds > 0 && runs > 0, "setup: the racer wrote kvm_run.s while KVM_RUN looped",
                 expected: "racer rounds > 0 and KVM_RUNs > 0", observed: "\(rounds) racer round(s), \(runs) KVM_RUN(s) in \(raced) ms")
    // The vCPU must still be usable once the racer is gone.
    try g.vcpu.restore(saved)
    g.vcpu.syncDirtyRegs = []
    let after = try g.next()
    try t.assert(after.syncValues.count > 0, "the vCPU after the race, state reloaded", expected: "ucall SYNC 1", observed: "\(after)")
}

/// One KVM_RUN under the race: (what it returned, whether that is sane).
func raceStep(_ g: Guest) -> (String, Bool) {
    do {
        let event = try g.next()
        switch event {
        case .sync: return ("ucall SYNC", true)
        case .exception(let e): return ("guest \(e.name)", true)
        case .exit(.hlt): return ("KVM_EXIT_HLT", true)
        case .exit(.shutdown): return ("KVM_EXIT_SHUTDOWN", true)
        default: return ("\(event)", false)
        }
    } catch let e as KVMError where e.errno == .invalidArgument {
        return ("EINVAL", true)
    } catch {
        return ("\(error)", false)
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Like sync-regs' assertRejectedBeforeEntry, but kvm_run.s holds the vCPU's real state first:
/// a kernel that wrongly accepts the bits then runs the guest to its ucall (a clean failure)
/// instead of loading zeroed registers and hanging.
func expectDirtyRejected(_ t: CheckContext, dirty: SyncRegSet) throws {
    let g = try t.guest { a in
        a.mov(qword: .absolute(GuestLayout.data), 0x5EE11)
        a.ucallSync(1)
        a.ucallDone()
    }
    let entry = try g.vcpu.regs().rip
    g.vcpu.syncedRegs = try g.vcpu.regs()
    g.vcpu.syncedSregs = try g.vcpu.sregs()
    g.vcpu.syncedEvents = try g.vcpu.events()
    g.vcpu.syncValidRegs = []
    g.vcpu.syncDirtyRegs = dirty
    let error = try Watchdog.guarding(milliseconds: 2000) { g.vcpu.tryRun().error }
    t.expect(error?.errno == .invalidArgument, "KVM_RUN with kvm_dirty_regs=\(hex(dirty.rawValue))", expected: "-1 EINVAL",
                 observed: error.map { "-1 \($0.errno?.symbolicName ?? "\($0)")" } ?? "success, exit \(g.vcpu.lastExit)")
    t.expectEqual(try g.vcpu.regs().rip, entry, "guest RIP after the rejected KVM_RUN (must not have entered)")
    t.expectEqual(g.memory.load(UInt64.self, at: GuestLayout.data), 0, "guest marker store (must not have run)")
    // Control: the same guest runs once the bits are valid, so the rejection was about the bits.
    g.vcpu.syncDirtyRegs = []
    try g.expectSync(1)
}
