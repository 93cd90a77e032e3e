import GuestKit
import X86Asm
import KVMKit
import SystemPackage

/// Settings that reach every check (from the command line).
public struct CheckSettings: Sendable, Equatable {
    public var devicePath: String = "/dev/kvm"
    /// Numbers of unmerged capabilities on the kernel under test, and where each came from.
    public var proposedCapabilities = ProposedCapabilities()
    public init() {}
}

/// What a check body gets: the open KVM system, its privilege level, and ways to report.
public final class CheckContext {
    public let system: KVMSystem
    /// The level this instance runs its guest at (CPL0 when the check is level-agnostic).
    public let cpl: GuestCPL
    public let settings: CheckSettings
    public private(set) var notes: [String] = []

    public init(system: KVMSystem, cpl: GuestCPL, settings: CheckSettings) {
        self.system = system; self.cpl = cpl; self.settings = settings
    }

    /// A fresh VM running `code` at this instance's privilege level.
    public func guest(_ options: GuestOptions = GuestOptions(), _ code: (inout Assembler) -> Void) throws -> Guest {
        try Guest(system: system, cpl: cpl, options: options, code: code)
    }

    private var changedSettings: [HostSetting] = []

    /// A host setting this check will change; it is restored when the check ends, on every
    /// path (see HostSetting).
    /// A restore directory that cannot be trusted, or another run holding the setting, is a
    /// gap of this machine (SKIP with the reason), not a kernel verdict.
    public func hostSetting(_ path: String) throws -> HostSetting {
        let setting: HostSetting
        switch Result(catching: { () throws(HostSettingError) in try HostSetting(path: path) }) {
        case .success(let s): setting = s
        case .failure(let e) where e.kind == .restoreDirectory || e.kind == .busy:
            throw Skip("cannot change \(path) safely: \(e.reason)")
        case .failure(let e): throw e
        }
        changedSettings.append(setting)
        return setting
    }

    /// Restores every setting the body changed (called by the runner's child after the body).
    func restoreHostSettings() {
        for s in changedSettings.reversed() where !s.restore() {
            note("could not restore \(s.path) to \(s.original); its restore record stays for the runner")
        }
    }

    /// A diagnostic line that appears in the report whatever the verdict.
    public func note(_ line: String) { notes.append(line) }

    // MARK: record-and-continue (kselftest EXPECT_*): every sub-case is evaluated, every
    // mismatch reported in one failure block when the check ends.  The `expect*` family
    // below stops the check at the first mismatch (kselftest ASSERT_*): use it for setup a
    // later step cannot do without.

    private var subCases = 0
    private var mismatches: [Failure] = []

    /// Records a mismatch and carries on.
    public func verify(_ condition: Bool, _ what: @autoclosure () -> String, expected: @autoclosure () -> String,
                       observed: @autoclosure () -> String) {
        subCases += 1
        if !condition { mismatches.append(Failure(what(), expected: expected(), observed: observed())) }
    }

    public func verifyEqual<T: Equatable>(_ observed: T, _ expected: T, _ what: @autoclosure () -> String) {
        verify(observed == expected, what(), expected: describe(expected), observed: describe(observed))
    }

    /// Runs one sub-case; a failure it throws (an unexpected exit, an ioctl error, a stopping
    /// `expect`) is recorded under `name` and the check goes on with the next sub-case.
    public func subCase(_ name: @autoclosure () -> String, _ body: () throws -> Void) {
        subCases += 1
        do { try body() } catch {
            var f = Self.failure(from: error)
            f.message = "\(name()): \(f.message)"
            mismatches.append(f)
        }
    }

    /// The recorded mismatches (and a failure that ended the body, if any) as one failure.
    func conclude(thrown: Failure?) -> Failure? {
        let all = mismatches + (thrown.map { [$0] } ?? [])
        guard all.count > 1 else { return all.first }
        let total = max(subCases, all.count)
        return Failure("\(all.count) of \(total) sub-cases failed: " + all.map(\.message).joined(separator: "; "),
                       expected: all.map { "- \($0.message): \($0.expected ?? "-")" }.joined(separator: "\n"),
                       observed: all.map { "- \($0.message): \($0.observed ?? "-")" }.joined(separator: "\n"),
                       ioctl: all.compactMap(\.ioctl).first, errno: all.compactMap(\.errno).first)
    }

    /// Any error a check body can throw, as the failure it reports.
    static func failure(from error: any Error) -> Failure {
        switch error {
        case let f as Failure: return f
        case let e as KVMError: return Failure(unexpected: e)
        case let e as GuestError:
            if case .unexpectedEvent(let expected, let observed) = e {
                return Failure("guest did not do what the check expected", expected: expected, observed: "\(observed)")
            }
            return Failure("guest: \(e)")
        case let s as Skip: return Failure("sub-case could not run: \(s.reason)")
        default: return Failure("unexpected error: \(error)")
        }
    }

    // MARK: expectations (each throws a Failure that says what was expected and what was seen)

    public func expect(_ condition: Bool, _ what: @autoclosure () -> String, expected: @autoclosure () -> String,
                       observed: @autoclosure () -> String) throws(Failure) {
        if !condition { throw Failure(what(), expected: expected(), observed: observed()) }
    }

    public func expectEqual<T: Equatable>(_ observed: T, _ expected: T, _ what: @autoclosure () -> String) throws(Failure) {
        if observed != expected { throw Failure(what(), expected: describe(expected), observed: describe(observed)) }
    }

    /// Byte-for-byte comparison of two uAPI structs (or byte arrays), naming the first difference.
    public func expectSameBytes(_ observed: [UInt8], _ expected: [UInt8], _ what: @autoclosure () -> String,
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
    public func expectErrno<R>(_ errno: Errno, _ what: @autoclosure () -> String, _ body: () throws -> R) throws {
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

/// Formats values the way kernel developers read them: integers in hex.
public func describe<T>(_ value: T) -> String {
    switch value {
    case let v as UInt64: return "0x" + String(v, radix: 16)
    case let v as UInt32: return "0x" + String(v, radix: 16)
    case let v as Int: return String(v)
    case let v as [UInt64]: return "[" + v.map { "0x" + String($0, radix: 16) }.joined(separator: ", ") + "]"
    case let v as CustomStringConvertible: return v.description
    default: return String(describing: value)
    }
}

func hexBytes(_ bytes: [UInt8], around offset: Int) -> String {
    let lo = max(0, offset - 4), hi = min(bytes.count, offset + 12)
    let text = bytes[lo..<hi].map { b in (b < 16 ? "0" : "") + String(b, radix: 16) }.joined(separator: " ")
    return "[\(lo)..<\(hi)] \(text)"
}
