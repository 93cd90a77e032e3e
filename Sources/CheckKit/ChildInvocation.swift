/// The command line of one check child: `__check ID --device=PATH --parent=PID --deadline=S
/// --race-ms=MS [--caps=JSON]`, the last carrying every proposed capability number with its source.
///
/// The runner always passes explicit settings, so the child parses these few arguments by hand
/// (no argument-parser start-up, no manifest reading).  Every value is joined to its option
/// with `=`, so a value that starts with `-` cannot be mistaken for an option.
public struct ChildInvocation: Equatable, Sendable {
    public static let command = "__check"
    public var id: String
    public var settings: CheckSettings
    /// The runner's pid: the child exits at once if it was already re-parented.
    public var parentPID: Int32
    /// The child's own deadline (SIGALRM), a backstop behind the runner's.
    public var deadlineSeconds: Int

    public init(id: String, settings: CheckSettings, parentPID: Int32, deadlineSeconds: Int) {
        self.id = id; self.settings = settings; self.parentPID = parentPID; self.deadlineSeconds = deadlineSeconds
    }

    /// The arguments after the executable's path.
    public var arguments: [String] {
        var args = [Self.command, id, "--device=\(settings.devicePath)", "--parent=\(parentPID)", "--deadline=\(deadlineSeconds)",
                    "--race-ms=\(settings.raceMilliseconds)"]
        if !settings.proposedCapabilities.isEmpty { args.append("--caps=\(settings.proposedCapabilities.childArgument)") }
        return args
    }

    /// Parses `arguments` (starting with `__check`); the error is one line.
    public static func parse<C: Collection>(_ arguments: C) -> Result<ChildInvocation, ChildArgumentError> where C.Element == String {
        var rest = arguments[...]
        guard rest.popFirst() == command, let id = rest.popFirst(), !id.hasPrefix("-") else {
            return .failure(ChildArgumentError("usage: \(command) ID --device=PATH --parent=PID --deadline=SECONDS"))
        }
        var settings = CheckSettings()
        var parent: Int32?
        var deadline: Int?
        for argument in rest {
            guard argument.hasPrefix("--"), let eq = argument.firstIndex(of: "=") else {
                return .failure(ChildArgumentError("\(command): expected --option=value, got '\(argument)'"))
            }
            let value = String(argument[argument.index(after: eq)...])
            switch argument[..<eq] {
            case "--device": settings.devicePath = value
            case "--parent": parent = Int32(value)
            case "--deadline": deadline = Int(value)
            case "--race-ms":
                guard let ms = Int(value), ms > 0 else { return .failure(ChildArgumentError("\(command): bad --race-ms '\(value)'")) }
                settings.raceMilliseconds = ms
            case "--caps":
                do { settings.proposedCapabilities = try ProposedCapabilities(childArgument: value) } catch {
                    return .failure(ChildArgumentError("\(command): \(error)"))
                }
            default: return .failure(ChildArgumentError("\(command): unknown option '\(argument)'"))
            }
        }
        guard let parent, parent > 0, let deadline, deadline > 0 else {
            return .failure(ChildArgumentError("\(command): --parent and --deadline are required"))
        }
        return .success(ChildInvocation(id: id, settings: settings, parentPID: parent, deadlineSeconds: deadline))
    }
}

public struct ChildArgumentError: Error, Equatable, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
