import X86Asm

/// Guest→host calls: the guest fills the mailbox, then stores the command to an unbacked
/// guest-physical address, which exits as KVM_EXIT_MMIO.  MMIO rather than port I/O because
/// port I/O at CPL3 depends on IOPL/the TSS bitmap, which a backend may not honour; stores
/// of immediates and registers clobber nothing, so a call can sit anywhere in a payload.
public enum Ucall {
    public static let address: UInt64 = GuestLayout.unbackedMMIO

    enum Command: UInt64 {
        case sync = 1, done = 2, exception = 3, fail = 4
    }

    // Mailbox fields (offsets from GuestLayout.mailbox).
    static let stage: Int32 = 0x08
    static let values: Int32 = 0x10 // up to 6 values
    static let maxValues = 6
    /// Where the exception handler resumes instead of halting (cleared when used).
    static let fixup: Int32 = 0x48
    /// How many exceptions/interrupts the handler has seen.
    static let exceptionCount: Int32 = 0x50
    /// DR6 as the handler read it on the last #DB (then reset to its quiescent value).
    static let debugStatus: Int32 = 0x58
    /// Non-zero: the #DB handler reads and resets DR6 (a payload testing DR7.GD turns this off).
    static let recordDebugStatus: Int32 = 0x60

    static func field(_ offset: Int32) -> Mem { .absolute(GuestLayout.mailbox + UInt64(offset)) }
    static let doorbell = Mem.absolute(address)
}

extension Assembler {
    /// Reports `stage` and up to six register values to the host (GuestEvent.sync).
    public mutating func ucallSync(_ stage: Int64, _ registers: Reg64...) {
        precondition(registers.count <= Ucall.maxValues, "at most \(Ucall.maxValues) values per ucall")
        mov(qword: Ucall.field(Ucall.stage), stage)
        for (i, r) in registers.enumerated() { mov(Ucall.field(Ucall.values + Int32(i * 8)), r) }
        mov(qword: Ucall.doorbell, Int64(Ucall.Command.sync.rawValue))
    }

    /// Tells the host the payload finished (GuestEvent.done); parks the vCPU if resumed.
    public mutating func ucallDone() {
        mov(qword: Ucall.doorbell, Int64(Ucall.Command.done.rawValue))
        let park = "__done_park_\(currentAddress)"
        label(park)
        jmp(short: park)
    }

    /// Reports a guest-side check failure with an id and a value (GuestEvent.guestFailure).
    public mutating func ucallFail(_ id: Int64, _ value: Reg64) {
        mov(qword: Ucall.field(Ucall.stage), id)
        mov(Ucall.field(Ucall.values), value)
        mov(qword: Ucall.doorbell, Int64(Ucall.Command.fail.rawValue))
    }

    /// If the next instruction(s) fault, the handler reports the exception and resumes at `label`.
    /// Clobbers r11.
    public mutating func onFault(resumeAt label: String) {
        // Label addresses are below 2 GiB, so the sign-extended imm32 store holds them.
        movabs(.r11, label: label)
        mov(Ucall.field(Ucall.fixup), .r11)
    }

    /// Cancels a pending onFault (when the instruction did not fault).
    public mutating func clearFault() {
        mov(qword: Ucall.field(Ucall.fixup), 0)
    }
}
