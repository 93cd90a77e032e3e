/// Guest-physical (= guest-virtual, identity-mapped) layout of every kvmcheck guest.
public enum GuestLayout {
    /// One slot backs [0, memorySize).
    public static let memorySize = 4 << 20
    public static let pml4: UInt64 = 0x1000
    public static let pdpt: UInt64 = 0x2000
    // 0x3000-0x4fff: two page directories (pml4 + 0x2000) map the first 2 GiB with 2 MiB pages.
    public static let gdt: UInt64 = 0x5000
    public static let tss: UInt64 = 0x5800
    public static let idt: UInt64 = 0x6000
    /// Guest→host call mailbox (see Ucall).
    public static let mailbox: UInt64 = 0x7000
    /// Exception/interrupt stubs and the common handler.
    public static let handlers: UInt64 = 0x8000
    /// The check's payload starts here.
    public static let code: UInt64 = 0x20000
    /// Scratch data a payload may use (page-aligned, 64 KiB).
    public static let data: UInt64 = 0x100000
    /// Spare pages for extra page-table roots (e.g. "two processes").
    public static let spareTables: UInt64 = 0x200000
    public static let userStackTop: UInt64 = 0x3E0000
    public static let kernelStackTop: UInt64 = 0x3F0000
    /// A guest-physical address with no memory behind it: accesses exit as KVM_EXIT_MMIO.
    public static let unbackedMMIO: UInt64 = 0x4000_0000

    // Selectors in the GDT.
    public static let kernelCode: UInt16 = 0x08
    public static let kernelData: UInt16 = 0x10
    public static let userData: UInt16 = 0x18 | 3
    public static let userCode: UInt16 = 0x20 | 3
    public static let taskState: UInt16 = 0x28
}

/// The privilege level a guest payload runs at.
public enum GuestCPL: Int, Sendable, CaseIterable, CustomStringConvertible {
    case cpl0 = 0
    case cpl3 = 3
    public var description: String { "CPL\(rawValue)" }
}
