import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// KVM_CAP_SYNC_REGS (kvm_run.kvm_valid_regs / kvm_dirty_regs / s) and the proposed
// conditional mode (bit 63 + per-exit-reason bitmap), seeds 000 and the review reply.

@section("kvmcheck_suites") @used
let syncRegsEntry: SuiteEntryPoint = { registerSuite(syncRegsSuite) }

let allSyncSets = Requirement.capability(.syncRegs, includes: SyncRegSet.all.rawValue, named: "REGS|SREGS|EVENTS")
private let syncUAPI = ["KVM_CAP_SYNC_REGS", "kvm_run.kvm_valid_regs", "kvm_run.s"]
let dirtyUAPI = ["KVM_CAP_SYNC_REGS", "kvm_run.kvm_dirty_regs", "kvm_run.s"]
/// A bit no kernel defines: the uAPI says unused bits must be zero.
let undefinedSyncBit = SyncRegSet(rawValue: 0x8000_0000)
/// Poison for kvm_run.s, so "the kernel copied nothing" never looks like a match.
let poison: UInt8 = 0xA5

let syncRegsSuite = Suite(
    "sync-regs", summary: "kvm_run sync regs, and the proposed conditional sync (bit 63 + exit bitmap)",
    series: "cr3-debug-exit", features: [syncRegsFeature, conditionalSyncFeature], checks: [
        syncedRegsCheck,
        syncedSRegsCheck,
        syncedEventsCheck,
        Check("sregs_interrupt_bitmap_cleared_on_sync", uapi: syncUAPI, requires: [allSyncSets], informational: true) { t in
            let g = try t.guest { a in a.ucallSync(1); a.ucallDone() }
            var sregs = g.vcpu.syncedSregs
            sregs.interrupt_bitmap = (~0, ~0, ~0, ~0)
            g.vcpu.syncedSregs = sregs
            g.vcpu.syncValidRegs = .sregs
            try g.expectSync(1)
            let synced = uapiBytes(of: g.vcpu.syncedSregs.interrupt_bitmap), fresh = uapiBytes(of: try g.vcpu.sregs().interrupt_bitmap)
            try t.assert(synced == fresh, "kvm_run.s.sregs.interrupt_bitmap after a sync (userspace left all bits set)",
                         expected: "rewritten to match KVM_GET_SREGS (\(fresh.allSatisfy { $0 == 0 } ? "all clear" : "bits set"))",
                         observed: synced.allSatisfy { $0 == 0xFF } ? "stale userspace bits kept" : "partially rewritten")
        },
        Check("valid_regs_zero_copies_nothing", uapi: syncUAPI, requires: [allSyncSets], killedBy: [.syncRegsCopiedUnasked]) { t in
            let g = try t.guest { a in a.ucallSync(1); a.ucallDone() }
            g.vcpu.poisonSyncRegs(poison)
            g.vcpu.syncValidRegs = []
            try g.expectSync(1)
            try t.assert(uapiBytes(of: g.vcpu.syncedRegs).allSatisfy { $0 == poison }, "kvm_run.s.regs with kvm_valid_regs = 0",
                         expected: "untouched (\(hex(poison)) poison)", observed: "overwritten by the kernel")
        },
        dirtyRegsReachGuestCheck,
        Check("regs_write_without_dirty_bit_ignored", uapi: dirtyUAPI, requires: [allSyncSets], levels: .both, killedBy: [.dirtyRegsAssumed]) { t in
            let (seen, _) = try rbxAfterSyncedWrite(t, dirty: [])
            try t.assertEqual(seen, UInt64(0x1111), "rbx the guest sees when kvm_dirty_regs is 0")
        },
        Check("dirty_events_inject_exception", uapi: dirtyUAPI, requires: [allSyncSets], levels: .both, killedBy: [.dirtyRegsIgnored]) { t in
            let g = try t.guest { a in
                a.onFault(resumeAt: "after")
                a.ucallSync(1)
                a.label("after")
                a.clearFault()
                a.ucallSync(2)
                a.ucallDone()
            }
            g.vcpu.syncValidRegs = .events
            try g.expectSync(1)
            var events = g.vcpu.syncedEvents
            events.exception.injected = 1
            events.exception.nr = 6 // #UD: no error code, unambiguous in the guest's handler
            events.exception.has_error_code = 0
            g.vcpu.syncedEvents = events
            g.vcpu.syncDirtyRegs = .events
            try g.expectException(.ud, because: "injected through kvm_dirty_regs EVENTS")
            try g.expectSync(2)
        },
        Check("dirty_sregs_cr0_reaches_guest", uapi: dirtyUAPI, requires: [allSyncSets], levels: .only(.cpl0),
              killedBy: [.dirtyRegsIgnored, .syncRegsStale]) { t in
            let g = try t.guest { a in
                a.ucallSync(1)
                a.mov(.rax, .cr0)
                a.ucallSync(2, .rax)
                a.ucallDone()
            }
            g.vcpu.syncValidRegs = .sregs
            try g.expectSync(1)
            var sregs = g.vcpu.syncedSregs
            let before = sregs.cr0
            sregs.cr0 |= 0x8 // CR0.TS: harmless without FPU use, visible to mov from cr0
            g.vcpu.syncedSregs = sregs
            g.vcpu.syncDirtyRegs = .sregs
            let seen = try g.expectSync(2)[0]
            try t.assertEqual(seen & 0x8, 0x8, "CR0.TS the guest reads after setting it via kvm_dirty_regs SREGS (CR0 was \(hex(before)))")
        },
        Check("undefined_valid_bit_einval_before_entry", uapi: syncUAPI, requires: [allSyncSets], killedBy: [.undefinedSyncBitsAccepted]) { t in
            try assertRejectedBeforeEntry(t, valid: undefinedSyncBit, dirty: [])
        },
        Check("undefined_dirty_bit_einval_before_entry", uapi: dirtyUAPI, requires: [allSyncSets],
              killedBy: [.dirtyRegsIgnored, .undefinedSyncBitsAccepted]) { t in
            try assertRejectedBeforeEntry(t, valid: [], dirty: undefinedSyncBit)
        },
        Check("valid_plus_undefined_bit_einval_before_entry", uapi: syncUAPI, requires: [allSyncSets], killedBy: [.undefinedSyncBitsAccepted]) { t in
            try assertRejectedBeforeEntry(t, valid: SyncRegSet.all.union(undefinedSyncBit), dirty: .regs)
        },
        Check("bit_63_einval_unless_conditional_sync", uapi: syncUAPI + ["KVM_SYNC_REGS_CONDITIONAL"], requires: [allSyncSets],
              killedBy: [.conditionalSyncEveryExit, .syncBit63Ignored]) { t in
            // Bit 63 is undefined unless the kernel implements the proposal; then it must be rejected like any other.
            if bit63Behaviour(t.system) == .conditional { throw Skip("bit 63 is KVM_SYNC_REGS_CONDITIONAL on this kernel (an unmarked exit copied nothing)") }
            try assertRejectedBeforeEntry(t, valid: [.regs, .conditional], dirty: [])
        },
        conditionalSyncOnMarkedExitsCheck,
        exitReasonRaceCheck,
    ])

/// Runs a guest to a ucall with `set` requested and compares kvm_run.s with the GET ioctl.
private func compareSynced(_ t: CheckContext, _ set: SyncRegSet, field: (Int) -> String, get: (Guest) throws -> [UInt8],
                   synced: (VCPU) -> [UInt8]) throws {
    let g = try t.guest { a in
        // Distinct values in every GPR so a stale or partial copy shows.
        for (i, r) in Reg64.allCases.enumerated() where r != .rsp { a.mov(r, Int64(0x1000 + i * 0x111)) }
        a.ucallSync(1)
        a.ucallDone()
    }
    g.vcpu.poisonSyncRegs(poison)
    // The copy-out only sets interrupt_bitmap bits and never clears the field (see
    // sregs_interrupt_bitmap_cleared_on_sync), so start it as a VMM would: zeroed.
    var sregs = g.vcpu.syncedSregs
    sregs.interrupt_bitmap = (0, 0, 0, 0)
    g.vcpu.syncedSregs = sregs
    g.vcpu.syncValidRegs = set
    try g.expectSync(1)
    // Padding is masked: the kernel copies fields into kvm_run.s, and our poison stays in the holes.
    try t.assertSameBytes(synced(g.vcpu), try get(g), "kvm_run.s \(set) vs KVM_GET_\(set) after a \(g.cpl) MMIO exit",
                          fieldAt: field)
}

/// At a ucall, writes rbx = 0xBAD1DEA0 into kvm_run.s.regs with `dirty` in kvm_dirty_regs;
/// returns the rbx the guest then reports (it held 0x1111) and kvm_dirty_regs after the run.
private func rbxAfterSyncedWrite(_ t: CheckContext, dirty: SyncRegSet) throws -> (seen: UInt64, dirtyAfter: SyncRegSet) {
    let g = try t.guest { a in
        a.mov(.rbx, 0x1111)
        a.ucallSync(1)
        a.ucallSync(2, .rbx)
        a.ucallDone()
    }
    g.vcpu.syncValidRegs = .regs
    try g.expectSync(1)
    var regs = g.vcpu.syncedRegs
    regs.rbx = 0xBAD1_DEA0
    g.vcpu.syncedRegs = regs
    g.vcpu.syncDirtyRegs = dirty
    let seen = try g.expectSync(2)[0]
    return (seen, g.vcpu.syncDirtyRegs)
}

/// KVM_RUN with bad bits must fail with EINVAL and leave the guest unrun.
func assertRejectedBeforeEntry(_ t: CheckContext, valid: SyncRegSet, dirty: SyncRegSet) throws {
    let g = try t.guest { a in
        a.mov(qword: .absolute(GuestLayout.data), 0x5EE11)
        a.ucallSync(1)
        a.ucallDone()
    }
    let entry = try g.vcpu.regs().rip
    g.vcpu.syncValidRegs = valid
    g.vcpu.syncDirtyRegs = dirty
    let error = g.vcpu.tryRun().error
    let what = "KVM_RUN with kvm_valid_regs=\(hex(valid.rawValue)) kvm_dirty_regs=\(hex(dirty.rawValue))"
    try t.assert(error?.errno == .invalidArgument, what, expected: "-1 EINVAL",
                 observed: error.map { "-1 \($0.errno?.symbolicName ?? "\($0)")" } ?? "success, exit \(g.vcpu.lastExit)")
    try t.assertEqual(try g.vcpu.regs().rip, entry, "guest RIP after the rejected KVM_RUN (must not have entered)")
    try t.assertEqual(g.memory.load(UInt64.self, at: GuestLayout.data), 0, "guest marker store (must not have run)")
    // Control: the same guest runs once the bits are valid, so the rejection was about the bits.
    g.vcpu.syncValidRegs = []
    g.vcpu.syncDirtyRegs = []
    try g.expectSync(1)
}

let syncedRegsCheck = Check("synced_regs_equal_get_regs", uapi: syncUAPI, requires: [allSyncSets], levels: .both, killedBy: [.syncRegsStale]) { t in
    try compareSynced(t, .regs, field: UAPILayout.regsField) {
        try UAPILayout.significantBytes($0.vcpu.regs())
    } synced: { UAPILayout.significantBytes($0.syncedRegs) }
}

let syncedSRegsCheck = Check("synced_sregs_equal_get_sregs", uapi: syncUAPI, requires: [allSyncSets], levels: .both,
    killedBy: [.syncRegsStale]) { t in
    try compareSynced(t, .sregs, field: UAPILayout.sregsField) {
        try UAPILayout.significantBytes($0.vcpu.sregs())
    } synced: { UAPILayout.significantBytes($0.syncedSregs) }
}

let syncedEventsCheck = Check("synced_events_equal_get_vcpu_events", uapi: syncUAPI, requires: [allSyncSets], levels: .both,
    killedBy: [.syncRegsStale]) { t in
    try compareSynced(t, .events, field: UAPILayout.eventsField) {
        try UAPILayout.significantBytes($0.vcpu.events())
    } synced: { UAPILayout.significantBytes($0.syncedEvents) }
}

let dirtyRegsReachGuestCheck = Check("dirty_regs_write_reaches_guest", uapi: dirtyUAPI, requires: [allSyncSets], levels: .both,
    killedBy: [.dirtyRegsIgnored, .syncRegsStale]) { t in
    let (seen, dirtyAfter) = try rbxAfterSyncedWrite(t, dirty: .regs)
    try t.assertEqual(seen, UInt64(0xBAD1_DEA0), "rbx the guest sees after a kvm_dirty_regs REGS write")
    try t.assertEqual(dirtyAfter.contains(.regs), false, "kvm_dirty_regs REGS bit after KVM_RUN consumed it")
}

let conditionalSyncOnMarkedExitsCheck = Check("conditional_sync_on_marked_exits_only", uapi: ["KVM_SYNC_REGS_CONDITIONAL", "kvm_run.kvm_save_regs_on_exit"],
    requires: [allSyncSets], killedBy: [.conditionalSyncMarkedDropped], gapUnder: [.conditionalSyncEveryExit]) { t in
    try conditionalSyncCheck(t)
}
