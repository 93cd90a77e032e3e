import CKVM

/// A CPUID feature bit, named as the SDM names it.
public struct CPUIDFeature: Sendable, Equatable, CustomStringConvertible {
    public enum Register: Sendable { case eax, ebx, ecx, edx }
    public let name: String
    public let leaf: UInt32
    public let subleaf: UInt32
    public let register: Register
    public let bit: UInt32

    public init(name: String, leaf: UInt32, subleaf: UInt32, register: Register, bit: UInt32) {
        self.name = name; self.leaf = leaf; self.subleaf = subleaf; self.register = register; self.bit = bit
    }

    public static let shadowStack = CPUIDFeature(name: "SHSTK", leaf: 7, subleaf: 0, register: .ecx, bit: 7)
    public static let rdtscp = CPUIDFeature(name: "RDTSCP", leaf: 0x8000_0001, subleaf: 0, register: .edx, bit: 27)

    public var description: String {
        "\(name) (CPUID.\(String(leaf, radix: 16))h.\(subleaf):\(register)[\(bit)])"
    }

    public func isSet(in entries: [kvm_cpuid_entry2]) -> Bool {
        guard let e = entries.first(where: { $0.function == leaf && $0.index == subleaf }) else { return false }
        return value(of: e) & (1 << bit) != 0
    }

    public func clear(in entries: inout [kvm_cpuid_entry2]) {
        for i in entries.indices where entries[i].function == leaf && entries[i].index == subleaf {
            switch register {
            case .eax: entries[i].eax &= ~(1 << bit)
            case .ebx: entries[i].ebx &= ~(1 << bit)
            case .ecx: entries[i].ecx &= ~(1 << bit)
            case .edx: entries[i].edx &= ~(1 << bit)
            }
        }
    }

    func value(of e: kvm_cpuid_entry2) -> UInt32 {
        switch register {
        case .eax: return e.eax
        case .ebx: return e.ebx
        case .ecx: return e.ecx
        case .edx: return e.edx
        }
    }
}

/// x86 ONE_REG ids (6.18 uAPI), built as the upstream KVM_X86_REG_* macros do.
public enum X86RegID {
    public static func msr(_ index: UInt32) -> UInt64 { ckvm_x86_reg_msr(index) }
    public static let guestSSP = ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP))
    public static func kvm(_ index: UInt32) -> UInt64 { ckvm_x86_reg_kvm(index) }
    public static let sizeU32 = UInt64(KVM_REG_SIZE_U32)
    public static let sizeU64 = UInt64(KVM_REG_SIZE_U64)
    public static let sizeMask = UInt64(KVM_REG_SIZE_MASK)
    public static let archARM64 = UInt64(KVM_REG_ARM64)
    public static let archMask = UInt64(KVM_REG_ARCH_MASK)
}
