import CheckKit
import GuestKit
import KVMKit
import X86Asm
import Glibc

// Hidden suite ("_" prefix) that misbehaves on purpose, so the harness's own tests can show
// that hangs, crashes and triple faults become one clear result and the run goes on.
// Visible only with KVMCHECK_HARNESS_SELFTEST=1.

@section("kvmcheck_suites") @used
let harnessSelftestEntry: SuiteEntryPoint = { registerSuite(harnessSelftestSuite) }

let harnessSelftestSuite = Suite(
    "_harness", summary: "checks that misbehave on purpose (harness tests only)", series: "none", checks: [
        Check("passes", uapi: []) { _ in },
        Check("guest_spins_forever", uapi: ["KVM_RUN"]) { t in
            var options = GuestOptions()
            options.watchdogMilliseconds = 60_000 // longer than any test timeout: the runner must kill us
            let g = try t.guest(options) { a in a.label("spin"); a.jmp(short: "spin") }
            _ = try g.next()
        },
        Check("guest_spins_until_watchdog", uapi: ["KVM_RUN"]) { t in
            var options = GuestOptions()
            options.watchdogMilliseconds = 300
            let g = try t.guest(options) { a in a.label("spin"); a.jmp(short: "spin") }
            _ = try g.next()
        },
        Check("child_crashes", uapi: []) { _ in
            let values: [Int] = []
            _ = values[1] // traps: the runner must report a crash, not lose the run
        },
        Check("guest_triple_faults", uapi: ["KVM_RUN"]) { t in
            let g = try t.guest { a in
                a.mov(.rax, 0)
                a.mov(.cr3, .rax) // page tables at 0: nothing mapped, every fetch faults
            }
            g.memory.fill(0, at: GuestLayout.idt, count: 4096) // no handlers either
            let event = try g.next()
            throw t.unexpected(event, expected: "a guest that keeps running")
        },
        Check("fails_with_details", uapi: []) { t in
            try t.expectEqual(UInt64(1), UInt64(2), "a value that is # not what it should be")
        },
        Check("skips", uapi: []) { _ in throw Skip("KVM_CAP_NOTHING (0) absent") },
        Check("informational_finding", uapi: [], informational: true) { _ in
            throw Failure("records a behaviour on purpose", expected: "0x1", observed: "0x2")
        },
        // Host-setting restore paths, on a stand-in file named by KVMCHECK_HARNESS_SETTING.
        Check("host_setting_changed_then_passes", uapi: [], exclusive: true) { t in try harnessSetting(t).set("1") },
        Check("host_setting_changed_then_fails", uapi: [], exclusive: true) { t in
            try harnessSetting(t).set("1")
            throw Failure("failing on purpose after changing the setting")
        },
        Check("host_setting_changed_then_hangs", uapi: [], exclusive: true) { t in
            try harnessSetting(t).set("1")
            while true { sleep(60) } // the runner's deadline kills us
        },
        Check("host_setting_changed_then_crashes", uapi: [], exclusive: true) { t in
            try harnessSetting(t).set("1")
            let values: [Int] = []
            _ = values[1]
        },
    ])

func harnessSetting(_ t: CheckContext) throws -> HostSetting {
    guard let path = environment("KVMCHECK_HARNESS_SETTING") else { throw Skip("KVMCHECK_HARNESS_SETTING not set") }
    return try t.hostSetting(path)
}
