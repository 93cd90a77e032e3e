import KVMKit

/// Which kernel mutants each check kills (declared in KVMKit's catalog, held to it by
/// MutantTests), and why a check no ioctl-level mutant can reach is still trusted.
public enum MutantCoverage {
    /// Checks no mutant at the ioctl seam can reach, with the reason (kept short and honest).
    public static let justifications: [String: String] = [
        "pvm-guest-debug/guest_int3_delivers_bp/cpl0": int3,
        "pvm-guest-debug/guest_int3_delivers_bp/cpl3": int3,
        "debugctl/guest_rdmsr_hides_freeze_in_smm/cpl0": guestMSR,
        "debugctl/guest_wrmsr_freeze_in_smm_faults/cpl0": guestMSR,
        "msrs/guest_gp_when_cpuid_lacks_feature/cpl0": guestMSRFault,
        "msrs/guest_wrmsr_reserved_value_faults/cpl0": guestMSRFault,
    ]
    static let guestMSRFault = "the guest's #GP is decided inside one KVM_RUN; the seam can only re-add a CPUID feature at "
        + "KVM_SET_CPUID2, which changes nothing on a host whose KVM lacks it (KVM masks guest CPUID with what it supports), "
        + "and cannot make a reserved or non-canonical WRMSR succeed, so no mutant could be held to kill it everywhere"
    static let guestMSR = "the guest's RDMSR/WRMSR of DEBUGCTL is handled inside one KVM_RUN; the ioctl seam cannot make the "
        + "kernel store bit 14 (it refuses or drops it), so no mutant can make the guest see or set it"
    static let int3 = "int3 -> guest #BP happens inside one KVM_RUN with host debugging off, with no ioctl to pervert; "
        + "a mutant forcing host SW breakpoints on kills it only where the kernel's host SW breakpoints intercept guest int3, "
        + "which is not true of every kernel (README: what kvmcheck found), so the test could not hold it to that"

    /// The mutants declared to kill `id`.
    public static func killers(of id: String) -> [KernelDouble] {
        KernelDoubles.catalog.filter { d in d.kills.contains { globMatch($0, id) } }
    }

    /// Instances with neither a killer nor a justification (each one a defect).
    public static func uncovered(_ instances: [CheckInstance]) -> [CheckInstance] {
        instances.filter { !$0.check.informational && killers(of: $0.id).isEmpty && justifications[$0.id] == nil }
    }

    /// `kvmcheck list --mutants`.
    public static func table(_ instances: [CheckInstance]) -> [String] {
        var lines = ["kernel doubles (test-only; KVMCHECK_MUTANT=name / KVMCHECK_MODEL=name):"]
        for d in KernelDoubles.catalog {
            lines.append("  \(d.kind.rawValue) \(d.name): \(d.summary)" + (d.requires.isEmpty ? "" : " [needs model \(d.requires.joined(separator: ", "))]"))
        }
        lines.append("checks and the mutants they kill:")
        let width = instances.map(\.id.count).max() ?? 0
        for i in instances {
            let names = killers(of: i.id).map(\.name)
            let cell: String
            if !names.isEmpty { cell = names.joined(separator: ", ") }
            else if i.check.informational { cell = "(informational: records behaviour, never fails)" }
            else if let why = justifications[i.id] { cell = "none at the ioctl seam: \(why)" }
            else { cell = "NONE (a defect: add a mutant or a justification)" }
            lines.append("  " + i.id.padded(to: width) + "  " + cell)
        }
        return lines
    }
}
