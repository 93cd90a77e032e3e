import CKVM
import KVMKit
import X86Asm

/// How to build a guest (defaults suit most checks).
public struct GuestOptions: Sendable {
    /// Create an in-kernel irqchip (LAPIC/IOAPIC/PIC) before the vCPU.
    public var inKernelIRQChip = false
    /// Load KVM_GET_SUPPORTED_CPUID into the vCPU (as selftests do).
    public var supportedCPUID = true
    /// Edits the CPUID table before KVM_SET_CPUID2 (e.g. to hide a feature from the vCPU).
    public var editCPUID: (@Sendable (inout [kvm_cpuid_entry2]) -> Void)?
    /// RFLAGS bits the VMM sets with KVM_SET_REGS at entry, besides the fixed bit 1 (e.g. IF).
    /// None by default, at either level: no IOPL, so CPL3 payloads use no port I/O, `cli` or
    /// `sti` and depend on no backend honouring an IOPL the VMM set (ucalls are MMIO).  That
    /// the guest runs with exactly these bits is a check of its own (guest-debug/vmm_rflags_*).
    public var extraRFLAGS: UInt64 = 0
    /// The page-table root the guest boots with (an identity map is built there).  Checks
    /// that look for a CR3 value pick one no other check uses, never the default.
    public var pageTableRoot: UInt64 = GuestLayout.pml4
    /// Extra CR4 bits at entry (e.g. PCIDE).
    public var extraCR4: UInt64 = 0
    /// Each KVM_RUN must return within this long, or the run fails with a watchdog error.
    public var watchdogMilliseconds = 2000
    /// A guest that exits more often than this is considered stuck.
    public var maxExits = 100_000

    public init() {}
}

/// What the guest did, as seen by the host after one KVM_RUN.
public enum GuestEvent: Equatable, Sendable, CustomStringConvertible {
    /// ucallSync(stage, registers…): six value slots, unused ones as the guest left them.
    case sync(stage: UInt64, values: [UInt64])
    case done
    /// The guest's IDT handler caught an exception or interrupt.
    case exception(GuestException)
    /// ucallFail(id, register).
    case guestFailure(id: UInt64, value: UInt64)
    /// Any other exit (debug, hlt, shutdown, internal error, other I/O…).
    case exit(VCPUExit)

    public var description: String {
        switch self {
        case .sync(let stage, let values):
            return "ucall SYNC stage \(stage) values [" + values.map { hex($0) }.joined(separator: ", ") + "]"
        case .done: return "ucall DONE"
        case .exception(let e): return "guest \(e)"
        case .guestFailure(let id, let v): return "guest assertion \(id) failed (value \(hex(v)))"
        case .exit(let x): return x.description
        }
    }
}

public struct GuestException: Equatable, Sendable, CustomStringConvertible {
    public let vector: ExceptionVector
    public let errorCode: UInt64
    public let rip: UInt64
    public let cs: UInt64
    public let rflags: UInt64
    public let cr2: UInt64
    /// For #DB: DR6 as the handler read it (nil for other vectors, or when recording is off).
    public let dr6: DR6?

    public init(vector: ExceptionVector, errorCode: UInt64, rip: UInt64, cs: UInt64, rflags: UInt64, cr2: UInt64, dr6: DR6? = nil) {
        self.vector = vector; self.errorCode = errorCode; self.rip = rip; self.cs = cs; self.rflags = rflags
        self.cr2 = cr2; self.dr6 = dr6
    }

    public var name: String { vector.name }

    public var description: String {
        "exception \(name) (vector \(vector.number)) error \(hex(errorCode)) at rip \(hex(rip)) cs \(hex(cs))"
            + (dr6.map { ", DR6 \($0)" } ?? "")
    }
}

public enum GuestError: Error, Equatable, Sendable, CustomStringConvertible {
    case assembly(AssemblerError)
    case tooManyExits(Int)
    case unexpectedEvent(expected: String, observed: GuestEvent)

    public var description: String {
        switch self {
        case .assembly(let e): return "payload does not assemble: \(e)"
        case .tooManyExits(let n): return "guest exited \(n) times without finishing (exit limit)"
        case .unexpectedEvent(let expected, let observed): return "expected \(expected), observed \(observed)"
        }
    }
}

/// A one-vCPU VM in 64-bit long mode running a payload at CPL0 or CPL3.
public final class Guest {
    public let vm: VirtualMachine
    public let vcpu: VCPU
    public let memory: GuestMemory
    public let cpl: GuestCPL
    public let program: Program
    public let options: GuestOptions
    public private(set) var exits = 0

    public init(system: KVMSystem, cpl: GuestCPL, options: GuestOptions = GuestOptions(),
                code: (inout Assembler) -> Void) throws {
        self.cpl = cpl
        self.options = options
        var payload = Assembler(origin: GuestLayout.code)
        code(&payload)
        do { program = try payload.assemble() } catch { throw GuestError.assembly(error) }

        vm = try system.createVM()
        memory = try vm.addMemory(slot: 0, guestPhysical: 0, size: GuestLayout.memorySize)
        if options.inKernelIRQChip { try vm.createIRQChip() }
        vcpu = try vm.createVCPU()
        if options.supportedCPUID {
            var cpuid = try system.supportedCPUID()
            options.editCPUID?(&cpuid)
            try vcpu.setCPUID(cpuid)
        }

        try GuestEnvironment.install(in: memory)
        if options.pageTableRoot != GuestLayout.pml4 { GuestEnvironment.installPageTables(in: memory, root: options.pageTableRoot) }
        memory.write(program.bytes, at: GuestLayout.code)
        var sregs = GuestEnvironment.longModeSregs(base: try vcpu.sregs(), cpl: cpl, extraCR4: options.extraCR4)
        sregs.cr3 = options.pageTableRoot
        try vcpu.setSregs(sregs)
        var regs = kvm_regs()
        regs.rip = GuestLayout.code
        regs.rsp = cpl == .cpl0 ? GuestLayout.kernelStackTop : GuestLayout.userStackTop
        regs.rflags = 0x2 | options.extraRFLAGS
        try vcpu.setRegs(regs)
    }

    /// Absolute address of a payload label.
    public func address(_ label: String) -> UInt64 { program.address(label) }

    /// Runs until the next exit and classifies it.
    public func next() throws -> GuestEvent {
        exits += 1
        if exits > options.maxExits { throw GuestError.tooManyExits(options.maxExits) }
        try Watchdog.arm(milliseconds: options.watchdogMilliseconds)
        defer { Watchdog.disarm() }
        let exit = try vcpu.run()
        return classify(exit)
    }

    /// What an exit means for this guest (a ucall, a reported exception, or the raw exit).
    public func event(for exit: VCPUExit) -> GuestEvent { classify(exit) }

    func classify(_ exit: VCPUExit) -> GuestEvent {
        guard case .mmio(let m) = exit, m.address == Ucall.address, m.isWrite, m.data.count == 8 else { return .exit(exit) }
        let command = m.data.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        let mb = GuestLayout.mailbox
        let values = (0..<Ucall.maxValues).map { memory.load(UInt64.self, at: mb + UInt64(Ucall.values) + UInt64($0 * 8)) }
        switch Ucall.Command(rawValue: command) {
        case .sync: return .sync(stage: memory.load(UInt64.self, at: mb + UInt64(Ucall.stage)), values: values)
        case .done: return .done
        case .exception:
            let dr6 = memory.load(UInt64.self, at: mb + UInt64(Ucall.debugStatus))
            return .exception(GuestException(vector: ExceptionVector(values[0]), errorCode: values[1], rip: values[2], cs: values[3],
                                             rflags: values[4], cr2: values[5], dr6: values[0] == 1 && dr6 != 0 ? DR6(dr6) : nil))
        case .fail: return .guestFailure(id: memory.load(UInt64.self, at: mb + UInt64(Ucall.stage)), value: values[0])
        case nil: return .exit(exit)
        }
    }

    /// Whether the guest's #DB handler reads DR6 (into GuestException.dr6) and resets it.
    /// Off for payloads where a DR access itself is under test (DR7.GD).
    public var recordsDebugStatus: Bool {
        get { memory.load(UInt64.self, at: GuestLayout.mailbox + UInt64(Ucall.recordDebugStatus)) != 0 }
        set { memory.store(UInt64(newValue ? 1 : 0), at: GuestLayout.mailbox + UInt64(Ucall.recordDebugStatus)) }
    }

    /// Builds another identity map (same layout as the boot one) rooted at `root`, for
    /// payloads that switch address spaces; returns the root to load into CR3.
    @discardableResult
    public func installPageTables(root: UInt64) -> UInt64 {
        GuestEnvironment.installPageTables(in: memory, root: root)
        return root
    }

    /// How many exceptions/interrupts the guest's handler has taken.
    public var exceptionCount: UInt64 { memory.load(UInt64.self, at: GuestLayout.mailbox + UInt64(Ucall.exceptionCount)) }
}
