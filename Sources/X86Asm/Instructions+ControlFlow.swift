// The instruction set. Each method picks an encoding the way GAS and LLVM do
// for the equivalent Intel-syntax text (the tests check this byte for byte);
// deliberate differences are called out in comments.

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
