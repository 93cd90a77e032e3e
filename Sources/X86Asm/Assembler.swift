/// A small x86-64 assembler for test payloads.
///
/// Instruction methods append machine code and never throw; problems that
/// the operand types cannot rule out (out-of-range immediates, `mov cs, ax`,
/// duplicate labels, ...) are recorded and reported by `assemble()`, together
/// with undefined labels and out-of-range branches.
///
/// Branches to labels (`jmp`, `jcc`, `call`) use rel32 unless the `short:`
/// variant (rel8, range-checked) is used; nothing is relaxed automatically,
/// so code size never depends on label positions.
public struct Assembler: Sendable {
    public let origin: UInt64
    private(set) var bytes: [UInt8] = []
    private var labelOffsets: [String: Int] = [:]
    private var fixups: [Fixup] = []
    private var problems: [AssemblerError] = []

    public init(origin: UInt64 = 0) {
        self.origin = origin
    }

    /// Address the next emitted byte will have.
    public var currentAddress: UInt64 { origin &+ UInt64(bytes.count) }

    /// Binds `name` to the current position. Binding a name twice is
    /// reported as `duplicateLabel` by `assemble()`.
    public mutating func label(_ name: String) {
        if labelOffsets[name] != nil {
            problems.append(.duplicateLabel(name))
        } else {
            labelOffsets[name] = bytes.count
        }
    }

    /// Resolves label references and returns the finished program. Throws
    /// the first recorded problem, then the first unresolvable reference.
    public func assemble() throws(AssemblerError) -> Program {
        if let first = problems.first { throw first }
        var output = bytes
        for fixup in fixups {
            guard let target = labelOffsets[fixup.label] else {
                throw .undefinedLabel(fixup.label)
            }
            switch fixup.kind {
            case .rel8, .rel32:
                let distance = Int64(target - fixup.anchor) + fixup.addend
                let range: ClosedRange<Int64> = fixup.kind == .rel8
                    ? Int64(Int8.min)...Int64(Int8.max)
                    : Int64(Int32.min)...Int64(Int32.max)
                guard range.contains(distance) else {
                    throw .branchOutOfRange(label: fixup.label, distance: distance)
                }
                let size = fixup.kind == .rel8 ? 1 : 4
                output.replaceSubrange(fixup.at..<fixup.at + size, with: littleEndian(distance, size: size))
            case .abs64:
                let address = origin &+ UInt64(target) &+ UInt64(bitPattern: fixup.addend)
                output.replaceSubrange(fixup.at..<fixup.at + 8, with: littleEndian(Int64(bitPattern: address), size: 8))
            }
        }
        let absolute = labelOffsets.mapValues { origin &+ UInt64($0) }
        return Program(origin: origin, bytes: output, labels: absolute)
    }
}

// MARK: - Encoding core

/// A label reference patched by `assemble()`.
struct Fixup: Sendable {
    enum Kind: Sendable { case rel8, rel32, abs64 }
    let kind: Kind
    let label: String
    /// Offset of the field to patch.
    let at: Int
    /// Relative values are measured from here (the end of the instruction).
    let anchor: Int
    let addend: Int64
}

/// The r/m side of a ModRM-encoded instruction.
enum RM {
    case register(UInt8)
    case memory(Mem)
}

func littleEndian(_ value: Int64, size: Int) -> [UInt8] {
    let bits = UInt64(bitPattern: value)
    return (0..<size).map { UInt8(truncatingIfNeeded: bits >> (8 * UInt64($0))) }
}

func fitsInt8(_ value: Int64) -> Bool { Int64(Int8.min)...Int64(Int8.max) ~= value }
func fitsInt32(_ value: Int64) -> Bool { Int64(Int32.min)...Int64(Int32.max) ~= value }

extension Assembler {
    /// The one place that builds prefixes, REX, ModRM, SIB and displacement.
    ///
    /// - `reg`: register number or opcode extension (`/digit`) for ModRM.reg.
    /// - `w`: REX.W (64-bit operand size).
    /// - `forceREX`: emit a REX prefix even if no bit is set (spl/bpl/sil/dil).
    mutating func emit(
        _ what: @autoclosure () -> String,
        prefix: UInt8? = nil, w: Bool = false, opcode: [UInt8],
        reg: UInt8, rm: RM, imm: [UInt8] = [], forceREX: Bool = false
    ) {
        var rex: UInt8 = (w ? 0x08 : 0) | (reg & 8 != 0 ? 0x04 : 0)
        var tail: [UInt8]
        var ripReference: (label: String, addend: Int64)?

        switch rm {
        case .register(let number):
            rex |= number & 8 != 0 ? 0x01 : 0
            tail = [0xC0 | (reg & 7) << 3 | (number & 7)]
        case .memory(let mem):
            if mem.index == .rsp {
                problems.append(.invalidOperands("\(what()): rsp cannot be an index register"))
                return
            }
            let regField = (reg & 7) << 3
            let indexBits = (mem.index?.rawValue ?? 0b100) & 7  // 100 = no index
            let sib = mem.scale.rawValue << 6 | indexBits << 3
            rex |= (mem.index?.rawValue ?? 0) & 8 != 0 ? 0x02 : 0
            switch mem.base {
            case .rip(let label):
                tail = [0b00_000_101 | regField] + [0, 0, 0, 0]
                ripReference = (label, mem.disp)
            case .none:
                // mod=00 with SIB base=101 means "disp32, no base"; this is
                // the 64-bit absolute form (rm=101 alone would be RIP-relative).
                guard fitsInt32(mem.disp) else {
                    problems.append(.invalidOperands(
                        "\(what()): absolute address 0x\(String(UInt64(bitPattern: mem.disp), radix: 16)) is not a sign-extended 32-bit value"))
                    return
                }
                tail = [0b00_000_100 | regField, sib | 0b101] + littleEndian(mem.disp, size: 4)
            case .register(let base):
                rex |= base.rawValue & 8 != 0 ? 0x01 : 0
                let baseBits = base.rawValue & 7
                // rbp/r13 (101) with mod=00 would mean disp32/RIP, so they
                // always carry at least a disp8.
                let dispSize = mem.disp == 0 && baseBits != 0b101 ? 0 : fitsInt8(mem.disp) ? 1 : 4
                let mod: UInt8 = dispSize == 0 ? 0b00 : dispSize == 1 ? 0b01 : 0b10
                // rsp/r12 (100) in rm means "SIB follows", so they need a SIB.
                if mem.index != nil || baseBits == 0b100 {
                    tail = [mod << 6 | regField | 0b100, sib | baseBits]
                } else {
                    tail = [mod << 6 | regField | baseBits]
                }
                tail += littleEndian(mem.disp, size: dispSize)
            }
        }

        if let prefix { bytes.append(prefix) }
        if rex != 0 || forceREX { bytes.append(0x40 | rex) }
        bytes += opcode
        let modrmAt = bytes.count
        bytes += tail
        bytes += imm
        if let ripReference {
            // RIP-relative displacements count from the end of the whole
            // instruction, i.e. after any immediate.
            fixups.append(Fixup(kind: .rel32, label: ripReference.label, at: modrmAt + 1,
                                anchor: bytes.count, addend: ripReference.addend))
        }
    }

    /// Instructions that encode the register in the low opcode bits
    /// (`push r`, `mov r, imm`, ...).
    mutating func emitRegisterInOpcode(
        prefix: UInt8? = nil, w: Bool = false, opcode: UInt8, register: UInt8,
        imm: [UInt8] = [], forceREX: Bool = false
    ) {
        if let prefix { bytes.append(prefix) }
        let rex: UInt8 = (w ? 0x08 : 0) | (register & 8 != 0 ? 0x01 : 0)
        if rex != 0 || forceREX { bytes.append(0x40 | rex) }
        bytes.append(opcode | (register & 7))
        bytes += imm
    }

    mutating func emitRaw(_ raw: [UInt8]) {
        bytes += raw
    }

    mutating func emitByte(_ byte: UInt8) { bytes.append(byte) }

    mutating func emitRepeated(_ byte: UInt8, count: Int) { bytes.append(contentsOf: repeatElement(byte, count: count)) }

    /// `value`'s low `size` bytes, least significant first, without a temporary array.
    mutating func appendLittleEndian(_ value: Int64, size: Int) {
        let bits = UInt64(bitPattern: value)
        for i in 0..<size { bytes.append(UInt8(truncatingIfNeeded: bits >> (8 * UInt64(i)))) }
    }

    /// Appends a zero placeholder and records a fixup for it; the anchor is
    /// the end of the placeholder, which is the end of every branch.
    mutating func emitLabelField(_ kind: Fixup.Kind, label: String) {
        let size = kind == .rel8 ? 1 : kind == .rel32 ? 4 : 8
        let at = bytes.count
        emitRepeated(0, count: size)
        fixups.append(Fixup(kind: kind, label: label, at: at, anchor: bytes.count, addend: 0))
    }

    /// Records an error and returns false if `value` is outside `range`.
    mutating func checkImmediate(_ value: Int64, _ range: ClosedRange<Int64>, _ what: @autoclosure () -> String) -> Bool {
        if range.contains(value) { return true }
        problems.append(.immediateOutOfRange(instruction: what(), value: value))
        return false
    }

    mutating func reject(_ what: @autoclosure () -> String) {
        problems.append(.invalidOperands(what()))
    }
}

/// Immediate ranges accepted the way GAS accepts them: a 32-bit field takes
/// signed or unsigned spellings of the same bit pattern.
enum ImmediateRange {
    static let signed32: ClosedRange<Int64> = Int64(Int32.min)...Int64(Int32.max)
    static let any32: ClosedRange<Int64> = Int64(Int32.min)...Int64(UInt32.max)
    static let any16: ClosedRange<Int64> = Int64(Int16.min)...Int64(UInt16.max)
    static let any8: ClosedRange<Int64> = Int64(Int8.min)...Int64(UInt8.max)
}
