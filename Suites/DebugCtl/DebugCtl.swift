import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm
import Glibc

// "KVM: VMX: Preserve host's DEBUGCTLMSR_FREEZE_IN_SMM while running the guest" (6.17, seed 004):
// bit 14 of DEBUGCTL is host-owned on VMX. The guest and the host's MSR views never see it,
// and nobody may set it. The host's own setting (/sys/devices/cpu/freeze_on_smi) is kept
// while the guest runs, even when it is toggled from IRQ context. No upstream test exists.

@section("kvmcheck_suites") @used
let debugCtlEntry: SuiteEntryPoint = { registerSuite(debugCtlSuite) }

let debugCtlMSR: UInt32 = 0x1D9
let freezeInSMM: UInt64 = 1 << 14
private let legacyBits: [(name: String, bit: UInt64)] = [("LBR", 1 << 0), ("BTF", 1 << 1)]
let debugCtlUAPI = ["MSR_IA32_DEBUGCTLMSR", "DEBUGCTLMSR_FREEZE_IN_SMM"]

/// The merged rules that reject bit 14 are VMX code; elsewhere they do not apply.
let vmxRules = Requirement.probe("the kvm_intel (VMX) backend") { _ in
    let host = HostInfo.current()
    return host.kvmFlavour == "kvm_intel" ? nil
        : "the series' rule is VMX code (vmx_is_valid_debugctl); this KVM backend is \(host.kvmFlavour) on \(host.cpuVendor)"
}

/// /sys/devices/cpu/freeze_on_smi, or its stand-in under the harness's self-test: the one path
/// the host-setting table lets a check write (an environment variable alone cannot move it).
private var freezeOnSMIPath: String { KnownHostSetting.path(of: "freeze_on_smi") ?? "/sys/devices/cpu/freeze_on_smi" }

private let freezeOnSMIWritable = Requirement.probe("writable \(freezeOnSMIPath)") { _ in
    let path = freezeOnSMIPath
    guard access(path, F_OK) == 0 else {
        return "no \(path): the CPU PMU driver has no FREEZE_ON_SMI control (Intel core PMU only; CPU vendor here \(HostInfo.current().cpuVendor))"
    }
    return access(path, W_OK) == 0 ? nil : "\(path) is not writable by this process"
}

let debugCtlSuite: Suite = Suite(
    "debugctl", summary: "DEBUGCTL.FREEZE_IN_SMM (bit 14) host-owned: never visible, never settable, host value kept",
    series: "debugctl-freeze-in-smm", features: [debugCtlFeature], checks: [
        guestRDMSRHidesCheck,
        l2DebugCtlSavedCheck,
        Check("guest_wrmsr_freeze_in_smm_faults", uapi: debugCtlUAPI + ["WRMSR"], requires: [vmxRules], levels: .only(.cpl0),
              unkillable: guestDebugCtlUnkillable) { t in
            let g = try t.guest { a in
                a.mov(.ecx, Int64(debugCtlMSR))
                a.mov(.eax, Int64(freezeInSMM))
                a.xor(.edx, .edx)
                a.onFault(resumeAt: "after")
                a.label("wrmsr"); a.wrmsr()
                a.clearFault()
                a.ucallSync(1)
                a.label("after")
                readDebugCtlPayload(&a)
            }
            try g.expectException(.gp, at: "wrmsr", because: "vmx_is_valid_debugctl rejects bit 14")
            let after = try guestReadDebugCtl(t, g)
            try t.assertEqual(after & freezeInSMM, 0, "DEBUGCTL bit 14 the guest reads after the refused WRMSR")
        },
        Check("host_set_msrs_freeze_in_smm_rejected", uapi: debugCtlUAPI + ["KVM_SET_MSRS", "KVM_GET_MSRS"], requires: [vmxRules],
              killedBy: [.debugctlBit14Accepted, .debugctlBit14Shown, .oneRegWrongMSR]) { t in
            let vcpu = try t.system.createVM().createVCPU()
            try t.assertEqual(try vcpu.setMSRs([(debugCtlMSR, freezeInSMM)]), 0,
                              "MSRs KVM_SET_MSRS processed for DEBUGCTL = bit 14 (0: the write is refused)")
            try assertHostViewsHideBit14(t, vcpu)
        },
        Check("host_one_reg_freeze_in_smm_einval", uapi: debugCtlUAPI + ["KVM_SET_ONE_REG", "KVM_X86_REG_MSR"],
              requires: [vmxRules, .capability(.oneReg)], killedBy: [.debugctlBit14Accepted, .debugctlBit14Shown, .oneRegWrongMSR]) { t in
            let vcpu = try t.system.createVM().createVCPU()
            try t.assertErrno(.invalidArgument, "KVM_SET_ONE_REG(MSR DEBUGCTL, bit 14)") {
                try vcpu.setOneReg(X86RegID.msr(debugCtlMSR), freezeInSMM)
            }
            try assertHostViewsHideBit14(t, vcpu)
        },
        hostViewsHideCheck,
        legacyBitsAcceptedCheck,
        Check("freeze_on_smi_toggles_invisible_to_guest", uapi: debugCtlUAPI + ["/sys/devices/cpu/freeze_on_smi", "RDMSR", "KVM_GET_MSRS"],
              requires: [.processCapability(.sysAdmin), freezeOnSMIWritable], levels: .only(.cpl0), exclusive: true,
              killedBy: [.debugctlBit14Shown]) { t in
            let setting = try t.hostSetting(freezeOnSMIPath)
            t.note("\(setting.path) was \(setting.original); restored when the check ends")
            try setting.set("1")
            let rounds = 8
            let g = try t.guest { a in
                a.mov(.r12, 0)
                a.label("round")
                a.mov(.r13, 20_000)
                a.label("read")
                a.mov(.ecx, Int64(debugCtlMSR))
                a.rdmsr()
                a.bt(.rax, 14)
                a.jcc(.c, "leaked")
                a.dec(.r13)
                a.jcc(.nz, "read")
                a.inc(.r12)
                a.ucallSync(1, .r12)
                a.cmp(.r12, Int64(rounds))
                a.jcc(.b, "round")
                a.ucallDone()
                a.label("leaked")
                a.ucallFail(1, .rax)
            }
            // Toggle from another thread while the guest runs (each write IPIs every CPU: the
            // "changed from IRQ context" case), and between rounds from this one.
            let toggles = try SettingToggler.start(path: setting.path, values: ["0", "1"])
            defer { toggles.stop() }
            for round in 1...rounds {
                let event = try g.next()
                guard case .sync(1, let values) = event, values[0] == UInt64(round) else {
                    if case .guestFailure(_, let value) = event {
                        throw Failure("the guest saw DEBUGCTL.FREEZE_IN_SMM while the host toggled freeze_on_smi",
                                      expected: "bit 14 clear in every RDMSR", observed: "RDMSR = \(hex(value))")
                    }
                    throw t.unexpected(event, expected: "ucall SYNC after round \(round) of 20000 RDMSRs")
                }
                try t.assertEqual((try g.vcpu.getMSR(debugCtlMSR) ?? 0) & freezeInSMM, 0, "KVM_GET_MSRS(DEBUGCTL) bit 14 after round \(round)")
                try setting.set(round % 2 == 0 ? "1" : "0")
            }
            try g.expectDone()
            t.note("\(toggles.stop()) writes to \(setting.path) from a second thread during \(rounds) rounds of 20000 guest RDMSRs")
        },
    ])

/// BTF and LBR are tolerated (legacy ABI); l2_debugctl_write_saved_in_vmcs12 relies on it.
let legacyBitsAcceptedCheck = Check("legacy_btf_lbr_accepted_and_views_agree", uapi: debugCtlUAPI + ["KVM_SET_MSRS", "KVM_GET_MSRS", "KVM_GET_ONE_REG", "RDMSR"],
    levels: .only(.cpl0), killedBy: [.debugctlBit14Shown, .debugctlLegacyBitsRejected, .oneRegWrongMSR]) { t in
    // vmx_is_valid_debugctl tolerates BTF and LBR (legacy ABI): accepted, kept if supported, else dropped.
    for (name, bit) in legacyBits {
        let g = try t.guest(GuestOptions(), readDebugCtlPayload)
        try t.assertEqual(try g.vcpu.setMSRs([(debugCtlMSR, bit)]), 1, "KVM_SET_MSRS(DEBUGCTL = \(name)) processed count")
        let host = try g.vcpu.getMSR(debugCtlMSR)
        try t.assert(host == bit || host == 0, "KVM_GET_MSRS(DEBUGCTL) after setting \(name)",
                     expected: "\(hex(bit)) (kept) or 0x0 (dropped)", observed: host.map { "\(hex($0))" } ?? "not returned")
        if (try? t.system.checkExtension(.oneReg)) ?? 0 != 0 {
            try t.assertEqual(try g.vcpu.getOneReg(X86RegID.msr(debugCtlMSR)), host ?? 0, "KVM_GET_ONE_REG(DEBUGCTL) vs KVM_GET_MSRS after \(name)")
        }
        try t.assertEqual(try guestReadDebugCtl(t, g), host ?? 0, "guest RDMSR(DEBUGCTL) vs KVM_GET_MSRS after \(name)")
        t.note("\(name): \(host == bit ? "kept" : "dropped")")
    }
}

/// Reads DEBUGCTL with RDMSR and reports it (ucallSync(2, value)); a #GP is reported by the handler.
private func readDebugCtlPayload(_ a: inout Assembler) {
    a.mov(.ecx, Int64(debugCtlMSR))
    a.rdmsr()
    a.shl(.rdx, 32)
    a.or(.rax, .rdx)
    a.mov(.rbx, .rax)
    a.ucallSync(2, .rbx)
    a.ucallDone()
}

/// Runs to the payload's ucallSync(2, DEBUGCTL).
private func guestReadDebugCtl(_ t: CheckContext, _ g: Guest) throws -> UInt64 {
    try g.expectSync(2, because: "the guest's RDMSR(DEBUGCTL) result (the MSR exists on Intel and AMD)")[0]
}

/// KVM_GET_MSRS and (where available) KVM_GET_ONE_REG must both show bit 14 clear.
private func assertHostViewsHideBit14(_ t: CheckContext, _ vcpu: VCPU) throws {
    let msrs = try vcpu.getMSR(debugCtlMSR)
    try t.assert(msrs.map { $0 & freezeInSMM == 0 } ?? false, "KVM_GET_MSRS(DEBUGCTL) bit 14",
                 expected: "clear", observed: msrs.map { "\(hex($0))" } ?? "MSR not returned")
    if (try? t.system.checkExtension(.oneReg)) ?? 0 != 0 {
        let one = try vcpu.getOneReg(X86RegID.msr(debugCtlMSR))
        try t.assertEqual(one & freezeInSMM, 0, "KVM_GET_ONE_REG(DEBUGCTL) bit 14")
    }
}

/// The guest's RDMSR/WRMSR of DEBUGCTL never reaches the ioctl seam.
private let guestDebugCtlUnkillable = "the guest's RDMSR/WRMSR of DEBUGCTL is handled inside one KVM_RUN; the ioctl seam cannot make the "
    + "kernel store bit 14 (it refuses or drops it), so no mutant can make the guest see or set it"

/// The guest's RDMSR never shows bit 14 — once a bit the VMM set has been seen there (the
/// read is live, so a set bit 14 would have shown).
let guestRDMSRHidesCheck = Check("guest_rdmsr_hides_freeze_in_smm", uapi: debugCtlUAPI + ["RDMSR"], levels: .only(.cpl0),
    unkillable: guestDebugCtlUnkillable, gapUnder: [.debugctlWritesDropped]) { t in
    let kept = try requireKeptDebugCtlBit(t)
    let control = try t.guest(GuestOptions(), readDebugCtlPayload)
    _ = try control.vcpu.setMSRs([(debugCtlMSR, kept.bit)])
    let seen = try guestReadDebugCtl(t, control)
    guard seen & kept.bit != 0 else {
        throw Skip.cannotObserve("the guest's RDMSR(DEBUGCTL) reads \(hex(seen)) although the VMM set \(kept.name), "
                                 + "which KVM_GET_MSRS shows: the guest's view shows no set bit, so a hidden bit 14 cannot be told apart")
    }
    t.note("positive control: the guest's RDMSR shows \(kept.name) set by the VMM")
    let value = try guestReadDebugCtl(t, try t.guest(GuestOptions(), readDebugCtlPayload))
    t.note("guest RDMSR(DEBUGCTL) = \(hex(value))")
    try t.assertEqual(value & freezeInSMM, 0, "DEBUGCTL bit 14 (FREEZE_IN_SMM) in the guest's RDMSR")
}

/// KVM_GET_MSRS / KVM_GET_ONE_REG never show bit 14, whatever happened to an attempt to set it
/// (refused or dropped) — once they have shown a bit this kernel keeps.
let hostViewsHideCheck = Check("host_views_never_show_freeze_in_smm", uapi: debugCtlUAPI + ["KVM_SET_MSRS", "KVM_GET_MSRS", "KVM_GET_ONE_REG"],
    killedBy: [.debugctlBit14Shown, .oneRegWrongMSR], gapUnder: [.debugctlWritesDropped]) { t in
    let kept = try requireKeptDebugCtlBit(t)
    let vcpu = try t.system.createVM().createVCPU()
    let processed = try vcpu.setMSRs([(debugCtlMSR, kept.bit | freezeInSMM)])
    t.note("KVM_SET_MSRS(DEBUGCTL = \(kept.name) | bit 14) processed \(processed)")
    if (try? t.system.checkExtension(.oneReg)) ?? 0 != 0 {
        _ = try? vcpu.setOneReg(X86RegID.msr(debugCtlMSR), kept.bit | freezeInSMM)
    }
    try assertHostViewsHideBit14(t, vcpu)
}

/// Bits a VMM may set in DEBUGCTL that a kernel may keep: the positive controls.
private let debugCtlControlBits: [(name: String, bit: UInt64)] = legacyBits

/// The first control bit KVM_GET_MSRS shows after KVM_SET_MSRS set it on a fresh vCPU; none:
/// the views cannot show a set bit, so "bit 14 is hidden" cannot be observed here.
private func requireKeptDebugCtlBit(_ t: CheckContext) throws -> (name: String, bit: UInt64) {
    var seen: [String] = []
    for (name, bit) in debugCtlControlBits {
        let vcpu = try t.system.createVM().createVCPU()
        _ = try vcpu.setMSRs([(debugCtlMSR, bit)])
        let back = try vcpu.getMSR(debugCtlMSR)
        if let back, back & bit != 0 {
            t.note("positive control: KVM_GET_MSRS(DEBUGCTL) keeps \(name) (\(hex(back)))")
            return (name, bit)
        }
        seen.append("\(name) -> \(back.map { hex($0) } ?? "not returned")")
    }
    throw Skip.cannotObserve("this kernel keeps no DEBUGCTL bit a VMM sets (KVM_SET_MSRS then KVM_GET_MSRS: "
                             + seen.joined(separator: ", ") + "), so a hidden bit 14 cannot be told from a dropped write")
}

let debugCtlFeature: Feature = Feature(
    "DEBUGCTL.FREEZE_IN_SMM host-owned", advertisement: "no capability (VMX behaviour, 6.17)", advertised: { _, _ in nil },
    decidedBy: [CheckRef("debugctl", guestRDMSRHidesCheck), CheckRef("debugctl", hostViewsHideCheck)], levels: [.cpl0])
