import CheckKit

/// Record-and-continue for checks made of many sub-cases (one per MSR, per DRn, per step):
/// every sub-case is evaluated, each outcome becomes a note, and the check fails once at the
/// end with every mismatch listed — so no verdict hides behind the first failure, as
/// upstream's selftests do.  (CheckContext's own record-and-continue assertions from branch
/// `verdicts` can replace this when they land.)
struct SubCases {
    private(set) var mismatches: [(what: String, expected: String, observed: String)] = []
    private(set) var count = 0
    private var lines: [String] = []

    mutating func expect(_ ok: Bool, _ what: String, expected: @autoclosure () -> String, observed: @autoclosure () -> String) {
        count += 1
        if ok {
            lines.append("ok: \(what)")
        } else {
            mismatches.append((what, expected(), observed()))
            lines.append("MISMATCH: \(what): expected \(expected()), observed \(observed())")
        }
    }

    mutating func expectEqual<T: Equatable>(_ observed: T, _ expected: T, _ what: String) {
        expect(observed == expected, what, expected: describe(expected), observed: describe(observed))
    }

    /// A sub-case that could not be evaluated at all (the guest went elsewhere): a mismatch too.
    mutating func unreached(_ what: String, expected: String, observed: String) {
        expect(false, what, expected: expected, observed: observed)
    }

    /// Notes every sub-case, then fails once listing every mismatch (what: expected / observed).
    func finish(_ t: CheckContext, _ subject: String) throws {
        lines.forEach(t.note)
        guard !mismatches.isEmpty else { return }
        throw Failure("\(subject): \(mismatches.count) of \(count) sub-cases differ",
                      expected: mismatches.map { "\($0.what): \($0.expected)" }.joined(separator: "\n"),
                      observed: mismatches.map { "\($0.what): \($0.observed)" }.joined(separator: "\n"))
    }
}

