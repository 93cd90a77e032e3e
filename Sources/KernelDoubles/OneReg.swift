import CKVM
import Glibc

// one-reg: KVM_GET/SET_ONE_REG and KVM_GET_REG_LIST on x86.

private let guestSSP = ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP))

extension KernelDoubles {
    static let oneRegMutants: [KernelDouble] = [
        .mutant(.oneRegWrongMSR, "KVM_GET_ONE_REG for an MSR returns its neighbour's value (index ^ 1)") { call, forward in
            // SAFETY: a KVM_GET_ONE_REG argument is the caller's struct kvm_one_reg, valid for this ioctl; it is copied, not kept.
            if call.request == CKVM_REQ_GET_ONE_REG, let reg = call.arg(as: kvm_one_reg.self),
               reg.pointee.id >> 32 == ckvm_x86_reg_msr(0) >> 32 {
                var swapped = reg.pointee
                swapped.id ^= 1
                return realIoctl(call.fd, CKVM_REQ_GET_ONE_REG, &swapped)
            }
            return forward(call)
        },
        .mutant(.oneRegBadIDAccepted, "KVM_{GET,SET}_ONE_REG succeed (as a no-op) for ids they should reject") { call, forward in
            let r = forward(call)
            return call.isOneReg && (r == -Int(EINVAL) || r == -Int(ENOENT)) ? 0 : r
        },
        .mutant(.oneRegEFAULTIgnored, "KVM_{GET,SET}_ONE_REG ignore a bad user address instead of EFAULT") { call, forward in
            let r = forward(call)
            return call.isOneReg && r == -Int(EFAULT) ? 0 : r
        },
        .mutant(.oneRegOnVMFD, "KVM_{GET,SET}_ONE_REG on a VM fd succeed instead of ENOTTY") { call, forward in
            let r = forward(call)
            return call.isOneReg && r == -Int(ENOTTY) && !FDKind.isVCPU(call.fd) ? 0 : r
        },
        .mutant(.oneRegSSPNotStored, "KVM_SET_ONE_REG(KVM_REG_GUEST_SSP) succeeds without storing the value") { call, forward in
            if oneReg(call, CKVM_REQ_SET_ONE_REG, id: guestSSP) != nil { return 0 }
            return forward(call)
        },
        .mutant(.oneRegCapHiddenOnVM, "KVM_CHECK_EXTENSION(KVM_CAP_ONE_REG) on a VM fd says 0 while the system fd says 1") { call, forward in
            let r = forward(call)
            return call.request == CKVM_REQ_CHECK_EXTENSION && call.capability == Int(KVM_CAP_ONE_REG) && FDKind.isVM(call.fd) ? 0 : r
        },
        .mutant(.regListE2BIGWithoutCount, "KVM_GET_REG_LIST(n = 0) fails with E2BIG but leaves n at 0") { call, forward in
            // SAFETY: a KVM_GET_REG_LIST argument is the caller's struct kvm_reg_list header, valid for this ioctl.
            if call.request == CKVM_REQ_GET_REG_LIST, let list = call.arg(as: kvm_reg_list.self), list.pointee.n == 0 { return -Int(E2BIG) }
            return forward(call)
        },
        .mutant(.regListListsSSP, "KVM_GET_REG_LIST lists KVM_REG_GUEST_SSP although the vCPU has no SHSTK") { call, forward in
            guard call.request == CKVM_REQ_GET_REG_LIST, let list = call.arg(as: kvm_reg_list.self) else { return forward(call) }
            // SAFETY: the caller's kvm_reg_list header; n is read and written in place, as the kernel does.
            let room = list.pointee.n
            list.pointee.n = 1
            guard room >= 1 else { return -Int(E2BIG) }
            // SAFETY: room >= 1, so the caller allocated at least one id after the header.
            (UnsafeMutableRawPointer(list) + MemoryLayout<kvm_reg_list>.size).storeBytes(of: guestSSP, as: UInt64.self)
            return 0
        },
    ]
}
