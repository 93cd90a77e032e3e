import CKVM
import KVMKit

// CPUID features and vendor rules the suites key on (msrs_test.c's table, the x2APIC self-IPI).

extension CPUIDFeature {
    static let longMode = CPUIDFeature(name: "LM", leaf: 0x8000_0001, subleaf: 0, register: .edx, bit: 29)
    static let rdpid = CPUIDFeature(name: "RDPID", leaf: 7, subleaf: 0, register: .ecx, bit: 22)
    static let indirectBranchTracking = CPUIDFeature(name: "IBT", leaf: 7, subleaf: 0, register: .edx, bit: 20)
    static let x2apic = CPUIDFeature(name: "X2APIC", leaf: 1, subleaf: 0, register: .ecx, bit: 21)
}

/// The CPUID vendor string (leaf 0 EBX/EDX/ECX), e.g. "AuthenticAMD".
func cpuidVendor(_ entries: [kvm_cpuid_entry2]) -> String {
    guard let e = entries.first(where: { $0.function == 0 }) else { return "" }
    let bytes = [e.ebx, e.edx, e.ecx].flatMap { r in (0..<4).map { UInt8(truncatingIfNeeded: r >> (8 * UInt32($0))) } }
    return String(decoding: bytes, as: UTF8.self)
}

/// KVM's guest_cpuid_is_intel_compatible(): Intel, Centaur and Zhaoxin follow Intel's MSR rules.
func cpuidIsIntelCompatible(_ entries: [kvm_cpuid_entry2]) -> Bool {
    ["GenuineIntel", "CentaurHauls", "  Shanghai  "].contains(cpuidVendor(entries))
}
