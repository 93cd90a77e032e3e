import CheckKit
import CKVM
import GuestKit
import KVMKit
import X86Asm

// msrs: the kernel's tools/testing/selftests/kvm/x86/msrs_test.c (6.18, with ONE_REG), one
// check per aspect, every MSR of the table a sub-case reported on its own.  RDMSR/WRMSR are
// CPL0-only instructions (#GP at CPL3 whatever the MSR), so the guest checks run at CPL0.

@section("kvmcheck_suites") @used
let msrsEntry: SuiteEntryPoint = { registerSuite(msrsSuite) }

private let msrUAPI = ["KVM_GET_MSRS", "KVM_SET_MSRS", "RDMSR/WRMSR"]

enum HostWrite: CustomStringConvertible {
    case setMSRs, setOneReg
    var description: String { self == .setMSRs ? "KVM_SET_MSRS" : "KVM_SET_ONE_REG" }

    /// nil when the kernel accepted the write, else what it said.
    func write(_ vcpu: VCPU, _ index: UInt32, _ value: UInt64) -> String? {
        do {
            switch self {
            case .setMSRs: return try vcpu.setMSRs([(index, value)]) == 1 ? nil : "0 MSRs processed"
            case .setOneReg: try vcpu.setOneReg(X86RegID.msr(index), value); return nil
            }
        } catch { return error.briefName }
    }
}

extension Error {
    var briefName: String { (self as? KVMError)?.shortName ?? "\(self)" }
}

/// KVM_GET_MSRS of one MSR as text-comparable outcome.
private func hostRead(_ vcpu: VCPU, _ index: UInt32) -> MSROutcome {
    do { return try vcpu.getMSR(index).map(MSROutcome.value) ?? .other("0 MSRs processed") } catch { return .other(error.briefName) }
}

private func oneRegRead(_ vcpu: VCPU, _ index: UInt32) -> MSROutcome {
    do { return .value(try vcpu.getOneReg(X86RegID.msr(index))) } catch { return .other(error.briefName) }
}

/// A guest MSR access that faults is decided inside one KVM_RUN, out of the ioctl seam's reach.
private let guestMSRFaultUnkillable = "the guest's #GP is decided inside one KVM_RUN; the seam can only re-add a CPUID feature at "
    + "KVM_SET_CPUID2, which changes nothing on a host whose KVM lacks it (KVM masks guest CPUID with what it supports), "
    + "and cannot make a reserved or non-canonical WRMSR succeed, so no mutant could be held to kill it everywhere"

let msrsSuite = Suite(
    "msrs", summary: "msrs_test.c parity: guest and host views of 17 MSRs, CPUID gating, reserved values, ONE_REG, GUEST_SSP",
    series: "x86-one-reg", checks: [
        Check("guest_rdmsr_reset_values", uapi: msrUAPI, levels: .only(.cpl0), killedBy: [.msrStaleAtFirstRun]) { t in
            let cpuid = try vcpuCPUID(t)
            let rows = msrTable.filter { $0.supported(by: cpuid) }
            let g = try msrOpGuest(t, rows.map { .read($0.index) })
            for (i, r) in rows.enumerated() {
                t.expectEqual(nextOutcome(g, i, isRead: true), .value(r.reset), "\(r.name): RDMSR on a fresh vCPU")
            }
        },
        Check("guest_write_seen_by_host_then_set_msrs_seen_by_guest", uapi: msrUAPI + ["KVM_GET_ONE_REG"], levels: .only(.cpl0),
              killedBy: [.msrHostWriteDropped, .oneRegWrongMSR]) { t in
            try roundTripCheck(t, .setMSRs)
        },
        Check("guest_write_seen_by_host_then_set_one_reg_seen_by_guest", uapi: msrUAPI + ["KVM_GET_ONE_REG", "KVM_SET_ONE_REG"],
              requires: [oneRegCap], levels: .only(.cpl0), killedBy: [.msrHostWriteDropped, .oneRegWrongMSR]) { t in
            try roundTripCheck(t, .setOneReg)
        },
        Check("guest_gp_when_cpuid_lacks_feature", uapi: msrUAPI + ["KVM_SET_CPUID2"], levels: .only(.cpl0),
              unkillable: guestMSRFaultUnkillable) { t in
            if ignoreMSRsSet() { throw Skip("kvm.ignore_msrs=Y: KVM ignores accesses to missing MSRs instead of #GP (upstream skips too)") }
            for (label, clearing) in [("full CPUID", [CPUIDFeature]()), ("table features cleared", clearableFeatures)] {
                try expectFaultsWithoutFeature(t, label, clearing)
            }
        },
        Check("guest_wrmsr_reserved_value_faults", uapi: msrUAPI, levels: .only(.cpl0), unkillable: guestMSRFaultUnkillable) { t in
            if ignoreMSRsSet() { throw Skip("kvm.ignore_msrs=Y: KVM ignores faulting MSR writes (upstream skips too)") }
            try guestReservedCheck(t)
        },
        Check("host_set_msrs_refuses_reserved_value", uapi: ["KVM_SET_MSRS", "KVM_GET_MSRS"], killedBy: [.msrNoncanonicalAcceptedFromHost]) { t in
            try hostReservedCheck(t, .setMSRs)
        },
        Check("host_set_one_reg_refuses_reserved_value", uapi: ["KVM_SET_ONE_REG", "KVM_GET_MSRS"], requires: [oneRegCap],
              killedBy: [.oneRegBadIDAccepted]) { t in
            try hostReservedCheck(t, .setOneReg)
        },
        Check("msr_index_list_matches_supported_cpuid", uapi: ["KVM_GET_MSR_INDEX_LIST", "KVM_GET_SUPPORTED_CPUID"],
              killedBy: [.msrIndexListDropsMiscEnable]) { t in
            let listed = Set(try t.system.msrIndexList()), cpuid = try t.system.supportedCPUID()
            // FS/GS_BASE are saved through SREGS, so KVM never lists them (upstream skips them too).
            for r in msrTable where r.index != 0xC000_0100 && r.index != 0xC000_0101 {
                let exists = r.feature == nil || r.features.contains { $0.isSet(in: cpuid) }
                let why = r.feature == nil ? "always emulated" : r.features.map { "\($0.name) \($0.isSet(in: cpuid) ? "supported" : "absent")" }.joined(separator: ", ")
                t.expect(listed.contains(r.index) == exists, "\(r.name) (\(hex(UInt64(r.index)))), \(why)",
                             expected: exists ? "listed" : "not listed", observed: listed.contains(r.index) ? "listed" : "not listed")
            }
        },
        Check("three_vcpus_one_thread_keep_their_own_msrs", uapi: msrUAPI + ["KVM_SET_CPUID2"], levels: .only(.cpl0),
              killedBy: [.msrStaleAtFirstRun]) { t in
            try threeVCPUCheck(t)
        },
        Check("guest_ssp_get_and_set_einval_without_shstk", uapi: ["KVM_REG_GUEST_SSP", "KVM_GET_ONE_REG", "KVM_SET_ONE_REG"],
              requires: [oneRegCap], killedBy: [.oneRegBadIDAccepted, .oneRegSSPNotStored]) { t in
            let g = try msrOpGuest(t, [], clearing: [.shadowStack])
            let attempts: [(String, () throws -> Void)] = [("KVM_GET_ONE_REG(GUEST_SSP)", { _ = try g.vcpu.getOneReg(X86RegID.guestSSP) }),
                                                           ("KVM_SET_ONE_REG(GUEST_SSP, 0)", { try g.vcpu.setOneReg(X86RegID.guestSSP, 0) }),
                                                           ("KVM_SET_ONE_REG(GUEST_SSP, 0x123456789000)", { try g.vcpu.setOneReg(X86RegID.guestSSP, 0x1234_5678_9000) })]
            for (what, attempt) in attempts {
                var seen = "success"
                do { try attempt() } catch { seen = error.briefName }
                t.expect(seen == "EINVAL", "\(what) on a vCPU without SHSTK", expected: "EINVAL", observed: seen)
            }
            if (try? t.system.supportedCPUID()).map({ CPUIDFeature.shadowStack.isSet(in: $0) }) != true {
                throw Skip.cannotObserve(sspAbsenceUntied("the three EINVALs"))
            }
        },
        Check("guest_ssp_reset_value_zero", uapi: ["KVM_REG_GUEST_SSP", "KVM_GET_ONE_REG"], requires: [oneRegCap, shstkSupported],
              killedBy: [.guestSSPResetNonzero]) { t in
            let g = try msrOpGuest(t, [])
            try t.assertEqual(try g.vcpu.getOneReg(X86RegID.guestSSP), 0, "KVM_GET_ONE_REG(GUEST_SSP) on a fresh vCPU with SHSTK")
        },
        Check("reg_list_at_most_one_register", uapi: ["KVM_GET_REG_LIST"], requires: [oneRegCap], informational: true) { t in
            // Upstream asserts n <= 1 as a "stale test?" tripwire: a new KVM-defined register is not a kernel bug.
            let g = try msrOpGuest(t, [])
            let n = g.vcpu.tryRegList(capacity: 0).reportedCount
            let ids = (try? g.vcpu.tryRegList(capacity: Int(n)).result.get()) ?? []
            t.note("KVM_GET_REG_LIST: n = \(n), ids " + ids.map { hex($0) }.joined(separator: " "))
            try t.assert(n <= 1 && ids.allSatisfy { $0 == X86RegID.guestSSP }, "KVM_GET_REG_LIST on a vCPU with the supported CPUID",
                         expected: "at most GUEST_SSP (upstream KVM_X86_MAX_NR_REGS = 1)", observed: "n = \(n)")
        },
    ])

/// Guest WRMSR then RDMSR; the host reads it (GET_MSRS and GET_ONE_REG), writes another value
/// with `method`, reads that back, and the guest reads it again.  Every step of every MSR reported.
func roundTripCheck(_ t: CheckContext, _ method: HostWrite) throws {
    let cpuid = try vcpuCPUID(t), intel = cpuidIsIntelCompatible(cpuid)
    let rows = msrTable.filter { $0.supported(by: cpuid) }
    let hasOneReg = (try? t.system.checkExtension(.oneReg)) ?? 0 != 0
    let g = try msrOpGuest(t, rows.flatMap { r -> [MSROp] in [.write(r.index, r.write), .read(r.index), .read(r.index)] })
    for (i, r) in rows.enumerated() {
        let wrote = readBack(r, r.write, intelCompatible: intel), other = readBack(r, r.other, intelCompatible: intel)
        t.expectEqual(nextOutcome(g, 3 * i, isRead: false), .written, "\(r.name): guest WRMSR(\(hex(r.write)))")
        t.expectEqual(nextOutcome(g, 3 * i + 1, isRead: true), .value(wrote), "\(r.name): guest RDMSR after its write")
        t.expectEqual(hostRead(g.vcpu, r.index), .value(wrote), "\(r.name): KVM_GET_MSRS after the guest's write")
        if hasOneReg { t.expectEqual(oneRegRead(g.vcpu, r.index), .value(wrote), "\(r.name): KVM_GET_ONE_REG after the guest's write") }
        let refused = method.write(g.vcpu, r.index, r.other)
        t.expect(refused == nil, "\(r.name): \(method)(\(hex(r.other)))", expected: "accepted", observed: refused ?? "accepted")
        t.expectEqual(hostRead(g.vcpu, r.index), .value(other), "\(r.name): KVM_GET_MSRS after \(method)")
        if hasOneReg { t.expectEqual(oneRegRead(g.vcpu, r.index), .value(other), "\(r.name): KVM_GET_ONE_REG after \(method)") }
        t.expectEqual(nextOutcome(g, 3 * i + 2, isRead: true), .value(other), "\(r.name): guest RDMSR after \(method)")
    }
    t.note("vCPU vendor \(cpuidVendor(cpuid)): SYSENTER_ESP/EIP and TSC_AUX keep \(intel ? "all 64 bits" : "bits 31:0 (AMD rule)")")
}

/// Upstream guest_test_unsupported_msr on a vCPU with `clearing` removed from its CPUID.
func expectFaultsWithoutFeature(_ t: CheckContext, _ label: String, _ clearing: [CPUIDFeature]) throws {
    let cpuid = try vcpuCPUID(t, clearing: clearing)
    // Control: an MSR every vCPU has reads without a fault, so a #GP below is about the MSR.
    var ops: [MSROp] = [.read(0x174)], whats = ["\(label): control: RDMSR(SYSENTER_CS) does not fault"]
    for r in msrTable where !r.supported(by: cpuid) {
        // {S,U}_CET exist with either feature; only the other feature's bit must fault then.
        if r.secondarySupported(by: cpuid) && !r.isCET { continue }
        if !r.secondarySupported(by: cpuid) { ops.append(.read(r.index)); whats.append("\(label): \(r.name): RDMSR") }
        ops.append(.write(r.index, r.write)); whats.append("\(label): \(r.name): WRMSR(\(hex(r.write)))")
    }
    let g = try msrOpGuest(t, ops, clearing: clearing)
    t.expectEqual(nextOutcome(g, 0, isRead: true), .value(0), whats[0])
    for (i, op) in ops.enumerated().dropFirst() {
        if case .read = op { t.expectEqual(nextOutcome(g, i, isRead: true), .fault("#GP"), whats[i]) }
        else { t.expectEqual(nextOutcome(g, i, isRead: false), .fault("#GP"), whats[i]) }
    }
    if ops.count == 1 { t.note("\(label): every table MSR exists on this vCPU") }
}

/// Upstream guest_test_reserved_val: WRMSR of the reserved value faults and leaves the MSR
/// as it was — except TSC_AUX on a non-Intel vendor, which KVM truncates (AMD rule).
func guestReservedCheck(_ t: CheckContext) throws {
    let cpuid = try vcpuCPUID(t), intel = cpuidIsIntelCompatible(cpuid)
    let rows = msrTable.filter { $0.reserved != nil }
    var ops: [MSROp] = []
    for r in rows { ops += [.write(r.index, r.write), .write(r.index, r.reserved!), .read(r.index)] }
    let g = try msrOpGuest(t, ops)
    for (i, r) in rows.enumerated() {
        let reserved = r.reserved!, present = r.supported(by: cpuid)
        // A known value first, so "unchanged" is observable.  If the MSR refuses it, both results
        // below would only be its consequences: report the setup write instead, once.
        let setup = nextOutcome(g, 3 * i, isRead: false)
        if present && setup != .written {
            t.expectEqual(setup, .written, "\(r.name): setup WRMSR(\(hex(r.write))) before the reserved value (its two results not judged)")
            _ = (nextOutcome(g, 3 * i + 1, isRead: false), nextOutcome(g, 3 * i + 2, isRead: true))
            continue
        }
        let truncates = present && readBack(r, reserved, intelCompatible: intel) != reserved
        let outcome = nextOutcome(g, 3 * i + 1, isRead: false)
        t.expectEqual(outcome, truncates ? .written : .fault("#GP"),
                          "\(r.name): WRMSR(\(hex(reserved)))" + (present ? "" : " without the feature") + (truncates ? " (AMD rule: truncated, no #GP)" : ""))
        let expected: MSROutcome = !present ? .fault("#GP") : .value(readBack(r, truncates ? reserved : r.write, intelCompatible: intel))
        t.expectEqual(nextOutcome(g, 3 * i + 2, isRead: true), expected, "\(r.name): RDMSR after it" + (truncates ? " (bits 31:0 kept)" : " (unchanged)"))
        if r.index == 0xC000_0103 && present { t.note("TSC_AUX upper bits on vendor \(cpuidVendor(cpuid)): kernel \(outcome == .written ? "truncated them" : "raised \(outcome)")") }
    }
}

/// Host-initiated writes of the reserved value: refused, and the MSR keeps the value set before.
func hostReservedCheck(_ t: CheckContext, _ method: HostWrite) throws {
    let cpuid = try vcpuCPUID(t), intel = cpuidIsIntelCompatible(cpuid)
    let g = try msrOpGuest(t, [])
    for r in msrTable where r.reserved != nil && r.hostRefusesReserved && r.supported(by: cpuid) {
        let reserved = r.reserved!, truncates = readBack(r, reserved, intelCompatible: intel) != reserved
        if let e = method.write(g.vcpu, r.index, r.other) { t.expect(false, "\(r.name): setup \(method)(\(hex(r.other)))", expected: "accepted", observed: e); continue }
        let refused = method.write(g.vcpu, r.index, reserved)
        t.expect((refused != nil) != truncates, "\(r.name): \(method)(\(hex(reserved)))",
                     expected: truncates ? "accepted, truncated (AMD rule)" : "refused", observed: refused ?? "accepted")
        t.expectEqual(hostRead(g.vcpu, r.index), .value(readBack(r, truncates ? reserved : r.other, intelCompatible: intel)),
                          "\(r.name): KVM_GET_MSRS after it")
    }
    t.note("MISC_ENABLE is not in this list: its read-only bits bind the guest only (host writes may change them)")
}

/// Upstream's vCPUs on one task: two with every feature, one with the table's features cleared.
/// vCPU0 and vCPU1 write different values, vCPU2 only reads; each must see only its own state.
/// (Three one-vCPU VMs: kvmcheck's Guest has one vCPU; KVM's vcpu_load/vcpu_put switch is the same.)
func threeVCPUCheck(_ t: CheckContext) throws {
    let full = try vcpuCPUID(t), cleared = try vcpuCPUID(t, clearing: clearableFeatures), intel = cpuidIsIntelCompatible(full)
    let rows = msrTable.filter { $0.supported(by: full) }
    let v0 = try msrOpGuest(t, rows.flatMap { [.write($0.index, $0.write), .read($0.index)] })
    let v1 = try msrOpGuest(t, rows.flatMap { [.write($0.index, $0.other), .read($0.index)] })
    let v2 = try msrOpGuest(t, rows.map { .read($0.index) }, clearing: clearableFeatures)
    for (i, r) in rows.enumerated() {
        t.expectEqual(nextOutcome(v0, 2 * i, isRead: false), .written, "\(r.name): vCPU0 WRMSR")
        t.expectEqual(nextOutcome(v1, 2 * i, isRead: false), .written, "\(r.name): vCPU1 WRMSR")
        let v2Expected: MSROutcome = r.supported(by: cleared) ? .value(r.reset) : .fault("#GP")
        t.expectEqual(nextOutcome(v2, i, isRead: true), v2Expected, "\(r.name): vCPU2 (features cleared) RDMSR")
        t.expectEqual(nextOutcome(v0, 2 * i + 1, isRead: true), .value(readBack(r, r.write, intelCompatible: intel)), "\(r.name): vCPU0 RDMSR")
        t.expectEqual(nextOutcome(v1, 2 * i + 1, isRead: true), .value(readBack(r, r.other, intelCompatible: intel)), "\(r.name): vCPU1 RDMSR")
    }
}
