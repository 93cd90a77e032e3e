import CKVM

/// A KVM_CHECK_EXTENSION capability number with the name kernel developers know it by.
public struct Capability: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int
    public let name: String

    public init(_ rawValue: Int, name: String) {
        self.rawValue = rawValue
        self.name = name
    }

    public var description: String { "\(name) (\(rawValue))" }

    public static let irqchip = Capability(Int(KVM_CAP_IRQCHIP), name: "KVM_CAP_IRQCHIP")
    public static let setGuestDebug = Capability(Int(KVM_CAP_SET_GUEST_DEBUG), name: "KVM_CAP_SET_GUEST_DEBUG")
    public static let debugRegs = Capability(Int(KVM_CAP_DEBUGREGS), name: "KVM_CAP_DEBUGREGS")
    public static let oneReg = Capability(Int(KVM_CAP_ONE_REG), name: "KVM_CAP_ONE_REG")
    public static let syncRegs = Capability(Int(KVM_CAP_SYNC_REGS), name: "KVM_CAP_SYNC_REGS")
    public static let setGuestDebug2 = Capability(Int(KVM_CAP_SET_GUEST_DEBUG2), name: "KVM_CAP_SET_GUEST_DEBUG2")
    public static let nestedState = Capability(Int(KVM_CAP_NESTED_STATE), name: "KVM_CAP_NESTED_STATE")
}

/// KVM_SYNC_X86_* register classes for kvm_run.kvm_valid_regs / kvm_dirty_regs.
public struct SyncRegSet: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }

    public static let regs = SyncRegSet(rawValue: UInt64(KVM_SYNC_X86_REGS))
    public static let sregs = SyncRegSet(rawValue: UInt64(KVM_SYNC_X86_SREGS))
    public static let events = SyncRegSet(rawValue: UInt64(KVM_SYNC_X86_EVENTS))
    public static let all: SyncRegSet = [.regs, .sregs, .events]
    /// Proposed (unmerged): sync only on exits whose bit is set in the per-exit-reason bitmap.
    public static let conditional = SyncRegSet(rawValue: CKVM_SYNC_REGS_CONDITIONAL)

    public var description: String {
        var names: [String] = []
        if contains(.regs) { names.append("REGS") }
        if contains(.sregs) { names.append("SREGS") }
        if contains(.events) { names.append("EVENTS") }
        if contains(.conditional) { names.append("CONDITIONAL") }
        let rest = rawValue & ~(SyncRegSet.all.rawValue | SyncRegSet.conditional.rawValue)
        if rest != 0 { names.append(hex(rest)) }
        return names.isEmpty ? "none" : names.joined(separator: "|")
    }
}

/// KVM_GUESTDBG_* control bits.
public struct GuestDebugControl: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let enable = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_ENABLE))
    public static let singleStep = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_SINGLESTEP))
    public static let useSoftwareBreakpoints = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_USE_SW_BP))
    public static let useHardwareBreakpoints = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_USE_HW_BP))
    public static let injectDB = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_INJECT_DB))
    public static let injectBP = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_INJECT_BP))
    public static let blockIRQ = GuestDebugControl(rawValue: UInt32(KVM_GUESTDBG_BLOCKIRQ))

    public static let named: [(GuestDebugControl, String)] = [
        (.enable, "ENABLE"), (.singleStep, "SINGLESTEP"), (.useSoftwareBreakpoints, "USE_SW_BP"),
        (.useHardwareBreakpoints, "USE_HW_BP"), (.injectDB, "INJECT_DB"), (.injectBP, "INJECT_BP"),
        (.blockIRQ, "BLOCKIRQ"),
    ]

    public var description: String {
        var names = Self.named.filter { contains($0.0) }.map(\.1)
        let known = Self.named.reduce(UInt32(0)) { $0 | $1.0.rawValue }
        if rawValue & ~known != 0 { names.append(hex(rawValue & ~known)) }
        return names.isEmpty ? "0" : names.joined(separator: "|")
    }
}
