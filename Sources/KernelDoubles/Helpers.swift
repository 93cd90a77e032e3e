import CKVM
import Glibc

// Helpers for writing doubles: what several series' mutants share.

/// Requests that only read vCPU state: a double may make them on the side without changing anything.
private let readOnlyRequests: Set<UInt> = [CKVM_REQ_GET_REGS, CKVM_REQ_GET_SREGS, CKVM_REQ_GET_VCPU_EVENTS,
                                           CKVM_REQ_GET_DEBUGREGS, CKVM_REQ_GET_ONE_REG, CKVM_REQ_GET_MSRS]

/// Runs the real ioctl with a value of T (for doubles that consult or set the kernel themselves).
func realIoctl<T>(_ fd: CInt, _ request: UInt, _ value: inout T) -> Int {
    if !readOnlyRequests.contains(request) { ActionTrace.sideWrites += 1 }
    // SAFETY: `value` is the struct `request` expects, alive for the call.
    return withUnsafeMutablePointer(to: &value) { ckvm_real_ioctl(fd, request, UnsafeMutableRawPointer($0)) }
}

/// Visits the entries of a struct kvm_msrs argument (KVM_GET_MSRS / KVM_SET_MSRS).
func forEachMSR(_ call: IoctlCall, limit: Int = .max, _ body: (UInt32, UnsafeMutablePointer<UInt64>) -> Void) {
    guard let msrs = call.arg(as: kvm_msrs.self) else { return }
    // SAFETY: the caller allocated nmsrs entries after the header (that is the ioctl's contract).
    let base = UnsafeMutableRawPointer(msrs) + MemoryLayout<kvm_msrs>.size
    for i in 0..<min(Int(msrs.pointee.nmsrs), limit) {
        let entry = (base + i * MemoryLayout<kvm_msr_entry>.stride).assumingMemoryBound(to: kvm_msr_entry.self)
        withUnsafeMutablePointer(to: &entry.pointee.data) { body(entry.pointee.index, $0) }
    }
}

/// Whether a KVM_SET_MSRS / KVM_GET_MSRS argument names `index`.
func namesMSR(_ call: IoctlCall, _ index: UInt32) -> Bool {
    var hit = false
    forEachMSR(call) { i, _ in if i == index { hit = true } }
    return hit
}

/// KVM_SET_MSRS of one MSR straight to the kernel (for doubles that plant state).
func setOneMSR(_ fd: CInt, _ index: UInt32, _ value: UInt64) {
    let size = MemoryLayout<kvm_msrs>.size + MemoryLayout<kvm_msr_entry>.stride
    // SAFETY: a zeroed buffer sized for the header and one entry, freed on return.
    let raw = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 8)
    defer { raw.deallocate() }
    raw.initializeMemory(as: UInt8.self, repeating: 0, count: size)
    raw.assumingMemoryBound(to: kvm_msrs.self).pointee.nmsrs = 1
    let entry = (raw + MemoryLayout<kvm_msrs>.size).assumingMemoryBound(to: kvm_msr_entry.self)
    entry.pointee.index = index
    entry.pointee.data = value
    ActionTrace.sideWrites += 1
    _ = ckvm_real_ioctl(fd, CKVM_REQ_SET_MSRS, raw)
}

// SAFETY: with request checked, arg is the caller's struct kvm_one_reg; for a 64-bit id, addr is the caller's UInt64
// (what the ioctl reads or fills), valid while the call runs.
/// A KVM_GET_ONE_REG / KVM_SET_ONE_REG call for register `id`: its argument, and the 64-bit
/// value it points at (nil when the address is null).
func oneReg(_ call: IoctlCall, _ request: UInt, id: UInt64) -> (reg: UnsafeMutablePointer<kvm_one_reg>,
                                                                 value: UnsafeMutablePointer<UInt64>?)? {
    guard call.request == request, let reg = call.arg(as: kvm_one_reg.self), reg.pointee.id == id else { return nil }
    // SAFETY: the id names a 64-bit register, so addr points at a UInt64 the caller owns.
    return (reg, UnsafeMutablePointer<UInt64>(bitPattern: UInt(reg.pointee.addr)))
}

extension IoctlCall {
    var isOneReg: Bool { request == CKVM_REQ_GET_ONE_REG || request == CKVM_REQ_SET_ONE_REG }
}
