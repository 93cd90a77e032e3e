import CKVM
import KVMKit
import Testing

/// kvm_nested_state / vmcs12 as bytes: the offsets are ABI (vmcs12.h CHECK_OFFSET, api.rst), no KVM needed.
struct NestedStateTests {
    @Test func vmcs12FieldsLandAtTheirABIOffsetsLittleEndian() {
        var v = VMCS12()
        #expect(Array(v.bytes[0..<4]) == [0xd0, 0x7e, 0xe5, 0x11], "revision id 0x11e57ed0 first")
        v[.guestIA32DebugCtl] = 0x0807_0605_0403_0201
        v[.exitControls] = 0xAABB_CCDD
        v[.hostTRSelector] = 0x1234
        #expect(Array(v.bytes[184..<192]) == [1, 2, 3, 4, 5, 6, 7, 8], "guest_ia32_debugctl at 184")
        #expect(Array(v.bytes[768..<772]) == [0xDD, 0xCC, 0xBB, 0xAA], "vm_exit_controls at 768")
        #expect(Array(v.bytes[994..<996]) == [0x34, 0x12], "host_tr_selector at 994")
        #expect(v.bytes.count == 4096 && v.bytes.enumerated().filter { $0.element != 0 }.count == 4 + 8 + 4 + 2, "nothing else written")
        #expect(v[.guestIA32DebugCtl] == 0x0807_0605_0403_0201 && v[.exitControls] == 0xAABB_CCDD && v[.hostTRSelector] == 0x1234)
    }

    @Test func nestedStateHeaderEncodesAndDecodes() throws {
        var v = VMCS12()
        v[.guestIA32DebugCtl] = 0x5EED
        let state = VMXNestedState(flags: VMXNestedState.guestMode, vmxonAddress: 0x100000, vmcs12Address: 0x101000, vmcs12: v)
        let bytes = state.bytes
        #expect(bytes.count == 128 + 4096)
        #expect(Array(bytes[0..<8]) == [1, 0, 0, 0, 0x80, 0x10, 0, 0], "flags GUEST_MODE, format VMX (0), size 4224")
        #expect(Array(bytes[8..<24]) == [0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x10, 0x10, 0, 0, 0, 0, 0], "vmxon_pa, vmcs12_pa")
        #expect(VMXNestedState(bytes: bytes + [UInt8](repeating: 0xFF, count: 4096)) == state, "decoding stops at the size field")
        let bare = VMXNestedState(flags: 0, vmxonAddress: VMXNestedState.invalidAddress, vmcs12Address: VMXNestedState.invalidAddress, vmcs12: nil)
        #expect(bare.bytes.count == 128 && VMXNestedState(bytes: bare.bytes) == bare)
        var svm = bytes
        svm[2] = 1
        #expect(VMXNestedState(bytes: svm) == nil, "SVM format is not read as VMX")
    }

    @Test func allowedControlsAddWhatIsWantedOnlyWhereAllowed() {
        let c = VMXAllowedControls(msr: 0x0000_0206_0000_0002) // must be 1: bit 1; may be 1: bits 1, 2, 9
        #expect(c.minimal(with: 1 << 9 | 1 << 2) == 0x206)
        #expect(c.minimal(with: 1 << 3) == nil)
        #expect(c.mayBeZero(1 << 2) && !c.mayBeZero(1 << 1))
    }
}
