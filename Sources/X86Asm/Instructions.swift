// The instruction set. Each method picks an encoding the way GAS and LLVM do
// for the equivalent Intel-syntax text (the tests check this byte for byte);
// deliberate differences are called out in comments.

// MARK: - Data movement

extension Assembler {
    public mutating func mov(_ dst: Reg64, _ src: Reg64) {
        emit("mov r64, r64", w: true, opcode: [0x89], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    public mutating func mov(_ dst: Reg32, _ src: Reg32) {
        emit("mov r32, r32", opcode: [0x89], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    /// Like GAS/LLVM `mov r64, imm`: the 7-byte sign-extended imm32 form
    /// (`REX.W C7 /0`) when the value fits, else the 10-byte `movabs`.
    /// For unsigned 64-bit constants use `movabs` or `Int64(bitPattern:)`.
    public mutating func mov(_ dst: Reg64, _ imm: Int64) {
        if fitsInt32(imm) {
            emit("mov r64, imm32", w: true, opcode: [0xC7], reg: 0, rm: .register(dst.rawValue),
                 imm: littleEndian(imm, size: 4))
        } else {
            movabs(dst, UInt64(bitPattern: imm))
        }
    }

    /// Always the 10-byte `REX.W B8+r imm64` form.
    public mutating func movabs(_ dst: Reg64, _ imm: UInt64) {
        emitRegisterInOpcode(w: true, opcode: 0xB8, register: dst.rawValue,
                             imm: littleEndian(Int64(bitPattern: imm), size: 8))
    }

    /// `movabs dst, offset label`: loads the label's absolute address.
    public mutating func movabs(_ dst: Reg64, label: String) {
        emitRegisterInOpcode(w: true, opcode: 0xB8, register: dst.rawValue)
        emitLabelField(.abs64, label: label)
    }

    /// `B8+r imm32`; accepts -2^31 ... 2^32-1 (both spellings of a 32-bit pattern).
    public mutating func mov(_ dst: Reg32, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.any32, "mov r32, imm32") else { return }
        emitRegisterInOpcode(opcode: 0xB8, register: dst.rawValue, imm: littleEndian(imm, size: 4))
    }

    /// `B0+r imm8`; accepts -128 ... 255.
    public mutating func mov(_ dst: Reg8, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.any8, "mov r8, imm8") else { return }
        emitRegisterInOpcode(opcode: 0xB0, register: dst.rawValue, imm: littleEndian(imm, size: 1),
                             forceREX: dst.needsREX)
    }

    public mutating func mov(_ dst: Reg64, _ src: Mem) {
        emit("mov r64, m64", w: true, opcode: [0x8B], reg: dst.rawValue, rm: .memory(src))
    }

    public mutating func mov(_ dst: Mem, _ src: Reg64) {
        emit("mov m64, r64", w: true, opcode: [0x89], reg: src.rawValue, rm: .memory(dst))
    }

    public mutating func mov(_ dst: Reg32, _ src: Mem) {
        emit("mov r32, m32", opcode: [0x8B], reg: dst.rawValue, rm: .memory(src))
    }

    public mutating func mov(_ dst: Mem, _ src: Reg32) {
        emit("mov m32, r32", opcode: [0x89], reg: src.rawValue, rm: .memory(dst))
    }

    public mutating func mov(_ dst: Reg16, _ src: Mem) {
        emit("mov r16, m16", prefix: 0x66, opcode: [0x8B], reg: dst.rawValue, rm: .memory(src))
    }

    public mutating func mov(_ dst: Mem, _ src: Reg16) {
        emit("mov m16, r16", prefix: 0x66, opcode: [0x89], reg: src.rawValue, rm: .memory(dst))
    }

    public mutating func mov(_ dst: Reg8, _ src: Mem) {
        emit("mov r8, m8", opcode: [0x8A], reg: dst.rawValue, rm: .memory(src), forceREX: dst.needsREX)
    }

    public mutating func mov(_ dst: Mem, _ src: Reg8) {
        emit("mov m8, r8", opcode: [0x88], reg: src.rawValue, rm: .memory(dst), forceREX: src.needsREX)
    }

    /// `mov qword ptr [mem], imm32` (sign-extended to 64 bits).
    public mutating func mov(qword dst: Mem, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.signed32, "mov qword [mem], imm32") else { return }
        emit("mov qword [mem], imm32", w: true, opcode: [0xC7], reg: 0, rm: .memory(dst),
             imm: littleEndian(imm, size: 4))
    }

    public mutating func mov(dword dst: Mem, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.any32, "mov dword [mem], imm32") else { return }
        emit("mov dword [mem], imm32", opcode: [0xC7], reg: 0, rm: .memory(dst), imm: littleEndian(imm, size: 4))
    }

    public mutating func mov(word dst: Mem, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.any16, "mov word [mem], imm16") else { return }
        emit("mov word [mem], imm16", prefix: 0x66, opcode: [0xC7], reg: 0, rm: .memory(dst),
             imm: littleEndian(imm, size: 2))
    }

    public mutating func mov(byte dst: Mem, _ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.any8, "mov byte [mem], imm8") else { return }
        emit("mov byte [mem], imm8", opcode: [0xC6], reg: 0, rm: .memory(dst), imm: littleEndian(imm, size: 1))
    }

    // Control and debug registers: 64-bit operand size is implied, no REX.W.

    public mutating func mov(_ dst: Reg64, _ src: ControlReg) {
        emit("mov r64, cr", opcode: [0x0F, 0x20], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    public mutating func mov(_ dst: ControlReg, _ src: Reg64) {
        emit("mov cr, r64", opcode: [0x0F, 0x22], reg: dst.rawValue, rm: .register(src.rawValue))
    }

    public mutating func mov(_ dst: Reg64, _ src: DebugReg) {
        emit("mov r64, dr", opcode: [0x0F, 0x21], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    public mutating func mov(_ dst: DebugReg, _ src: Reg64) {
        emit("mov dr, r64", opcode: [0x0F, 0x23], reg: dst.rawValue, rm: .register(src.rawValue))
    }

    /// `mov sreg, r16` as `8E /r` without an operand-size prefix (GAS's
    /// choice; LLVM adds a redundant 0x66). Loading cs is rejected: it is
    /// undefined (#UD) on real hardware.
    public mutating func mov(_ dst: SegmentReg, _ src: Reg16) {
        guard dst != .cs else { return reject("mov cs, r16 is not a valid instruction") }
        emit("mov sreg, r16", opcode: [0x8E], reg: dst.rawValue, rm: .register(src.rawValue))
    }

    /// `66 8C /r`: writes only the low 16 bits of the register.
    public mutating func mov(_ dst: Reg16, _ src: SegmentReg) {
        emit("mov r16, sreg", prefix: 0x66, opcode: [0x8C], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    /// `8C /r`: zero-extends the selector into the 32-bit register.
    public mutating func mov(_ dst: Reg32, _ src: SegmentReg) {
        emit("mov r32, sreg", opcode: [0x8C], reg: src.rawValue, rm: .register(dst.rawValue))
    }

    public mutating func lea(_ dst: Reg64, _ src: Mem) {
        emit("lea r64, m", w: true, opcode: [0x8D], reg: dst.rawValue, rm: .memory(src))
    }

    public mutating func push(_ src: Reg64) {
        emitRegisterInOpcode(opcode: 0x50, register: src.rawValue)
    }

    public mutating func pop(_ dst: Reg64) {
        emitRegisterInOpcode(opcode: 0x58, register: dst.rawValue)
    }

    /// `push imm8` (6A) when the value fits a signed byte, else `push imm32`
    /// (68); either way the CPU pushes the sign-extended 64-bit value.
    public mutating func push(_ imm: Int64) {
        guard checkImmediate(imm, ImmediateRange.signed32, "push imm32") else { return }
        // Appended byte by byte, no temporary arrays: the guest IDT's stubs push 512 times per process.
        if fitsInt8(imm) {
            emitByte(0x6A)
            appendLittleEndian(imm, size: 1)
        } else {
            emitByte(0x68)
            appendLittleEndian(imm, size: 4)
        }
    }

    public mutating func pushfq() { emitRaw([0x9C]) }
    public mutating func popfq() { emitRaw([0x9D]) }
}

// MARK: - Port I/O

extension Assembler {
    public mutating func `in`(_ dst: Accumulator, _ port: UInt8) {
        emitRaw(Self.sizePrefix(dst) + [dst == .al ? 0xE4 : 0xE5, port])
    }

    public mutating func `in`(_ dst: Accumulator, _ port: PortDX) {
        emitRaw(Self.sizePrefix(dst) + [dst == .al ? 0xEC : 0xED])
    }

    public mutating func out(_ port: UInt8, _ src: Accumulator) {
        emitRaw(Self.sizePrefix(src) + [src == .al ? 0xE6 : 0xE7, port])
    }

    public mutating func out(_ port: PortDX, _ src: Accumulator) {
        emitRaw(Self.sizePrefix(src) + [src == .al ? 0xEE : 0xEF])
    }

    private static func sizePrefix(_ accumulator: Accumulator) -> [UInt8] {
        accumulator == .ax ? [0x66] : []
    }
}

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

// MARK: - Control flow

extension Assembler {
    /// `jmp rel32` (E9). Never shortened, so layout does not depend on
    /// label distance; use `jmp(short:)` for rel8.
    public mutating func jmp(_ label: String) {
        emitByte(0xE9)
        emitLabelField(.rel32, label: label)
    }

    /// `jmp rel8` (EB); `assemble()` throws `branchOutOfRange` if the target
    /// is not within -128...127 bytes of the next instruction.
    public mutating func jmp(short label: String) {
        emitRaw([0xEB])
        emitLabelField(.rel8, label: label)
    }

    /// `jcc rel32` (0F 80+cc).
    public mutating func jcc(_ condition: Condition, _ label: String) {
        emitRaw([0x0F, 0x80 | condition.rawValue])
        emitLabelField(.rel32, label: label)
    }

    /// `jcc rel8` (70+cc), range-checked like `jmp(short:)`.
    public mutating func jcc(_ condition: Condition, short label: String) {
        emitRaw([0x70 | condition.rawValue])
        emitLabelField(.rel8, label: label)
    }

    /// `call rel32` (E8).
    public mutating func call(_ label: String) {
        emitRaw([0xE8])
        emitLabelField(.rel32, label: label)
    }

    public mutating func jmp(_ target: Reg64) {
        emit("jmp r64", opcode: [0xFF], reg: 4, rm: .register(target.rawValue))
    }

    public mutating func call(_ target: Reg64) {
        emit("call r64", opcode: [0xFF], reg: 2, rm: .register(target.rawValue))
    }

    public mutating func ret() { emitRaw([0xC3]) }
    public mutating func iretq() { emitRaw([0x48, 0xCF]) }
    public mutating func int3() { emitRaw([0xCC]) }
    /// `int1`/`icebp` (F1).
    public mutating func int1() { emitRaw([0xF1]) }

    /// Always `CD ib`. Unlike GAS/LLVM, `int(3)` is *not* rewritten to the
    /// one-byte `int3` (CC): the two differ in length and in how KVM and the
    /// CPU treat them, so both must stay reachable. Use `int3()` for CC.
    public mutating func int(_ vector: UInt8) { emitRaw([0xCD, vector]) }
}

// MARK: - System and miscellaneous

extension Assembler {
    public mutating func nop() { emitRaw([0x90]) }
    public mutating func pause() { emitRaw([0xF3, 0x90]) }
    public mutating func hlt() { emitRaw([0xF4]) }
    public mutating func ud2() { emitRaw([0x0F, 0x0B]) }
    public mutating func cli() { emitRaw([0xFA]) }
    public mutating func sti() { emitRaw([0xFB]) }
    public mutating func cpuid() { emitRaw([0x0F, 0xA2]) }
    public mutating func rdtsc() { emitRaw([0x0F, 0x31]) }
    public mutating func rdmsr() { emitRaw([0x0F, 0x32]) }
    public mutating func wrmsr() { emitRaw([0x0F, 0x30]) }
    public mutating func wbinvd() { emitRaw([0x0F, 0x09]) }
    public mutating func swapgs() { emitRaw([0x0F, 0x01, 0xF8]) }
    public mutating func vmcall() { emitRaw([0x0F, 0x01, 0xC1]) }
    public mutating func lfence() { emitRaw([0x0F, 0xAE, 0xE8]) }
    public mutating func mfence() { emitRaw([0x0F, 0xAE, 0xF0]) }
    public mutating func sfence() { emitRaw([0x0F, 0xAE, 0xF8]) }

    public mutating func sgdt(_ dst: Mem) { emit("sgdt", opcode: [0x0F, 0x01], reg: 0, rm: .memory(dst)) }
    public mutating func sidt(_ dst: Mem) { emit("sidt", opcode: [0x0F, 0x01], reg: 1, rm: .memory(dst)) }
    public mutating func lgdt(_ src: Mem) { emit("lgdt", opcode: [0x0F, 0x01], reg: 2, rm: .memory(src)) }
    public mutating func lidt(_ src: Mem) { emit("lidt", opcode: [0x0F, 0x01], reg: 3, rm: .memory(src)) }
    public mutating func invlpg(_ address: Mem) { emit("invlpg", opcode: [0x0F, 0x01], reg: 7, rm: .memory(address)) }
    public mutating func ltr(_ selector: Reg16) { emit("ltr", opcode: [0x0F, 0x00], reg: 3, rm: .register(selector.rawValue)) }
}

// MARK: - Data and directives

extension Assembler {
    public mutating func db(_ data: [UInt8]) { emitRaw(data) }
    public mutating func dw(_ value: UInt16) { emitRaw(littleEndian(Int64(value), size: 2)) }
    public mutating func dd(_ value: UInt32) { emitRaw(littleEndian(Int64(value), size: 4)) }
    public mutating func dq(_ value: UInt64) { emitRaw(littleEndian(Int64(bitPattern: value), size: 8)) }

    /// The absolute address of `label` (origin + offset), like `.quad label`.
    public mutating func dq(label: String) { emitLabelField(.abs64, label: label) }

    /// Pads with `fill` until the *absolute* address (origin + offset) is a
    /// multiple of `boundary`, which must be a power of two. The default fill
    /// is single-byte nops; GAS pads code with multi-byte nops instead.
    public mutating func align(_ boundary: Int, fill: UInt8 = 0x90) {
        guard boundary > 0, boundary & (boundary - 1) == 0 else {
            return reject("align(\(boundary)): boundary must be a power of two")
        }
        let misalignment = Int(currentAddress % UInt64(boundary))
        if misalignment != 0 {
            emitRepeated(fill, count: boundary - misalignment)
        }
    }
}
