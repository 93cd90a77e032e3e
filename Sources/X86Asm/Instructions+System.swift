// The instruction set. Each method picks an encoding the way GAS and LLVM do
// for the equivalent Intel-syntax text (the tests check this byte for byte);
// deliberate differences are called out in comments.

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
