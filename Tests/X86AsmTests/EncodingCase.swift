import Testing
import X86Asm

/// One cross-check: Intel-syntax text for the reference assembler and a
/// closure emitting the same code through the Swift API.
///
/// In `text`, `@name` is a label local to the case; it is rewritten to a
/// unique `.L` symbol before assembling. The Swift side uses plain `name`.
struct EncodingCase: Sendable, CustomTestStringConvertible {
    /// How a particular reference assembler should see the case.
    enum Variant: Sendable {
        case same
        /// Different spelling with the same intended bytes (LLVM and GAS
        /// disagree on a redundant prefix, or lack a mnemonic).
        case text(String)
        /// The assembler cannot express the bytes at all.
        case skip
    }

    let index: Int
    let text: String
    let gnu: Variant
    let llvm: Variant
    let emit: @Sendable (inout Assembler) -> Void

    var testDescription: String {
        "#\(index) " + text.split(separator: "\n").joined(separator: "; ")
    }

    func source(for flavor: ReferenceToolchain.Flavor) -> String? {
        let raw: String
        switch flavor == .gnu ? gnu : llvm {
        case .same: raw = text
        case .text(let alternative): raw = alternative
        case .skip: return nil
        }
        return raw.replacingOccurrences(of: "@", with: ".Lc\(index)_")
    }

    static let all: [EncodingCase] = {
        var table = CaseTable()
        table.addMoves()
        table.addMemoryOperands()
        table.addSystemMoves()
        table.addStack()
        table.addPortIO()
        table.addArithmetic()
        table.addControlFlow()
        table.addMiscellaneous()
        table.addData()
        return table.cases
    }()
}

struct CaseTable {
    private(set) var cases: [EncodingCase] = []

    mutating func add(
        _ text: String, gnu: EncodingCase.Variant = .same, llvm: EncodingCase.Variant = .same,
        _ emit: @escaping @Sendable (inout Assembler) -> Void
    ) {
        cases.append(EncodingCase(index: cases.count, text: text, gnu: gnu, llvm: llvm, emit: emit))
    }
}

// MARK: - Operand spelling helpers

/// Register pairs that mix low/high numbers in both positions, so every
/// combination of REX.R and REX.B gets exercised.
func pairs<R: CaseIterable>(_: R.Type) -> [(R, R)] where R.AllCases == [R] {
    let all = R.allCases
    return all.indices.flatMap { i in [(all[i], all[all.count - 1 - i]), (all[i], all[(i + 1) % all.count])] }
}

/// Intel-syntax immediate; Int64.min is spelled as its bit pattern.
func imm(_ value: Int64) -> String {
    if value == .min { return "0x8000000000000000" }
    return value < 0 ? "-0x" + String(-value, radix: 16) : "0x" + String(value, radix: 16)
}

func disp(_ value: Int32) -> String {
    value == 0 ? "" : value < 0 ? " - 0x" + String(-Int64(value), radix: 16) : " + 0x" + String(value, radix: 16)
}

/// `[base + index*scale + disp]` in Intel syntax.
func memory(_ base: Reg64?, index: Reg64? = nil, scale: Scale = .x1, _ displacement: Int32 = 0) -> String {
    var parts: [String] = []
    if let base { parts.append("\(base)") }
    if let index { parts.append("\(index)*\(1 << scale.rawValue)") }
    var text = parts.joined(separator: " + ")
    if text.isEmpty {
        text = "0x" + String(UInt32(bitPattern: displacement), radix: 16)
    } else {
        text += disp(displacement)
    }
    return "[\(text)]"
}

let displacements: [Int32] = [0, 1, -1, 127, 128, -128, -129, 0x1234, 0x7fff_ffff, Int32.min]
let imm32Boundaries: [Int64] = [0, 1, -1, 127, 128, -128, -129, 0x7fff_ffff, -0x8000_0000]
let bigImmediates: [Int64] = [
    0x8000_0000, 0xffff_ffff, 0x1_0000_0000, -0x8000_0001, Int64.max, Int64.min,
    Int64(bitPattern: 0xdead_beef_cafe_babe), Int64(bitPattern: 0xffff_ffff_8000_0000),
]

func reg32(_ r: Reg64) -> Reg32 { Reg32(rawValue: r.rawValue)! }
