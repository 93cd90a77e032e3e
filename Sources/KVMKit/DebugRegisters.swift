/// DR6 as the CPU (or KVM_EXIT_DEBUG.dr6) reports it: which condition raised #DB.
public struct DR6: Equatable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// Bits that read as 1 when nothing is reported (reserved ones, and RTM's active-low bit 16).
    public static let activeLow: UInt64 = 0xFFFF_0FF0
    public static let debugRegisterAccess: UInt64 = 1 << 13 // BD
    public static let singleStep: UInt64 = 1 << 14 // BS
    public static let taskSwitch: UInt64 = 1 << 15 // BT

    /// The value a correct #DB reports for exactly these conditions.
    public static func reporting(breakpoints: [Int] = [], singleStep: Bool = false, registerAccess: Bool = false) -> DR6 {
        var v = activeLow
        for n in breakpoints { precondition((0..<4).contains(n), "DR0-DR3 only"); v |= 1 << UInt64(n) }
        if singleStep { v |= Self.singleStep }
        if registerAccess { v |= debugRegisterAccess }
        return DR6(v)
    }

    /// B0–B3: breakpoints whose condition was met.
    public var breakpointsHit: [Int] { (0..<4).filter { rawValue >> UInt64($0) & 1 == 1 } }
    public var isSingleStep: Bool { rawValue & Self.singleStep != 0 }
    public var isRegisterAccess: Bool { rawValue & Self.debugRegisterAccess != 0 }

    /// e.g. "0xffff4ff0 (BS)", "0xffff0ff1 (B0)", "0x0 (reserved bits clear: not a DR6 value)".
    public var description: String {
        var names = breakpointsHit.map { "B\($0)" }
        if isRegisterAccess { names.append("BD") }
        if isSingleStep { names.append("BS") }
        if rawValue & Self.taskSwitch != 0 { names.append("BT") }
        if rawValue & 0xFFFF_0000_0000_0000 == 0, rawValue & 0xFFFF_0000 != 0xFFFF_0000 {
            names.append("active-low bits 31:16 not all set")
        }
        return hex(rawValue) + " (" + (names.isEmpty ? "no condition" : names.joined(separator: "|")) + ")"
    }
}

/// DR7: which of DR0–DR3 are armed, for what access and length.  Composable:
/// `DR7.fixed | DR7.arming(0, .execute) | DR7.arming(1, .write, length: 4)`.
public struct DR7: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// Bit 10 reads as 1; a DR7 with nothing armed.
    public static let fixed = DR7(0x400)
    /// GD: the next MOV to/from any DR raises #DB with DR6.BD.
    public static let generalDetect = DR7(1 << 13)

    public static func | (lhs: DR7, rhs: DR7) -> DR7 { lhs.union(rhs) }

    public enum Access: UInt64, Sendable, CaseIterable, CustomStringConvertible {
        case execute = 0, write = 1, io = 2, readWrite = 3
        public var description: String {
            switch self {
            case .execute: return "execute"
            case .write: return "write"
            case .io: return "io"
            case .readWrite: return "read/write"
            }
        }
    }

    public struct Breakpoint: Equatable, Hashable, Sendable, CustomStringConvertible {
        public let index: Int
        public let access: Access
        /// 1, 2, 4 or 8 bytes (execute breakpoints are always 1).
        public let length: Int
        public let local: Bool
        public let global: Bool

        public init(index: Int, access: Access, length: Int, local: Bool, global: Bool) {
            self.index = index; self.access = access; self.length = length; self.local = local; self.global = global
        }

        public var description: String {
            "\(global ? "G" : "")\(local ? "L" : "")\(index) \(access)" + (access == .execute ? "" : " len \(length)")
        }
    }

    /// LEN field encoding: 00=1, 01=2, 10=8, 11=4 bytes.
    static let lengthCodes: [Int: UInt64] = [1: 0, 2: 1, 8: 2, 4: 3]

    /// The DR7 bits arming DRn (global enable, as the selftests do), without the fixed bit.
    public static func arming(_ index: Int, _ access: Access, length: Int = 1, global: Bool = true) -> DR7 {
        precondition((0..<4).contains(index), "DR0-DR3 only")
        guard let len = lengthCodes[length] else { preconditionFailure("length must be 1, 2, 4 or 8") }
        precondition(access != .execute || length == 1, "execute breakpoints have length 1")
        let enable: UInt64 = global ? 2 : 1
        return DR7(enable << UInt64(2 * index) | (access.rawValue | len << 2) << UInt64(16 + 4 * index))
    }

    public var breakpoints: [Breakpoint] {
        (0..<4).compactMap { n in
            let local = rawValue >> UInt64(2 * n) & 1 == 1, global = rawValue >> UInt64(2 * n + 1) & 1 == 1
            guard local || global else { return nil }
            let field = rawValue >> UInt64(16 + 4 * n) & 0xF
            let length = Self.lengthCodes.first { $0.value == field >> 2 }!.key
            return Breakpoint(index: n, access: Access(rawValue: field & 3)!, length: length, local: local, global: global)
        }
    }

    public var generalDetectEnabled: Bool { contains(.generalDetect) }

    /// e.g. "0x4000a (G0 execute, G1 write len 4)", "0x400 (nothing armed)".
    public var description: String {
        var parts = breakpoints.map(\.description)
        if generalDetectEnabled { parts.append("GD") }
        return hex(rawValue) + " (" + (parts.isEmpty ? "nothing armed" : parts.joined(separator: ", ")) + ")"
    }
}

/// kvm_guest_debug_arch.debugreg for KVM_SET_GUEST_DEBUG: the host's DR0–DR3 by index, and DR7
/// (slots 4–6 are unused by x86 KVM).
public struct GuestDebugRegisters: Equatable, Sendable {
    /// DRn's address, by n (0–3); unset registers are 0.
    public var breakpoints: [Int: UInt64]
    public var dr7: DR7

    public init(_ breakpoints: [Int: UInt64] = [:], dr7: DR7 = DR7(0)) {
        precondition(breakpoints.keys.allSatisfy((0..<4).contains), "DR0-DR3 only")
        self.breakpoints = breakpoints
        self.dr7 = dr7
    }

    /// DRn on `address`, armed for `access` (and nothing else): the common one-breakpoint case.
    public static func breakpoint(_ n: Int, at address: UInt64, _ access: DR7.Access = .execute, length: Int = 1) -> Self {
        GuestDebugRegisters([n: address], dr7: .fixed | .arming(n, access, length: length))
    }

    /// The eight debugreg slots in uAPI order.
    var slots: [UInt64] { (0..<4).map { breakpoints[$0] ?? 0 } + [0, 0, 0, dr7.rawValue] }
}
