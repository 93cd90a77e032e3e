import X86Asm

// `{disp32}` makes GAS and LLVM keep rel32 for near targets; without it they
// relax to rel8, which is what the `short:` variants are compared against.

extension CaseTable {
    mutating func addControlFlow() {
        add("{disp32} jmp @t\nnop\nnop\n@t: nop") {
            $0.jmp("t"); $0.nop(); $0.nop(); $0.label("t"); $0.nop()
        }
        add("@t: nop\n{disp32} jmp @t") { $0.label("t"); $0.nop(); $0.jmp("t") }
        add("@t: {disp32} jmp @t") { $0.label("t"); $0.jmp("t") }
        add("jmp @t\n.fill 300, 1, 0xcc\n@t: nop") {
            $0.jmp("t"); $0.db(Array(repeating: 0xcc, count: 300)); $0.label("t"); $0.nop()
        }
        add("@t: .fill 300, 1, 0xcc\njmp @t") {
            $0.label("t"); $0.db(Array(repeating: 0xcc, count: 300)); $0.jmp("t")
        }

        // rel8 at both ends of its range.
        add("jmp @t\n@t: nop") { $0.jmp(short: "t"); $0.label("t"); $0.nop() }
        add("jmp @t\n.fill 127, 1, 0xcc\n@t: nop") {
            $0.jmp(short: "t"); $0.db(Array(repeating: 0xcc, count: 127)); $0.label("t"); $0.nop()
        }
        add("@t: .fill 126, 1, 0xcc\njmp @t") {
            $0.label("t"); $0.db(Array(repeating: 0xcc, count: 126)); $0.jmp(short: "t")
        }
        add("@t: jmp @t") { $0.label("t"); $0.jmp(short: "t") }

        for c in Condition.allCases {
            add("{disp32} j\(c) @t\nnop\n@t: nop") { $0.jcc(c, "t"); $0.nop(); $0.label("t"); $0.nop() }
            add("@t: nop\n{disp32} j\(c) @t") { $0.label("t"); $0.nop(); $0.jcc(c, "t") }
            add("j\(c) @t\nnop\n@t: nop") { $0.jcc(c, short: "t"); $0.nop(); $0.label("t"); $0.nop() }
            add("@t: .fill 126, 1, 0x90\nj\(c) @t") {
                $0.label("t"); $0.db(Array(repeating: 0x90, count: 126)); $0.jcc(c, short: "t")
            }
        }
        // GAS spellings that map onto the aliases.
        let aliases: [(String, Condition)] = [
            ("jz", .z), ("jnz", .nz), ("jc", .c), ("jnc", .nc), ("jnae", .nae), ("jnb", .nb),
            ("jna", .na), ("jnbe", .nbe), ("jpe", .pe), ("jpo", .po), ("jnge", .nge), ("jnl", .nl),
            ("jng", .ng), ("jnle", .nle),
        ]
        for (mnemonic, c) in aliases {
            add("{disp32} \(mnemonic) @t\n@t: nop") { $0.jcc(c, "t"); $0.label("t"); $0.nop() }
        }

        add("call @f\nnop\n@f: ret") { $0.call("f"); $0.nop(); $0.label("f"); $0.ret() }
        add("@f: ret\ncall @f") { $0.label("f"); $0.ret(); $0.call("f") }
        for r in Reg64.allCases {
            add("jmp \(r)") { $0.jmp(r) }
            add("call \(r)") { $0.call(r) }
        }

        add("ret") { $0.ret() }
        add("iretq") { $0.iretq() }
        add("int3") { $0.int3() }
        // LLVM's assembler has no `int1`/`icebp` mnemonic.
        add("int1", llvm: .skip) { $0.int1() }
        for vector: UInt8 in [0, 1, 0x20, 0x80, 0xff] {
            add("int \(vector)") { $0.int(vector) }
        }

        // A small IDT/iretq style sequence mixing everything label-related.
        add("""
            @entry: movabs rax, offset @handler
            mov qword ptr [rsp], rax
            lea rbx, [rip + @idt]
            {disp32} jmp @done
            @handler: iretq
            @done: hlt
            {disp32} jne @entry
            jmp @entry
            .balign 8, 0xcc
            @idt: .quad @handler
            .quad @done
            """) {
            $0.label("entry"); $0.movabs(.rax, label: "handler")
            $0.mov(.at(.rsp), .rax)
            $0.lea(.rbx, .rip("idt"))
            $0.jmp("done")
            $0.label("handler"); $0.iretq()
            $0.label("done"); $0.hlt()
            $0.jcc(.ne, "entry")
            $0.jmp(short: "entry")
            $0.align(8, fill: 0xcc)
            $0.label("idt"); $0.dq(label: "handler")
            $0.dq(label: "done")
        }
    }

    mutating func addMiscellaneous() {
        add("nop") { $0.nop() }
        add("pause") { $0.pause() }
        add("hlt") { $0.hlt() }
        add("ud2") { $0.ud2() }
        add("cli") { $0.cli() }
        add("sti") { $0.sti() }
        add("cpuid") { $0.cpuid() }
        add("rdtsc") { $0.rdtsc() }
        add("rdmsr") { $0.rdmsr() }
        add("wrmsr") { $0.wrmsr() }
        add("wbinvd") { $0.wbinvd() }
        add("swapgs") { $0.swapgs() }
        add("vmcall") { $0.vmcall() }
        add("lfence") { $0.lfence() }
        add("mfence") { $0.mfence() }
        add("sfence") { $0.sfence() }

        let operands: [(String, Mem)] = [
            ("[rax]", .at(.rax)), ("[rsp + 0x8]", .at(.rsp, 8)), ("[r12]", .at(.r12)), ("[r13]", .at(.r13)),
            ("[rbp - 0x100]", .at(.rbp, -0x100)), ("[r15 + rcx*8]", .at(.r15, index: .rcx, scale: .x8)),
            ("[0x1000]", .absolute(0x1000)),
        ]
        for (text, m) in operands {
            add("lgdt \(text)") { $0.lgdt(m) }
            add("lidt \(text)") { $0.lidt(m) }
            add("sgdt \(text)") { $0.sgdt(m) }
            add("sidt \(text)") { $0.sidt(m) }
            add("invlpg \(text)") { $0.invlpg(m) }
        }
        add("lgdt [rip + @gdtr]\n@gdtr: .word 0\n.quad 0") {
            $0.lgdt(.rip("gdtr")); $0.label("gdtr"); $0.dw(0); $0.dq(0)
        }
        for r in [Reg16.ax, .cx, .di, .r8w, .r15w] {
            add("ltr \(r)") { $0.ltr(r) }
        }
    }

    mutating func addData() {
        add(".byte 0x1, 0x2, 0xff") { $0.db([1, 2, 0xff]) }
        add(".word 0x1234") { $0.dw(0x1234) }
        add(".long 0xdeadbeef") { $0.dd(0xdead_beef) }
        add(".quad 0x123456789abcdef0") { $0.dq(0x1234_5678_9abc_def0) }
        add("@x: .quad @x") { $0.label("x"); $0.dq(label: "x") }
        add(".quad @x\n.byte 0x0\n@x: nop") { $0.dq(label: "x"); $0.db([0]); $0.label("x"); $0.nop() }
        add("nop\n.balign 16, 0xcc") { $0.nop(); $0.align(16, fill: 0xcc) }
        add(".balign 4096, 0x0") { $0.align(4096, fill: 0) }
        add("nop\n.balign 8, 0x0\n.balign 8, 0x0") { $0.nop(); $0.align(8, fill: 0); $0.align(8, fill: 0) }
        // GAS pads code with multi-byte nops when the fill is 0x90, so only
        // LLVM (which honours the fill byte) can check the default fill.
        add("nop\n.balign 8, 0x90", gnu: .skip) { $0.nop(); $0.align(8) }
    }
}
