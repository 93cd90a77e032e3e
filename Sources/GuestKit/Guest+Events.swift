import KVMKit

// "The next event must be X": each helper runs the guest to its next event and throws
// GuestError.unexpectedEvent (what was expected, and why, against what happened) otherwise.

extension Guest {
    /// The next event must be `ucallSync(stage, …)`; returns its values.
    @discardableResult
    public func expectSync(_ stage: UInt64, because why: String? = nil) throws -> [UInt64] {
        let event = try next()
        guard case .sync(stage, let values) = event else {
            throw GuestError.unexpectedEvent(expected: Self.expectation("ucall SYNC stage \(stage)", why), observed: event)
        }
        return values
    }

    /// The next event must be `ucallDone()`.
    public func expectDone(because why: String? = nil) throws {
        let event = try next()
        guard event == .done else { throw GuestError.unexpectedEvent(expected: Self.expectation("ucall DONE", why), observed: event) }
    }

    /// The next event must be the guest's handler taking `vector` (anywhere); returns its frame.
    @discardableResult
    public func expectException(_ vector: ExceptionVector, because why: String? = nil) throws -> GuestException {
        let event = try next()
        guard case .exception(let e) = event, e.vector == vector else {
            throw GuestError.unexpectedEvent(expected: Self.expectation("guest \(vector.name)", why), observed: event)
        }
        return e
    }

    /// The next event must be the guest's handler taking `vector` with RIP at `label`.
    @discardableResult
    public func expectException(_ vector: ExceptionVector, at label: String, because why: String? = nil) throws -> GuestException {
        let rip = address(label)
        let event = try next()
        guard case .exception(let e) = event, e.vector == vector, e.rip == rip else {
            throw GuestError.unexpectedEvent(expected: Self.expectation("guest \(vector.name) at \(describe(address: rip))", why),
                                             observed: event)
        }
        return e
    }

    private static func expectation(_ what: String, _ why: String?) -> String {
        why.map { "\(what): \($0)" } ?? what
    }
}
