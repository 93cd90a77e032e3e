import GuestKit
import KVMKit
import X86Asm
import CheckKit

let kvm = try KVMSystem()
for cpl in GuestCPL.allCases {
    do {
        let g = try Guest(system: kvm, cpl: cpl) { a in
            a.mov(.rbx, 0x1234)
            a.ucallSync(1, .rbx)
            a.onFault(resumeAt: "after")
            a.mov(.ecx, 0x1d9)
            a.rdmsr()
            a.label("after")
            a.clearFault()
            a.ucallSync(2, .rax)
            a.int3()
            a.ucallSync(3, .rbx)
            a.ucallDone()
        }
        for _ in 0..<8 {
            let e = try g.next()
            print(cpl, e)
            if e == .done { break }
            if case .exit = e { let r = try g.vcpu.regs(); print("  rip", String(r.rip, radix:16), "rflags", String(r.rflags, radix: 16)); break }
        }
    } catch { print(cpl, "error", error) }
}
