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
