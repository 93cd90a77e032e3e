import CheckKit
import CKVM
import Glibc
import GuestKit
import KVMKit
import X86Asm

// The MSR table of the kernel's msrs_test.c (6.18), with kvmcheck's own values, and a guest
// that runs a list of RDMSR/WRMSR operations, reporting each result or fault on its own.

/// One row: an MSR, the CPUID feature(s) that make it exist, and the values to test it with.
struct MSRRow: Sendable {
    let name: String
    let index: UInt32
    /// nil: emulated unconditionally (upstream's NONE); else the MSR exists iff feature or feature2.
    let feature: CPUIDFeature?
    let feature2: CPUIDFeature?
    let reset: UInt64
    /// What the guest writes; never the reset value.
    let write: UInt64
    /// What the host (or a second vCPU) writes; differs from reset and write.
    let other: UInt64
    /// A value the MSR must refuse (non-canonical, reserved bits, a read-only bit changed).
    let reserved: UInt64?
    /// Whether host-initiated writes must refuse `reserved` too (MISC_ENABLE's read-only bits bind the guest only).
    let hostRefusesReserved: Bool

    var isCET: Bool { index == 0x6A0 || index == 0x6A2 }
    var features: [CPUIDFeature] { [feature, feature2].compactMap { $0 } }
    /// Features a "nothing supported" vCPU clears (never LM: KVM ignores LM=0 for 64-bit MSRs, as upstream notes).
    var clearable: Bool { feature != nil && feature != .longMode }

    /// Present on a vCPU with this CPUID as the primary feature (upstream's this_cpu_has(msr->feature)).
    func supported(by cpuid: [kvm_cpuid_entry2]) -> Bool { feature.map { $0.isSet(in: cpuid) } ?? true }
    func secondarySupported(by cpuid: [kvm_cpuid_entry2]) -> Bool { feature2.map { $0.isSet(in: cpuid) } ?? false }
}

private let nonCanonical: UInt64 = 0xAAAA_AAAA_AAAA_AAAA
private let cetReserved: UInt64 = 0x3C0 // bits 9:6
private let cetShstkEnable: UInt64 = 1 << 0, cetEndbrEnable: UInt64 = 1 << 2

func row(_ name: String, _ index: UInt32, _ feature: CPUIDFeature?, _ feature2: CPUIDFeature? = nil, reset: UInt64 = 0,
         write: UInt64, other: UInt64, reserved: UInt64? = nil, hostRefuses: Bool = true) -> MSRRow {
    MSRRow(name: name, index: index, feature: feature, feature2: feature2 ?? feature, reset: reset, write: write, other: other,
           reserved: reserved, hostRefusesReserved: hostRefuses)
}

/// Addresses: canonical, page-aligned, distinct per MSR so a value read from the wrong MSR shows.
let msrTable: [MSRRow] = [
    row("MISC_ENABLE", 0x1A0, nil, reset: 0x1800, write: 0x1801, other: 0x11800,
        reserved: 0x1, hostRefuses: false), // clears PEBS/BTS_UNAVAIL, read-only for the guest
    row("PAT", 0x277, nil, reset: 0x0007_0406_0007_0406, write: 0x0105_0406_0700_0104, other: 0x0604_0100_0705_0406),
    row("TSC_AUX[RDTSCP]", 0xC000_0103, .rdtscp, .rdpid, write: 0x5A17_C3E1, other: 0x6C3B_19E7, reserved: 0xAAAA_5555_AAAA_5555),
    row("TSC_AUX[RDPID]", 0xC000_0103, .rdpid, .rdtscp, write: 0x3E1C_715A, other: 0x19E7_6C3B, reserved: 0xAAAA_5555_AAAA_5555),
    row("SYSENTER_CS", 0x174, nil, write: 0x2B48, other: 0x1C30),
    row("SYSENTER_ESP", 0x175, nil, write: 0x3A5C_7E91_2000, other: 0x2B4D_6F80_3000),
    row("SYSENTER_EIP", 0x176, nil, write: 0x3A5C_7E92_4000, other: 0x2B4D_6F81_5000),
    row("FS_BASE", 0xC000_0100, .longMode, write: 0x1234_5678_9000, other: 0x2345_6789_A000, reserved: nonCanonical),
    row("GS_BASE", 0xC000_0101, .longMode, write: 0x1234_5679_A000, other: 0x2345_678A_B000, reserved: nonCanonical),
    row("KERNEL_GS_BASE", 0xC000_0102, .longMode, write: 0x1234_567A_B000, other: 0x2345_678B_C000, reserved: nonCanonical),
    row("LSTAR", 0xC000_0082, .longMode, write: 0x1234_567B_C000, other: 0x2345_678C_D000, reserved: nonCanonical),
    row("CSTAR", 0xC000_0083, .longMode, write: 0x1234_567C_D000, other: 0x2345_678D_E000, reserved: nonCanonical),
    row("SYSCALL_MASK", 0xC000_0084, .longMode, write: 0x4_7FD5, other: 0x3_0300),
    row("S_CET[SHSTK]", 0x6A2, .shadowStack, .indirectBranchTracking, write: cetShstkEnable, other: 0x3, reserved: cetReserved),
    row("S_CET[IBT]", 0x6A2, .indirectBranchTracking, .shadowStack, write: cetEndbrEnable, other: 0xC, reserved: cetReserved),
    row("U_CET[SHSTK]", 0x6A0, .shadowStack, .indirectBranchTracking, write: cetShstkEnable, other: 0x3, reserved: cetReserved),
    row("U_CET[IBT]", 0x6A0, .indirectBranchTracking, .shadowStack, write: cetEndbrEnable, other: 0xC, reserved: cetReserved),
] + (0..<4).flatMap { n -> [MSRRow] in
    let index = 0x6A4 + UInt32(n), base = 0x1234_5670_0000 + UInt64(n) << 16
    return [row("PL\(n)_SSP", index, .shadowStack, write: base, other: base + 0x8000, reserved: nonCanonical),
            row("PL\(n)_SSP[unaligned]", index, .shadowStack, write: base + 0x1000, other: base + 0x9000, reserved: base | 1)]
}

/// What a read of `value` returns on this vCPU: CPUs that follow AMD's rules drop bits 63:32 of
/// SYSENTER_ESP/EIP and TSC_AUX, and KVM emulates that for a non-Intel-compatible guest vendor.
func readBack(_ row: MSRRow, _ value: UInt64, intelCompatible: Bool) -> UInt64 {
    guard !intelCompatible, [0x175, 0x176, 0xC000_0103].contains(row.index) else { return value }
    return value & 0xFFFF_FFFF
}

// MARK: a guest that runs RDMSR/WRMSR operations one exit at a time

enum MSROp {
    case read(UInt32)
    case write(UInt32, UInt64)
}

enum MSROutcome: Equatable, CustomStringConvertible {
    case value(UInt64)
    case written
    case fault(String)
    case other(String)

    var description: String {
        switch self {
        case .value(let v): return hex(v)
        case .written: return "written (no fault)"
        case .fault(let name): return name
        case .other(let what): return what
        }
    }
}

/// Each op faults into the guest's handler (reported, then resumed at the next op) or reports
/// its result with a ucall; the host takes one outcome per op with `nextOutcome`.
func msrOpGuest(_ t: CheckContext, _ ops: [MSROp], clearing: [CPUIDFeature] = []) throws -> Guest {
    var options = GuestOptions()
    if !clearing.isEmpty { options.editCPUID = { cpuid in clearing.forEach { $0.clear(in: &cpuid) } } }
    return try Guest(system: t.system, cpl: .cpl0, options: options) { a in
        for (i, op) in ops.enumerated() {
            a.onFault(resumeAt: "op\(i)_end")
            switch op {
            case .read(let index):
                a.mov(.ecx, Int64(index)); a.rdmsr(); a.clearFault()
                a.shl(.rdx, 32); a.or(.rax, .rdx)
                a.ucallSync(Int64(i), .rax)
            case .write(let index, let value):
                a.mov(.ecx, Int64(index)); a.mov(.eax, Int64(value & 0xFFFF_FFFF)); a.mov(.edx, Int64(value >> 32))
                a.wrmsr(); a.clearFault()
                a.ucallSync(Int64(i))
            }
            a.label("op\(i)_end")
        }
        a.ucallDone()
    }
}

/// Runs to op `i`'s outcome.  A guest stuck elsewhere is an outcome too, never a thrown error.
func nextOutcome(_ g: Guest, _ i: Int, isRead: Bool) -> MSROutcome {
    do {
        let event = try g.next()
        switch event {
        case .sync(UInt64(i), let values): return isRead ? .value(values[0]) : .written
        case .exception(let e): return .fault(e.name)
        default: return .other("\(event)")
        }
    } catch { return .other("\(error)") }
}

/// The vCPU's CPUID as KVM_SET_CPUID2 got it (supported CPUID, minus `clearing`).
func vcpuCPUID(_ t: CheckContext, clearing: [CPUIDFeature] = []) throws -> [kvm_cpuid_entry2] {
    var cpuid = try t.system.supportedCPUID()
    clearing.forEach { $0.clear(in: &cpuid) }
    return cpuid
}

/// Every feature the table keys on that a vCPU may lose (upstream's third vCPU).
let clearableFeatures: [CPUIDFeature] = {
    var seen: [CPUIDFeature] = []
    for f in msrTable.flatMap(\.features) where f != .longMode && !seen.contains(f) { seen.append(f) }
    return seen
}()

func ignoreMSRsSet() -> Bool { HostInfo.moduleParameter("kvm", "ignore_msrs")?.hasPrefix("Y") == true }
