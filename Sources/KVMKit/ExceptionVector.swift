/// An x86 exception or interrupt vector: the architectural exceptions by name, any other
/// vector (an interrupt) by number.  Two values are equal when their numbers are.
public enum ExceptionVector: Hashable, Sendable, CustomStringConvertible {
    case de, db, nmi, bp, of, br, ud, nm, df, ts, np, ss, gp, pf, mf, ac, mc, xm, cp
    /// A vector with no architectural exception name (an interrupt, or a reserved number).
    case other(UInt64)

    private static let byNumber: [UInt64: ExceptionVector] = [
        0: .de, 1: .db, 2: .nmi, 3: .bp, 4: .of, 5: .br, 6: .ud, 7: .nm, 8: .df, 10: .ts, 11: .np, 12: .ss,
        13: .gp, 14: .pf, 16: .mf, 17: .ac, 18: .mc, 19: .xm, 21: .cp,
    ]

    public init<T: BinaryInteger>(_ number: T) {
        let n = UInt64(truncatingIfNeeded: number)
        self = Self.byNumber[n] ?? .other(n)
    }

    public var number: UInt64 {
        switch self {
        case .de: return 0
        case .db: return 1
        case .nmi: return 2
        case .bp: return 3
        case .of: return 4
        case .br: return 5
        case .ud: return 6
        case .nm: return 7
        case .df: return 8
        case .ts: return 10
        case .np: return 11
        case .ss: return 12
        case .gp: return 13
        case .pf: return 14
        case .mf: return 16
        case .ac: return 17
        case .mc: return 18
        case .xm: return 19
        case .cp: return 21
        case .other(let n): return n
        }
    }

    private static let names: [UInt64: String] = [
        0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF", 10: "#TS",
        11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC", 18: "#MC", 19: "#XM", 21: "#CP",
    ]

    /// "#GP", "NMI", or "vector 0xaa".
    public var name: String { Self.names[number] ?? "vector \(hex(number))" }

    /// "#GP (13)".
    public var description: String { "\(name) (\(number))" }

    public static func == (lhs: Self, rhs: Self) -> Bool { lhs.number == rhs.number }
    public func hash(into hasher: inout Hasher) { hasher.combine(number) }
}
