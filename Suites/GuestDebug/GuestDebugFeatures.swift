import CheckKit
import GuestKit
import KVMKit
import X86Asm

// `kvmcheck caps` rows: each flag is advertised by KVM_CAP_SET_GUEST_DEBUG2's mask and
// observed by a one-exit probe at CPL0 (the checks cover CPL3 and the details).

func guestDebugMaskIncludes(_ flag: GuestDebugControl) -> @Sendable (KVMSystem, CheckSettings) -> Bool? {
    { kvm, _ in
        guard let mask = try? kvm.checkExtension(.setGuestDebug2), mask != 0 else { return nil }
        return UInt32(truncatingIfNeeded: mask) & flag.rawValue == flag.rawValue
    }
}

/// Runs `body` against a CPL0 guest; errors become a "misbehaves" with their text.
func probeGuest(_ kvm: KVMSystem, _ code: (inout Assembler) -> Void,
                _ body: (Guest) throws -> ProbeResult) -> ProbeResult {
    do { return try body(try Guest(system: kvm, cpl: .cpl0, code: code)) } catch {
        return .misbehaves("\(error)")
    }
}

let guestDebugFeatures: [Feature] = [
    Feature("KVM_GUESTDBG_SINGLESTEP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & SINGLESTEP",
            advertised: guestDebugMaskIncludes(.singleStep)) { kvm, settings in
        Feature.probe(running: guestDebugSuite.bodies("single_step_stops_after_each_instruction", "single_step_tf_hidden"),
                      works: "each step stops at the next instruction with DR6.BS, TF hidden (CPL0 and CPL3)")(kvm, settings)
    },
    Feature("KVM_GUESTDBG_USE_HW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_HW_BP",
            advertised: guestDebugMaskIncludes(.useHardwareBreakpoints)) { kvm, settings in
        Feature.probe(running: guestDebugSuite.bodies("hw_execute_breakpoint_dr0_to_dr3", "hw_write_watchpoint_lengths"),
                      works: "DR0-DR3 execute breakpoints and write watchpoints exit with pc/dr6/dr7 (CPL0 and CPL3)")(kvm, settings)
    },
    Feature("KVM_GUESTDBG_USE_SW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_SW_BP",
            advertised: guestDebugMaskIncludes(.useSoftwareBreakpoints)) { kvm, settings in
        Feature.probe(running: guestDebugSuite.bodies("sw_breakpoint_exits_at_int3"),
                      works: "int3 exits with exception 3 at the int3 (CPL0 and CPL3)")(kvm, settings)
    },
]
