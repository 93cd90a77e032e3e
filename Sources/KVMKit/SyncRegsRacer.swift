import CKVM
import SystemPackage

/// A second thread rewriting this vCPU's kvm_run.s while the owner keeps calling KVM_RUN
/// (the races of sync_regs_test.c).  Stop it before the vCPU goes away.
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

    /// SAFETY: the C racer's handle, passed only to ckvm_racer_stop, once.
    private var racer: OpaquePointer?
    /// Keeps the vCPU (and so its kvm_run mapping) alive while the racer writes to it.
    private let vcpu: VCPU

    public init(_ vcpu: VCPU, _ kind: Kind) throws(KVMError) {
        var err: CInt = 0
        // SAFETY: the C thread only stores into the shared kvm_run page, which outlives it: `vcpu`
        // is held until deinit, and deinit joins the thread first.
        guard let r = ckvm_racer_start(vcpu.shared, kind.rawValue, &err) else {
            throw KVMError("pthread_create(kvm_run racer thread)", .failed(errno: Errno(rawValue: err)))
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
