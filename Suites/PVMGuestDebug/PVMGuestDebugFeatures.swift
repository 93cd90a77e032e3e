import CheckKit
import GuestKit
import KVMKit

// `kvmcheck caps` rows for seed 002: no capability advertises these (they are architectural),
// so the row is the CPL0 probe alone.

let pvmGuestDebugFeatures: [Feature] = [
    Feature("guest-owned DR7 (#DB to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil }) { kvm, settings in
        Feature.probe(running: pvmGuestDebugSuite.bodies("guest_execute_breakpoints_deliver_db", "guest_write_watchpoint_delivers_db"),
                      works: "the guest's own breakpoints and watchpoints raise #DB in its handler (CPL0 and CPL3)")(kvm, settings)
    },
    Feature("guest int3 (#BP to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil }) { kvm, settings in
        Feature.probe(running: pvmGuestDebugSuite.bodies("guest_int3_delivers_bp"),
                      works: "int3 raises #BP in the guest's handler (CPL0 and CPL3)")(kvm, settings)
    },
]
