import CKVM
import Glibc

// Test-only stand-ins for "the kernel", applied at the C shim's single ioctl seam.
// A *mutant* perverts one behaviour the way a buggy patch would, to prove the checks notice.
// A *model* implements an unmerged uAPI (CR3 in debug exits, conditional sync regs) on top
// of the real kernel, so those checks' positive paths run here.  Nothing is active unless
// KVMCHECK_MUTANT / KVMCHECK_MODEL name one (see README, developers' section).

/// One intercepted ioctl; `forward` runs the rest of the chain (ultimately the real ioctl).
public struct IoctlCall {
    public let fd: CInt
    public let request: UInt
    public let arg: UnsafeMutableRawPointer?

    /// The vCPU's kvm_run when `fd` is a vCPU created through KVMKit.
    var run: UnsafeMutablePointer<kvm_run>? { VCPURegistry.runs[fd] }
    func arg<T>(as type: T.Type) -> UnsafeMutablePointer<T>? { arg?.assumingMemoryBound(to: T.self) }
    var isRun: Bool { request == CKVM_REQ_RUN }
}

/// A mutant or a model.
public struct KernelDouble: Sendable {
    public enum Kind: String, Sendable { case mutant, model }
    public let name: String
    public let kind: Kind
    /// What it changes, in a kernel developer's words.
    public let summary: String
    /// For mutants: the checks (globs over ids) it must turn `not ok`, and only those.
    public let kills: [String]
    /// Models a mutant needs underneath it (a mutant of an unmerged uAPI perverts its model).
    public let requires: [String]
    /// Checks whose feature the mutant makes indistinguishable from absent: they may turn
    /// SKIP (a gap) instead of `not ok`; another check must still kill the mutant.
    public var becomesGap: [String] = []
    /// Checks that cannot be observed on a kernel without what the double fakes (SKIP "cannot be
    /// observed here") and may get a verdict under it: the double is their positive control.
    public var makesObservable: [String] = []
    let handle: @Sendable (IoctlCall, (IoctlCall) -> Int) -> Int
}

/// vCPU fd → its kvm_run, so doubles can read and change exits.
enum VCPURegistry {
    nonisolated(unsafe) static var runs: [CInt: UnsafeMutablePointer<kvm_run>] = [:]
    /// VM fds (for doubles that act on VM-scoped ioctls only).
    nonisolated(unsafe) static var vmFDs: Set<CInt> = []

    /// A new vCPU may reuse a closed one's fd number: per-vCPU double state starts afresh.
    static func register(_ fd: CInt, _ run: UnsafeMutablePointer<kvm_run>?) {
        runs[fd] = run
        DoubleState.counters = DoubleState.counters.filter { !$0.key.hasSuffix("@\(fd)") }
        DoubleState.values = DoubleState.values.filter { !$0.key.hasSuffix("@\(fd)") }
    }
}

/// Per-process state doubles keep (each check runs in its own process); per-vCPU keys end in "@fd".
enum DoubleState {
    nonisolated(unsafe) static var counters: [String: Int] = [:]
    nonisolated(unsafe) static var values: [String: UInt64] = [:]
}

public enum KernelDoubles {
    nonisolated(unsafe) private static var active: [KernelDouble] = []
    /// The run's numbers for unmerged capabilities (name → number), which models advertise.
    nonisolated(unsafe) public static var proposedCapabilities: [String: Int] = [:]

    public static var activeNames: [String] { active.map(\.name) }

    /// Installs the named doubles.  Mutants wrap models, so a mutant perverts the modelled kernel.
    public static func activate(_ names: [String]) throws(KVMError) {
        var chosen: [KernelDouble] = []
        for name in names {
            guard let d = catalog.first(where: { $0.name == name }) else {
                throw KVMError("KVMCHECK_MUTANT/KVMCHECK_MODEL", .protocolViolation(
                    "unknown kernel double '\(name)' (known: \(catalog.map(\.name).joined(separator: ", ")))"))
            }
            chosen.append(d)
        }
        active = chosen.filter { $0.kind == .mutant } + chosen.filter { $0.kind == .model }
        ckvm_set_ioctl_hook(active.isEmpty ? nil : seam, nil)
    }

    /// Reads KVMCHECK_MODEL and KVMCHECK_MUTANT (comma-separated names).
    public static func namesFromEnvironment() -> [String] {
        ["KVMCHECK_MODEL", "KVMCHECK_MUTANT"].flatMap { key -> [String] in
            guard let v = getenv(key) else { return [] }
            return String(cString: v).split(separator: ",").map { String($0).filter { $0 != " " } }.filter { !$0.isEmpty }
        }
    }

    static func dispatch(_ call: IoctlCall, from index: Int) -> Int {
        guard index < active.count else { return ckvm_real_ioctl(call.fd, call.request, call.arg) }
        return active[index].handle(call) { dispatch($0, from: index + 1) }
    }

    private static let seam: ckvm_ioctl_hook_fn = { fd, request, arg, _ in
        KernelDoubles.dispatch(IoctlCall(fd: fd, request: request, arg: arg), from: 0)
    }
}

// MARK: - helpers for writing doubles

/// Runs the real ioctl with a value of T (for doubles that consult the kernel themselves).
func realIoctl<T>(_ fd: CInt, _ request: UInt, _ value: inout T) -> Int {
    withUnsafeMutablePointer(to: &value) { ckvm_real_ioctl(fd, request, UnsafeMutableRawPointer($0)) }
}

extension KernelDouble {
    static func mutant(_ name: String, _ summary: String, kills: [String], requires: [String] = [],
                       makesObservable: [String] = [],
                       _ handle: @escaping @Sendable (IoctlCall, (IoctlCall) -> Int) -> Int) -> KernelDouble {
        var d = KernelDouble(name: name, kind: .mutant, summary: summary, kills: kills, requires: requires, handle: handle)
        d.makesObservable = makesObservable
        return d
    }

    static func model(_ name: String, _ summary: String,
                      _ handle: @escaping @Sendable (IoctlCall, (IoctlCall) -> Int) -> Int) -> KernelDouble {
        KernelDouble(name: name, kind: .model, summary: summary, kills: [], requires: [], handle: handle)
    }

    /// A mutant that edits a KVM_RUN's exit after the kernel produced it.
    static func afterRun(_ name: String, _ summary: String, kills: [String], requires: [String] = [],
                         _ edit: @escaping @Sendable (IoctlCall, UnsafeMutablePointer<kvm_run>) -> Void) -> KernelDouble {
        mutant(name, summary, kills: kills, requires: requires) { call, forward in
            let r = forward(call)
            if call.isRun, r >= 0, let run = call.run { edit(call, run) }
            return r
        }
    }
}

let exitDebug = UInt32(KVM_EXIT_DEBUG)
let blockIRQBit = UInt32(KVM_GUESTDBG_BLOCKIRQ)
