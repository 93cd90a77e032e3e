import Testing
import X86Asm

/// Every `EncodingCase` is assembled by the reference toolchain (once, in a
/// single invocation) and by `Assembler`; the bytes must be identical.
@Suite("Encodings match an independent assembler")
struct CrossCheckTests {
    @Test("GNU as", .enabled(if: ReferenceToolchain.gnu.isAvailable, ReferenceToolchain.gnu.skipComment),
          arguments: EncodingCase.all.filter { $0.source(for: .gnu) != nil })
    func gnu(_ encoding: EncodingCase) throws {
        try check(encoding, against: .gnu)
    }

    @Test("LLVM (clang -x assembler)", .enabled(if: ReferenceToolchain.llvm.isAvailable, ReferenceToolchain.llvm.skipComment),
          arguments: EncodingCase.all.filter { $0.source(for: .llvm) != nil })
    func llvm(_ encoding: EncodingCase) throws {
        try check(encoding, against: .llvm)
    }

    private func check(_ encoding: EncodingCase, against flavor: ReferenceToolchain.Flavor) throws {
        let reference = try ReferenceToolchain.reference(flavor).get()
        let expected = try #require(reference.bytes[encoding.index])
        let origin = try #require(reference.address[encoding.index])

        var assembler = Assembler(origin: origin)
        encoding.emit(&assembler)
        let actual = try assembler.assemble().bytes

        #expect(actual == expected, """
            \(encoding.source(for: flavor) ?? encoding.text)
              expected (\(flavor.rawValue)): \(hex(expected))
              actual   (X86Asm):  \(hex(actual))
            """)
    }
}
