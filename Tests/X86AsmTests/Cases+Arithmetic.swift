import X86Asm

/// The ALU group, so one loop can cover every mnemonic with every form.
enum ALUMnemonic: String, CaseIterable, Sendable {
    case add, or, and, sub, xor, cmp

    func apply(_ a: inout Assembler, _ d: Reg64, _ s: Reg64) {
        switch self {
        case .add: a.add(d, s)
        case .or: a.or(d, s)
        case .and: a.and(d, s)
        case .sub: a.sub(d, s)
        case .xor: a.xor(d, s)
        case .cmp: a.cmp(d, s)
        }
    }

    func apply(_ a: inout Assembler, _ d: Reg32, _ s: Reg32) {
        switch self {
        case .add: a.add(d, s)
        case .or: a.or(d, s)
        case .and: a.and(d, s)
        case .sub: a.sub(d, s)
        case .xor: a.xor(d, s)
        case .cmp: a.cmp(d, s)
        }
    }

    func apply(_ a: inout Assembler, _ d: Reg64, _ value: Int64) {
        switch self {
        case .add: a.add(d, value)
        case .or: a.or(d, value)
        case .and: a.and(d, value)
        case .sub: a.sub(d, value)
        case .xor: a.xor(d, value)
        case .cmp: a.cmp(d, value)
        }
    }

    func apply(_ a: inout Assembler, _ d: Reg32, _ value: Int64) {
        switch self {
        case .add: a.add(d, value)
        case .or: a.or(d, value)
        case .and: a.and(d, value)
        case .sub: a.sub(d, value)
        case .xor: a.xor(d, value)
        case .cmp: a.cmp(d, value)
        }
    }

    func apply(_ a: inout Assembler, _ d: Reg64, _ m: Mem) {
        switch self {
        case .add: a.add(d, m)
        case .or: a.or(d, m)
        case .and: a.and(d, m)
        case .sub: a.sub(d, m)
        case .xor: a.xor(d, m)
        case .cmp: a.cmp(d, m)
        }
    }

    func apply(_ a: inout Assembler, _ m: Mem, _ s: Reg64) {
        switch self {
        case .add: a.add(m, s)
        case .or: a.or(m, s)
        case .and: a.and(m, s)
        case .sub: a.sub(m, s)
        case .xor: a.xor(m, s)
        case .cmp: a.cmp(m, s)
        }
    }
}

extension CaseTable {
    mutating func addArithmetic() {
        for op in ALUMnemonic.allCases {
            for (d, s) in pairs(Reg64.self) where d.rawValue % 3 == 0 {
                add("\(op) \(d), \(s)") { op.apply(&$0, d, s) }
            }
            for (d, s) in pairs(Reg32.self) where d.rawValue % 4 == 0 {
                add("\(op) \(d), \(s)") { op.apply(&$0, d, s) }
            }
            // rax gets the short accumulator form for imm32 values.
            for r in [Reg64.rax, .rdx, .r8, .r15] {
                for value in imm32Boundaries {
                    add("\(op) \(r), \(imm(value))") { op.apply(&$0, r, value) }
                }
            }
            for r in [Reg32.eax, .ecx, .r9d] {
                for value: Int64 in [1, 0x7f, 0x80, 0xff, -1, 0x7fff_ffff, 0x8000_0000, 0xffff_ff80, 0xffff_ffff] {
                    add("\(op) \(r), \(imm(value))") { op.apply(&$0, r, value) }
                }
            }
            add("\(op) rbx, qword ptr [rsp + 0x8]") { op.apply(&$0, .rbx, .at(.rsp, 8)) }
            add("\(op) r12, qword ptr [r13]") { op.apply(&$0, .r12, .at(.r13)) }
            add("\(op) qword ptr [rax], rbx") { op.apply(&$0, .at(.rax), .rbx) }
            add("\(op) qword ptr [r9 + 0x100], r10") { op.apply(&$0, .at(.r9, 0x100), .r10) }
        }

        for (d, s) in pairs(Reg64.self) where d.rawValue % 2 == 0 {
            add("test \(d), \(s)") { $0.test(d, s) }
        }
        for (d, s) in pairs(Reg32.self) where d.rawValue % 2 == 0 {
            add("test \(d), \(s)") { $0.test(d, s) }
        }
        for r in [Reg64.rax, .rcx, .r9] {
            for value: Int64 in [1, 0x80, -1, 0x7fff_ffff, -0x8000_0000] {
                add("test \(r), \(imm(value))") { $0.test(r, value) }
            }
        }
        for r in [Reg32.eax, .edi, .r11d] {
            for value: Int64 in [1, 0xff, 0xffff_ffff] {
                add("test \(r), \(imm(value))") { $0.test(r, value) }
            }
        }

        for r in Reg64.allCases {
            add("inc \(r)") { $0.inc(r) }
            add("dec \(r)") { $0.dec(r) }
        }
        for r in [Reg32.eax, .esp, .r8d, .r12d] {
            add("inc \(r)") { $0.inc(r) }
            add("dec \(r)") { $0.dec(r) }
        }

        for r in [Reg64.rax, .rcx, .r10, .r15] {
            for count: UInt8 in [1, 2, 12, 63] {
                add("shl \(r), \(count)") { $0.shl(r, count) }
                add("shr \(r), \(count)") { $0.shr(r, count) }
                add("sar \(r), \(count)") { $0.sar(r, count) }
            }
            for bit: UInt8 in [0, 5, 63] {
                add("bt \(r), \(bit)") { $0.bt(r, bit) }
                add("bts \(r), \(bit)") { $0.bts(r, bit) }
                add("btr \(r), \(bit)") { $0.btr(r, bit) }
            }
        }
        for r in [Reg32.eax, .r13d] {
            for count: UInt8 in [1, 31] {
                add("shl \(r), \(count)") { $0.shl(r, count) }
                add("shr \(r), \(count)") { $0.shr(r, count) }
                add("sar \(r), \(count)") { $0.sar(r, count) }
            }
        }
    }
}
