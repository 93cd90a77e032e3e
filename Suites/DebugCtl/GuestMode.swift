import CheckKit
import CKVM
import GuestKit
import KVMKit

// vmx_set_msr(MSR_IA32_DEBUGCTLMSR) in the series: while the vCPU is in L2 and vmcs12 saves debug
// controls, the (masked) value is also stored in vmcs12.guest_ia32_debugctl, so L1 sees it
// after the nested VM-exit.  The vCPU is put in L2 with KVM_SET_NESTED_STATE and a vmcs12 built
// here from its VMX capability MSRs; no nested hypervisor code runs (the vCPU never runs).

private let vmx = CPUIDFeature(name: "VMX", leaf: 1, subleaf: 0, register: .ecx, bit: 5)
private let cr4VMXE: UInt64 = 1 << 13
private let exitSaveDebugControls: UInt32 = 1 << 2      // VM_EXIT_SAVE_DEBUG_CONTROLS
private let exitHostAddressSpaceSize: UInt32 = 1 << 9   // VM_EXIT_HOST_ADDR_SPACE_SIZE
private let entryLoadDebugControls: UInt32 = 1 << 2     // VM_ENTRY_LOAD_DEBUG_CONTROLS
private let entryIA32EMode: UInt32 = 1 << 9             // VM_ENTRY_IA32E_MODE
/// L1's VMXON region and current vmcs12: pages of the guest's scratch data.
private let vmxonPage = GuestLayout.data, vmcs12Page = GuestLayout.data + 0x1000
/// What userspace puts in vmcs12.guest_ia32_debugctl: bits 63:16 are reserved in DEBUGCTL, so
/// no masked write can leave this value, and KVM writes the field nowhere else (entry does not
/// check it: VM_ENTRY_LOAD_DEBUG_CONTROLS stays clear).
private let vmcs12Canary: UInt64 = 0x5EED_C0DE_0000_0000
/// DEBUGCTL bits vmx_get_supported_debugctl offers a VMM when the host has the feature.
private let optionalDebugCtlBits: [(name: String, bit: UInt64)] = [("BUS_LOCK_DETECT", 1 << 2), ("FREEZE_LBRS_ON_PMI", 1 << 11), ("RTM_DEBUG", 1 << 15)]

let vmxAdvertised = Requirement.probe("VMX in KVM_GET_SUPPORTED_CPUID") { kvm in
    do {
        return vmx.isSet(in: try kvm.supportedCPUID()) ? nil
            : "KVM_GET_SUPPORTED_CPUID lacks \(vmx): this KVM offers its guests no nested VMX"
    } catch { return "\(error)" }
}

/// The subject: the L2 write lands in vmcs12 (masked) only when vmcs12 saves debug controls, and
/// a write with FREEZE_IN_SMM is refused without touching vmcs12.  The canary shows the field
/// unchanged before each write, so "unchanged" could have been seen to change.
let l2DebugCtlSavedCheck = Check("l2_debugctl_write_saved_in_vmcs12",
    uapi: debugCtlUAPI + ["KVM_SET_NESTED_STATE", "KVM_GET_NESTED_STATE", "KVM_SET_MSRS", "VM_EXIT_SAVE_DEBUG_CONTROLS"],
    requires: [.capability(.nestedState), vmxAdvertised, vmxRules], preconditions: [CheckRef("debugctl", legacyBitsAcceptedCheck)],
    killedBy: [.debugctlVMCS12NotUpdated, .debugctlBit14Accepted]) { t in
    let l1 = try NestedL1(t)
    let write = try l1.debugCtlWrite(t)
    try l1.enterL2(t, saveDebugControls: true)
    // A second vCPU in L2 whose vmcs12 does not save debug controls, set up before any sub-case:
    // a refusal is a SKIP of the whole check, never one that hides sub-cases already judged.
    let other = try NestedL1(t)
    try other.enterL2(t, saveDebugControls: false)
    t.subCase("L2 writes DEBUGCTL = \(hex(write.value | freezeInSMM)) (with FREEZE_IN_SMM)") {
        t.expectEqual(try l1.vcpu.setMSRs([(debugCtlMSR, write.value | freezeInSMM)]), 0,
                      "L2, DEBUGCTL with bit 14: MSRs KVM_SET_MSRS processed (bit 14 is host-owned: refused)")
        let seen = try l1.vmcs12DebugCtl()
        t.note("after the write with bit 14: vmcs12.guest_ia32_debugctl = \(hex(seen))")
        t.expectEqual(seen, vmcs12Canary, "L2, DEBUGCTL with bit 14 refused: vmcs12.guest_ia32_debugctl (unchanged)")
    }
    t.subCase("L2 writes DEBUGCTL = \(hex(write.value)), VM_EXIT_SAVE_DEBUG_CONTROLS set") {
        try t.assertEqual(try l1.vcpu.setMSRs([(debugCtlMSR, write.value)]), 1, "L2, saving debug controls: MSRs KVM_SET_MSRS processed")
        let seen = try l1.vmcs12DebugCtl()
        t.note("after DEBUGCTL = \(hex(write.value)) with VM_EXIT_SAVE_DEBUG_CONTROLS: vmcs12.guest_ia32_debugctl = \(hex(seen))")
        t.expectEqual(seen, write.value & write.kept,
                      "L2, saving debug controls: vmcs12.guest_ia32_debugctl (the write masked as KVM_GET_MSRS showed it in L1)")
    }
    t.subCase("L2 writes DEBUGCTL = \(hex(write.value)), VM_EXIT_SAVE_DEBUG_CONTROLS clear") {
        try t.assertEqual(try other.vcpu.setMSRs([(debugCtlMSR, write.value)]), 1, "L2, not saving debug controls: MSRs KVM_SET_MSRS processed")
        let seen = try other.vmcs12DebugCtl()
        t.note("after DEBUGCTL = \(hex(write.value)) without VM_EXIT_SAVE_DEBUG_CONTROLS: vmcs12.guest_ia32_debugctl = \(hex(seen))")
        t.expectEqual(seen, vmcs12Canary, "L2, not saving debug controls: vmcs12.guest_ia32_debugctl (unchanged)")
    }
}

/// A vCPU with VMX in its CPUID and CR4.VMXE (L1), and its VMX capability MSRs.  L1 never runs.
private struct NestedL1 {
    let guest: Guest
    var vcpu: VCPU { guest.vcpu }
    let msr: [VMXCapabilityMSR: UInt64]

    init(_ t: CheckContext) throws {
        var options = GuestOptions()
        options.extraCR4 = cr4VMXE
        guest = try t.guest(options) { a in a.ucallDone() }
        let ids = VMXCapabilityMSR.allCases
        let values = try guest.vcpu.getMSRs(ids.map(\.rawValue))
        guard values.count == ids.count else {
            throw Skip("KVM_GET_MSRS returned \(values.count) of the \(ids.count) VMX capability MSRs (stopped at \(hex(ids[values.count].rawValue)))")
        }
        msr = Dictionary(uniqueKeysWithValues: zip(ids, values))
    }

    /// The DEBUGCTL value L2 writes (BTF|LBR, tolerated, plus each optional bit the vCPU accepts
    /// alone) and what KVM_GET_MSRS shows of it after L1 writes it: the mask the series applies
    /// (`value & kept`, so a bit 14 a view might add is never expected).
    func debugCtlWrite(_ t: CheckContext) throws -> (value: UInt64, kept: UInt64) {
        var value: UInt64 = 0b11
        for (name, bit) in optionalDebugCtlBits {
            guard try vcpu.setMSRs([(debugCtlMSR, bit)]) == 1 else { continue }
            value |= bit
            t.note("KVM_SET_MSRS accepts DEBUGCTL.\(name)")
        }
        try t.assertEqual(try vcpu.setMSRs([(debugCtlMSR, value)]), 1, "MSRs KVM_SET_MSRS processed for DEBUGCTL = \(hex(value)) in L1")
        guard let kept = try vcpu.getMSR(debugCtlMSR) else { throw Failure("KVM_GET_MSRS did not return DEBUGCTL") }
        try t.assertEqual(try vcpu.setMSRs([(debugCtlMSR, 0)]), 1, "MSRs KVM_SET_MSRS processed for DEBUGCTL = 0 in L1")
        t.note("L1 DEBUGCTL = \(hex(value)) keeps \(hex(kept))"
               + (kept == 0 ? ": this vCPU stores no DEBUGCTL bit, so L2's write must leave 0 (the canary is \(hex(vmcs12Canary))): "
                  + "the write is shown to land in vmcs12, its masking of a kept bit is not" : ""))
        return (value, kept)
    }

    /// KVM_SET_NESTED_STATE into L2 with a vmcs12 holding the canary; refused → SKIP with the errno.
    func enterL2(_ t: CheckContext, saveDebugControls: Bool) throws {
        let vmcs12 = try buildVMCS12(saveDebugControls: saveDebugControls)
        guest.memory.write(vmcs12.bytes, at: vmcs12Page)
        guest.memory.write(Array(VMCS12().bytes.prefix(4)), at: vmxonPage) // VMXON region: the revision id
        let state = VMXNestedState(flags: VMXNestedState.guestMode, vmxonAddress: vmxonPage, vmcs12Address: vmcs12Page, vmcs12: vmcs12)
        do { try vcpu.setNestedState(state) } catch {
            throw Skip("KVM_SET_NESTED_STATE(GUEST_MODE, vmcs12 exit controls \(hex(vmcs12[.exitControls])), entry controls "
                       + "\(hex(vmcs12[.entryControls]))) refused: \(error) (tracepoint kvm_nested_vmenter_failed names the check)")
        }
        guard let back = try vcpu.nestedState(), back.flags & VMXNestedState.guestMode != 0, back.vmcs12?[.guestIA32DebugCtl] == vmcs12Canary else {
            throw Skip.cannotObserve("KVM_GET_NESTED_STATE after entering L2 does not show guest mode with the vmcs12 canary "
                                     + "\(hex(vmcs12Canary)) in guest_ia32_debugctl, so an unchanged field cannot be told from a written one")
        }
        t.note("in L2 (exit controls \(hex(vmcs12[.exitControls]))): KVM_GET_NESTED_STATE shows the canary \(hex(vmcs12Canary))")
    }

    /// vmcs12.guest_ia32_debugctl through KVM_GET_NESTED_STATE (the vCPU must still be in L2).
    func vmcs12DebugCtl() throws -> UInt64 {
        guard let state = try vcpu.nestedState(), state.flags & VMXNestedState.guestMode != 0, let vmcs12 = state.vmcs12 else {
            throw Failure("KVM_GET_NESTED_STATE no longer reports L2 with a vmcs12")
        }
        return vmcs12[.guestIA32DebugCtl]
    }

    /// L2 is a copy of L1's 64-bit state (L1's host state is the same): controls are the least
    /// the capability MSRs allow, plus 64-bit host and guest, plus (or not) saving debug controls.
    private func buildVMCS12(saveDebugControls: Bool) throws -> VMCS12 {
        let exit = VMXAllowedControls(msr: msr[.trueExitControls]!), entry = VMXAllowedControls(msr: msr[.trueEntryControls]!)
        guard let exitControls = exit.minimal(with: exitHostAddressSpaceSize | (saveDebugControls ? exitSaveDebugControls : 0)),
              saveDebugControls || exit.mayBeZero(exitSaveDebugControls) else {
            throw Skip("MSR_IA32_VMX_TRUE_EXIT_CTLS = \(hex(msr[.trueExitControls]!)) does not let VM_EXIT_SAVE_DEBUG_CONTROLS be \(saveDebugControls ? 1 : 0)")
        }
        guard let entryControls = entry.minimal(with: entryIA32EMode), entry.mayBeZero(entryLoadDebugControls) else {
            throw Skip("MSR_IA32_VMX_TRUE_ENTRY_CTLS = \(hex(msr[.trueEntryControls]!)) forbids IA32E_MODE or forces LOAD_DEBUG_CONTROLS "
                       + "(then entry checks vmcs12's DEBUGCTL and it cannot hold a canary)")
        }
        let s = try vcpu.sregs()
        var v = VMCS12()
        v[.pinBasedControls] = VMXAllowedControls(msr: msr[.truePinBasedControls]!).mustBeOne
        v[.procBasedControls] = VMXAllowedControls(msr: msr[.trueProcBasedControls]!).mustBeOne
        v[.exitControls] = exitControls
        v[.entryControls] = entryControls
        v[.vmcsLinkPointer] = VMXNestedState.invalidAddress
        v[.guestIA32DebugCtl] = vmcs12Canary
        v[.hostCR0] = s.cr0 | msr[.cr0Fixed0]!; v[.guestCR0] = v[.hostCR0]
        v[.hostCR4] = s.cr4 | msr[.cr4Fixed0]!; v[.guestCR4] = v[.hostCR4]
        v[.hostCR3] = s.cr3; v[.guestCR3] = s.cr3
        v[.hostCSSelector] = s.cs.selector; v[.hostSSSelector] = s.ss.selector; v[.hostDSSelector] = s.ds.selector
        v[.hostESSelector] = s.es.selector; v[.hostFSSelector] = s.fs.selector; v[.hostGSSelector] = s.gs.selector
        v[.hostTRSelector] = s.tr.selector
        v[.hostFSBase] = s.fs.base; v[.hostGSBase] = s.gs.base; v[.hostTRBase] = s.tr.base
        v[.hostGDTRBase] = s.gdt.base; v[.hostIDTRBase] = s.idt.base
        v[.hostRIP] = GuestLayout.code; v[.hostRSP] = GuestLayout.kernelStackTop
        let segments: [(kvm_segment, VMCS12.Field16, VMCS12.Field64, VMCS12.Field32, VMCS12.Field32)] = [
            (s.es, .guestESSelector, .guestESBase, .guestESLimit, .guestESAccessRights),
            (s.cs, .guestCSSelector, .guestCSBase, .guestCSLimit, .guestCSAccessRights),
            (s.ss, .guestSSSelector, .guestSSBase, .guestSSLimit, .guestSSAccessRights),
            (s.ds, .guestDSSelector, .guestDSBase, .guestDSLimit, .guestDSAccessRights),
            (s.fs, .guestFSSelector, .guestFSBase, .guestFSLimit, .guestFSAccessRights),
            (s.gs, .guestGSSelector, .guestGSBase, .guestGSLimit, .guestGSAccessRights),
            (s.ldt, .guestLDTRSelector, .guestLDTRBase, .guestLDTRLimit, .guestLDTRAccessRights),
            (s.tr, .guestTRSelector, .guestTRBase, .guestTRLimit, .guestTRAccessRights),
        ]
        for (segment, selector, base, limit, rights) in segments {
            v[selector] = segment.selector; v[base] = segment.base; v[limit] = segment.limit; v[rights] = accessRights(segment)
        }
        v[.guestGDTRBase] = s.gdt.base; v[.guestGDTRLimit] = UInt32(s.gdt.limit)
        v[.guestIDTRBase] = s.idt.base; v[.guestIDTRLimit] = UInt32(s.idt.limit)
        v[.guestRIP] = GuestLayout.code; v[.guestRSP] = GuestLayout.kernelStackTop; v[.guestRFLAGS] = 0x2
        v[.guestDR7] = 0x400
        return v
    }
}

/// A segment's VMCS access-rights field (SDM 24.4.1): type, S, DPL, P, AVL, L, D/B, G, unusable.
private func accessRights(_ s: kvm_segment) -> UInt32 {
    UInt32(s.type) | UInt32(s.s) << 4 | UInt32(s.dpl) << 5 | UInt32(s.present) << 7 | UInt32(s.avl) << 12
        | UInt32(s.l) << 13 | UInt32(s.db) << 14 | UInt32(s.g) << 15 | UInt32(s.unusable) << 16
}
