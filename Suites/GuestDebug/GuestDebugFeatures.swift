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
            advertised: guestDebugMaskIncludes(.singleStep)) { kvm, _ in
        probeGuest(kvm, { a in a.label("s"); a.nop(); a.label("e"); a.nop(); a.ucallDone() }) { g in
            try g.vcpu.setGuestDebug([.enable, .singleStep])
            let stop = try g.nextDebugStop(expecting: "a single-step stop")
            return stop.exit.pc == g.address("e") && DR6(stop.exit.dr6).isSingleStep
                ? .works("one step: pc = next instruction, DR6.BS") : .misbehaves("step stopped with \(stop.exit)")
        }
    },
    Feature("KVM_GUESTDBG_USE_HW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_HW_BP",
            advertised: guestDebugMaskIncludes(.useHardwareBreakpoints)) { kvm, _ in
        probeGuest(kvm, { a in a.nop(); a.label("bp"); a.nop(); a.ucallDone() }) { g in
            let dr7 = DR7.fixed | DR7.arming(0, .execute)
            try g.vcpu.setGuestDebug([.enable, .useHardwareBreakpoints], debugRegs: debugRegs(0, g.address("bp"), dr7: dr7))
            let stop = try g.nextDebugStop(expecting: "a DR0 breakpoint stop")
            return stop.exit.pc == g.address("bp") && stop.exit.dr6 == DR6.reporting(breakpoints: [0]).rawValue
                ? .works("DR0 execute breakpoint: pc, DR6.B0") : .misbehaves("breakpoint stopped with \(stop.exit)")
        }
    },
    Feature("KVM_GUESTDBG_USE_SW_BP", advertisement: "KVM_CAP_SET_GUEST_DEBUG2 & USE_SW_BP",
            advertised: guestDebugMaskIncludes(.useSoftwareBreakpoints)) { kvm, _ in
        probeGuest(kvm, { a in a.label("bp"); a.int3(); a.ucallDone() }) { g in
            try g.vcpu.setGuestDebug([.enable, .useSoftwareBreakpoints])
            let stop = try g.nextDebugStop(expecting: "an int3 stop")
            return stop.exit.pc == g.address("bp") && stop.exit.exception == 3
                ? .works("int3: exception 3, pc at the int3") : .misbehaves("int3 stopped with \(stop.exit)")
        }
    },
]
