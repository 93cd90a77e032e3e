// The instruction set. Each method picks an encoding the way GAS and LLVM do
// for the equivalent Intel-syntax text (the tests check this byte for byte);
// deliberate differences are called out in comments.

// MARK: - Arithmetic and logic

/// The `/digit` of the classic ALU group; also selects the short opcodes
/// (`op*8 + 1` r/m,r; `op*8 + 3` r,r/m; `op*8 + 5` accumulator,imm).
private enum ALUOp: UInt8 {
    case add = 0, or = 1, and = 4, sub = 5, xor = 6, cmp = 7
}

extension Assembler {
    private mutating func alu(_ op: ALUOp, _ dst: Reg64, _ src: Reg64) {
        emit("\(op) r64, r64", w: true, opcode: [op.rawValue << 3 | 1], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    private mutating func alu(_ op: ALUOp, _ dst: Reg32, _ src: Reg32) {
        emit("\(op) r32, r32", opcode: [op.rawValue << 3 | 1], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    private mutating func alu(_ op: ALUOp, _ dst: Reg64, _ src: Mem) {
        emit("\(op) r64, m64", w: true, opcode: [op.rawValue << 3 | 3], reg: dst.rawValue, rm: .memory(src))
    }

    private mutating func alu(_ op: ALUOp, _ dst: Mem, _ src: Reg64) {
        emit("\(op) m64, r64", w: true, opcode: [op.rawValue << 3 | 1], reg: src.rawValue, rm: .memory(dst))
    }

    /// Encoding choice shared by the 32- and 64-bit immediate forms: `83 /n
    /// ib` if the (operand-size) value is a sign-extended byte, else the
    /// accumulator short form `op*8+5 id` for rax/eax, else `81 /n id`.
    private mutating func aluImmediate(_ op: ALUOp, w: Bool, register: UInt8, value: Int64) {
        // Built only for a diagnostic: interpolating an enum goes through reflection (costly at start-up).
        let what = { "\(op) r\(w ? 64 : 32), imm32" }
        guard checkImmediate(value, w ? ImmediateRange.signed32 : ImmediateRange.any32, what()) else { return }
        let operand = Int64(Int32(truncatingIfNeeded: value))  // the bit pattern the CPU sees
        if fitsInt8(operand) {
            emit(what(), w: w, opcode: [0x83], reg: op.rawValue, rm: .register(register),
                 imm: littleEndian(operand, size: 1))
        } else if register == 0 {
            emitRegisterInOpcode(w: w, opcode: op.rawValue << 3 | 5, register: 0, imm: littleEndian(operand, size: 4))
        } else {
            emit(what(), w: w, opcode: [0x81], reg: op.rawValue, rm: .register(register),
                 imm: littleEndian(operand, size: 4))
        }
    }

    public mutating func add(_ dst: Reg64, _ src: Reg64) { alu(.add, dst, src) }
    public mutating func add(_ dst: Reg32, _ src: Reg32) { alu(.add, dst, src) }
    public mutating func add(_ dst: Reg64, _ src: Mem) { alu(.add, dst, src) }
    public mutating func add(_ dst: Mem, _ src: Reg64) { alu(.add, dst, src) }
    /// imm: signed 32-bit (sign-extended to 64 bits).
    public mutating func add(_ dst: Reg64, _ imm: Int64) { aluImmediate(.add, w: true, register: dst.rawValue, value: imm) }
    /// imm: -2^31 ... 2^32-1.
    public mutating func add(_ dst: Reg32, _ imm: Int64) { aluImmediate(.add, w: false, register: dst.rawValue, value: imm) }

    public mutating func or(_ dst: Reg64, _ src: Reg64) { alu(.or, dst, src) }
    public mutating func or(_ dst: Reg32, _ src: Reg32) { alu(.or, dst, src) }
    public mutating func or(_ dst: Reg64, _ src: Mem) { alu(.or, dst, src) }
    public mutating func or(_ dst: Mem, _ src: Reg64) { alu(.or, dst, src) }
    public mutating func or(_ dst: Reg64, _ imm: Int64) { aluImmediate(.or, w: true, register: dst.rawValue, value: imm) }
    public mutating func or(_ dst: Reg32, _ imm: Int64) { aluImmediate(.or, w: false, register: dst.rawValue, value: imm) }

    public mutating func and(_ dst: Reg64, _ src: Reg64) { alu(.and, dst, src) }
    public mutating func and(_ dst: Reg32, _ src: Reg32) { alu(.and, dst, src) }
    public mutating func and(_ dst: Reg64, _ src: Mem) { alu(.and, dst, src) }
    public mutating func and(_ dst: Mem, _ src: Reg64) { alu(.and, dst, src) }
    public mutating func and(_ dst: Reg64, _ imm: Int64) { aluImmediate(.and, w: true, register: dst.rawValue, value: imm) }
    public mutating func and(_ dst: Reg32, _ imm: Int64) { aluImmediate(.and, w: false, register: dst.rawValue, value: imm) }

    public mutating func sub(_ dst: Reg64, _ src: Reg64) { alu(.sub, dst, src) }
    public mutating func sub(_ dst: Reg32, _ src: Reg32) { alu(.sub, dst, src) }
    public mutating func sub(_ dst: Reg64, _ src: Mem) { alu(.sub, dst, src) }
    public mutating func sub(_ dst: Mem, _ src: Reg64) { alu(.sub, dst, src) }
    public mutating func sub(_ dst: Reg64, _ imm: Int64) { aluImmediate(.sub, w: true, register: dst.rawValue, value: imm) }
    public mutating func sub(_ dst: Reg32, _ imm: Int64) { aluImmediate(.sub, w: false, register: dst.rawValue, value: imm) }

    public mutating func xor(_ dst: Reg64, _ src: Reg64) { alu(.xor, dst, src) }
    public mutating func xor(_ dst: Reg32, _ src: Reg32) { alu(.xor, dst, src) }
    public mutating func xor(_ dst: Reg64, _ src: Mem) { alu(.xor, dst, src) }
    public mutating func xor(_ dst: Mem, _ src: Reg64) { alu(.xor, dst, src) }
    public mutating func xor(_ dst: Reg64, _ imm: Int64) { aluImmediate(.xor, w: true, register: dst.rawValue, value: imm) }
    public mutating func xor(_ dst: Reg32, _ imm: Int64) { aluImmediate(.xor, w: false, register: dst.rawValue, value: imm) }

    public mutating func cmp(_ dst: Reg64, _ src: Reg64) { alu(.cmp, dst, src) }
    public mutating func cmp(_ dst: Reg32, _ src: Reg32) { alu(.cmp, dst, src) }
    public mutating func cmp(_ dst: Reg64, _ src: Mem) { alu(.cmp, dst, src) }
    public mutating func cmp(_ dst: Mem, _ src: Reg64) { alu(.cmp, dst, src) }
    public mutating func cmp(_ dst: Reg64, _ imm: Int64) { aluImmediate(.cmp, w: true, register: dst.rawValue, value: imm) }
    public mutating func cmp(_ dst: Reg32, _ imm: Int64) { aluImmediate(.cmp, w: false, register: dst.rawValue, value: imm) }

    public mutating func test(_ dst: Reg64, _ src: Reg64) {
        emit("test r64, r64", w: true, opcode: [0x85], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    public mutating func test(_ dst: Reg32, _ src: Reg32) {
        emit("test r32, r32", opcode: [0x85], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    /// `test` has no imm8 form: `A9 id` for rax, else `F7 /0 id`.
    public mutating func test(_ dst: Reg64, _ imm: Int64) {
        testImmediate(w: true, register: dst.rawValue, value: imm)
    }

    public mutating func test(_ dst: Reg32, _ imm: Int64) {
        testImmediate(w: false, register: dst.rawValue, value: imm)
    }

    private mutating func testImmediate(w: Bool, register: UInt8, value: Int64) {
        let what = "test r\(w ? 64 : 32), imm32"
        guard checkImmediate(value, w ? ImmediateRange.signed32 : ImmediateRange.any32, what) else { return }
        let imm = littleEndian(value, size: 4)
        if register == 0 {
            emitRegisterInOpcode(w: w, opcode: 0xA9, register: 0, imm: imm)
        } else {
            emit(what, w: w, opcode: [0xF7], reg: 0, rm: .register(register), imm: imm)
        }
    }

    public mutating func inc(_ dst: Reg64) { emit("inc r64", w: true, opcode: [0xFF], reg: 0, rm: .register(dst.rawValue)) }
    public mutating func inc(_ dst: Reg32) { emit("inc r32", opcode: [0xFF], reg: 0, rm: .register(dst.rawValue)) }
    public mutating func dec(_ dst: Reg64) { emit("dec r64", w: true, opcode: [0xFF], reg: 1, rm: .register(dst.rawValue)) }
    public mutating func dec(_ dst: Reg32) { emit("dec r32", opcode: [0xFF], reg: 1, rm: .register(dst.rawValue)) }

    /// Shifts by an immediate; a count of 1 uses the shorter `D1 /n` form,
    /// as GAS/LLVM do.
    private mutating func shift(_ digit: UInt8, w: Bool, register: UInt8, count: UInt8) {
        if count == 1 {
            emit("shift", w: w, opcode: [0xD1], reg: digit, rm: .register(register))
        } else {
            emit("shift", w: w, opcode: [0xC1], reg: digit, rm: .register(register), imm: [count])
        }
    }

    public mutating func shl(_ dst: Reg64, _ count: UInt8) { shift(4, w: true, register: dst.rawValue, count: count) }
    public mutating func shl(_ dst: Reg32, _ count: UInt8) { shift(4, w: false, register: dst.rawValue, count: count) }
    public mutating func shr(_ dst: Reg64, _ count: UInt8) { shift(5, w: true, register: dst.rawValue, count: count) }
    public mutating func shr(_ dst: Reg32, _ count: UInt8) { shift(5, w: false, register: dst.rawValue, count: count) }
    public mutating func sar(_ dst: Reg64, _ count: UInt8) { shift(7, w: true, register: dst.rawValue, count: count) }
    public mutating func sar(_ dst: Reg32, _ count: UInt8) { shift(7, w: false, register: dst.rawValue, count: count) }

    /// Bit test group `0F BA /n ib`.
    public mutating func bt(_ dst: Reg64, _ bit: UInt8) { emit("bt", w: true, opcode: [0x0F, 0xBA], reg: 4, rm: .register(dst.rawValue), imm: [bit]) }
    public mutating func bts(_ dst: Reg64, _ bit: UInt8) { emit("bts", w: true, opcode: [0x0F, 0xBA], reg: 5, rm: .register(dst.rawValue), imm: [bit]) }
    public mutating func btr(_ dst: Reg64, _ bit: UInt8) { emit("btr", w: true, opcode: [0x0F, 0xBA], reg: 6, rm: .register(dst.rawValue), imm: [bit]) }
}
