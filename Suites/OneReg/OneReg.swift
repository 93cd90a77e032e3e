import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// x86 KVM_{GET,SET}_ONE_REG and KVM_GET_REG_LIST (CET series, 6.18).

@section("kvmcheck_suites") @used
let oneRegEntry: SuiteEntryPoint = { registerSuite(oneRegSuite) }

let oneRegCap = Requirement.capability(.oneReg)
private let oneRegUAPI = ["KVM_GET_ONE_REG", "KVM_SET_ONE_REG", "KVM_X86_REG_MSR"]

/// MSRs with a canonical, valid canary each — never the reset value, so a zero-read cannot pass.
private struct MSRCanary: Sendable {
    let name: String
    let index: UInt32
    let canary: UInt64
    let other: UInt64
}

private let msrCanaries: [MSRCanary] = [
    MSRCanary(name: "STAR", index: 0xC000_0081, canary: 0x0023_0010_0000_0000, other: 0x001B_0008_0000_0000),
    MSRCanary(name: "LSTAR", index: 0xC000_0082, canary: 0xFFFF_FFFF_8100_1000, other: 0xFFFF_FFFF_8200_2000),
    MSRCanary(name: "CSTAR", index: 0xC000_0083, canary: 0xFFFF_FFFF_8100_3000, other: 0xFFFF_FFFF_8200_4000),
    MSRCanary(name: "SYSCALL_MASK", index: 0xC000_0084, canary: 0x4_7700, other: 0x300),
    MSRCanary(name: "FS_BASE", index: 0xC000_0100, canary: 0x7F00_0000_1000, other: 0x7E00_0000_1000),
    MSRCanary(name: "GS_BASE", index: 0xC000_0101, canary: 0x7F00_0000_2000, other: 0x7E00_0000_2000),
    MSRCanary(name: "KERNEL_GS_BASE", index: 0xC000_0102, canary: 0x7FFF_1234_5000, other: 0x7FFE_1234_6000),
    MSRCanary(name: "SYSENTER_CS", index: 0x174, canary: 0x10, other: 0x08),
    MSRCanary(name: "PAT", index: 0x277, canary: 0x0007_0406_0007_0106, other: 0x0007_0406_0006_0106),
]

/// The canaries whose MSRs this kernel saves/restores (KVM_GET_MSR_INDEX_LIST).
private func supportedCanaries(_ system: KVMSystem) throws -> [MSRCanary] {
    let listed = Set(try system.msrIndexList())
    return msrCanaries.filter { listed.contains($0.index) }
}

let oneRegSuite = Suite(
    "one-reg", summary: "x86 KVM_{GET,SET}_ONE_REG and KVM_GET_REG_LIST (6.18)", series: "x86-one-reg",
    features: oneRegFeatures, checks: [
        Check("one_reg_cap_matches_behaviour", uapi: ["KVM_CAP_ONE_REG", "KVM_GET_ONE_REG"], killedBy: [.oneRegCapHiddenOnVM]) { t in
            let advertised = try t.system.checkExtension(.oneReg)
            let vm = try t.system.createVM()
            let vmAdvertised = try vm.checkExtension(.oneReg)
            let vcpu = try vm.createVCPU()
            let efer = Result { () throws(KVMError) in try vcpu.getOneReg(X86RegID.msr(0xC000_0080)) }
            t.note("KVM_CHECK_EXTENSION(ONE_REG): system \(advertised), VM \(vmAdvertised); GET_ONE_REG(EFER): \(efer)")
            if advertised == 0, case .failure(let e) = efer, e.errno == .invalidArgument {
                throw Skip("KVM_CAP_ONE_REG = 0 and KVM_GET_ONE_REG(EFER) fails with EINVAL: x86 ONE_REG absent (pre-6.18)")
            }
            try t.assertEqual(vmAdvertised, advertised, "KVM_CHECK_EXTENSION(ONE_REG) on the VM fd vs the system fd")
            try t.assert(advertised != 0, "KVM_CHECK_EXTENSION(ONE_REG)", expected: "1 (KVM_GET_ONE_REG works)",
                         observed: "0 although KVM_GET_ONE_REG works")
            if case .failure(let e) = efer { throw Failure("KVM_GET_ONE_REG(EFER) with KVM_CAP_ONE_REG advertised", expected: "success", observed: "\(e)", ioctl: e.operation, errno: e.errno?.symbolicName) }
        },
        oneRegReadsEqualGetMSRsCheck,
        setOneRegSeenCheck,
        setOneRegNoncanonicalCheck,
        guestSSPAbsentCheck,
        guestSSPRoundTripCheck,
        regListE2BIGCheck,
        regListEntriesReadableCheck,
    ] + badEncodingChecks)

let shstkSupported = Requirement.probe("SHSTK in KVM_GET_SUPPORTED_CPUID") { kvm in
    guard let cpuid = try? kvm.supportedCPUID() else { return "KVM_GET_SUPPORTED_CPUID failed" }
    return CPUIDFeature.shadowStack.isSet(in: cpuid) ? nil : "KVM_GET_SUPPORTED_CPUID lacks \(CPUIDFeature.shadowStack)"
}

let regListE2BIGCheck = Check("reg_list_short_buffer_e2big_with_count", uapi: ["KVM_GET_REG_LIST"], requires: [oneRegCap],
    killedBy: [.regListE2BIGWithoutCount], positiveControls: [.regListListsSSP]) { t in
    let vcpu = try t.system.createVM().createVCPU()
    let (result, needed) = vcpu.tryRegList(capacity: 0)
    if case .success = result, needed == 0 {
        // The positive control is a list with at least one entry: without one, n = 0 is
        // not a short buffer and the E2BIG path cannot be reached.
        throw Skip.cannotObserve("KVM_GET_REG_LIST lists no registers on this vCPU (no KVM-defined registers, e.g. no SHSTK), so no buffer is short")
    }
    guard case .failure(let e) = result else {
        throw Failure("KVM_GET_REG_LIST(n = 0) with \(needed) register(s) to list", expected: "E2BIG", observed: "success, n = \(needed)")
    }
    t.expectEqual(e.errno?.symbolicName ?? "\(e)", "E2BIG", "KVM_GET_REG_LIST(n = 0) errno when registers exist")
    t.expect(needed > 0, "n written back with E2BIG", expected: "> 0", observed: "\(needed)")
    if needed > 0 {
        let (full, again) = vcpu.tryRegList(capacity: Int(needed))
        t.expect((try? full.get())?.count == Int(needed), "KVM_GET_REG_LIST(n = \(needed))",
                 expected: "success with \(needed) ids", observed: "\(full), n = \(again)")
    }
}

let guestSSPAbsentCheck = Check("guest_ssp_absent_without_shstk", uapi: ["KVM_REG_GUEST_SSP", "KVM_X86_REG_KVM", "KVM_GET_REG_LIST"],
      requires: [oneRegCap], killedBy: [.oneRegBadIDAccepted, .regListListsSSP]) { t in
    var options = GuestOptions()
    options.editCPUID = { CPUIDFeature.shadowStack.clear(in: &$0) }
    let g = try t.guest(options) { a in a.ucallDone() }
    // Where KVM lacks SHSTK, GUEST_SSP is absent whatever the CPUID: say so, the pass is weaker.
    let hostHasSHSTK = (try? t.system.supportedCPUID()).map { CPUIDFeature.shadowStack.isSet(in: $0) }
    t.note("SHSTK in KVM_GET_SUPPORTED_CPUID: \(hostHasSHSTK.map { $0 ? "yes (absence is the CPUID edit's doing)" : "no (absent regardless of the guest's CPUID; guest_ssp_round_trips_with_shstk, the positive control, skips)" } ?? "unknown")")
    try t.assertErrno(.invalidArgument, "KVM_GET_ONE_REG(GUEST_SSP) on a vCPU without \(CPUIDFeature.shadowStack)") {
        try g.vcpu.getOneReg(X86RegID.guestSSP)
    }
    // A failing KVM_GET_REG_LIST must not pass as "not listed".
    let (result, count) = g.vcpu.tryRegList(capacity: 8)
    guard case .success(let listed) = result else {
        throw Failure("KVM_GET_REG_LIST without SHSTK", expected: "success", observed: "\(result)")
    }
    try t.assert(!listed.contains(X86RegID.guestSSP), "KVM_GET_REG_LIST without SHSTK",
                 expected: "GUEST_SSP not listed", observed: "listed (n = \(count))")
    // Absent is this check's subject only if it could have been present: without SHSTK in KVM
    // itself, nothing here ties the absence to the guest's CPUID (both results above still held).
    if hostHasSHSTK != true { throw Skip.cannotObserve(sspAbsenceUntied("the EINVAL and the register list")) }
}

/// Why "GUEST_SSP absent without SHSTK" cannot be observed on a KVM that offers no SHSTK at all.
func sspAbsenceUntied(_ checked: String) -> String {
    "KVM_GET_SUPPORTED_CPUID lacks SHSTK, so GUEST_SSP is absent whatever the guest's CPUID "
        + "(\(checked) were checked and held; no vCPU here can show it present)"
}

let regListEntriesReadableCheck = Check("reg_list_entries_readable", uapi: ["KVM_GET_REG_LIST", "KVM_GET_ONE_REG"], requires: [oneRegCap],
    killedBy: [.regListE2BIGWithoutCount, .regListListsSSP]) { t in
    let vcpu = try t.system.createVM().createVCPU()
    let ids = try vcpu.regList()
    if ids.isEmpty { throw Skip.cannotObserve("KVM_GET_REG_LIST lists no registers on this vCPU (no KVM-defined registers, e.g. no SHSTK)") }
    for id in ids { _ = try vcpu.getOneReg(id) }
    t.note("read \(ids.count) listed id(s): " + ids.map { hex($0) }.joined(separator: " "))
}

let oneRegReadsEqualGetMSRsCheck = Check("one_reg_reads_equal_get_msrs", uapi: oneRegUAPI + ["KVM_GET_MSRS"], requires: [oneRegCap],
    killedBy: [.oneRegWrongMSR]) { t in
    let vcpu = try t.system.createVM().createVCPU()
    let msrs = try supportedCanaries(t.system)
    try t.assert(!msrs.isEmpty, "canary MSRs in KVM_GET_MSR_INDEX_LIST", expected: "at least one", observed: "none")
    for m in msrs {
        try t.assertEqual(try vcpu.setMSRs([(m.index, m.canary)]), 1, "KVM_SET_MSRS(\(m.name) = canary) processed count")
        try t.assertEqual(try vcpu.getOneReg(X86RegID.msr(m.index)), m.canary, "KVM_GET_ONE_REG(\(m.name)) after KVM_SET_MSRS")
        try t.assertEqual(try vcpu.getMSR(m.index), m.canary, "KVM_GET_MSRS(\(m.name)) after KVM_SET_MSRS")
    }
    t.note("\(msrs.count) MSRs agree: " + msrs.map(\.name).joined(separator: " "))
}

let setOneRegSeenCheck = Check("set_one_reg_seen_by_get_msrs_and_guest_rdmsr", uapi: oneRegUAPI + ["KVM_GET_MSRS"], requires: [oneRegCap],
      levels: .only(.cpl0), killedBy: [.oneRegWrongMSR]) { t in
    let msrs = try supportedCanaries(t.system)
    let g = try t.guest { a in
        for (i, m) in msrs.enumerated() {
            a.mov(.ecx, Int64(m.index))
            a.rdmsr()
            a.shl(.rdx, 32)
            a.or(.rax, .rdx)
            a.ucallSync(Int64(i), .rax)
        }
        a.ucallDone()
    }
    for m in msrs { try g.vcpu.setOneReg(X86RegID.msr(m.index), m.other) }
    for (i, m) in msrs.enumerated() {
        try t.assertEqual(try g.vcpu.getOneReg(X86RegID.msr(m.index)), m.other, "KVM_GET_ONE_REG(\(m.name)) after KVM_SET_ONE_REG")
        try t.assertEqual(try g.vcpu.getMSR(m.index), m.other, "KVM_GET_MSRS(\(m.name)) after KVM_SET_ONE_REG")
        try t.assertEqual(try g.expectSync(UInt64(i))[0], m.other, "guest rdmsr(\(m.name)) after KVM_SET_ONE_REG")
    }
    try g.expectDone()
}

let setOneRegNoncanonicalCheck = Check("set_one_reg_rejects_noncanonical", uapi: oneRegUAPI, requires: [oneRegCap],
    killedBy: [.oneRegBadIDAccepted, .oneRegWrongMSR]) { t in
    let vcpu = try t.system.createVM().createVCPU()
    let lstar = X86RegID.msr(0xC000_0082)
    try vcpu.setOneReg(lstar, 0xFFFF_FFFF_8100_1000)
    try t.assertErrno(.invalidArgument, "KVM_SET_ONE_REG(LSTAR, 0x8000000000000000 non-canonical)") {
        try vcpu.setOneReg(lstar, 0x8000_0000_0000_0000)
    }
    try t.assertEqual(try vcpu.getOneReg(lstar), 0xFFFF_FFFF_8100_1000, "LSTAR after the rejected write")
}

let guestSSPRoundTripCheck = Check("guest_ssp_round_trips_with_shstk", uapi: ["KVM_REG_GUEST_SSP", "KVM_X86_REG_KVM", "KVM_GET_REG_LIST"],
      requires: [oneRegCap, shstkSupported], killedBy: [.oneRegSSPNotStored]) { t in
    let g = try t.guest { a in a.ucallDone() }
    let result = g.vcpu.tryRegList(capacity: 8).result
    try t.assert((try? result.get())?.contains(X86RegID.guestSSP) == true, "KVM_GET_REG_LIST with SHSTK",
                 expected: "lists GUEST_SSP \(hex(X86RegID.guestSSP))", observed: "\(result)")
    try g.vcpu.setOneReg(X86RegID.guestSSP, 0x7FFF_0000_1FF8)
    try t.assertEqual(try g.vcpu.getOneReg(X86RegID.guestSSP), 0x7FFF_0000_1FF8, "GUEST_SSP read back")
    try t.assertErrno(.invalidArgument, "KVM_SET_ONE_REG(GUEST_SSP, non-canonical)") {
        try g.vcpu.setOneReg(X86RegID.guestSSP, 0x8000_0000_0000_1000)
    }
}
