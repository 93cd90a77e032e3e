import CKVM
import Glibc
import SystemPackage

/// A vCPU fd and its mmap'd kvm_run.  Create and run it on one thread.
public final class VCPU {
    public let vm: VirtualMachine
    let fd: FileDescriptor
    let shared: UnsafeMutablePointer<kvm_run> // internal: UpstreamParity.swift starts racers on it
    private let mmapSize: Int

    init(vm: VirtualMachine, fd: FileDescriptor, mmapSize: Int) throws(KVMError) {
        var err: CInt = 0
        guard let p = ckvm_mmap_vcpu(fd.rawValue, mmapSize, &err) else {
            throw KVMError("mmap(vcpu fd)", .failed(errno: Errno(rawValue: err)))
        }
        self.vm = vm
        self.fd = fd
        self.mmapSize = mmapSize
        self.shared = p.bindMemory(to: kvm_run.self, capacity: 1)
    }

    deinit {
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
            return shared.pointee.exit_reason
        }
    }

    /// `kvmcheck bench`: KVM_RUN `count` times in the C reference loop, each exit `reason`.
    public func runCReferenceLoop(count: Int, expecting reason: UInt32) throws(KVMError) {
        let r = ckvm_bench_run_loop(fd.rawValue, shared, UInt(count), reason)
        if r <= -100_000 { throw KVMError("KVM_RUN", .protocolViolation("unexpected \(VCPUExit.name(ofReason: UInt32(-r - 100_000)))")) }
        if r == -Int(EINTR), ckvm_watchdog_fired() != 0 {
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

    /// KVM_RUN exactly once, for probes that expect failure: nil on success, else the error.
    public func runOnce() -> KVMError? {
        let r = ckvm_run(fd.rawValue)
        return r < 0 ? KVMError("KVM_RUN", .failed(errno: Errno(rawValue: CInt(-r)))) : nil
    }

    /// The exit described by kvm_run now.
    public var lastExit: VCPUExit {
        let r = shared.pointee
        switch Int32(bitPattern: r.exit_reason) {
        case KVM_EXIT_IO:
            let io = r.io
            let size = Int(io.size), count = Int(io.count)
            var data: [UInt8] = []
            if io.direction == UInt8(KVM_EXIT_IO_OUT), Int(io.data_offset) + size * count <= mmapSize {
                let raw = UnsafeRawPointer(shared) + Int(io.data_offset)
                data = Array(UnsafeRawBufferPointer(start: raw, count: size * count))
            }
            return .io(IOExit(direction: io.direction == UInt8(KVM_EXIT_IO_OUT) ? .output : .input,
                              port: io.port, size: size, count: count, data: data))
        case KVM_EXIT_MMIO:
            let m = r.mmio
            let len = min(Int(m.len), 8)
            let data = withUnsafeBytes(of: m.data) { Array($0.prefix(len)) }
            return .mmio(MMIOExit(address: m.phys_addr, isWrite: m.is_write != 0, data: data))
        case KVM_EXIT_DEBUG:
            let a = r.debug.arch
            return .debug(DebugExit(exception: a.exception, pc: a.pc, dr6: a.dr6, dr7: a.dr7, cr3Slot: debugExitCR3Slot))
        case KVM_EXIT_HLT: return .hlt
        case KVM_EXIT_SHUTDOWN: return .shutdown
        case KVM_EXIT_FAIL_ENTRY:
            return .failEntry(hardwareReason: r.fail_entry.hardware_entry_failure_reason, cpu: r.fail_entry.cpu)
        case KVM_EXIT_INTERNAL_ERROR:
            let n = min(Int(r.internal.ndata), 16)
            let data = withUnsafeBytes(of: r.internal.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
            return .internalError(suberror: r.internal.suberror, data: data)
        case KVM_EXIT_IRQ_WINDOW_OPEN: return .irqWindowOpen
        case KVM_EXIT_INTR: return .interrupted
        case KVM_EXIT_SYSTEM_EVENT:
            let n = min(Int(r.system_event.ndata), 16)
            let data = withUnsafeBytes(of: r.system_event.data) { Array($0.bindMemory(to: UInt64.self).prefix(n)) }
            return .systemEvent(type: r.system_event.type, data: data)
        default: return .other(reason: r.exit_reason)
        }
    }

    /// Supplies the bytes a pending `in` reads (call before the next run()).
    public func completeInput(_ bytes: [UInt8]) {
        let io = shared.pointee.io
        precondition(shared.pointee.exit_reason == UInt32(KVM_EXIT_IO) && io.direction == UInt8(KVM_EXIT_IO_IN),
                     "completeInput without a pending KVM_EXIT_IO input")
        let count = min(bytes.count, Int(io.size) * Int(io.count))
        let raw = UnsafeMutableRawPointer(shared) + Int(io.data_offset)
        bytes.prefix(count).withUnsafeBytes { raw.copyMemory(from: $0.baseAddress!, byteCount: count) }
    }

    public var immediateExit: Bool {
        get { shared.pointee.immediate_exit != 0 }
        set { shared.pointee.immediate_exit = newValue ? 1 : 0 }
    }

    public var requestInterruptWindow: Bool {
        get { shared.pointee.request_interrupt_window != 0 }
        set { shared.pointee.request_interrupt_window = newValue ? 1 : 0 }
    }

    /// kvm_run.if_flag / ready_for_interrupt_injection after the last exit.
    public var interruptFlag: Bool { shared.pointee.if_flag != 0 }
    public var readyForInterruptInjection: Bool { shared.pointee.ready_for_interrupt_injection != 0 }

    // MARK: register state

    public func regs() throws(KVMError) -> kvm_regs {
        var r = kvm_regs()
        _ = try checked(ckvm_get_regs(fd.rawValue, &r), "KVM_GET_REGS")
        return r
    }

    public func setRegs(_ r: kvm_regs) throws(KVMError) {
        var copy = r
        _ = try checked(ckvm_set_regs(fd.rawValue, &copy), "KVM_SET_REGS")
    }

    public func sregs() throws(KVMError) -> kvm_sregs {
        var s = kvm_sregs()
        _ = try checked(ckvm_get_sregs(fd.rawValue, &s), "KVM_GET_SREGS")
        return s
    }

    public func setSregs(_ s: kvm_sregs) throws(KVMError) {
        var copy = s
        _ = try checked(ckvm_set_sregs(fd.rawValue, &copy), "KVM_SET_SREGS")
    }

    public func events() throws(KVMError) -> kvm_vcpu_events {
        var e = kvm_vcpu_events()
        _ = try checked(ckvm_get_vcpu_events(fd.rawValue, &e), "KVM_GET_VCPU_EVENTS")
        return e
    }

    public func setEvents(_ e: kvm_vcpu_events) throws(KVMError) {
        var copy = e
        _ = try checked(ckvm_set_vcpu_events(fd.rawValue, &copy), "KVM_SET_VCPU_EVENTS")
    }

    public func debugRegs() throws(KVMError) -> kvm_debugregs {
        var d = kvm_debugregs()
        _ = try checked(ckvm_get_debugregs(fd.rawValue, &d), "KVM_GET_DEBUGREGS")
        return d
    }

    public func setDebugRegs(_ d: kvm_debugregs) throws(KVMError) {
        var copy = d
        _ = try checked(ckvm_set_debugregs(fd.rawValue, &copy), "KVM_SET_DEBUGREGS")
    }

    /// KVM_SET_GUEST_DEBUG.  `debugRegs` are DR0–DR3 addresses, [4],[5] unused, [6] unused, [7] = DR7.
    public func setGuestDebug(_ control: GuestDebugControl, debugRegs: [UInt64] = []) throws(KVMError) {
        try setGuestDebug(rawControl: control.rawValue, debugRegs: debugRegs)
    }

    /// As setGuestDebug, with arbitrary control bits (to probe undefined ones).
    public func setGuestDebug(rawControl: UInt32, debugRegs: [UInt64] = []) throws(KVMError) {
        precondition(debugRegs.count <= 8, "at most 8 debugreg slots")
        var dbg = kvm_guest_debug()
        dbg.control = rawControl
        withUnsafeMutableBytes(of: &dbg.arch.debugreg) { raw in
            for (i, v) in debugRegs.enumerated() { raw.storeBytes(of: v, toByteOffset: i * 8, as: UInt64.self) }
        }
        _ = try checked(ckvm_set_guest_debug(fd.rawValue, &dbg), "KVM_SET_GUEST_DEBUG")
    }

    public func setCPUID(_ entries: [kvm_cpuid_entry2]) throws(KVMError) {
        _ = try checked(ckvm_set_cpuid2(fd.rawValue, entries, UInt32(entries.count)), "KVM_SET_CPUID2")
    }

    // MARK: MSRs and ONE_REG

    /// KVM_GET_MSRS: returns the values of the MSRs the kernel processed (it stops at the first failure).
    public func getMSRs(_ indices: [UInt32]) throws(KVMError) -> [UInt64] {
        var values = [UInt64](repeating: 0, count: indices.count)
        let n = try checked(ckvm_get_msrs(fd.rawValue, indices, &values, UInt32(indices.count)), "KVM_GET_MSRS")
        return Array(values.prefix(n))
    }

    /// One MSR through KVM_GET_MSRS; nil when the kernel processed none (unknown or refused MSR).
    public func getMSR(_ index: UInt32) throws(KVMError) -> UInt64? {
        try getMSRs([index]).first
    }

    /// KVM_SET_MSRS: returns how many leading MSRs the kernel accepted.
    @discardableResult
    public func setMSRs(_ entries: [(index: UInt32, value: UInt64)]) throws(KVMError) -> Int {
        let indices = entries.map(\.index), values = entries.map(\.value)
        return try checked(ckvm_set_msrs(fd.rawValue, indices, values, UInt32(entries.count)), "KVM_SET_MSRS")
    }

    /// KVM_GET_ONE_REG for a 64-bit register.
    public func getOneReg(_ id: UInt64) throws(KVMError) -> UInt64 {
        var value: UInt64 = 0
        let r = withUnsafeMutablePointer(to: &value) { ckvm_get_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        _ = try checked(r, "KVM_GET_ONE_REG(0x\(hex(id)))")
        return value
    }

    public func setOneReg(_ id: UInt64, _ value: UInt64) throws(KVMError) {
        var copy = value
        let r = withUnsafeMutablePointer(to: &copy) { ckvm_set_one_reg(fd.rawValue, id, UInt64(UInt(bitPattern: $0))) }
        _ = try checked(r, "KVM_SET_ONE_REG(0x\(hex(id)))")
    }

    /// KVM_GET_ONE_REG / SET_ONE_REG with a caller-chosen user address, to probe EFAULT paths.
    public func oneRegWithAddress(_ id: UInt64, address: UInt64, set: Bool) -> KVMError? {
        let r = set ? ckvm_set_one_reg(fd.rawValue, id, address) : ckvm_get_one_reg(fd.rawValue, id, address)
        let name = set ? "KVM_SET_ONE_REG" : "KVM_GET_ONE_REG"
        return r < 0 ? KVMError("\(name)(0x\(hex(id)))", .failed(errno: Errno(rawValue: CInt(-r)))) : nil
    }

    /// KVM_GET_REG_LIST with room for `capacity` ids: the result and the count the kernel wrote into `n`.
    public func regList(capacity: Int) -> (result: Result<[UInt64], KVMError>, reportedCount: UInt64) {
        var n = UInt64(capacity)
        var ids = [UInt64](repeating: 0, count: max(capacity, 1))
        let r = ckvm_get_reg_list(fd.rawValue, &n, &ids)
        if r < 0 {
            return (.failure(KVMError("KVM_GET_REG_LIST", .failed(errno: Errno(rawValue: CInt(-r))))), n)
        }
        return (.success(Array(ids.prefix(min(Int(n), capacity)))), n)
    }

    // MARK: interrupts

    /// KVM_INTERRUPT (userspace irqchip only).
    public func interrupt(vector: UInt32) throws(KVMError) {
        _ = try checked(ckvm_interrupt(fd.rawValue, vector), "KVM_INTERRUPT")
    }

    /// KVM_GET_LAPIC: the in-kernel local APIC's 1 KiB register page.
    public func lapicRegisters() throws(KVMError) -> [UInt8] {
        var state = kvm_lapic_state()
        _ = try checked(ckvm_get_lapic(fd.rawValue, &state), "KVM_GET_LAPIC")
        return withUnsafeBytes(of: &state.regs) { Array($0) }
    }

    /// KVM_SET_LAPIC with a full register page (as lapicRegisters returned it, edited).
    public func setLapicRegisters(_ page: [UInt8]) throws(KVMError) {
        var state = kvm_lapic_state()
        withUnsafeMutableBytes(of: &state.regs) { raw in
            precondition(page.count == raw.count, "the LAPIC page is \(raw.count) bytes")
            raw.copyBytes(from: page)
        }
        _ = try checked(ckvm_set_lapic(fd.rawValue, &state), "KVM_SET_LAPIC")
    }

    // MARK: sync regs (kvm_run.s)

    /// kvm_run.kvm_valid_regs, raw: register classes the kernel should copy out on exit.
    public var syncValidRegs: UInt64 {
        get { shared.pointee.kvm_valid_regs }
        set { shared.pointee.kvm_valid_regs = newValue }
    }

    /// kvm_run.kvm_dirty_regs, raw: register classes userspace changed in kvm_run.s.
    public var syncDirtyRegs: UInt64 {
        get { shared.pointee.kvm_dirty_regs }
        set { shared.pointee.kvm_dirty_regs = newValue }
    }

    public var syncedRegs: kvm_regs {
        get { shared.pointee.s.regs.regs }
        set { shared.pointee.s.regs.regs = newValue }
    }

    public var syncedSregs: kvm_sregs {
        get { shared.pointee.s.regs.sregs }
        set { shared.pointee.s.regs.sregs = newValue }
    }

    public var syncedEvents: kvm_vcpu_events {
        get { shared.pointee.s.regs.events }
        set { shared.pointee.s.regs.events = newValue }
    }

    /// Fills kvm_run.s with one byte, so a later copy-out by the kernel is distinguishable from no copy.
    public func poisonSyncRegs(_ byte: UInt8) {
        withUnsafeMutableBytes(of: &shared.pointee.s) { _ = $0.initializeMemory(as: UInt8.self, repeating: byte) }
    }

    /// Proposed (unmerged) per-exit-reason bitmap after kvm_run.s; lives in the mmap'd page.
    public var saveRegsOnExitBitmap: [UInt64] {
        get {
            let p = UnsafeRawPointer(shared) + MemoryLayout<kvm_run>.size
            return (0..<Int(CKVM_SAVE_REGS_ON_EXIT_WORDS)).map { p.load(fromByteOffset: $0 * 8, as: UInt64.self) }
        }
        set {
            precondition(newValue.count == Int(CKVM_SAVE_REGS_ON_EXIT_WORDS), "bitmap is 16 words")
            let p = UnsafeMutableRawPointer(shared) + MemoryLayout<kvm_run>.size
            for (i, w) in newValue.enumerated() { p.storeBytes(of: w, toByteOffset: i * 8, as: UInt64.self) }
        }
    }

    /// The proposed kvm_debug_exit_arch.cr3 slot (8 bytes after dr7 in the exit union).
    public var debugExitCR3Slot: UInt64 {
        get {
            (UnsafeRawPointer(shared) + Int(ckvm_debug_exit_cr3_offset)).loadUnaligned(as: UInt64.self)
        }
        set {
            (UnsafeMutableRawPointer(shared) + Int(ckvm_debug_exit_cr3_offset)).storeBytes(of: newValue, as: UInt64.self)
        }
    }

    /// The raw exit reason in kvm_run (to tell "not written" from a decoded exit).
    public var rawExitReason: UInt32 {
        get { shared.pointee.exit_reason }
        set { shared.pointee.exit_reason = newValue }
    }
}

/// Byte view of a uAPI struct, for byte-for-byte comparisons.
public func uapiBytes<T>(of value: T) -> [UInt8] {
    withUnsafeBytes(of: value) { Array($0) }
}

/// A per-thread timer that interrupts KVM_RUN if the guest never exits.
public enum Watchdog {
    public static func arm(milliseconds: Int) throws(KVMError) {
        _ = try checked(Int(ckvm_watchdog_arm(UInt32(milliseconds))), "timer_create(watchdog)")
    }

    public static func disarm() { ckvm_watchdog_disarm() }

    /// Runs `body` with the watchdog armed; always disarms.
    public static func guarding<R>(milliseconds: Int, _ body: () throws -> R) throws -> R {
        try arm(milliseconds: milliseconds)
        defer { disarm() }
        return try body()
    }
}
