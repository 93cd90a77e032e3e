import CKVM
import SystemPackage

/// A second thread rewriting this vCPU's kvm_run.s (the races of sync_regs_test.c) or its
/// exit_reason while the owner keeps calling KVM_RUN.  Stop it before the vCPU goes away.
public final class SyncRegsRacer {
    public enum Kind: Int32, Sendable, CustomStringConvertible {
        case cr4PAEToggle = 0, invalidExceptionVector = 1, pendingAndInjected = 2
        /// kvm_run.exit_reason rewritten to 0xffffffff / 1024, past the conditional-sync bitmap.
        case exitReasonMax = 3, exitReason1024 = 4
        public var description: String {
            switch self {
            case .cr4PAEToggle: return "CR4.PAE toggled in dirty SREGS"
            case .invalidExceptionVector: return "exception vector 255 in dirty EVENTS"
            case .pendingAndInjected: return "#UD both pending and injected in dirty EVENTS"
            case .exitReasonMax, .exitReason1024: return "exit_reason \(exitReason.map { hex($0) } ?? "") in kvm_run"
            }
        }
        /// The exit reason the racer writes (nil for the kinds that write kvm_run.s).
        public var exitReason: UInt32? {
            switch self {
            case .exitReasonMax: return 0xFFFF_FFFF
            case .exitReason1024: return 1024
            default: return nil
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

    /// Whether the thread made its first round within `milliseconds` (for the exit-reason kinds,
    /// by overwriting a KVM_EXIT_UNKNOWN stored here: that round counts in `stop()`'s total).
    public func waitUntilRunning(milliseconds: Int) -> Bool {
        guard let r = racer else { return false }
        return ckvm_racer_wait_running(r, UInt32(clamping: milliseconds)) == 0
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

// kvm_run fields the exit-reason race reads and poisons without trusting exit_reason (which
// the racer rewrites): KVM fills the I/O exit's port itself, and the word after the bitmap is
// where an off-by-one guard would read reason 1024's bit.
extension VCPU {
    /// kvm_run.io.port, whatever exit_reason says (the union's I/O member).
    public var ioExitPortField: UInt16 {
        // SAFETY: `shared` is mapped for the vCPU's lifetime; io.port is a plain u16 in the exit union.
        get { shared.pointee.io.port }
        set { shared.pointee.io.port = newValue }
    }

    /// The 64 bits right after kvm_save_regs_on_exit (bits 1024-1087 if it were longer).
    public var wordPastSaveRegsBitmap: UInt64 {
        get {
            // SAFETY: kvm_run (2,352 bytes, pinned in ckvm.h) + the 128-byte bitmap + 8 fit in the >= 4 KiB
            // mapping; the offset is 8-byte aligned.
            (UnsafeRawPointer(shared) + MemoryLayout<kvm_run>.size).load(fromByteOffset: Int(CKVM_SAVE_REGS_ON_EXIT_WORDS) * 8, as: UInt64.self)
        }
        set {
            // SAFETY: as the getter.
            (UnsafeMutableRawPointer(shared) + MemoryLayout<kvm_run>.size)
                .storeBytes(of: newValue, toByteOffset: Int(CKVM_SAVE_REGS_ON_EXIT_WORDS) * 8, as: UInt64.self)
        }
    }
}
