import CKVM
import KVMKit
import X86Asm

/// Builds the fixed long-mode environment: page tables, GDT with ring-3 segments and
/// a TSS, and an IDT whose every vector reports vector, error code and RIP to the host.
public enum GuestEnvironment {
    /// Vectors for which the CPU pushes an error code.
    static let vectorsWithErrorCode: Set<Int> = [8, 10, 11, 12, 13, 14, 17, 21, 29, 30]

    static func install(in memory: GuestMemory) throws {
        installPageTables(in: memory, root: GuestLayout.pml4)
        installGDT(in: memory)
        try installIDT(in: memory)
        memory.store(UInt64(1), at: GuestLayout.mailbox + UInt64(Ucall.recordDebugStatus))
    }

    /// Identity-maps the first 2 GiB with user-accessible 2 MiB pages under `root`,
    /// whose PDPT and page directories follow it (root+0x1000 … root+0x3000).
    public static func installPageTables(in memory: GuestMemory, root: UInt64) {
        let pdpt = root + 0x1000, pd = root + 0x2000
        let present: UInt64 = 0x1, writable: UInt64 = 0x2, user: UInt64 = 0x4, large: UInt64 = 0x80
        memory.fill(0, at: root, count: 0x4000)
        memory.store(pdpt | present | writable | user, at: root)
        for i in 0..<2 {
            memory.store((pd + UInt64(i) * 0x1000) | present | writable | user, at: pdpt + UInt64(i * 8))
        }
        for i in 0..<1024 {
            memory.store(UInt64(i) << 21 | present | writable | user | large, at: pd + UInt64(i * 8))
        }
    }

    static func installGDT(in memory: GuestMemory) {
        let descriptors: [UInt64] = [
            0,
            0x00AF_9A00_0000_FFFF, // 0x08 kernel code: 64-bit, DPL0
            0x00CF_9200_0000_FFFF, // 0x10 kernel data
            0x00CF_F200_0000_FFFF, // 0x18 user data, DPL3
            0x00AF_FA00_0000_FFFF, // 0x20 user code: 64-bit, DPL3
        ]
        for (i, d) in descriptors.enumerated() { memory.store(d, at: GuestLayout.gdt + UInt64(i * 8)) }
        // 0x28: 64-bit available TSS (16 bytes).
        let base = GuestLayout.tss, limit: UInt64 = 0x67
        let low = limit | (base & 0xFFFFFF) << 16 | UInt64(0x89) << 40 | (base >> 24 & 0xFF) << 56
        memory.store(low, at: GuestLayout.gdt + 0x28)
        memory.store(base >> 32, at: GuestLayout.gdt + 0x30)
        // TSS: RSP0 for ring 3 → 0 transitions; no I/O bitmap: CPL3 payloads do no port I/O.
        memory.fill(0, at: GuestLayout.tss, count: 0x68)
        memory.store(GuestLayout.kernelStackTop, at: GuestLayout.tss + 4)
        memory.store(UInt16(0x68), at: GuestLayout.tss + 0x66)
    }

    static func installIDT(in memory: GuestMemory) throws {
        memory.write(handlers.bytes, at: GuestLayout.handlers)
        memory.write(idtImage, at: GuestLayout.idt)
    }

    /// The 256 gates (4 KiB), built once per process: every guest gets the same table.
    static let idtImage: [UInt8] = {
        var image: [UInt8] = []
        image.reserveCapacity(256 * 16)
        for vector in 0..<256 {
            let target = handlerEntry(vector: vector)
            // 64-bit interrupt gate, present, DPL3 so `int n`/`int3` work from ring 3.
            let low = (target & 0xFFFF) | UInt64(GuestLayout.kernelCode) << 16 | UInt64(0xEE) << 40
                | (target >> 16 & 0xFFFF) << 48
            for word in [low, target >> 32] { for i in 0..<8 { image.append(UInt8(truncatingIfNeeded: word >> (8 * UInt64(i)))) } }
        }
        return image
    }()

    /// The handler code every guest gets (assembled once; it depends on nothing per guest).
    static let handlers: Program = {
        do { return try handlerProgram() } catch { fatalError("guest IDT handlers do not assemble: \(error)") }
    }()

    /// Each vector's stub is `stubSize` bytes, in vector order from GuestLayout.handlers.
    static let stubSize = 16

    /// Where the guest's IDT sends `vector` (its stub's first instruction).  The stubs sit at
    /// fixed offsets (handlerProgram checks they fit), so no per-vector label is needed.
    public static func handlerEntry(vector: Int) -> UInt64 { GuestLayout.handlers + UInt64(vector * stubSize) }

    /// One stub per vector, then a common handler that reports the frame through the mailbox.
    static func handlerProgram() throws -> Program {
        var a = Assembler(origin: GuestLayout.handlers)
        for vector in 0..<256 {
            if !vectorsWithErrorCode.contains(vector) { a.push(0) }
            a.push(Int64(vector))
            a.jmp("common")
            a.align(stubSize)
            guard a.currentAddress == handlerEntry(vector: vector + 1) else {
                throw GuestError.assembly(.invalidOperands("IDT stub \(vector) does not fit in \(stubSize) bytes"))
            }
        }
        let mb = { (offset: Int32) in Ucall.field(offset) }
        // Stack: rax, vector, error, rip, cs, rflags, rsp, ss.
        a.label("common")
        a.push(.rax)
        for (i, slot) in [8, 16, 24, 32, 40].enumerated() {
            a.mov(.rax, .at(.rsp, Int32(slot)))
            a.mov(mb(Ucall.values + Int32(i * 8)), .rax)
        }
        a.mov(.rax, .cr2)
        a.mov(mb(Ucall.values + 40), .rax)
        // On #DB, record DR6 and reset it as an OS would (B0-B3 are sticky), unless turned off.
        a.mov(qword: mb(Ucall.debugStatus), 0)
        a.mov(.rax, .at(.rsp, 8))
        a.cmp(.rax, 1)
        a.jcc(.ne, "counted")
        a.mov(.rax, mb(Ucall.recordDebugStatus))
        a.test(.rax, .rax)
        a.jcc(.z, "counted")
        a.mov(.rax, .dr6)
        a.mov(mb(Ucall.debugStatus), .rax)
        a.movabs(.rax, DR6.activeLow)
        a.mov(.dr6, .rax)
        a.label("counted")
        a.mov(.rax, mb(Ucall.exceptionCount))
        a.inc(.rax)
        a.mov(mb(Ucall.exceptionCount), .rax)
        a.mov(qword: Ucall.doorbell, Int64(Ucall.Command.exception.rawValue))
        // A payload that expected the fault resumes at its fixup.
        a.mov(.rax, mb(Ucall.fixup))
        a.test(.rax, .rax)
        a.jcc(.z, "no_fixup")
        a.mov(.at(.rsp, 24), .rax)
        a.mov(qword: mb(Ucall.fixup), 0)
        a.jmp("resume")
        a.label("no_fixup")
        // Traps (#DB, #BP) and interrupts resume where they left off; #DB sets RF so an
        // instruction breakpoint does not fire again.  Anything else parks the vCPU.
        a.mov(.rax, .at(.rsp, 8))
        a.cmp(.rax, 1)
        a.jcc(.e, "resume_rf")
        a.cmp(.rax, 3)
        a.jcc(.e, "resume")
        a.cmp(.rax, 32)
        a.jcc(.ae, "resume")
        a.label("park")
        a.hlt()
        a.jmp("park")
        a.label("resume_rf")
        a.mov(.rax, .at(.rsp, 40))
        a.bts(.rax, 16)
        a.mov(.at(.rsp, 40), .rax)
        a.label("resume")
        a.pop(.rax)
        a.add(.rsp, 16)
        a.iretq()
        do { return try a.assemble() } catch { throw GuestError.assembly(error) }
    }

    /// 64-bit segments, paging and descriptor tables for `cpl`, keeping the rest of `base`.
    static func longModeSregs(base: kvm_sregs, cpl: GuestCPL, extraCR4: UInt64) -> kvm_sregs {
        var s = base
        func segment(_ selector: UInt16, type: UInt8, code: Bool, dpl: UInt8) -> kvm_segment {
            var seg = kvm_segment()
            seg.base = 0
            seg.limit = 0xFFFF_FFFF
            seg.selector = selector
            seg.type = type
            seg.present = 1
            seg.dpl = dpl
            seg.s = 1
            seg.l = code ? 1 : 0
            seg.db = code ? 0 : 1
            seg.g = 1
            return seg
        }
        let ring: UInt8 = cpl == .cpl3 ? 3 : 0
        s.cs = cpl == .cpl3 ? segment(GuestLayout.userCode, type: 11, code: true, dpl: 3)
                            : segment(GuestLayout.kernelCode, type: 11, code: true, dpl: 0)
        let data = cpl == .cpl3 ? segment(GuestLayout.userData, type: 3, code: false, dpl: ring)
                                : segment(GuestLayout.kernelData, type: 3, code: false, dpl: 0)
        s.ds = data; s.es = data; s.fs = data; s.gs = data; s.ss = data

        var tr = kvm_segment()
        tr.base = GuestLayout.tss
        tr.limit = 0x67
        tr.selector = GuestLayout.taskState
        tr.type = 11 // busy 64-bit TSS
        tr.present = 1
        s.tr = tr
        var ldt = kvm_segment()
        ldt.type = 2
        ldt.present = 1
        ldt.unusable = 1
        s.ldt = ldt

        s.gdt.base = GuestLayout.gdt
        s.gdt.limit = 0x37
        s.idt.base = GuestLayout.idt
        s.idt.limit = 0xFFF
        s.cr0 = 0x8000_0033 // PG | NE | ET | MP | PE
        s.cr3 = GuestLayout.pml4
        s.cr4 = 0x20 | 0x200 | 0x400 | extraCR4 // PAE | OSFXSR | OSXMMEXCPT
        s.efer = 0x500 // LME | LMA
        return s
    }
}
