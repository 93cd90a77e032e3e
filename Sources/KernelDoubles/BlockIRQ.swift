import CKVM
import Glibc

// guestdbg-blockirq: KVM_GUESTDBG_BLOCKIRQ (suites blockirq, debug-regs).

let blockIRQBit = UInt32(KVM_GUESTDBG_BLOCKIRQ)

extension KernelDoubles {
    static let blockIRQ: [KernelDouble] = [
        .mutant(.blockirqIgnored, "KVM_GUESTDBG_BLOCKIRQ accepted but ignored: IRQs are injected while stepping") { call, forward in
            // SAFETY: a KVM_SET_GUEST_DEBUG argument is the caller's struct kvm_guest_debug, valid and unshared for this ioctl.
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self) { dbg.pointee.control &= ~blockIRQBit }
            return forward(call)
        },
        .mutant(.blockirqRejected, "KVM_SET_GUEST_DEBUG refuses BLOCKIRQ with EINVAL although GUEST_DEBUG2 advertises it") { call, forward in
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self),
               dbg.pointee.control & blockIRQBit != 0 { return -Int(EINVAL) }
            return forward(call)
        },
        .mutant(.blockirqForced, "KVM_SET_GUEST_DEBUG blocks interrupts (BLOCKIRQ) whenever debugging is enabled, asked or not") { call, forward in
            // SAFETY: the same caller's kvm_guest_debug; control is edited in place before the real ioctl reads it.
            if call.request == CKVM_REQ_SET_GUEST_DEBUG, let dbg = call.arg(as: kvm_guest_debug.self),
               dbg.pointee.control & UInt32(KVM_GUESTDBG_ENABLE) != 0 { dbg.pointee.control |= blockIRQBit }
            return forward(call)
        },
        .mutant(.lapicIRRDropped, "KVM_SET_LAPIC drops the pending interrupts (IRR) userspace set") { call, forward in
            if call.request == kvmSetLAPIC, let page = call.arg {
                // SAFETY: KVM_SET_LAPIC's argument is the 1 KiB APIC register page; IRR is at 0x200..0x270.
                for i in 0..<8 { (page + 0x200 + 0x10 * i).storeBytes(of: UInt32(0), as: UInt32.self) }
            }
            return forward(call)
        },
    ]
}
