import X86Asm

extension CaseTable {
    mutating func addMoves() {
        for (d, s) in pairs(Reg64.self) {
            add("mov \(d), \(s)") { $0.mov(d, s) }
        }
        for (d, s) in pairs(Reg32.self) {
            add("mov \(d), \(s)") { $0.mov(d, s) }
        }

        // mov r64, imm: sign-extended imm32 form or 10-byte movabs, as GAS picks.
        for value in imm32Boundaries + bigImmediates {
            add("mov rax, \(imm(value))") { $0.mov(.rax, value) }
        }
        for r in Reg64.allCases {
            add("mov \(r), 0x12345678") { $0.mov(r, 0x1234_5678) }
            add("mov \(r), 0x123456789abcdef0") { $0.mov(r, 0x1234_5678_9abc_def0) }
            add("movabs \(r), 0x5") { $0.movabs(r, 5) }
        }
        add("movabs rax, 0xffffffffffffffff") { $0.movabs(.rax, .max) }

        for r in Reg32.allCases {
            add("mov \(r), 0xffffffff") { $0.mov(r, 0xffff_ffff) }
        }
        for value: Int64 in [0, -1, 0x7fff_ffff, 0x8000_0000, -0x8000_0000] {
            add("mov r9d, \(imm(value))") { $0.mov(.r9d, value) }
        }

        for r in Reg8.allCases {
            add("mov \(r), 0x7f") { $0.mov(r, 0x7f) }
        }
        add("mov al, 0xff") { $0.mov(.al, 0xff) }
        add("mov r12b, -0x80") { $0.mov(.r12b, -128) }

        // Label addresses (absolute; resolved by the linker on the reference side).
        add("@here: movabs rax, offset @here") { $0.label("here"); $0.movabs(.rax, label: "here") }
        add("movabs r11, offset @ahead\nnop\n@ahead: nop") {
            $0.movabs(.r11, label: "ahead"); $0.nop(); $0.label("ahead"); $0.nop()
        }

        add("lea rax, [rip + @data]\n@data: .quad 0") {
            $0.lea(.rax, .rip("data")); $0.label("data"); $0.dq(0)
        }
        add("@data: .quad 0\nlea r15, [rip + @data + 0x10]") {
            $0.label("data"); $0.dq(0); $0.lea(.r15, .rip("data", 0x10))
        }
        // The immediate after a RIP displacement moves the anchor.
        add("mov qword ptr [rip + @v], 0x5\n@v: .quad 0") {
            $0.mov(qword: .rip("v"), 5); $0.label("v"); $0.dq(0)
        }
        add("@v: .long 0\nmov dword ptr [rip + @v], 0x12345678") {
            $0.label("v"); $0.dd(0); $0.mov(dword: .rip("v"), 0x1234_5678)
        }
        add("@v: .byte 0\nmov byte ptr [rip + @v - 0x4], 0x1") {
            $0.label("v"); $0.db([0]); $0.mov(byte: .rip("v", -4), 1)
        }
        add("mov r8, qword ptr [rip + @v]\nmov qword ptr [rip + @v], r9\n@v: .quad 0") {
            $0.mov(.r8, .rip("v")); $0.mov(.rip("v"), .r9); $0.label("v"); $0.dq(0)
        }
    }

    mutating func addMemoryOperands() {
        // Every base with every displacement class: ModRM mod, SIB for
        // rsp/r12, forced disp8 for rbp/r13.
        for base in Reg64.allCases {
            for d in displacements {
                add("mov rax, qword ptr \(memory(base, d))") { $0.mov(.rax, .at(base, d)) }
            }
        }
        // The reg field (REX.R) with bases that need REX.B / SIB.
        for r in Reg64.allCases {
            add("mov qword ptr \(memory(.r12, 8)), \(r)") { $0.mov(.at(.r12, 8), r) }
            add("mov \(r), qword ptr \(memory(.rbp))") { $0.mov(r, .at(.rbp)) }
        }
        // Index registers and scales (REX.X), with and without base.
        let indexed: [(Reg64, Reg64, Scale, Int32)] = [
            (.rax, .rcx, .x1, 0), (.rsp, .rbx, .x2, 8), (.rbp, .r13, .x8, 0), (.r12, .r15, .x4, -0x1000),
            (.r13, .rax, .x8, 0x1234_5678), (.rdi, .rbp, .x1, -128), (.r8, .r9, .x2, 127), (.rbx, .r12, .x4, 0),
        ]
        for (base, index, scale, d) in indexed {
            add("lea rdx, \(memory(base, index: index, scale: scale, d))") {
                $0.lea(.rdx, .at(base, index: index, scale: scale, d))
            }
            add("mov r10, qword ptr \(memory(base, index: index, scale: scale, d))") {
                $0.mov(.r10, .at(base, index: index, scale: scale, d))
            }
        }
        for (index, scale, d): (Reg64, Scale, Int32) in [(.rcx, .x4, 0x10), (.r9, .x8, -8), (.rbp, .x1, 0), (.r13, .x2, 0x7fff_ffff)] {
            add("mov rax, qword ptr \(memory(nil, index: index, scale: scale, d))") {
                $0.mov(.rax, .indexed(index, scale: scale, d))
            }
        }
        // Absolute [disp32]: SIB with no base and no index.
        for address: UInt64 in [0, 0x1234, 0x7fff_ffff, 0xffff_ffff_8000_0000, 0xffff_ffff_ffff_fff0] {
            let text = "0x" + String(address, radix: 16)
            add("mov rax, qword ptr [\(text)]") { $0.mov(.rax, .absolute(address)) }
            add("mov qword ptr [\(text)], r13") { $0.mov(.absolute(address), .r13) }
        }
        add("mov eax, dword ptr [0x1234]") { $0.mov(.eax, .absolute(0x1234)) }
        add("mov al, byte ptr [0x1234]") { $0.mov(.al, .absolute(0x1234)) }

        // Other operand sizes.
        for r in Reg32.allCases {
            add("mov \(r), dword ptr [rsp + 0x4]") { $0.mov(r, .at(.rsp, 4)) }
            add("mov dword ptr [r13 - 0x4], \(r)") { $0.mov(.at(.r13, -4), r) }
        }
        for r in Reg16.allCases {
            add("mov \(r), word ptr [rax]") { $0.mov(r, .at(.rax)) }
            add("mov word ptr [r9 + 0x200], \(r)") { $0.mov(.at(.r9, 0x200), r) }
        }
        for r in Reg8.allCases {
            add("mov \(r), byte ptr [rbx]") { $0.mov(r, .at(.rbx)) }
            add("mov byte ptr [r12], \(r)") { $0.mov(.at(.r12), r) }
        }

        // Stores of immediates.
        for value in imm32Boundaries {
            add("mov qword ptr [rax], \(imm(value))") { $0.mov(qword: .at(.rax), value) }
        }
        for value: Int64 in [0, -1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, -0x8000_0000] {
            add("mov dword ptr [r12 + 0x10], \(imm(value))") { $0.mov(dword: .at(.r12, 0x10), value) }
        }
        for value: Int64 in [0, -1, 0x7fff, 0x8000, 0xffff, -0x8000] {
            add("mov word ptr [rbp], \(imm(value))") { $0.mov(word: .at(.rbp), value) }
        }
        for value: Int64 in [0, -1, 0x7f, 0x80, 0xff, -0x80] {
            add("mov byte ptr [r13 + 0x1], \(imm(value))") { $0.mov(byte: .at(.r13, 1), value) }
        }
        add("mov qword ptr [rsp + 0x8], 0x1") { $0.mov(qword: .at(.rsp, 8), 1) }
        add("mov qword ptr [0x5000], 0x1") { $0.mov(qword: .absolute(0x5000), 1) }
        add("mov dword ptr [rax + rcx*4 + 0x10], 0x2") { $0.mov(dword: .at(.rax, index: .rcx, scale: .x4, 0x10), 2) }

        for base in [Reg64.rax, .rsp, .rbp, .r12, .r13, .r15] {
            add("lea rax, \(memory(base, -0x80))") { $0.lea(.rax, .at(base, -128)) }
            add("lea r14, \(memory(base))") { $0.lea(.r14, .at(base)) }
        }
    }

    mutating func addSystemMoves() {
        for cr in ControlReg.allCases {
            for r in [Reg64.rax, .rbx, .r9, .r15] {
                add("mov \(r), \(cr)") { $0.mov(r, cr) }
                add("mov \(cr), \(r)") { $0.mov(cr, r) }
            }
        }
        for dr in DebugReg.allCases {
            for r in [Reg64.rax, .rsi, .r10] {
                add("mov \(r), \(dr)") { $0.mov(r, dr) }
                add("mov \(dr), \(r)") { $0.mov(dr, r) }
            }
        }
        // LLVM spells `mov sreg, r16` with a redundant 0x66 and `mov r16,
        // sreg` without the 0x66 GAS uses; the LLVM texts below produce the
        // same bytes as GAS.
        for s in SegmentReg.allCases where s != .cs {
            for r in [Reg16.ax, .bx, .r8w, .r15w] {
                let r32 = Reg32(rawValue: r.rawValue)!
                add("mov \(s), \(r)", llvm: .text("mov \(s), \(r32)")) { $0.mov(s, r) }
            }
        }
        for s in SegmentReg.allCases {
            for r in [Reg16.ax, .r9w] {
                let r32 = Reg32(rawValue: r.rawValue)!
                add("mov \(r), \(s)", llvm: .text("data16 mov \(r32), \(s)")) { $0.mov(r, s) }
                add("mov \(r32), \(s)") { $0.mov(r32, s) }
            }
        }
    }

    mutating func addStack() {
        for r in Reg64.allCases {
            add("push \(r)") { $0.push(r) }
            add("pop \(r)") { $0.pop(r) }
        }
        for value in imm32Boundaries {
            add("push \(imm(value))") { $0.push(value) }
        }
        add("pushfq") { $0.pushfq() }
        add("popfq") { $0.popfq() }
    }

    mutating func addPortIO() {
        add("in al, 0x10") { $0.in(.al, 0x10) }
        add("in ax, 0x60") { $0.in(.ax, 0x60) }
        add("in eax, 0xff") { $0.in(.eax, 0xff) }
        add("in al, dx") { $0.in(.al, .dx) }
        add("in ax, dx") { $0.in(.ax, .dx) }
        add("in eax, dx") { $0.in(.eax, .dx) }
        add("out 0x80, al") { $0.out(0x80, .al) }
        add("out 0x0, ax") { $0.out(0, .ax) }
        add("out 0xe9, eax") { $0.out(0xe9, .eax) }
        add("out dx, al") { $0.out(.dx, .al) }
        add("out dx, ax") { $0.out(.dx, .ax) }
        add("out dx, eax") { $0.out(.dx, .eax) }
    }
}
