import CheckKit
import GuestKit
import KVMKit

// `kvmcheck caps` rows for seed 002: no capability advertises these (they are architectural),
// so each row is decided by the checks whose subject it is, at each CPL.

let pvmGuestDebugFeatures: [Feature] = [
    Feature("guest-owned DR7 (#DB to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil },
            decidedBy: [CheckRef("pvm-guest-debug", guestExecuteBreakpointsCheck), CheckRef("pvm-guest-debug", guestWriteWatchpointCheck)]),
    Feature("guest int3 (#BP to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil }, decidedBy: [CheckRef("pvm-guest-debug", guestInt3Check)]),
]
