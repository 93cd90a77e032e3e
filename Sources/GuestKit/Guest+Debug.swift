import CKVM
import KVMKit

/// One KVM_EXIT_DEBUG as a debugger sees it, with what came before it in the same run.
public struct DebugStop: Equatable, Sendable, CustomStringConvertible {
    public let exit: DebugExit
    /// Port-output exits let through on the way (a stepped `out` exits to userspace first).
    public let portOutputsBefore: Int

    public var description: String { "\(exit)" + (portOutputsBefore > 0 ? " after \(portOutputsBefore) port output exit(s)" : "") }
}

extension Guest {
    /// Runs to the next KVM_EXIT_DEBUG, letting port output through; anything else
    /// (a guest exception, a ucall, another exit) is thrown as what was observed instead.
    public func nextDebugStop(expecting what: @autoclosure () -> String) throws -> DebugStop {
        var outputs = 0
        while true {
            let event = try next()
            switch event {
            case .exit(.debug(let d)): return DebugStop(exit: d, portOutputsBefore: outputs)
            case .exit(.io(let io)) where io.direction == .output: outputs += 1
            default: throw GuestError.unexpectedEvent(expected: what(), observed: event)
            }
        }
    }

    /// Single-steps from the current RIP until a step stops at `end`, or `limit` steps.
    /// Any event other than a debug exit (or port output) ends the walk and is returned with it.
    public func stepUntil(_ end: UInt64, limit: Int) throws -> (stops: [DebugStop], interruptedBy: GuestEvent?) {
        var stops: [DebugStop] = []
        var outputs = 0
        while stops.count < limit {
            let event = try next()
            switch event {
            case .exit(.debug(let d)):
                stops.append(DebugStop(exit: d, portOutputsBefore: outputs))
                outputs = 0
                if d.pc == end { return (stops, nil) }
            case .exit(.io(let io)) where io.direction == .output: outputs += 1
            default: return (stops, event)
            }
        }
        return (stops, nil)
    }

    /// Moves the vCPU to `address` (a debugger's "jump").
    public func setRIP(_ address: UInt64) throws {
        var regs = try vcpu.regs()
        regs.rip = address
        try vcpu.setRegs(regs)
    }

    /// Loads CR3 from the host (a scheduler switching "processes" between runs).
    public func setCR3(_ value: UInt64) throws {
        var sregs = try vcpu.sregs()
        sregs.cr3 = value
        try vcpu.setSregs(sregs)
    }
}

extension Guest {
    /// "0x2000a (cpuid)": an address with the payload label bound there, for failure messages.
    public func describe(address: UInt64) -> String {
        var names = program.labels.filter { $0.value == address && !$0.key.hasPrefix("__") }.map(\.key).sorted()
        let stubs = GuestLayout.handlers..<GuestLayout.handlers + 256 * 16
        if stubs.contains(address) {
            let vector = (address - GuestLayout.handlers) / 16
            names.append("in the guest's IDT stub for \(ExceptionVector(vector).name)")
        } else if (GuestLayout.handlers..<GuestLayout.code).contains(address) {
            names.append("in the guest's IDT handler")
        }
        return hex(address) + (names.isEmpty ? "" : " (\(names.joined(separator: "/")))")
    }
}
