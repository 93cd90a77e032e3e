import CKVM

/// Why KVM_RUN returned, decoded from kvm_run.
public enum VCPUExit: Equatable, Sendable, CustomStringConvertible {
    case io(IOExit)
    case mmio(MMIOExit)
    case debug(DebugExit)
    case hlt
    case shutdown
    case failEntry(hardwareReason: UInt64, cpu: UInt32)
    case internalError(suberror: UInt32, data: [UInt64])
    case irqWindowOpen
    case interrupted
    case systemEvent(type: UInt32, data: [UInt64])
    case other(reason: UInt32)

    public var reason: UInt32 {
        switch self {
        case .io: return UInt32(KVM_EXIT_IO)
        case .mmio: return UInt32(KVM_EXIT_MMIO)
        case .debug: return UInt32(KVM_EXIT_DEBUG)
        case .hlt: return UInt32(KVM_EXIT_HLT)
        case .shutdown: return UInt32(KVM_EXIT_SHUTDOWN)
        case .failEntry: return UInt32(KVM_EXIT_FAIL_ENTRY)
        case .internalError: return UInt32(KVM_EXIT_INTERNAL_ERROR)
        case .irqWindowOpen: return UInt32(KVM_EXIT_IRQ_WINDOW_OPEN)
        case .interrupted: return UInt32(KVM_EXIT_INTR)
        case .systemEvent: return UInt32(KVM_EXIT_SYSTEM_EVENT)
        case .other(let r): return r
        }
    }

    public var description: String {
        switch self {
        case .io(let io): return "KVM_EXIT_IO(\(io))"
        case .mmio(let m): return "KVM_EXIT_MMIO(\(m.isWrite ? "write" : "read") \(hex(m.address)) len \(m.data.count))"
        case .debug(let d): return "KVM_EXIT_DEBUG(\(d))"
        case .hlt: return "KVM_EXIT_HLT"
        case .shutdown: return "KVM_EXIT_SHUTDOWN (triple fault)"
        case .failEntry(let why, let cpu): return "KVM_EXIT_FAIL_ENTRY(reason \(hex(why)), cpu \(cpu))"
        case .internalError(let sub, let data):
            return "KVM_EXIT_INTERNAL_ERROR(suberror \(sub)\(data.isEmpty ? "" : ", data " + data.map { hex($0) }.joined(separator: " ")))"
        case .irqWindowOpen: return "KVM_EXIT_IRQ_WINDOW_OPEN"
        case .interrupted: return "KVM_EXIT_INTR"
        case .systemEvent(let t, _): return "KVM_EXIT_SYSTEM_EVENT(type \(t))"
        case .other(let r): return "\(VCPUExit.name(ofReason: r))"
        }
    }

    /// KVM_EXIT_* name for a raw exit reason.
    public static func name(ofReason r: UInt32) -> String {
        let names: [Int32: String] = [
            KVM_EXIT_UNKNOWN: "KVM_EXIT_UNKNOWN", KVM_EXIT_EXCEPTION: "KVM_EXIT_EXCEPTION", KVM_EXIT_IO: "KVM_EXIT_IO",
            KVM_EXIT_HYPERCALL: "KVM_EXIT_HYPERCALL", KVM_EXIT_DEBUG: "KVM_EXIT_DEBUG", KVM_EXIT_HLT: "KVM_EXIT_HLT",
            KVM_EXIT_MMIO: "KVM_EXIT_MMIO", KVM_EXIT_IRQ_WINDOW_OPEN: "KVM_EXIT_IRQ_WINDOW_OPEN",
            KVM_EXIT_SHUTDOWN: "KVM_EXIT_SHUTDOWN", KVM_EXIT_FAIL_ENTRY: "KVM_EXIT_FAIL_ENTRY",
            KVM_EXIT_INTR: "KVM_EXIT_INTR", KVM_EXIT_SET_TPR: "KVM_EXIT_SET_TPR", KVM_EXIT_TPR_ACCESS: "KVM_EXIT_TPR_ACCESS",
            KVM_EXIT_NMI: "KVM_EXIT_NMI", KVM_EXIT_INTERNAL_ERROR: "KVM_EXIT_INTERNAL_ERROR",
            KVM_EXIT_SYSTEM_EVENT: "KVM_EXIT_SYSTEM_EVENT", KVM_EXIT_X86_RDMSR: "KVM_EXIT_X86_RDMSR",
            KVM_EXIT_X86_WRMSR: "KVM_EXIT_X86_WRMSR", KVM_EXIT_DIRTY_RING_FULL: "KVM_EXIT_DIRTY_RING_FULL",
        ]
        return names[Int32(bitPattern: r)] ?? "exit reason \(r)"
    }
}

public struct IOExit: Equatable, Sendable, CustomStringConvertible {
    public enum Direction: Sendable { case input, output }
    public let direction: Direction
    public let port: UInt16
    /// Access width in bytes (1, 2 or 4).
    public let size: Int
    public let count: Int
    /// For output: the bytes the guest wrote.  For input: empty (the host supplies them).
    public let data: [UInt8]

    public init(direction: Direction, port: UInt16, size: Int, count: Int, data: [UInt8]) {
        self.direction = direction; self.port = port; self.size = size; self.count = count; self.data = data
    }

    /// The first output value, little-endian, as the guest's `out` wrote it.
    public var value: UInt32 {
        data.prefix(size).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * $1.offset) }
    }

    public var description: String {
        "\(direction == .output ? "out" : "in") port \(hex(port)) size \(size)"
            + (direction == .output ? " value \(hex(value))" : "")
    }
}

public struct MMIOExit: Equatable, Sendable {
    public let address: UInt64
    public let isWrite: Bool
    public let data: [UInt8]
}

public struct DebugExit: Equatable, Sendable, CustomStringConvertible {
    public let exception: ExceptionVector
    public let pc: UInt64
    public let dr6: DR6
    public let dr7: DR7
    /// The 8 bytes right after dr7: the proposed `cr3` field. Meaningful only on a kernel that
    /// fills it (a canary planted before KVM_RUN tells the two apart); otherwise whatever was there before.
    public let cr3Slot: UInt64

    public init(exception: ExceptionVector, pc: UInt64, dr6: DR6, dr7: DR7, cr3Slot: UInt64) {
        self.exception = exception; self.pc = pc; self.dr6 = dr6; self.dr7 = dr7; self.cr3Slot = cr3Slot
    }

    public var description: String {
        "exception \(exception) pc \(hex(pc)) dr6 \(dr6) dr7 \(dr7)"
    }
}

