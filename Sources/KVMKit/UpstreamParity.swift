import CKVM
import Glibc

// Typed pieces the upstream-parity suites (debug-regs, sync-regs-upstream, msrs) need:
// KVM_TRANSLATE, the sync-regs racer thread, and the CPUID features msrs_test keys on.

extension VCPU {
    /// KVM_TRANSLATE: the guest-physical address `linear` maps to, as the vCPU's MMU sees it now.
    public func translate(_ linear: UInt64) throws(KVMError) -> kvm_translation {
        var tr = kvm_translation()
        tr.linear_address = linear
        _ = try checked(ckvm_translate(fd.rawValue, &tr), "KVM_TRANSLATE")
        return tr
    }

    /// Every register class KVM_RUN may change, for restoring a vCPU a race left in shutdown.
    public func saveState() throws(KVMError) -> SavedVCPUState {
        SavedVCPUState(regs: try regs(), sregs: try sregs(), events: try events())
    }

    public func restore(_ state: SavedVCPUState) throws(KVMError) {
        try setSregs(state.sregs)
        try setRegs(state.regs)
        try setEvents(state.events)
    }
}

public struct SavedVCPUState {
    public let regs: kvm_regs
    public let sregs: kvm_sregs
    public let events: kvm_vcpu_events
}

/// A second thread rewriting this vCPU's kvm_run.s while the owner keeps calling KVM_RUN
/// (sync_regs_test.c's races).  Stop it before the vCPU goes away.
public final class SyncRegsRacer {
    public enum Kind: Int32, Sendable, CustomStringConvertible {
        case cr4PAEToggle = 0, invalidExceptionVector = 1, pendingAndInjected = 2
        public var description: String {
            switch self {
            case .cr4PAEToggle: return "CR4.PAE toggled in dirty SREGS"
            case .invalidExceptionVector: return "exception vector 255 in dirty EVENTS"
            case .pendingAndInjected: return "#UD both pending and injected in dirty EVENTS"
            }
        }
    }

    private var racer: OpaquePointer?
    /// Keeps the vCPU (and so its kvm_run mapping) alive while the racer writes to it.
    private let vcpu: VCPU

    public init(_ vcpu: VCPU, _ kind: Kind) throws(KVMError) {
        var err: CInt = 0
        // The C thread only stores into the shared kvm_run page, which outlives it (vcpu is held).
        guard let r = ckvm_racer_start(vcpu.shared, kind.rawValue, &err) else {
            throw KVMError("pthread_create(sync-regs racer)", .failed(errno: Errno(rawValue: err)))
        }
        self.vcpu = vcpu
        self.racer = r
    }

    /// Stops the thread; returns how many rounds of writes it made.
    @discardableResult
    public func stop() -> UInt {
        guard let r = racer else { return 0 }
        racer = nil
        return ckvm_racer_stop(r)
    }

    deinit { stop() }
}

extension CPUIDFeature {
    public static let longMode = CPUIDFeature(name: "LM", leaf: 0x8000_0001, subleaf: 0, register: .edx, bit: 29)
    public static let rdpid = CPUIDFeature(name: "RDPID", leaf: 7, subleaf: 0, register: .ecx, bit: 22)
    public static let indirectBranchTracking = CPUIDFeature(name: "IBT", leaf: 7, subleaf: 0, register: .edx, bit: 20)
    public static let hypervisor = CPUIDFeature(name: "HYPERVISOR", leaf: 1, subleaf: 0, register: .ecx, bit: 31)
    public static let x2apic = CPUIDFeature(name: "X2APIC", leaf: 1, subleaf: 0, register: .ecx, bit: 21)
}

/// The CPUID vendor string (leaf 0 EBX/EDX/ECX), e.g. "AuthenticAMD".
public func cpuidVendor(_ entries: [kvm_cpuid_entry2]) -> String {
    guard let e = entries.first(where: { $0.function == 0 }) else { return "" }
    let bytes = [e.ebx, e.edx, e.ecx].flatMap { r in (0..<4).map { UInt8(truncatingIfNeeded: r >> (8 * UInt32($0))) } }
    return String(decoding: bytes, as: UTF8.self)
}

/// KVM's guest_cpuid_is_intel_compatible(): Intel, Centaur and Zhaoxin follow Intel's MSR rules.
public func cpuidIsIntelCompatible(_ entries: [kvm_cpuid_entry2]) -> Bool {
    ["GenuineIntel", "CentaurHauls", "  Shanghai  "].contains(cpuidVendor(entries))
}
