import CKVM
import Glibc
import SystemPackage

/// A vCPU fd and its mmap'd kvm_run.  Create and run it on one thread.
///
/// The kvm_run page is the one place KVMKit reads and writes through a raw pointer: it is
/// mapped in `init`, unmapped in `deinit`, and only this class (and its extensions) touch it.
public final class VCPU {
    public let vm: VirtualMachine
    let fd: FileDescriptor
    /// SAFETY: the vCPU's kvm_run page, `mmapSize` bytes, valid from init to deinit.
    let shared: UnsafeMutablePointer<kvm_run>
    let mmapSize: Int

    init(vm: VirtualMachine, fd: FileDescriptor, mmapSize: Int) throws(KVMError) {
        var err: CInt = 0
        guard let p = ckvm_mmap_vcpu(fd.rawValue, mmapSize, &err) else {
            throw KVMError("mmap(vcpu fd)", .failed(errno: Errno(rawValue: err)))
        }
        self.vm = vm
        self.fd = fd
        self.mmapSize = mmapSize
        // SAFETY: the mapping is KVM_GET_VCPU_MMAP_SIZE (>= one page) bytes long and starts with a kvm_run.
        self.shared = p.bindMemory(to: kvm_run.self, capacity: 1)
    }

    deinit {
        // SAFETY: `shared` is the mapping made in init, of `mmapSize` bytes; nothing uses it after this.
        _ = ckvm_munmap(UnsafeMutableRawPointer(shared), mmapSize)
        try? fd.close()
    }

    // MARK: running

    /// After this many EAGAINs in a row, KVM_RUN's EAGAIN is the answer, not a hiccup.
    static let persistentEAGAIN = 100_000

    /// One KVM_RUN.  EINTR from anything but the watchdog is retried.
    public func run() throws(KVMError) -> VCPUExit {
        try runRaw()
        return lastExit
    }

    /// KVM_RUN without decoding, for loops that only need the reason.
    @discardableResult
    public func runRaw() throws(KVMError) -> UInt32 {
        var again = 0
        while true {
            let r = ckvm_run(fd.rawValue)
            if r == -Int(EINTR) || r == -Int(EAGAIN) {
                if ckvm_watchdog_fired() != 0 {
                    throw KVMError("KVM_RUN", .watchdogExpired(milliseconds: Int(ckvm_watchdog_armed_ms())))
                }
                // A transient EAGAIN is retried; one that never ends is reported as what it is
                // (not as a guest that "did not return" when the watchdog fires).
                again = r == -Int(EAGAIN) ? again + 1 : 0
                if again >= Self.persistentEAGAIN { return try UInt32(checked(r, "KVM_RUN (EAGAIN \(again) times in a row)")) }
                continue
            }
            _ = try checked(r, "KVM_RUN")
            return exitReason
        }
    }

    /// Exactly one KVM_RUN (no retry on EINTR/EAGAIN), for probes that expect it to fail.
    public func tryRun() -> Result<Void, KVMError> {
        attempt(ckvm_run(fd.rawValue), "KVM_RUN").map { _ in }
    }

    /// `kvmcheck bench`: KVM_RUN `count` times in the C reference loop, each exit `reason`.
    public func runCReferenceLoop(count: Int, expecting reason: UInt32) throws(KVMError) {
        try benchLoopResult(ckvm_bench_run_loop(fd.rawValue, shared, UInt(count), reason))
    }

    /// The floor under both loops: KVM_RUN through a bare `syscall` instruction (no libc, no
    /// errno, no ioctl hook, so kernel doubles do not apply), for the callgrind comparison.
    public func runRawSyscallLoop(count: Int, expecting reason: UInt32) throws(KVMError) {
        try benchLoopResult(ckvm_bench_raw_loop(fd.rawValue, shared, UInt(count), reason))
    }

    /// A bench loop's return: the count run, -errno, or -(100000 + reason) for an exit it did not expect.
    private func benchLoopResult(_ r: Int) throws(KVMError) {
        if r <= -100_000 { throw KVMError("KVM_RUN", .protocolViolation("unexpected \(VCPUExit.name(ofReason: UInt32(-r - 100_000)))")) }
        if r == -Int(EINTR) || r == -Int(EAGAIN), ckvm_watchdog_fired() != 0 {
            throw KVMError("KVM_RUN", .watchdogExpired(milliseconds: Int(ckvm_watchdog_armed_ms())))
        }
        _ = try checked(r, "KVM_RUN")
    }

    /// The same loop through this Swift layer (runRaw), for the harness-overhead ratio.
    public func runSwiftLoop(count: Int, expecting reason: UInt32) throws(KVMError) {
        for _ in 0..<count {
            let got = try runRaw()
            if got != reason { throw KVMError("KVM_RUN", .protocolViolation("unexpected \(VCPUExit.name(ofReason: got))")) }
        }
    }

    /// kvm_run.exit_reason as the last KVM_RUN left it.
    var exitReason: UInt32 {
        // SAFETY: `shared` is mapped for the vCPU's lifetime; exit_reason is a plain u32.
        shared.pointee.exit_reason
    }

    /// The exit described by kvm_run now.
    public var lastExit: VCPUExit {
        // SAFETY: `shared` is mapped for the vCPU's lifetime; the copy is read once, and each union
        // member below is read only under the exit_reason that tells KVM filled it.
        let r = shared.pointee
        switch Int32(bitPattern: r.exit_reason) {
        case KVM_EXIT_IO: return .io(ioExit(r))
        case KVM_EXIT_MMIO:
            let m = r.mmio
            let len = min(Int(m.len), 8)
            // SAFETY: data is a u8[8] array; len is clamped to it.
            let data = withUnsafeBytes(of: m.data) { Array($0.prefix(len)) }
            return .mmio(MMIOExit(address: m.phys_addr, isWrite: m.is_write != 0, data: data))
        case KVM_EXIT_DEBUG:
            let a = r.debug.arch
            return .debug(DebugExit(exception: ExceptionVector(a.exception), pc: a.pc, dr6: DR6(a.dr6), dr7: DR7(a.dr7),
                                    cr3Slot: debugExitCR3Slot))
        case KVM_EXIT_HLT: return .hlt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(hardwareReason: r.fail_entry.hardware_entry_failure_reason, cpu: r.fail_entry.cpu)
        case KVM_EXIT_INTERNAL_ERROR:
            let n = min(Int(r.internal.ndata), 16)
            // SAFETY: data is a u64[16] array; ndata is clamped to it.
            let data = withUnsafeBytes(of: r.internal.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
            return .internalError(suberror: r.internal.suberror, data: data)
        case KVM_EXIT_IRQ_WINDOW_OPEN: return .irqWindowOpen
        case KVM_EXIT_INTR: return .interrupted
        case KVM_EXIT_SYSTEM_EVENT:
            let n = min(Int(r.system_event.ndata), 16)
            // SAFETY: data is a u64[16] array; ndata is clamped to it.
            let data = withUnsafeBytes(of: r.system_event.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
            return .systemEvent(type: r.system_event.type, data: data)
        default: return .other(reason: r.exit_reason)
        }
    }

    private func ioExit(_ r: kvm_run) -> IOExit {
        let io = r.io
        let size = Int(io.size), count = Int(io.count)
        var data: [UInt8] = []
        if io.direction == UInt8(KVM_EXIT_IO_OUT), Int(io.data_offset) + size * count <= mmapSize {
            // SAFETY: the data lies inside the mapping (bounds checked against mmapSize just above).
            let raw = UnsafeRawPointer(shared) + Int(io.data_offset)
            data = Array(UnsafeRawBufferPointer(start: raw, count: size * count))
        }
        return IOExit(direction: io.direction == UInt8(KVM_EXIT_IO_OUT) ? .output : .input,
                      port: io.port, size: size, count: count, data: data)
    }
}

/// Byte view of a uAPI struct, for byte-for-byte comparisons.
public func uapiBytes<T>(of value: T) -> [UInt8] {
    // SAFETY: the bytes of a local copy are read within the closure and copied out.
    withUnsafeBytes(of: value) { Array($0) }
}
