import CKVM
import Glibc
import MutantIDs

// Test-only stand-ins for "the kernel", applied at the C shim's single ioctl seam
// (ckvm_set_ioctl_hook: a null function pointer unless a double is active, so the production
// path pays one untaken branch per ioctl and nothing else).
// A *mutant* perverts one behaviour the way a buggy patch would, to prove the checks notice.
// A *model* implements an unmerged uAPI (CR3 in debug exits, conditional sync regs) on top
// of the real kernel, so those checks' positive paths run here.  Nothing is active unless
// KVMCHECK_MUTANT / KVMCHECK_MODEL name one (see README, developers' section).
// The doubles find what they need themselves (a vCPU's kvm_run, whether an fd is a VM), so
// KVMKit records nothing for them and keeps only that hook.

/// A model: an unmerged uAPI simulated on the real kernel (KVMCHECK_MODEL=rawValue).
public enum ModelID: String, CaseIterable, Sendable, Hashable {
    case debugCR3 = "debug-cr3"
    case conditionalSync = "conditional-sync"
}

/// One intercepted ioctl; `forward` runs the rest of the chain (ultimately the real ioctl).
public struct IoctlCall {
    public let fd: CInt
    public let request: UInt
    // SAFETY: arg is the ioctl caller's argument, valid for its request's struct while the call runs on this thread;
    // run is the fd's kvm_run (VCPUMapping: a live MAP_SHARED page, kvm_run at offset 0), shared by design with the kernel
    // and the check's own threads, so doubles only load and store its plain integer fields. Neither outlives the call.
    public let arg: UnsafeMutableRawPointer?
    /// For KVM_RUN: the vCPU's kvm_run (VCPUMapping).
    let run: UnsafeMutablePointer<kvm_run>?

    var isRun: Bool { request == CKVM_REQ_RUN }
    // SAFETY: every caller first tests `request`, whose uAPI fixes the argument's type.
    func arg<T>(as type: T.Type) -> UnsafeMutablePointer<T>? {
        arg?.assumingMemoryBound(to: T.self)
    }
    /// KVM_CHECK_EXTENSION passes the capability number itself as the argument.
    var capability: Int { Int(bitPattern: UInt(bitPattern: arg)) }
}

public typealias DoubleHandler = @Sendable (IoctlCall, (IoctlCall) -> Int) -> Int

/// A mutant or a model.
public struct KernelDouble: Sendable {
    public enum Identity: Sendable, Hashable {
        case mutant(MutantID)
        case model(ModelID)
    }
    public let identity: Identity
    /// What it changes, in a kernel developer's words.
    public let summary: String
    /// Models a mutant needs underneath it (a mutant of an unmerged uAPI perverts its model).
    public let requires: [ModelID]
    let handle: DoubleHandler

    public var name: String {
        switch identity { case .mutant(let m): m.rawValue; case .model(let m): m.rawValue }
    }
    public var kind: String {
        switch identity { case .mutant: "mutant"; case .model: "model" }
    }
    public var mutant: MutantID? { if case .mutant(let m) = identity { m } else { nil } }

    static func mutant(_ id: MutantID, _ summary: String, requires: [ModelID] = [],
                       _ handle: @escaping DoubleHandler) -> KernelDouble {
        KernelDouble(identity: .mutant(id), summary: summary, requires: requires, handle: handle)
    }

    static func model(_ id: ModelID, _ summary: String, _ handle: @escaping DoubleHandler) -> KernelDouble {
        KernelDouble(identity: .model(id), summary: summary, requires: [], handle: handle)
    }

    // SAFETY: edit gets run only after a KVM_RUN that returned >= 0 on this thread: the mapping is live, its exit final.
    /// A mutant that edits a KVM_RUN's exit after the kernel produced it.
    static func afterRun(_ id: MutantID, _ summary: String, requires: [ModelID] = [],
                         _ edit: @escaping @Sendable (IoctlCall, UnsafeMutablePointer<kvm_run>) -> Void) -> KernelDouble {
        mutant(id, summary, requires: requires) { call, forward in
            let r = forward(call)
            if call.isRun, r >= 0, let run = call.run { edit(call, run) }
            return r
        }
    }
}

public enum KernelDoubles {
    nonisolated(unsafe) private(set) static var active: [KernelDouble] = []
    /// The run's numbers for unmerged capabilities (name → number), which models advertise.
    nonisolated(unsafe) public static var proposedCapabilities: [String: Int] = [:]

    public static var activeNames: [String] { active.map(\.name) }
    static func isActive(_ id: MutantID) -> Bool { active.contains { $0.mutant == id } }

    /// The double named `name` (a mutant's or a model's raw value).
    public static func named(_ name: String) -> KernelDouble? { catalog.first { $0.name == name } }
    public static func double(_ id: MutantID) -> KernelDouble? { catalog.first { $0.mutant == id } }

    /// Installs the named doubles.  Mutants wrap models, so a mutant perverts the modelled kernel.
    public static func activate(_ names: [String]) throws(UnknownDouble) {
        var chosen: [KernelDouble] = []
        for name in names {
            guard let d = named(name) else { throw UnknownDouble(name: name) }
            chosen.append(d)
        }
        active = chosen.filter { $0.mutant != nil } + chosen.filter { $0.mutant == nil }
        DoubleState.reset()
        ActionTrace.reset()
        VCPUMapping.forgetAll()
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
        let double = active[index]
        guard let id = double.mutant else { return double.handle(call) { dispatch($0, from: index + 1) } }
        return ActionTrace.watching(id, call) { double.handle(call, $0) } next: { dispatch($0, from: index + 1) }
    }

    private static let seam: ckvm_ioctl_hook_fn = { fd, request, arg, _ in
        let run = request == CKVM_REQ_RUN ? VCPUMapping.run(of: fd) : nil
        let r = KernelDoubles.dispatch(IoctlCall(fd: fd, request: request, arg: arg, run: run), from: 0)
        // A new vCPU may reuse a closed one's fd number: per-vCPU double state starts afresh.
        if request == kvmCreateVCPU, r >= 0 {
            DoubleState.forget(vcpu: CInt(truncatingIfNeeded: r))
            VCPUMapping.forget(CInt(truncatingIfNeeded: r))
        }
        return r
    }
}

public struct UnknownDouble: Error, CustomStringConvertible {
    public let name: String
    public var description: String {
        "unknown kernel double '\(name)' (known: \(KernelDoubles.catalog.map(\.name).joined(separator: ", ")))"
    }
}

/// Per-process state doubles keep (each check runs in its own process); per-vCPU keys end in "@fd".
enum DoubleState {
    nonisolated(unsafe) static var counters: [String: Int] = [:]
    nonisolated(unsafe) static var values: [String: UInt64] = [:]

    static func reset() { counters = [:]; values = [:] }
    static func forget(vcpu fd: CInt) {
        counters = counters.filter { !$0.key.hasSuffix("@\(fd)") }
        values = values.filter { !$0.key.hasSuffix("@\(fd)") }
    }
}

/// The kvm_run of a vCPU fd, mapped again by the doubles at its first KVM_RUN (so doubles activated
/// after a vCPU was created still find it).  The mapping is dropped when the fd number comes back
/// from KVM_CREATE_VCPU (a new vCPU) or the doubles are activated again; until then it keeps a
/// closed vCPU's VM alive, which only delays its teardown to the check process's exit.
enum VCPUMapping {
    /// kvm_run and the proposed conditional-sync bitmap after it both sit in the first page.
    static let length = 4096
    // SAFETY: each value is a live mmap of its fd's page 0; forget() drops it from the table as it unmaps it.
    nonisolated(unsafe) private static var runs: [CInt: UnsafeMutablePointer<kvm_run>] = [:]

    static func run(of fd: CInt) -> UnsafeMutablePointer<kvm_run>? {
        if let run = runs[fd] { return run }
        // SAFETY: a MAP_SHARED view of page 0 of a vCPU fd is that vCPU's kvm_run (what KVMKit
        // maps too); a failed mmap (not a vCPU fd) yields nil; the view lives until forget().
        let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let p, p != UnsafeMutableRawPointer(bitPattern: -1) else { return nil } // MAP_FAILED
        let run = p.bindMemory(to: kvm_run.self, capacity: 1)
        runs[fd] = run
        return run
    }

    static func forget(_ fd: CInt) {
        // SAFETY: the pointer came from mmap above and is dropped from the table with it.
        if let run = runs.removeValue(forKey: fd) { _ = munmap(UnsafeMutableRawPointer(run), length) }
    }

    static func forgetAll() { for fd in Array(runs.keys) { forget(fd) } }
}

/// What an fd is, from its /proc link (KVM names its anonymous inodes "kvm-vm", "kvm-vcpu:N").
enum FDKind {
    static func link(_ fd: CInt) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, buffer.count - 1)
        return n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
    }
    static func isVM(_ fd: CInt) -> Bool { link(fd) == "anon_inode:kvm-vm" }
    static func isVCPU(_ fd: CInt) -> Bool { link(fd).hasPrefix("anon_inode:kvm-vcpu:") }
}

/// KVM_CREATE_VCPU = _IO(KVMIO, 0x41) (the C shim names no constant for it).
let kvmCreateVCPU: UInt = 0xAE41
/// KVM_SET_LAPIC = _IOW(KVMIO, 0x8f, struct kvm_lapic_state[1024 bytes]).
let kvmSetLAPIC: UInt = 0x4400_AE8F
let exitDebug = UInt32(KVM_EXIT_DEBUG)
