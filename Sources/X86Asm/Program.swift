public enum AssemblerError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A branch, `.rip` operand or label-address value names a label that
    /// was never bound.
    case undefinedLabel(String)
    /// `label(_:)` was called twice with the same name.
    case duplicateLabel(String)
    /// A branch target is out of reach; `distance` is target minus the end of
    /// the branch instruction. Raised for `short` (rel8) branches, and for
    /// rel32 in the unlikely case a program spans more than 2 GiB.
    case branchOutOfRange(label: String, distance: Int64)
    /// An immediate does not fit the instruction's immediate field.
    case immediateOutOfRange(instruction: String, value: Int64)
    /// An operand combination the types could not rule out
    /// (e.g. `mov cs, ax`, rsp as an index register, `align(3)`).
    case invalidOperands(String)

    public var description: String {
        switch self {
        case .undefinedLabel(let name): "undefined label '\(name)'"
        case .duplicateLabel(let name): "duplicate label '\(name)'"
        case .branchOutOfRange(let label, let distance):
            "branch to '\(label)' out of range (distance \(distance))"
        case .immediateOutOfRange(let instruction, let value):
            "immediate \(value) out of range for \(instruction)"
        case .invalidOperands(let what): "invalid operands: \(what)"
        }
    }
}

/// Machine code produced by `Assembler.assemble()`, to be loaded at `origin`.
public struct Program: Sendable, Equatable {
    public let origin: UInt64
    public let bytes: [UInt8]
    /// Absolute address (origin + offset) of every bound label.
    public let labels: [String: UInt64]

    /// Absolute address of `label`. Traps if the label does not exist (a
    /// typo in a test payload is a programming error); use `labels[name]`
    /// for a non-trapping lookup.
    public func address(_ label: String) -> UInt64 {
        guard let address = labels[label] else {
            preconditionFailure("X86Asm.Program: unknown label '\(label)'")
        }
        return address
    }
}
