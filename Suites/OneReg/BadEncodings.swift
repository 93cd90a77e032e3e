import CheckKit
import CKVM
import KVMKit

// Each malformed ONE_REG request and the errno the uAPI (api.rst 4.68, x86.c) gives it.

private struct BadRequest: Sendable {
    let name: String
    let what: String
    let errno: Errno
    let attempt: @Sendable (VCPU) -> KVMError?
    /// The mutant that makes the kernel accept the request: each errno is its own kernel path.
    var killer: MutantID {
        switch errno {
        case .badAddress: .oneRegEFAULTIgnored
        case .inappropriateIOCTLForDevice: .oneRegOnVMFD
        default: .oneRegBadIDAccepted
        }
    }
}

private let lstarID = X86RegID.msr(0xC000_0082)

private func getError(_ id: UInt64) -> @Sendable (VCPU) -> KVMError? {
    { vcpu in
        do throws(KVMError) { _ = try vcpu.getOneReg(id); return nil } catch { return error }
    }
}

private let badRequests: [BadRequest] = [
    BadRequest(name: "size_u32_einval", what: "MSR id with KVM_REG_SIZE_U32", errno: .invalidArgument,
               attempt: getError(lstarID & ~X86RegID.sizeMask | X86RegID.sizeU32)),
    BadRequest(name: "size_u128_einval", what: "MSR id with KVM_REG_SIZE_U128", errno: .invalidArgument,
               attempt: getError(lstarID & ~X86RegID.sizeMask | UInt64(KVM_REG_SIZE_U128))),
    BadRequest(name: "unknown_type_einval", what: "type 7 (neither MSR nor KVM)", errno: .invalidArgument,
               attempt: getError(lstarID & ~(0xFF << 32) | (7 << 32))),
    BadRequest(name: "reserved_bits_40_47_einval", what: "rsvd1 (bit 40) set", errno: .invalidArgument,
               attempt: getError(lstarID | 1 << 40)),
    BadRequest(name: "reserved_bits_48_51_einval", what: "rsvd2 (bit 48) set", errno: .invalidArgument,
               attempt: getError(lstarID | 1 << 48)),
    BadRequest(name: "wrong_arch_einval", what: "KVM_REG_ARM64 arch byte", errno: .invalidArgument,
               attempt: getError(lstarID & ~X86RegID.archMask | X86RegID.archARM64)),
    BadRequest(name: "unknown_msr_einval", what: "MSR 0xc0de0001 (no such MSR)", errno: .invalidArgument,
               attempt: getError(X86RegID.msr(0xC0DE_0001))),
    BadRequest(name: "unknown_kvm_register_einval", what: "KVM-defined register index 0x10", errno: .invalidArgument,
               attempt: getError(X86RegID.kvm(0x10) | X86RegID.sizeU64)),
    BadRequest(name: "null_address_get_efault", what: "KVM_GET_ONE_REG with addr = NULL", errno: .badAddress,
               attempt: { $0.tryGetOneReg(lstarID, userAddress: 0).error }),
    BadRequest(name: "null_address_set_efault", what: "KVM_SET_ONE_REG with addr = NULL", errno: .badAddress,
               attempt: { $0.trySetOneReg(lstarID, userAddress: 0).error }),
    BadRequest(name: "vm_fd_enotty", what: "KVM_GET_ONE_REG on the VM fd instead of a vCPU fd", errno: .inappropriateIOCTLForDevice,
               attempt: { $0.vm.tryGetOneReg(lstarID).error }),
]

let badEncodingChecks: [Check] = badRequests.map { bad in
    Check(bad.name, uapi: ["KVM_GET_ONE_REG", "KVM_SET_ONE_REG"], requires: [oneRegCap], killedBy: [bad.killer]) { t in
        let vcpu = try t.system.createVM().createVCPU()
        // Control: the well-formed request works, so the error below is about the encoding.
        _ = try vcpu.getOneReg(lstarID)
        let error = bad.attempt(vcpu)
        try t.assert(error?.errno == bad.errno, "\(bad.what)", expected: "-1 \(bad.errno.symbolicName)",
                     observed: error.map { "-1 \($0.errno?.symbolicName ?? "\($0)")" } ?? "success")
    }
}

let oneRegFeatures: [Feature] = [
    Feature("KVM_{GET,SET}_ONE_REG (x86 MSRs)", advertisement: "KVM_CAP_ONE_REG",
            advertised: { kvm, _ in ((try? kvm.checkExtension(.oneReg)) ?? 0) != 0 },
            decidedBy: [CheckRef("one-reg", oneRegReadsEqualGetMSRsCheck), CheckRef("one-reg", setOneRegSeenCheck),
                        CheckRef("one-reg", setOneRegNoncanonicalCheck)], levels: [.cpl0]),
    Feature("KVM_GET_REG_LIST (x86)", advertisement: "KVM_CAP_ONE_REG",
            advertised: { kvm, _ in ((try? kvm.checkExtension(.oneReg)) ?? 0) != 0 },
            decidedBy: [CheckRef("one-reg", guestSSPAbsentCheck), CheckRef("one-reg", regListE2BIGCheck),
                        CheckRef("one-reg", regListEntriesReadableCheck)]),
    Feature("KVM_REG_GUEST_SSP", advertisement: "SHSTK in KVM_GET_SUPPORTED_CPUID",
            advertised: { kvm, _ in (try? kvm.supportedCPUID()).map { CPUIDFeature.shadowStack.isSet(in: $0) } },
            decidedBy: [CheckRef("one-reg", guestSSPRoundTripCheck), CheckRef("one-reg", guestSSPAbsentCheck)]),
]
