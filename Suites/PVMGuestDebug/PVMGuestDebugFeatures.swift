import CheckKit
import GuestKit
import KVMKit

// `kvmcheck caps` rows for seed 002: no capability advertises these (they are architectural),
// so the row is the CPL0 probe alone.

let pvmGuestDebugFeatures: [Feature] = [
    Feature("guest-owned DR7 (#DB to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil }) { kvm, _ in
        probeGuest(kvm, { a in
            a.movabs(.rax, label: "bp")
            a.mov(.dr0, .rax)
            a.mov(.rax, Int64(DR7.fixed | DR7.arming(0, .execute)))
            a.mov(.dr7, .rax)
            a.label("bp"); a.nop()
            a.ucallDone()
        }) { g in
            let event = try g.next()
            guard case .exception(let e) = event, e.vector == 1 else { return .misbehaves("guest DR0 breakpoint gave \(event)") }
            return e.rip == g.address("bp") && e.dr6 == DR6.reporting(breakpoints: [0]).rawValue
                ? .works("CPL0 guest's DR0 breakpoint: #DB in its handler, DR6.B0")
                : .misbehaves("guest #DB at 0x\(String(e.rip, radix: 16)) with DR6 \(e.dr6.map { "\(DR6($0))" } ?? "unread")")
        }
    },
    Feature("guest int3 (#BP to the guest)", advertisement: "architectural (no capability)",
            advertised: { _, _ in nil }) { kvm, _ in
        probeGuest(kvm, { a in a.int3(); a.ucallDone() }) { g in
            let event = try g.next()
            guard case .exception(let e) = event, e.vector == 3 else { return .misbehaves("CPL0 int3 gave \(event)") }
            return .works("CPL0 int3: #BP in the guest's handler (rip 0x\(String(e.rip, radix: 16)))")
        }
    },
]
