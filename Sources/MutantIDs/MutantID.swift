// The names of the kernel mutants, and nothing else: checks in Suites/ declare which mutants
// kill them (`killedBy: [.blockirqIgnored]`) and the doubles in KernelDoubles implement them.
// A module of its own so both sides share one type without depending on each other (the
// doubles sit below the check model, the checks above it) and so a suite recompiles only when a
// mutant is added or renamed, not when one's body changes.  A misspelt killer is a compile error.

/// A kernel mutant: one behaviour perverted the way a buggy patch would (KVMCHECK_MUTANT=rawValue).
public enum MutantID: String, CaseIterable, Sendable, Hashable, Comparable {
    // guestdbg-blockirq (blockirq, debug-regs)
    case blockirqIgnored = "blockirq-ignored"
    case blockirqRejected = "blockirq-rejected"
    case blockirqForced = "blockirq-forced"
    case lapicIRRDropped = "lapic-irr-dropped"
    // guest-debug
    case debugPCOffByOne = "debug-pc-off-by-one"
    case debugDR6StatusLost = "debug-dr6-status-lost"
    case singleStepDropped = "single-step-dropped"
    case singleStepLostAfterIO = "single-step-lost-after-io"
    case debugExitDR7Reset = "debug-exit-dr7-reset"
    case vmmRFLAGSDropped = "vmm-rflags-dropped"
    case vmmRFLAGSIFForced = "vmm-rflags-if-forced"
    case injectIgnored = "inject-ignored"
    case guestDebugDisableIgnored = "guest-debug-disable-ignored"
    // pvm-guest-debug
    case hostDR7Leaks = "host-dr7-leaks"
    case guestDR7NotKept = "guest-dr7-not-kept"
    case guestDR7LostAfterHostDebug = "guest-dr7-lost-after-host-debug"
    case guestDR6ResetOnEntry = "guest-dr6-reset-on-entry"
    // sync-regs (and the upstream sync_regs_test parity suite)
    case syncRegsStale = "sync-regs-stale"
    case syncRegsCopiedUnasked = "sync-regs-copied-unasked"
    case dirtyRegsIgnored = "dirty-regs-ignored"
    case dirtyRegsAssumed = "dirty-regs-assumed"
    case undefinedSyncBitsAccepted = "undefined-sync-bits-accepted"
    case syncBit63Ignored = "sync-bit-63-ignored"
    case conditionalSyncMarkedDropped = "conditional-sync-marked-dropped"
    case conditionalSyncEveryExit = "conditional-sync-every-exit"
    case conditionalSyncBitmapOverread = "conditional-sync-bitmap-overread"
    case syncRegsInvalidStateEntered = "sync-regs-invalid-state-entered"
    case syncRegsCapUndefinedBit = "sync-regs-cap-undefined-bit"
    // one-reg
    case oneRegWrongMSR = "one-reg-wrong-msr"
    case oneRegBadIDAccepted = "one-reg-bad-id-accepted"
    case oneRegEFAULTIgnored = "one-reg-efault-ignored"
    case oneRegOnVMFD = "one-reg-on-vm-fd"
    case oneRegSSPNotStored = "one-reg-ssp-not-stored"
    case oneRegCapHiddenOnVM = "one-reg-cap-hidden-on-vm"
    case regListE2BIGWithoutCount = "reg-list-e2big-without-count"
    case regListListsSSP = "reg-list-lists-ssp"
    // debugctl
    case debugctlBit14Accepted = "debugctl-bit14-accepted"
    case debugctlBit14Shown = "debugctl-bit14-shown"
    case debugctlWritesDropped = "debugctl-writes-dropped"
    case debugctlLegacyBitsRejected = "debugctl-legacy-bits-rejected"
    case debugctlVMCS12NotUpdated = "debugctl-vmcs12-not-updated"
    // debug-cr3
    case cr3SlotScribbled = "cr3-slot-scribbled"
    case cr3StaleRoot = "cr3-stale-root"
    // msrs
    case msrHostWriteDropped = "msr-host-write-dropped"
    case msrStaleAtFirstRun = "msr-stale-at-first-run"
    case msrIndexListDropsMiscEnable = "msr-index-list-drops-misc-enable"
    case msrNoncanonicalAcceptedFromHost = "msr-noncanonical-accepted-from-host"
    case guestSSPResetNonzero = "guest-ssp-reset-nonzero"

    public var name: String { rawValue }
    public static func < (a: MutantID, b: MutantID) -> Bool { a.rawValue < b.rawValue }
}
