import CheckKit
import GuestKit
import KVMKit
import X86Asm

// `kvmcheck caps` rows: each flag is advertised by KVM_CAP_SET_GUEST_DEBUG2's mask and
// decided, at each CPL, by the checks whose subject it is.

/// Each row is decided, at each CPL, by the checks whose subject is that flag.
let guestDebugFeatures: [Feature] = [
    Feature("KVM_GUESTDBG_SINGLESTEP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & SINGLESTEP",
            advertised: guestDebugMaskIncludes(.singleStep),
            decidedBy: [CheckRef("guest-debug", singleStepCheck), CheckRef("guest-debug", singleStepOverExitCheck)]),
    Feature("KVM_GUESTDBG_USE_HW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_HW_BP",
            advertised: guestDebugMaskIncludes(.useHardwareBreakpoints),
            decidedBy: [CheckRef("guest-debug", hwExecuteBreakpointCheck), CheckRef("guest-debug", debugExitDR7Check),
                        CheckRef("guest-debug", hwWriteWatchpointCheck)]),
    Feature("KVM_GUESTDBG_USE_SW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_SW_BP",
            advertised: guestDebugMaskIncludes(.useSoftwareBreakpoints),
            decidedBy: [CheckRef("guest-debug", swBreakpointCheck)]),
]
