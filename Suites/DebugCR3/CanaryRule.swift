import KVMKit
import GuestKit
// The canary rule for the proposed kvm_debug_exit_arch.cr3 slot: a zero read proves
// nothing, so the host plants a value no CR3 can have before every KVM_RUN and judges
// what the kernel left there against what it advertises.

/// A value no CR3 holds (bits of the reserved 62:52 set: 0x5a5 there), planted in the slot before KVM_RUN.
let cr3CanaryBase: UInt64 = 0x5A5A_C3C3_0000_0FF0

/// The canary for one guest: the base with its boot root folded into the low bits, so each
/// check (each boots on its own root) plants a value no other check plants.
func cr3Canary(for g: Guest) -> UInt64 { cr3CanaryBase ^ (g.options.pageTableRoot << 4) }

/// What the kernel did with the slot on one KVM_EXIT_DEBUG.
enum CR3SlotFinding: Equatable, CustomStringConvertible {
    /// The canary is still there: the kernel did not write the slot.
    case untouched
    /// The slot holds the vCPU's CR3 (as KVM_GET_SREGS reports it).
    case filled
    /// Anything else, zero included.
    case overwritten(UInt64)

    init(slot: UInt64, canary: UInt64, cr3: UInt64) {
        precondition(canary != cr3, "the canary must differ from the CR3 being looked for")
        self = slot == canary ? .untouched : slot == cr3 ? .filled : .overwritten(slot)
    }

    var description: String {
        switch self {
        case .untouched: return "not written (canary intact)"
        case .filled: return "written with the vCPU's CR3"
        case .overwritten(let v): return "overwritten with \(hex(v)) (neither the canary nor CR3)"
        }
    }
}

/// Judges a finding against the capability: consistent (the check passes) or not, and why.
/// `advertised` is nil when no capability number is configured.
func judgeCR3Slot(_ finding: CR3SlotFinding, advertised: Bool?) -> (consistent: Bool, summary: String) {
    switch (finding, advertised) {
    case (.filled, true?):
        return (true, "cap advertised and cr3 filled")
    case (.untouched, true?):
        return (false, "cap advertised, but the kernel did not write cr3 on KVM_EXIT_DEBUG")
    case (.untouched, _):
        return (true, "gap: the cap is not advertised and the slot is not written")
    case (.filled, false?):
        return (false, "the kernel fills cr3 but does not advertise the configured cap number (wrong number?)")
    case (.filled, nil):
        return (false, "the kernel fills cr3, but no cap number is configured to check it against (pass --cap \(debugCR3Capability)=N)")
    case (.overwritten, true?):
        return (false, "cap advertised, but cr3 does not match KVM_GET_SREGS.cr3")
    case (.overwritten, _):
        return (false, "the kernel writes past kvm_debug_exit_arch into the slot without advertising cr3")
    }
}
