import CProcess
import Glibc
import FoundationEssentials
import GuestKit
import KVMKit

/// What a child process sends back on fd 3.
struct ChildReport: Codable, Equatable {
    enum Outcome: String, Codable { case pass, fail, skip, error }
    var outcome: Outcome
    var reason: String?
    var failure: FailureRecord?
    var notes: [String]

    /// The report as JSON (the runner decodes it with JSONDecoder).  Written by hand: in a
    /// child, JSONEncoder's first use cost 0.7 M instructions of conformance lookups, a third
    /// of its start-up.
    var json: String {
        var fields = [jsonMember("outcome", outcome.rawValue)]
        if let reason { fields.append(jsonMember("reason", reason)) }
        if let f = failure {
            var members = [jsonMember("message", f.message)]
            if let v = f.expected { members.append(jsonMember("expected", v)) }
            if let v = f.observed { members.append(jsonMember("observed", v)) }
            if let v = f.ioctl { members.append(jsonMember("ioctl", v)) }
            if let v = f.errno { members.append(jsonMember("errno", v)) }
            fields.append("\"failure\":{" + members.joined(separator: ",") + "}")
        }
        fields.append("\"notes\":[" + notes.map(jsonString).joined(separator: ",") + "]")
        return "{" + fields.joined(separator: ",") + "}"
    }
}

func jsonMember(_ key: String, _ value: String) -> String { jsonString(key) + ":" + jsonString(value) }

private let jsonEscapes: [Unicode.Scalar: String] = ["\"": "\\\"", "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"]

/// A JSON string literal: quote, backslash and every control character escaped (RFC 8259).
func jsonString(_ s: String) -> String {
    escaped(s, quote: "\"", table: jsonEscapes) { scalar in
        scalar.value < 0x20 ? "\\u" + paddedHex(scalar.value, digits: 4) : nil
    }
}

struct FailureRecord: Codable, Equatable {
    var message: String
    var expected: String?
    var observed: String?
    var ioctl: String?
    var errno: String?

    init(_ f: Failure) {
        message = f.message; expected = f.expected; observed = f.observed; ioctl = f.ioctl; errno = f.errno
    }

    var failure: Failure { Failure(message, expected: expected, observed: observed, ioctl: ioctl, errno: errno) }
}

/// Runs one check instance in this (child) process and reports on fd 3.
public enum ChildExecution {
    public static let resultDescriptor: CInt = 3

    /// Runs the instance; returns the report it wrote (also useful in-process for tests).
    @discardableResult
    public static func run(_ instance: CheckInstance, settings: CheckSettings, writeTo fd: CInt? = resultDescriptor,
                           extraNotes: () -> [String] = { [] }) -> String {
        var report = execute(instance, settings: settings)
        report.notes += extraNotes()
        let text = report.json
        if let fd { _ = text.withCString { cproc_write_all(fd, $0, strlen($0)) } }
        return text
    }

    static func execute(_ instance: CheckInstance, settings: CheckSettings) -> ChildReport {
        let system: KVMSystem
        do { system = try KVMSystem(path: settings.devicePath) } catch {
            if let why = HarnessResource.refusal(error) { return ChildReport(outcome: .error, reason: why, notes: []) }
            return ChildReport(outcome: .skip, reason: "cannot open \(settings.devicePath): \(error.errno?.symbolicName ?? "\(error)")", notes: [])
        }
        let evaluation = CheckEvaluation.evaluate(instance.check, cpl: instance.cpl, system: system, settings: settings)
        switch evaluation.outcome {
        case .pass: return ChildReport(outcome: .pass, notes: evaluation.notes)
        case .skip(let why): return ChildReport(outcome: .skip, reason: why, notes: evaluation.notes)
        case .fail(let f): return ChildReport(outcome: .fail, failure: FailureRecord(f), notes: evaluation.notes)
        case .harnessError(let why): return ChildReport(outcome: .error, reason: why, notes: evaluation.notes)
        }
    }
}

/// Runs a check body in this process: its requirements, then its preconditions, then the body.
/// The child runs one this way; `kvmcheck caps` runs a feature's deciding checks this way.
public enum CheckEvaluation {
    public enum Outcome: Sendable, Equatable {
        case pass
        case skip(String)
        case fail(Failure)
        /// The harness could not do its part (HarnessResource): not the kernel's verdict.
        case harnessError(String)
    }

    public struct Result: Sendable {
        public var outcome: Outcome
        public var notes: [String]
    }

    /// Preconditions are evaluated here, in the same process and on the same kernel, right
    /// before the body: the verdict does not depend on which checks a run selected or in
    /// which order (or in parallel) the runner started them.  Each costs one extra run of
    /// its body (a few ms: see the note each passing precondition leaves); one that several
    /// preconditions of this evaluation share (a chain's common root) runs once.
    public static func evaluate(_ check: Check, cpl: GuestCPL?, system: KVMSystem, settings: CheckSettings,
                                depth: Int = 0) -> Result {
        evaluate(check, cpl: cpl, system: system, settings: settings, depth: depth, evaluated: PreconditionResults())
    }

    /// The preconditions one evaluation has already run, by instance id.
    final class PreconditionResults {
        var byID: [String: Result] = [:]
    }

    static func evaluate(_ check: Check, cpl: GuestCPL?, system: KVMSystem, settings: CheckSettings,
                         depth: Int, evaluated: PreconditionResults) -> Result {
        for requirement in check.requirements {
            if let why = requirement.unmet(system, settings) { return Result(outcome: .skip(why), notes: []) }
        }
        var notes: [String] = []
        for ref in check.preconditions {
            let id = ref.id(for: cpl)
            guard depth < 4 else { return Result(outcome: .fail(Failure("precondition chain too deep at \(id)")), notes: notes) }
            if let earlier = evaluated.byID[id], earlier.outcome == .pass {
                notes.append("precondition \(id) holds (checked earlier in this child)")
                continue
            }
            let start = monotonicMilliseconds()
            let pre = evaluate(ref.check, cpl: ref.level(for: cpl), system: system, settings: settings, depth: depth + 1,
                               evaluated: evaluated)
            let ms = monotonicMilliseconds() - start
            evaluated.byID[id] = pre
            switch pre.outcome {
            case .pass:
                notes.append("precondition \(id) holds (checked in \(ms) ms)")
            case .skip(let why):
                return Result(outcome: .skip("precondition not met: \(id): skipped: \(oneLine(why))"), notes: notes)
            case .fail(let f):
                return Result(outcome: .skip(Skip.preconditionPrefix + "\(id): \(oneLine(f.message))"), notes: notes)
            case .harnessError(let why):
                return Result(outcome: .harnessError("precondition \(id): \(why)"), notes: notes)
            }
        }
        let context = CheckContext(system: system, cpl: cpl ?? .cpl0, settings: settings)
        defer { context.restoreHostSettings() }
        var thrown: Failure?
        do {
            try check.body(context)
        } catch let skip as Skip {
            if let f = context.conclude(thrown: nil) { return Result(outcome: .fail(f), notes: notes + context.notes) }
            return Result(outcome: .skip(skip.reason), notes: notes + context.notes)
        } catch {
            if let why = HarnessResource.refusal(error) { return Result(outcome: .harnessError(why), notes: notes + context.notes) }
            thrown = CheckContext.failure(from: error)
        }
        if let f = context.conclude(thrown: thrown) { return Result(outcome: .fail(f), notes: notes + context.notes) }
        return Result(outcome: .pass, notes: notes + context.notes)
    }

    static func monotonicMilliseconds() -> Int {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return ts.tv_sec * 1000 + ts.tv_nsec / 1_000_000
    }
}

func decodeChildReport(_ text: String) -> ChildReport? {
    try? JSONDecoder().decode(ChildReport.self, from: Data(text.utf8))
}
