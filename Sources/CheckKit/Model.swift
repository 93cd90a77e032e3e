import GuestKit
import KVMKit
@_exported import MutantIDs

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
    /// Behaviours the check relies on but does not test, each covered by a check of its own.
    /// When one fails on the running kernel this check is SKIP "precondition failed: <id>: …"
    /// and the precondition's own check carries the `not ok`.
    public let preconditions: [CheckRef]
    /// Runs with no other check at the same time (it changes host state others could see).
    public let exclusive: Bool
    /// Runs for a set time whatever the kernel does (a race): with --jobs above 1 it is started
    /// first, so the other checks fill the cores around it and the run ends sooner.
    public let fixedDuration: Bool
    /// "The kernel logged no splat" is part of this check's evidence (a race, whose kernel bug
    /// shows as a WARNING or an Oops rather than a wrong value): when the kernel log cannot be
    /// read, its result says that half was not judged, not only the run's header.
    public let judgesKernelLog: Bool
    /// The kernel mutants (KernelDoubles) that must turn this check `not ok`: MutantTests holds
    /// each mutant to exactly the checks that name it.
    public let killedBy: [MutantID]
    /// Why no mutant at the ioctl seam can reach this check (instead of `killedBy`).
    public let unkillable: String?
    /// Mutants that make this check's feature indistinguishable from absent: it may turn SKIP
    /// under them (a check whose precondition a mutant kills may too, without saying so here).
    public let gapUnder: [MutantID]
    /// Mutants that fake what this check cannot observe on a kernel without it: they are its
    /// positive control, under which its SKIP "cannot be observed here" may become a verdict.
    public let positiveControls: [MutantID]
    public let body: @Sendable (CheckContext) throws -> Void

    public init(_ name: String, uapi: [String], requires: [Requirement] = [], preconditions: [CheckRef] = [],
                levels: PrivilegeLevels = .notApplicable,
                informational: Bool = false, exclusive: Bool = false, fixedDuration: Bool = false,
                judgesKernelLog: Bool = false,
                killedBy: [MutantID] = [], unkillable: String? = nil, gapUnder: [MutantID] = [], positiveControls: [MutantID] = [],
                _ body: @escaping @Sendable (CheckContext) throws -> Void) {
        self.name = name; self.uapi = uapi; self.requirements = requires; self.preconditions = preconditions
        self.levels = levels; self.informational = informational; self.exclusive = exclusive
        self.fixedDuration = fixedDuration; self.judgesKernelLog = judgesKernelLog
        self.killedBy = killedBy; self.unkillable = unkillable; self.gapUnder = gapUnder; self.positiveControls = positiveControls
        self.body = body
    }
}

/// A typed reference to a check in a suite (a precondition, or a `caps` row's deciding check).
/// The check value itself is held, so a precondition is evaluated without looking anything up;
/// the suite name only forms its id (a test holds every reference to a registered check).
public struct CheckRef: Sendable {
    public let suite: String
    public let check: Check

    public init(_ suite: String, _ check: Check) { self.suite = suite; self.check = check }

    /// The level the referenced check runs at for a dependent at `cpl`: the same level when
    /// it runs at both, its only level otherwise, none when it has no guest.
    public func level(for cpl: GuestCPL?) -> GuestCPL? {
        switch check.levels {
        case .both: return cpl ?? .cpl0
        case .only(let l): return l
        case .notApplicable: return nil
        }
    }

    /// The id of the instance a dependent at `cpl` relies on.
    public func id(for cpl: GuestCPL?) -> String {
        "\(suite)/\(check.name)" + (level(for: cpl).map { "/cpl\($0.rawValue)" } ?? "")
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
    /// The harness could not do its own part (a thread, process or file descriptor it needed was
    /// refused: RLIMIT_NPROC, RLIMIT_NOFILE, ...).  Never a kernel verdict; always fails the run.
    case harnessError(String)

    public var isFailure: Bool {
        switch self {
        case .fail, .timeout, .crash, .harnessError: return true
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

    static let untestablePrefix = "cannot be observed here: "
    static let preconditionPrefix = "precondition failed: "

    /// The check's observation has no positive control on this kernel: it could not have seen
    /// the opposite of what it asserts, so it makes no claim (`caps`: "untestable here").
    public static func cannotObserve(_ why: String) -> Skip { Skip(untestablePrefix + why) }

    /// Whether a skip reason says the subject cannot be observed here.
    public static func isUntestable(_ reason: String) -> Bool { reason.hasPrefix(untestablePrefix) }
    /// Whether a skip reason names a failed precondition check.
    public static func isPreconditionFailure(_ reason: String) -> Bool { reason.hasPrefix(preconditionPrefix) }
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
    /// Kernel log lines printed while the check ran (see KernelLog).
    public var kernelLog: [String]

    public init(id: String, suite: String, name: String, verdict: Verdict, notes: [String], informational: Bool,
                milliseconds: Int, expectation: ExpectationOutcome? = nil, kernelLog: [String] = []) {
        self.id = id; self.suite = suite; self.name = name; self.verdict = verdict; self.notes = notes
        self.informational = informational; self.milliseconds = milliseconds; self.expectation = expectation
        self.kernelLog = kernelLog
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
