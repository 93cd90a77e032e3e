import CKVM
import Glibc

// msrs: MSR access from the host (KVM_GET/SET_MSRS, ONE_REG, the index list) and the guest.

private let sysenterESP: UInt32 = 0x175, sysenterEIP: UInt32 = 0x176, miscEnable: UInt32 = 0x1A0

extension KernelDoubles {
    static let msrMutants: [KernelDouble] = [
        .mutant(.msrHostWriteDropped, "KVM_SET_MSRS / KVM_SET_ONE_REG of SYSENTER_ESP report success but store nothing") { call, forward in
            if call.request == CKVM_REQ_SET_MSRS, let msrs = call.arg(as: kvm_msrs.self), namesMSR(call, sysenterESP) {
                // SAFETY: a KVM_SET_MSRS argument is the caller's struct kvm_msrs; nmsrs is its header field.
                return Int(msrs.pointee.nmsrs)
            }
            if oneReg(call, CKVM_REQ_SET_ONE_REG, id: ckvm_x86_reg_msr(sysenterESP)) != nil { return 0 }
            return forward(call)
        },
        .mutant(.msrStaleAtFirstRun, "a vCPU starts with SYSENTER_EIP = 0x5eed5000 (a stale value) instead of its reset value 0") { call, forward in
            if call.isRun {
                let key = "first-run@\(call.fd)"
                if DoubleState.counters[key] == nil { DoubleState.counters[key] = 1; setOneMSR(call.fd, sysenterEIP, 0x5EED_5000) }
            }
            return forward(call)
        },
        .mutant(.msrIndexListDropsMiscEnable, "KVM_GET_MSR_INDEX_LIST leaves out MISC_ENABLE, which KVM always emulates") { call, forward in
            let r = forward(call)
            guard call.request == CKVM_REQ_GET_MSR_INDEX_LIST, r >= 0, let list = call.arg(as: kvm_msr_list.self) else { return r }
            // SAFETY: after a successful call, nmsrs indices follow the header.
            let indices = (UnsafeMutableRawPointer(list) + MemoryLayout<kvm_msr_list>.size).assumingMemoryBound(to: UInt32.self)
            let kept = (0..<Int(list.pointee.nmsrs)).map { indices[$0] }.filter { $0 != miscEnable }
            for (i, v) in kept.enumerated() { indices[i] = v }
            list.pointee.nmsrs = UInt32(kept.count)
            return r
        },
        .mutant(.msrNoncanonicalAcceptedFromHost, "KVM_SET_MSRS reports success for non-canonical FS/GS/KERNEL_GS_BASE, LSTAR, CSTAR, PLn_SSP values (storing nothing)") { call, forward in
            guard call.request == CKVM_REQ_SET_MSRS, let msrs = call.arg(as: kvm_msrs.self) else { return forward(call) }
            var hit = false
            forEachMSR(call) { index, data in
                // SAFETY: data lies in the caller's kvm_msrs entries (forEachMSR); msrs is that struct's header.
                let addressMSR = [0xC000_0100, 0xC000_0101, 0xC000_0102, 0xC000_0082, 0xC000_0083].contains(index) || (0x6A4...0x6A7).contains(index)
                let v = Int64(bitPattern: data.pointee)
                if addressMSR && (v << 16) >> 16 != v { hit = true }
            }
            return hit ? Int(msrs.pointee.nmsrs) : forward(call)
        },
        .mutant(.guestSSPResetNonzero, "KVM_GET_ONE_REG(KVM_REG_GUEST_SSP) on a fresh vCPU returns 0x7fff0ff8 instead of 0") { call, forward in
            let r = forward(call)
            // SAFETY: oneReg matched the 64-bit KVM_REG_GUEST_SSP, so value is the caller's UInt64, just filled by the kernel.
            if r >= 0, let (_, value) = oneReg(call, CKVM_REQ_GET_ONE_REG, id: ckvm_x86_reg_kvm(UInt32(KVM_REG_GUEST_SSP))),
               let value, value.pointee == 0 {
                value.pointee = 0x7FFF_0FF8
            }
            return r
        },
    ]
}
