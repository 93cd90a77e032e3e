import GuestKit
import KVMKit

// The two assertion families, named as kselftest names them:
//
// - `expect*` (kselftest EXPECT_*) records a mismatch and the check goes on; every sub-case
//   is evaluated, and all mismatches are reported in one failure block when the check ends.
// - `assert*` (kselftest ASSERT_*) stops the check at the first mismatch: for setup a later
//   step cannot do without.
//
// `subCase` groups steps into one sub-case: whatever it throws is recorded under its name
// and the check goes on.  "k of n sub-cases failed" counts sub-cases (a `subCase` block, or
// an `expect*` outside one), not the comparisons inside a block.

/// The sub-cases of one check body and the mismatches they recorded.
struct SubCaseRecord {
    var count = 0
    var failed = 0
    var mismatches: [Failure] = []
    /// Whether a `subCase` block is running, and whether it has failed so far.
    var open: Bool?

    /// One evaluated comparison or block: a sub-case of its own unless a block is open.
    mutating func evaluated(_ mismatch: Failure?) {
        if let mismatch { mismatches.append(mismatch) }
        if let failedSoFar = open {
            open = failedSoFar || mismatch != nil
        } else {
            count += 1
            if mismatch != nil { failed += 1 }
        }
    }
}

extension CheckContext {
    // MARK: record and continue (EXPECT)

    /// Records a mismatch and carries on.
    public func expect(_ condition: Bool, _ what: @autoclosure () -> String, expected: @autoclosure () -> String,
                       observed: @autoclosure () -> String) {
        record.evaluated(condition ? nil : Failure(what(), expected: expected(), observed: observed()))
    }

    public func expectEqual<T: Equatable>(_ observed: T, _ expected: T, _ what: @autoclosure () -> String) {
        expect(observed == expected, what(), expected: describe(expected), observed: describe(observed))
    }

    /// Runs one sub-case; a failure it throws (an unexpected exit, an ioctl error, a stopping
    /// `assert`) is recorded under `name` and the check goes on with the next sub-case.
    public func subCase(_ name: @autoclosure () -> String, _ body: () throws -> Void) {
        let outer = record.open
        record.open = false
        var thrown: Failure?
        do { try body() } catch {
            var f = Self.failure(from: error)
            f.message = "\(name()): \(f.message)"
            thrown = f
        }
        let failed = record.open == true || thrown != nil
        if let thrown { record.mismatches.append(thrown) }
        record.open = outer
        // The block as a whole is one sub-case (or part of the enclosing one).
        record.evaluated(nil)
        if failed {
            if outer == nil { record.failed += 1 } else { record.open = true }
        }
    }

    /// The recorded mismatches (and a failure that ended the body, if any) as one failure.
    func conclude(thrown: Failure?) -> Failure? {
        let all = record.mismatches + (thrown.map { [$0] } ?? [])
        guard all.count > 1 else { return all.first }
        let stopped = thrown == nil ? 0 : 1
        let failed = record.failed + stopped
        let total = max(record.count + stopped, failed)
        return Failure("\(failed) of \(total) sub-cases failed: " + all.map(\.message).joined(separator: "; "),
                       expected: all.map { "- \($0.message): \($0.expected ?? "-")" }.joined(separator: "\n"),
                       observed: all.map { "- \($0.message): \($0.observed ?? "-")" }.joined(separator: "\n"),
                       ioctl: all.compactMap(\.ioctl).first, errno: all.compactMap(\.errno).first)
    }

    // MARK: stop the check (ASSERT): each throws a Failure that says what was expected and what was seen

    public func assert(_ condition: Bool, _ what: @autoclosure () -> String, expected: @autoclosure () -> String,
                       observed: @autoclosure () -> String) throws(Failure) {
        if !condition { throw Failure(what(), expected: expected(), observed: observed()) }
    }

    public func assertEqual<T: Equatable>(_ observed: T, _ expected: T, _ what: @autoclosure () -> String) throws(Failure) {
        if observed != expected { throw Failure(what(), expected: describe(expected), observed: describe(observed)) }
    }

    /// Byte-for-byte comparison of two uAPI structs (or byte arrays), naming the first difference.
    public func assertSameBytes(_ observed: [UInt8], _ expected: [UInt8], _ what: @autoclosure () -> String,
                                fieldAt: (Int) -> String = { "byte \($0)" }) throws(Failure) {
        guard observed != expected else { return }
        guard observed.count == expected.count else {
            throw Failure(what(), expected: "\(expected.count) bytes", observed: "\(observed.count) bytes")
        }
        let diffs = observed.indices.filter { observed[$0] != expected[$0] }
        let first = diffs[0]
        throw Failure("\(what()): \(diffs.count) byte(s) differ, first at offset \(first) (\(fieldAt(first)))",
                      expected: hexBytes(expected, around: first), observed: hexBytes(observed, around: first))
    }

    /// Runs `body`, which must fail with `errno` from the named operation.
    public func assertErrno<R>(_ errno: Errno, _ what: @autoclosure () -> String, _ body: () throws -> R) throws {
        do {
            let value = try body()
            throw Failure(what(), expected: "\(errno.symbolicName)", observed: "success (\(describe(value)))")
        } catch let e as KVMError {
            guard e.errno == errno else {
                throw Failure(what(), expected: errno.symbolicName, observed: e.errno?.symbolicName ?? "\(e)",
                              ioctl: e.operation, errno: e.errno?.symbolicName)
            }
        }
    }

    /// Fails with the guest's unexpected event (exception, shutdown, other exit).
    public func unexpected(_ event: GuestEvent, expected: String) -> Failure {
        Failure("guest did not reach the expected point", expected: expected, observed: "\(event)")
    }
}
