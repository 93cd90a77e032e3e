import CKVM

// KVM_GET/SET_NESTED_STATE for VMX (Documentation/virt/kvm/api.rst): a 128-byte header
// (ckvm.h pins its layout), then data.vmx[0].vmcs12 and shadow_vmcs12, 4 KiB each.
// The vmcs12 is KVM's own software VMCS (arch/x86/kvm/vmx/vmcs12.h): its field offsets are
// ABI, pinned there by CHECK_OFFSET, and named here once.

/// vmcs12 as KVM_GET/SET_NESTED_STATE carry it: 4 KiB, little-endian fields at fixed offsets.
public struct VMCS12: Sendable, Equatable {
    public static let size = 4096
    /// VMCS12_REVISION (vmcs12.h): KVM refuses a vmcs12 with any other revision id.
    public static let revision: UInt32 = 0x11e5_7ed0

    public enum Field64: Int, Sendable {
        case vmcsLinkPointer = 176, guestIA32DebugCtl = 184
        case guestCR0 = 424, guestCR3 = 432, guestCR4 = 440
        case guestESBase = 448, guestCSBase = 456, guestSSBase = 464, guestDSBase = 472, guestFSBase = 480, guestGSBase = 488
        case guestLDTRBase = 496, guestTRBase = 504, guestGDTRBase = 512, guestIDTRBase = 520
        case guestDR7 = 528, guestRSP = 536, guestRIP = 544, guestRFLAGS = 552
        case hostCR0 = 584, hostCR3 = 592, hostCR4 = 600, hostFSBase = 608, hostGSBase = 616, hostTRBase = 624
        case hostGDTRBase = 632, hostIDTRBase = 640, hostSysenterESP = 648, hostSysenterEIP = 656, hostRSP = 664, hostRIP = 672
    }

    public enum Field32: Int, Sendable {
        case revisionID = 0
        case pinBasedControls = 744, procBasedControls = 748, exitControls = 768, entryControls = 780
        case guestESLimit = 840, guestCSLimit = 844, guestSSLimit = 848, guestDSLimit = 852, guestFSLimit = 856, guestGSLimit = 860
        case guestLDTRLimit = 864, guestTRLimit = 868, guestGDTRLimit = 872, guestIDTRLimit = 876
        case guestESAccessRights = 880, guestCSAccessRights = 884, guestSSAccessRights = 888, guestDSAccessRights = 892
        case guestFSAccessRights = 896, guestGSAccessRights = 900, guestLDTRAccessRights = 904, guestTRAccessRights = 908
        case guestActivityState = 916
    }

    public enum Field16: Int, Sendable {
        case guestESSelector = 964, guestCSSelector = 966, guestSSSelector = 968, guestDSSelector = 970
        case guestFSSelector = 972, guestGSSelector = 974, guestLDTRSelector = 976, guestTRSelector = 978
        case hostESSelector = 982, hostCSSelector = 984, hostSSSelector = 986, hostDSSelector = 988
        case hostFSSelector = 990, hostGSSelector = 992, hostTRSelector = 994
    }

    public private(set) var bytes: [UInt8]

    /// An all-zero vmcs12 with KVM's revision id.
    public init() {
        bytes = [UInt8](repeating: 0, count: Self.size)
        self[.revisionID] = Self.revision
    }

    /// A vmcs12 as KVM returned it (the first `size` bytes of `bytes`).
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count >= Self.size else { return nil }
        self.bytes = Array(bytes.prefix(Self.size))
    }

    public subscript(field: Field64) -> UInt64 {
        get { load(field.rawValue, 8) }
        set { store(newValue, field.rawValue, 8) }
    }
    public subscript(field: Field32) -> UInt32 {
        get { UInt32(load(field.rawValue, 4)) }
        set { store(UInt64(newValue), field.rawValue, 4) }
    }
    public subscript(field: Field16) -> UInt16 {
        get { UInt16(load(field.rawValue, 2)) }
        set { store(UInt64(newValue), field.rawValue, 2) }
    }

    private func load(_ offset: Int, _ width: Int) -> UInt64 {
        (0..<width).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
    }
    private mutating func store(_ value: UInt64, _ offset: Int, _ width: Int) {
        for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
    }
}

/// struct kvm_nested_state with format VMX and (optionally) a vmcs12.
public struct VMXNestedState: Sendable, Equatable {
    public static let headerSize = Int(CKVM_NESTED_STATE_HEADER_SIZE)
    /// Room for the largest answer: header, vmcs12 and shadow vmcs12.
    public static let maximumSize = headerSize + 2 * VMCS12.size
    public static let guestMode = UInt16(KVM_STATE_NESTED_GUEST_MODE)
    /// "No such page" for vmxon_pa / vmcs12_pa (INVALID_GPA), and vmcs12's vmcs_link_pointer.
    public static let invalidAddress = UInt64.max

    public var flags: UInt16
    public var vmxonAddress: UInt64
    public var vmcs12Address: UInt64
    public var vmcs12: VMCS12?

    public init(flags: UInt16, vmxonAddress: UInt64, vmcs12Address: UInt64, vmcs12: VMCS12?) {
        self.flags = flags; self.vmxonAddress = vmxonAddress; self.vmcs12Address = vmcs12Address; self.vmcs12 = vmcs12
    }

    /// The uAPI bytes: header (flags @0, format @2, size @4, hdr.vmx.vmxon_pa @8, vmcs12_pa @16), then vmcs12.
    public var bytes: [UInt8] {
        let size = Self.headerSize + (vmcs12 == nil ? 0 : VMCS12.size)
        var out = [UInt8](repeating: 0, count: Self.headerSize)
        func put(_ value: UInt64, _ offset: Int, _ width: Int) {
            for i in 0..<width { out[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
        }
        put(UInt64(flags), 0, 2)
        put(UInt64(KVM_STATE_NESTED_FORMAT_VMX), 2, 2)
        put(UInt64(size), 4, 4)
        put(vmxonAddress, 8, 8)
        put(vmcs12Address, 16, 8)
        return out + (vmcs12?.bytes ?? [])
    }

    /// Decodes KVM_GET_NESTED_STATE's answer; nil unless it is VMX-format and whole.
    public init?(bytes: [UInt8]) {
        func get(_ offset: Int, _ width: Int) -> UInt64 {
            (0..<width).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * $1) }
        }
        guard bytes.count >= Self.headerSize, get(2, 2) == UInt64(KVM_STATE_NESTED_FORMAT_VMX) else { return nil }
        let size = Int(get(4, 4))
        guard size >= Self.headerSize, size <= bytes.count else { return nil }
        flags = UInt16(get(0, 2))
        vmxonAddress = get(8, 8)
        vmcs12Address = get(16, 8)
        vmcs12 = size >= Self.headerSize + VMCS12.size ? VMCS12(bytes: bytes[Self.headerSize..<size]) : nil
    }
}

/// The VMX capability MSRs a vCPU reports (KVM_GET_MSRS; SDM Appendix A).
public enum VMXCapabilityMSR: UInt32, Sendable, CaseIterable {
    case basic = 0x480
    case cr0Fixed0 = 0x486, cr0Fixed1 = 0x487, cr4Fixed0 = 0x488, cr4Fixed1 = 0x489
    case truePinBasedControls = 0x48D, trueProcBasedControls = 0x48E, trueExitControls = 0x48F, trueEntryControls = 0x490
}

/// A VMX control field's allowed settings from its capability MSR: bits 31:0 must be 1 ("allowed-0
/// settings"), bits 63:32 may be 1.
public struct VMXAllowedControls: Sendable, Equatable {
    public let mustBeOne: UInt32
    public let mayBeOne: UInt32
    public init(msr: UInt64) { mustBeOne = UInt32(truncatingIfNeeded: msr); mayBeOne = UInt32(truncatingIfNeeded: msr >> 32) }

    /// The least value with `wanted` set; nil when one of them may not be 1.
    public func minimal(with wanted: UInt32) -> UInt32? { wanted & ~mayBeOne == 0 ? mustBeOne | wanted : nil }
    /// Whether `bit` may be 0 (it is not forced to 1).
    public func mayBeZero(_ bit: UInt32) -> Bool { mustBeOne & bit == 0 }
}

extension VCPU {
    /// KVM_SET_NESTED_STATE.
    public func setNestedState(_ state: VMXNestedState) throws(KVMError) {
        let bytes = state.bytes
        // SAFETY: `bytes` holds the header and the data its size field announces; the kernel reads
        // no more than that, and the buffer outlives the call.
        let r = bytes.withUnsafeBytes { raw in
            ckvm_set_nested_state(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: kvm_nested_state.self))
        }
        _ = try checked(r, "KVM_SET_NESTED_STATE")
    }

    /// KVM_GET_NESTED_STATE with room for header, vmcs12 and shadow vmcs12 (E2BIG is an error).
    public func nestedState() throws(KVMError) -> VMXNestedState? {
        var bytes = [UInt8](repeating: 0, count: VMXNestedState.maximumSize)
        let room = UInt32(bytes.count)
        for i in 0..<4 { bytes[4 + i] = UInt8(truncatingIfNeeded: room >> (8 * i)) } // size: the room the kernel may fill
        // SAFETY: the kernel writes at most `size` (= bytes.count) bytes into the buffer, which outlives the call.
        let r = bytes.withUnsafeMutableBytes { raw in
            ckvm_get_nested_state(fd.rawValue, raw.baseAddress!.assumingMemoryBound(to: kvm_nested_state.self))
        }
        _ = try checked(r, "KVM_GET_NESTED_STATE")
        return VMXNestedState(bytes: bytes)
    }
}
