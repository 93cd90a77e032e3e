import Testing
import X86Asm

@Suite("Assembler behaviour")
struct AssemblerTests {
    private func assemble(origin: UInt64 = 0, _ body: (inout Assembler) -> Void) throws(AssemblerError) -> Program {
        var assembler = Assembler(origin: origin)
        body(&assembler)
        return try assembler.assemble()
    }

    private func expectError(_ expected: AssemblerError, _ body: (inout Assembler) -> Void,
                             sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: expected, sourceLocation: sourceLocation) { try assemble(body) }
    }

    @Test func labelsAreAbsoluteAddresses() throws {
        let program = try assemble(origin: 0x10000) {
            $0.label("start")
            $0.nop()
            $0.label("middle")
            $0.movabs(.rax, label: "end")   // 10 bytes
            $0.dq(label: "middle")          // 8 bytes
            $0.label("end")
        }
        #expect(program.origin == 0x10000)
        #expect(program.labels == ["start": 0x10000, "middle": 0x10001, "end": 0x10013])
        #expect(program.address("end") == 0x10013)
        #expect(program.bytes == [0x90, 0x48, 0xB8, 0x13, 0x00, 0x01, 0, 0, 0, 0, 0,
                                  0x01, 0x00, 0x01, 0, 0, 0, 0, 0])
        #expect(program.labels["missing"] == nil)
    }

    @Test func relativeBranchesDoNotDependOnOrigin() throws {
        let body: (inout Assembler) -> Void = {
            $0.label("top"); $0.jmp("top"); $0.jcc(.e, short: "top"); $0.call("top")
        }
        let low = try assemble(origin: 0, body)
        let high = try assemble(origin: 0xffff_8000_0000_0000, body)
        #expect(low.bytes == high.bytes)
        #expect(low.bytes == [0xE9, 0xFB, 0xFF, 0xFF, 0xFF, 0x74, 0xF9, 0xE8, 0xF4, 0xFF, 0xFF, 0xFF])
    }

    @Test func undefinedLabels() {
        expectError(.undefinedLabel("nowhere")) { $0.jmp("nowhere") }
        expectError(.undefinedLabel("nowhere")) { $0.jcc(.ne, short: "nowhere") }
        expectError(.undefinedLabel("nowhere")) { $0.call("nowhere") }
        expectError(.undefinedLabel("nowhere")) { $0.movabs(.rax, label: "nowhere") }
        expectError(.undefinedLabel("nowhere")) { $0.dq(label: "nowhere") }
        expectError(.undefinedLabel("nowhere")) { $0.lea(.rax, .rip("nowhere")) }
    }

    @Test func duplicateLabel() {
        expectError(.duplicateLabel("twice")) { $0.label("twice"); $0.nop(); $0.label("twice") }
    }

    @Test func shortBranchRange() throws {
        // 127 forward and -128 backward are the limits (measured from the
        // end of the 2-byte branch).
        _ = try assemble { $0.jmp(short: "t"); $0.db(Array(repeating: 0, count: 127)); $0.label("t") }
        _ = try assemble { $0.label("t"); $0.db(Array(repeating: 0, count: 126)); $0.jmp(short: "t") }

        expectError(.branchOutOfRange(label: "t", distance: 128)) {
            $0.jmp(short: "t"); $0.db(Array(repeating: 0, count: 128)); $0.label("t")
        }
        expectError(.branchOutOfRange(label: "t", distance: -129)) {
            $0.label("t"); $0.db(Array(repeating: 0, count: 127)); $0.jcc(.z, short: "t")
        }
    }

    @Test func immediatesOutOfRange() {
        expectError(.immediateOutOfRange(instruction: "add r64, imm32", value: 0x8000_0000)) { $0.add(.rax, 0x8000_0000) }
        expectError(.immediateOutOfRange(instruction: "cmp r32, imm32", value: 0x1_0000_0000)) { $0.cmp(.eax, 0x1_0000_0000) }
        expectError(.immediateOutOfRange(instruction: "mov r32, imm32", value: -0x8000_0001)) { $0.mov(.eax, -0x8000_0001) }
        expectError(.immediateOutOfRange(instruction: "mov r8, imm8", value: 256)) { $0.mov(.al, 256) }
        expectError(.immediateOutOfRange(instruction: "mov qword [mem], imm32", value: 0xffff_ffff)) {
            $0.mov(qword: .at(.rax), 0xffff_ffff)
        }
        expectError(.immediateOutOfRange(instruction: "mov byte [mem], imm8", value: -129)) { $0.mov(byte: .at(.rax), -129) }
        expectError(.immediateOutOfRange(instruction: "push imm32", value: 0x8000_0000)) { $0.push(0x8000_0000) }
        expectError(.immediateOutOfRange(instruction: "test r64, imm32", value: 0x8000_0000)) { $0.test(.rcx, 0x8000_0000) }
    }

    @Test func invalidOperands() throws {
        #expect(throws: AssemblerError.self) { try assemble { $0.mov(.cs, .ax) } }
        #expect(throws: AssemblerError.self) { try assemble { $0.mov(.rax, .at(.rax, index: .rsp)) } }
        #expect(throws: AssemblerError.self) { try assemble { $0.mov(.rax, .absolute(0x8000_0000)) } }
        #expect(throws: AssemblerError.self) { try assemble { $0.align(3) } }
        // Index rsp is rejected rather than silently swapped with the base.
        do {
            _ = try assemble { $0.lea(.rax, .at(.rbx, index: .rsp)) }
            Issue.record("expected an error")
        } catch {
            guard case .invalidOperands(let message) = error else {
                Issue.record("unexpected error \(error)"); return
            }
            #expect(message.contains("rsp"))
        }
    }

    @Test func firstProblemIsReported() {
        expectError(.duplicateLabel("a")) {
            $0.label("a"); $0.label("a"); $0.mov(.al, 1000); $0.jmp("nowhere")
        }
    }

    /// GAS and LLVM turn `int 3` into `int3` (CC); this assembler keeps the
    /// explicit two-byte form so both encodings stay reachable.
    @Test func intThreeIsNotRewritten() throws {
        #expect(try assemble { $0.int(3) }.bytes == [0xCD, 0x03])
        #expect(try assemble { $0.int3() }.bytes == [0xCC])
    }

    @Test func alignUsesAbsoluteAddress() throws {
        #expect(try assemble(origin: 0x10001) { $0.align(4) }.bytes == [0x90, 0x90, 0x90])
        #expect(try assemble(origin: 0x10004) { $0.align(4) }.bytes == [])
        #expect(try assemble(origin: 0x10001) { $0.align(1) }.bytes == [])
        #expect(try assemble { $0.nop(); $0.align(4, fill: 0xCC) }.bytes == [0x90, 0xCC, 0xCC, 0xCC])
    }

    @Test func currentAddressTracksOrigin() {
        var assembler = Assembler(origin: 0x7000)
        assembler.hlt()
        assembler.dq(0)
        #expect(assembler.currentAddress == 0x7009)
    }

    @Test func valueTypesAreSendable() async throws {
        var assembler = Assembler(origin: 0x1000)
        assembler.label("entry")
        assembler.hlt()
        let copy = assembler  // value semantics: later edits don't leak
        assembler.nop()
        let program = try await Task.detached { try copy.assemble() }.value
        #expect(program.bytes == [0xF4])
    }
}
