import CProcess
import Glibc
import FoundationEssentials
import GuestKit
import KVMKit

/// What a child process sends back on fd 3.
struct ChildReport: Codable, Equatable {
    enum Outcome: String, Codable { case pass, fail, skip }
    var outcome: Outcome
    var reason: String?
    var failure: FailureRecord?
    var notes: [String]
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
    public static func run(_ instance: CheckInstance, settings: CheckSettings, writeTo fd: CInt? = resultDescriptor) -> String {
        let report = execute(instance, settings: settings)
        let data = (try? JSONEncoder().encode(report)) ?? Data()
        let text = String(decoding: data, as: UTF8.self)
        if let fd { _ = text.withCString { cproc_write_all(fd, $0, strlen($0)) } }
        return text
    }

    static func execute(_ instance: CheckInstance, settings: CheckSettings) -> ChildReport {
        let system: KVMSystem
        do { system = try KVMSystem(path: settings.devicePath) } catch {
            return ChildReport(outcome: .skip, reason: "cannot open \(settings.devicePath): \(error.errno?.symbolicName ?? "\(error)")", notes: [])
        }
        for requirement in instance.check.requirements {
            if let why = requirement.unmetReason(system) { return ChildReport(outcome: .skip, reason: why, notes: []) }
        }
        let context = CheckContext(system: system, cpl: instance.cpl ?? .cpl0, settings: settings)
        defer { context.restoreHostSettings() }
        do {
            try instance.check.body(context)
            return ChildReport(outcome: .pass, notes: context.notes)
        } catch let skip as Skip {
            return ChildReport(outcome: .skip, reason: skip.reason, notes: context.notes)
        } catch let failure as Failure {
            return ChildReport(outcome: .fail, failure: FailureRecord(failure), notes: context.notes)
        } catch let error as KVMError {
            return ChildReport(outcome: .fail, failure: FailureRecord(Failure(unexpected: error)), notes: context.notes)
        } catch let error as GuestError {
            var failure = Failure("guest: \(error)")
            if case .unexpectedEvent(let expected, let observed) = error {
                failure = Failure("guest did not do what the check expected", expected: expected, observed: "\(observed)")
            }
            return ChildReport(outcome: .fail, failure: FailureRecord(failure), notes: context.notes)
        } catch {
            return ChildReport(outcome: .fail, failure: FailureRecord(Failure("unexpected error: \(error)")), notes: context.notes)
        }
    }
}

func decodeChildReport(_ text: String) -> ChildReport? {
    try? JSONDecoder().decode(ChildReport.self, from: Data(text.utf8))
}
