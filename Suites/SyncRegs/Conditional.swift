import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// The counter-proposal to CR3-in-debug-exit: kvm_valid_regs bit 63 makes the copy-out
// conditional on the exit reason's bit in kvm_run.kvm_save_regs_on_exit (1024 bits after s).

/// A guest that exits once with KVM_EXIT_IO and then with KVM_EXIT_MMIO (a ucall).
private func twoExitGuest(_ t: CheckContext) throws -> Guest {
    try t.guest { a in
        a.mov(.rbx, 0x10)
        a.out(0x80, .al)       // KVM_EXIT_IO
        a.mov(.rbx, 0x20)
        a.ucallSync(1)         // KVM_EXIT_MMIO
        a.ucallDone()
    }
}

/// What the running kernel does with kvm_valid_regs bit 63 (also `kvmcheck bench`'s probe).
public enum Bit63Behaviour: Equatable, Sendable {
    /// KVM_RUN refused it (the errno's name): no conditional sync.
    case rejected(String)
    /// Accepted, and with an empty bitmap nothing was copied: conditional sync present.
    case conditional
    /// Accepted but ignored: REGS copied although no exit reason is marked.
    case ignored
    case probeFailed(String)

    /// nil when conditional sync is present; otherwise the precise gap.
    public var gap: String? {
        switch self {
        case .conditional: return nil
        case .rejected(let errno):
            return "KVM_RUN with kvm_valid_regs = REGS|KVM_SYNC_REGS_CONDITIONAL (bit 63) failed with \(errno): conditional sync regs absent (unmerged proposal)"
        case .ignored:
            return "KVM_RUN accepts kvm_valid_regs bit 63 but ignores it (REGS copied with an empty exit bitmap): conditional sync regs absent"
        case .probeFailed(let why): return "probe failed: \(why)"
        }
    }
}

/// Runs one MMIO exit with REGS|bit 63, an empty bitmap and poisoned kvm_run.s: accepted
/// *and* honoured only when nothing was copied (some kernels accept and ignore bit 63).
public func bit63Behaviour(_ system: KVMSystem) -> Bit63Behaviour {
    do {
        let g = try Guest(system: system, cpl: .cpl0) { a in a.ucallDone() }
        g.vcpu.syncValidRegs = [.regs, .conditional]
        g.vcpu.saveRegsOnExitBitmap = Array(repeating: 0, count: Int(CKVM_SAVE_REGS_ON_EXIT_WORDS))
        g.vcpu.poisonSyncRegs(poison)
        if let error = g.vcpu.tryRun().error { return .rejected(error.errno?.symbolicName ?? "\(error)") }
        return uapiBytes(of: g.vcpu.syncedRegs).allSatisfy { $0 == poison } ? .conditional : .ignored
    } catch { return .probeFailed("\(error)") }
}

func conditionalSyncCheck(_ t: CheckContext) throws {
    // Absent is EINVAL (the mask check) or bit 63 accepted and ignored; any other refusal, or a
    // probe that could not run, is not "absent" and must not read as a SKIP.
    let behaviour = bit63Behaviour(t.system)
    switch behaviour {
    case .conditional: break
    case .rejected("EINVAL"), .ignored: throw Skip(behaviour.gap!)
    case .rejected(let other):
        throw Failure("KVM_RUN with kvm_valid_regs = REGS|KVM_SYNC_REGS_CONDITIONAL (bit 63), empty exit bitmap",
                      expected: "success (conditional sync), or EINVAL where it is absent", observed: "failed with \(other)")
    case .probeFailed(let why):
        throw Failure("the bit-63 probe could not run", expected: "one KVM_RUN to the guest's MMIO ucall", observed: why)
    }
    // Mark KVM_EXIT_IO only: the IO exit must sync, the MMIO exit must not.
    let g = try twoExitGuest(t)
    var bitmap = [UInt64](repeating: 0, count: Int(CKVM_SAVE_REGS_ON_EXIT_WORDS))
    bitmap[0] = 1 << UInt64(KVM_EXIT_IO)
    g.vcpu.saveRegsOnExitBitmap = bitmap
    g.vcpu.syncValidRegs = [.regs, .conditional]
    g.vcpu.poisonSyncRegs(poison)
    let first = try g.next()
    guard case .exit(.io) = first else { throw t.unexpected(first, expected: "KVM_EXIT_IO from out 0x80") }
    try t.assertSameBytes(uapiBytes(of: g.vcpu.syncedRegs), uapiBytes(of: try g.vcpu.regs()),
                          "kvm_run.s.regs on KVM_EXIT_IO (marked in the bitmap)")
    g.vcpu.poisonSyncRegs(poison)
    try g.expectSync(1)
    try t.assert(uapiBytes(of: g.vcpu.syncedRegs).allSatisfy { $0 == poison }, "kvm_run.s.regs on KVM_EXIT_MMIO (not marked)",
                 expected: "untouched (not synced)", observed: "synced anyway: the bitmap was ignored")
}

/// `caps` rows, each decided by the checks whose subject it is.
let syncRegsFeature = Feature(
    "KVM_CAP_SYNC_REGS (REGS|SREGS|EVENTS)", advertisement: "KVM_CAP_SYNC_REGS mask & 0x7",
    advertised: { kvm, _ in ((try? kvm.checkExtension(.syncRegs)) ?? 0) & 7 == 7 },
    decidedBy: [CheckRef("sync-regs", syncedRegsCheck), CheckRef("sync-regs", syncedSRegsCheck),
                CheckRef("sync-regs", syncedEventsCheck), CheckRef("sync-regs", dirtyRegsReachGuestCheck)])

let conditionalSyncFeature = Feature(
    "KVM_SYNC_REGS_CONDITIONAL (bit 63)", advertisement: "no capability (unmerged proposal)",
    advertised: { _, _ in nil }, decidedBy: [CheckRef("sync-regs", conditionalSyncOnMarkedExitsCheck)])
