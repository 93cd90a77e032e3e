import FoundationEssentials
import KVMKit

/// Numbers for capabilities a series proposes but mainline has not assigned (an unmerged
/// `KVM_CAP_*` has no fixed number: each kernel carrying the series picks one).  Filled from
/// `--cap NAME=N` and from every manifest's `capability:` line; a suite names the capability
/// it needs with `Requirement.proposedCapability(name)` and reads its number here.
public struct ProposedCapabilities: Sendable, Equatable {
    public struct Assignment: Sendable, Equatable, Codable {
        public let number: Int
        /// Where the number came from (`--cap`, or `patches/<series>.md`), for notes and SKIP texts.
        public let source: String
        public init(number: Int, source: String) { self.number = number; self.source = source }
    }

    public private(set) var assignments: [String: Assignment] = [:]

    public init() {}

    public subscript(name: String) -> Assignment? { assignments[name] }

    public var isEmpty: Bool { assignments.isEmpty }

    /// Names with their numbers (what a kernel double advertises).
    public var numbers: [String: Int] { assignments.mapValues(\.number) }

    /// Adds `name = number`.  The same number again is no conflict; another number is.
    public mutating func assign(_ name: String, _ number: Int, source: String) throws(ProposedCapabilityError) {
        guard number > 0 else { throw ProposedCapabilityError("\(name): a capability number is above 0, not \(number)") }
        if let earlier = assignments[name] {
            guard earlier.number == number else {
                throw ProposedCapabilityError("\(name) is \(earlier.number) (\(earlier.source)) and \(number) (\(source)): give one number")
            }
            return
        }
        assignments[name] = Assignment(number: number, source: source)
    }

    /// These assignments, with `defaults`' for names not assigned here (flags over manifests).
    public func filling(from defaults: ProposedCapabilities) -> ProposedCapabilities {
        var merged = self
        merged.assignments.merge(defaults.assignments) { mine, _ in mine }
        return merged
    }

    /// One run-header note per assignment: "NAME taken as N (source)".
    public var notes: [String] {
        assignments.sorted { $0.key < $1.key }.map { "\($0.key) taken as \($0.value.number) (\($0.value.source))" }
    }

    /// `NAME=N` as `--cap` takes it.
    public static func parseAssignment(_ text: String) throws(ProposedCapabilityError) -> (name: String, number: Int) {
        guard let eq = text.firstIndex(of: "=") else {
            throw ProposedCapabilityError("--cap \(messageQuoted(text)): expected NAME=NUMBER, e.g. KVM_CAP_FOO=250")
        }
        let name = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        guard !name.isEmpty, name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw ProposedCapabilityError("--cap \(messageQuoted(text)): the name must be a capability name like KVM_CAP_FOO")
        }
        guard let number = Int(value) else { throw ProposedCapabilityError("--cap \(messageQuoted(text)): \(messageQuoted(value)) is not a number") }
        guard number > 0 else { throw ProposedCapabilityError("--cap \(messageQuoted(text)): a capability number is above 0") }
        return (name, number)
    }

    /// The capability names the checks of `suites` require, each with the series that proposes it.
    public static func required(by suites: [Suite]) -> [String: String] {
        var names: [String: String] = [:]
        for suite in suites {
            for check in suite.checks {
                for case let name? in check.requirements.map(\.proposedCapability) where names[name] == nil {
                    names[name] = suite.series
                }
            }
        }
        return names
    }

    // The child gets every assignment as one argument (JSON: names and sources are free text).

    public var childArgument: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return String(decoding: (try? encoder.encode(assignments)) ?? Data("{}".utf8), as: UTF8.self)
    }

    public init(childArgument text: String) throws(ProposedCapabilityError) {
        guard let decoded = try? JSONDecoder().decode([String: Assignment].self, from: Data(text.utf8)),
              decoded.values.allSatisfy({ $0.number > 0 }) else {
            throw ProposedCapabilityError("bad proposed capabilities \(messageQuoted(text))")
        }
        assignments = decoded
    }
}

public struct ProposedCapabilityError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension CheckSettings {
    /// The configured number of a proposed capability and what KVM_CHECK_EXTENSION says of it;
    /// nil when no number is configured.
    public func proposedCapability(_ name: String, on kvm: KVMSystem) throws -> (number: Int, value: Int)? {
        guard let number = proposedCapabilities[name]?.number else { return nil }
        return (number, try kvm.checkExtension(raw: number, name: name))
    }
}

extension Requirement {
    /// An unmerged capability (no fixed number) must be advertised at its configured number.
    /// The SKIP says which: no number configured (and where to give one), or the number and
    /// where it came from when KVM_CHECK_EXTENSION answers 0.
    public static func proposedCapability(_ name: String) -> Requirement {
        Requirement(proposedCapability: name) { kvm, settings in
            do {
                guard let cap = try settings.proposedCapability(name, on: kvm) else {
                    let series = ProposedCapabilities.required(by: SuiteRegistry.all(includeHidden: true))[name]
                    return "no number configured for \(name) (unmerged, no fixed number): pass --cap \(name)=N "
                        + "or add a capability line to patches/\(series ?? "<series>").md"
                }
                guard cap.value == 0 else { return nil }
                return "KVM_CHECK_EXTENSION(\(cap.number)) = 0: \(name) absent "
                    + "(number \(cap.number) from \(settings.proposedCapabilities[name]?.source ?? "settings"))"
            } catch { return "\(error)" }
        }
    }
}
