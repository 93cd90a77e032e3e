// Operand types. Raw values are the hardware register numbers (0–15); bit 3
// ends up in a REX bit, bits 0–2 in ModRM/SIB/opcode.

public enum Reg64: UInt8, Sendable, CaseIterable {
    case rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi
    case r8, r9, r10, r11, r12, r13, r14, r15
}

public enum Reg32: UInt8, Sendable, CaseIterable {
    case eax, ecx, edx, ebx, esp, ebp, esi, edi
    case r8d, r9d, r10d, r11d, r12d, r13d, r14d, r15d
}

public enum Reg16: UInt8, Sendable, CaseIterable {
    case ax, cx, dx, bx, sp, bp, si, di
    case r8w, r9w, r10w, r11w, r12w, r13w, r14w, r15w
}

/// Byte registers. ah/ch/dh/bh are left out on purpose: they cannot be
/// encoded together with a REX prefix, and leaving them out makes that
/// conflict impossible to express.
public enum Reg8: UInt8, Sendable, CaseIterable {
    case al, cl, dl, bl, spl, bpl, sil, dil
    case r8b, r9b, r10b, r11b, r12b, r13b, r14b, r15b

    /// spl/bpl/sil/dil share numbers 4–7 with ah/ch/dh/bh and are only
    /// selected when some REX prefix is present.
    var needsREX: Bool { (4...7).contains(rawValue) }
}

public enum ControlReg: UInt8, Sendable, CaseIterable {
    case cr0 = 0, cr2 = 2, cr3 = 3, cr4 = 4, cr8 = 8
}

public enum DebugReg: UInt8, Sendable, CaseIterable {
    case dr0, dr1, dr2, dr3, dr4, dr5, dr6, dr7
}

public enum SegmentReg: UInt8, Sendable, CaseIterable {
    case es, cs, ss, ds, fs, gs
}

/// The register operand of `in`/`out` (only the accumulator is encodable).
public enum Accumulator: Sendable, CaseIterable {
    case al, ax, eax
}

/// The `dx` port operand of `in`/`out`, e.g. `a.out(.dx, .al)`.
public enum PortDX: Sendable {
    case dx
}

/// Condition codes for `jcc`; raw value is the low nibble of the opcode.
public enum Condition: UInt8, Sendable, CaseIterable {
    case o, no, b, ae, e, ne, be, a, s, ns, p, np, l, ge, le, g

    // Aliases spelled the way GAS accepts them.
    public static let c = Condition.b
    public static let nae = Condition.b
    public static let nb = Condition.ae
    public static let nc = Condition.ae
    public static let z = Condition.e
    public static let nz = Condition.ne
    public static let na = Condition.be
    public static let nbe = Condition.a
    public static let pe = Condition.p
    public static let po = Condition.np
    public static let nge = Condition.l
    public static let nl = Condition.ge
    public static let ng = Condition.le
    public static let nle = Condition.g
}

public enum Scale: UInt8, Sendable, CaseIterable {
    case x1 = 0, x2, x4, x8
}

/// A memory operand.
///
/// - `.at(base, disp)`: `[base + disp]`; the displacement size (none, 8 or
///   32 bits) is chosen as GAS/LLVM do, including the SIB byte that rsp/r12
///   need and the zero disp8 that rbp/r13 need.
/// - `.at(base, index:scale:disp)`: `[base + index*scale + disp]`.
/// - `.indexed(index:scale:disp)`: `[index*scale + disp32]` with no base.
/// - `.absolute(address)`: `[disp32]`, encoded with a SIB byte and no base
///   (what GAS emits in 64-bit mode); the address must be sign-extendable
///   from 32 bits.
/// - `.rip(label, disp)`: `[rip + label + disp]`, resolved at assemble time.
public struct Mem: Sendable, Hashable {
    enum Base: Sendable, Hashable {
        case register(Reg64)
        case none
        case rip(label: String)
    }

    let base: Base
    let index: Reg64?
    let scale: Scale
    let disp: Int64

    public static func at(_ base: Reg64, _ disp: Int32 = 0) -> Mem {
        Mem(base: .register(base), index: nil, scale: .x1, disp: Int64(disp))
    }

    /// `index` must not be rsp (it has no index encoding); that is reported
    /// as `AssemblerError.invalidOperands` at assemble time.
    public static func at(_ base: Reg64, index: Reg64, scale: Scale = .x1, _ disp: Int32 = 0) -> Mem {
        Mem(base: .register(base), index: index, scale: scale, disp: Int64(disp))
    }

    public static func indexed(_ index: Reg64, scale: Scale, _ disp: Int32 = 0) -> Mem {
        Mem(base: .none, index: index, scale: scale, disp: Int64(disp))
    }

    /// Addresses outside the sign-extended 32-bit range (0...0x7fff_ffff and
    /// 0xffff_ffff_8000_0000...) are reported as
    /// `AssemblerError.invalidOperands` at assemble time.
    public static func absolute(_ address: UInt64) -> Mem {
        Mem(base: .none, index: nil, scale: .x1, disp: Int64(bitPattern: address))
    }

    public static func rip(_ label: String, _ disp: Int32 = 0) -> Mem {
        Mem(base: .rip(label: label), index: nil, scale: .x1, disp: Int64(disp))
    }
}
