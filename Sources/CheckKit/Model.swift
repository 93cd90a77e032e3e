import GuestKit
import KVMKit

/// A patch series' checks, as one TAP subtest block.
public struct Suite: Sendable {
    public let name: String
    /// One line on what the series adds.
    public let summary: String
    /// The manifest in patches/ this suite validates (file name without extension).
    public let series: String
    public let checks: [Check]
    /// The uAPIs this suite covers, for `kvmcheck caps`.
    public let features: [Feature]

    public init(_ name: String, summary: String, series: String, features: [Feature] = [], checks: [Check]) {
        self.name = name; self.summary = summary; self.series = series; self.features = features; self.checks = checks
    }
}

/// At which privilege level(s) a check's guest runs.
public enum PrivilegeLevels: Sendable, Equatable {
    /// The check is run once at CPL0 and once at CPL3 (two TAP lines).
    case both
    /// Only at this level (e.g. CPL0-only instructions).
    case only(GuestCPL)
    /// No guest, or the level does not matter (host-side ioctl checks).
    case notApplicable
}

/// One check: a body that drives the kernel and says what it expected and what it saw.
public struct Check: Sendable {
    public let name: String
    /// uAPI symbols the check exercises, for `kvmcheck list` and plan matching.
    public let uapi: [String]
    public let requirements: [Requirement]
    public let levels: PrivilegeLevels
    /// Informational checks record behaviour and never fail the run.
    public let informational: Bool
    /// Runs with no other check at the same time (it changes host state others could see).
    public let exclusive: Bool
    public let body: @Sendable (CheckContext) throws -> Void

    public init(_ name: String, uapi: [String], requires: [Requirement] = [], levels: PrivilegeLevels = .notApplicable,
                informational: Bool = false, exclusive: Bool = false, _ body: @escaping @Sendable (CheckContext) throws -> Void) {
        self.name = name; self.uapi = uapi; self.requirements = requires; self.levels = levels
        self.informational = informational; self.exclusive = exclusive; self.body = body
    }
}

/// A check at one privilege level: the unit the runner isolates and reports.
public struct CheckInstance: Sendable {
    public let suite: Suite
    public let check: Check
    public let cpl: GuestCPL?

    /// Stable id: `suite/check` or `suite/check/cpl3`.
    public var id: String { "\(suite.name)/\(localName)" }
    /// The name inside the suite's block.
    public var localName: String { cpl.map { "\(check.name)/cpl\($0.rawValue)" } ?? check.name }
}

/// What a check concluded.
public enum Verdict: Sendable, Equatable {
    case pass
    case fail(Failure)
    case skip(reason: String)
    /// The check did not finish within the deadline (the child was killed).
    case timeout(seconds: Double)
    /// The child died or exited without a result (signal, precondition, exit code).
    case crash(String)

    public var isFailure: Bool {
        switch self {
        case .fail, .timeout, .crash: return true
        case .pass, .skip: return false
        }
    }
}

/// Why a check failed: what it expected against what it saw, and the ioctl involved.
public struct Failure: Error, Sendable, Equatable {
    public var message: String
    public var expected: String?
    public var observed: String?
    public var ioctl: String?
    public var errno: String?

    public init(_ message: String, expected: String? = nil, observed: String? = nil, ioctl: String? = nil,
                errno: String? = nil) {
        self.message = message; self.expected = expected; self.observed = observed; self.ioctl = ioctl; self.errno = errno
    }

    init(unexpected error: KVMError) {
        self.init("unexpected failure: \(error)", ioctl: error.operation, errno: error.errno?.symbolicName)
        if case .watchdogExpired = error.kind { self.errno = nil }
    }
}

/// Thrown by a check to report a real capability gap.
public struct Skip: Error, Sendable, Equatable {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// A finished check instance.
public struct CheckResult: Sendable, Equatable {
    public let id: String
    public let suite: String
    public let name: String
    public let verdict: Verdict
    /// Diagnostic lines (TAP comments) the check left: observations, values.
    public let notes: [String]
    public let informational: Bool
    public let milliseconds: Int
    /// Set when an expectations file (--expect) names this check.
    public var expectation: ExpectationOutcome?

    public init(id: String, suite: String, name: String, verdict: Verdict, notes: [String], informational: Bool,
                milliseconds: Int, expectation: ExpectationOutcome? = nil) {
        self.id = id; self.suite = suite; self.name = name; self.verdict = verdict; self.notes = notes
        self.informational = informational; self.milliseconds = milliseconds; self.expectation = expectation
    }

    /// Whether this result fails the run: a real failure nobody expected, or an unexpected pass.
    public var failsRun: Bool {
        switch expectation {
        case .expectedFailure?: return false
        case .unexpectedPass?: return true
        default: return verdict.isFailure && !informational
        }
    }
}
