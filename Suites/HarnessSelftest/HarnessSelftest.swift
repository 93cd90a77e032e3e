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
            try t.assertEqual(UInt64(1), UInt64(2), "a value that is # not what it should be")
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
        // The kernel log, through the file KVMCHECK_KERNEL_LOG names: "the kernel" prints while the check runs.
        Check("kernel_logs_a_line", uapi: []) { _ in
            try appendToInjectedKernelLog(["6,9001,100,-;kvm: harness line printed while the check ran"])
        },
        Check("exclusive_check_logs_a_line", uapi: [], exclusive: true) { _ in
            try appendToInjectedKernelLog(["6,9010,110,-;kvm: harness line printed while an exclusive check ran"])
        },
        Check("kernel_splats_while_passing", uapi: []) { _ in
            try appendToInjectedKernelLog([
                "4,9002,200,-;WARNING: CPU: 1 PID: 4242 at arch/x86/kvm/x86.c:1234 kvm_arch_vcpu_ioctl_run+0x5a/0x60 [kvm]",
                "4,9003,201,-;Modules linked in: kvm_pvm kvm",
                "4,9004,202,-;Call Trace:",
                "4,9005,203,-; <TASK>",
                "4,9006,204,-; kvm_vcpu_ioctl+0x2f0/0x700 [kvm]",
            ])
        },
        // A check whose evidence includes "no splat": with no readable kernel log its result says so.
        Check("judged_by_the_kernel_log", uapi: [], judgesKernelLog: true) { _ in },
        // Preconditions: one that fails, and a dependent that must be SKIP naming it.
        harnessFailingPrecondition,
        Check("depends_on_failing_precondition", uapi: [],
              preconditions: [CheckRef("_harness", harnessFailingPrecondition)]) { _ in
            throw Failure("the body ran although its precondition failed")
        },
        Check("depends_on_passing_precondition", uapi: [],
              preconditions: [CheckRef("_harness", harnessPassingPrecondition)]) { t in t.note("body ran") },
        harnessPassingPrecondition,
        Check("reports_every_sub_case", uapi: []) { t in
            for n in 0..<4 { t.expectEqual(UInt64(n), 2, "sub-case \(n)") }
            t.subCase("a sub-case that stops early") { throw Failure("stopped", expected: "x", observed: "y") }
            t.note("every sub-case ran")
        },
        // "k of n" counts sub-cases, not the comparisons inside one: 2 of 3 fail here, with 4 mismatches.
        Check("counts_sub_cases_not_comparisons", uapi: []) { t in
            for n in 0..<3 {
                t.subCase("DR\(n)") {
                    t.expectEqual(UInt64(n), 1, "DR\(n): pc")
                    t.expectEqual(UInt64(n), 1, "DR\(n): dr6")
                }
            }
        },
        Check("cannot_be_observed", uapi: []) { _ in throw Skip.cannotObserve("no positive control in the harness") },
    ])

let harnessFailingPrecondition = Check("failing_precondition", uapi: []) { t in
    try t.assertEqual(UInt64(0xBAD), 0x600D, "the behaviour a dependent relies on")
}
let harnessPassingPrecondition = Check("passing_precondition", uapi: []) { _ in }

/// Appends kmsg-format records to the file the harness's tests name in KVMCHECK_KERNEL_LOG.
private func appendToInjectedKernelLog(_ records: [String]) throws {
    guard let path = environment("KVMCHECK_KERNEL_LOG"), let f = fopen(path, "a") else {
        throw Skip("KVMCHECK_KERNEL_LOG not set or not writable")
    }
    defer { fclose(f) }
    for r in records { fputs(r + "\n", f) }
}

private func harnessSetting(_ t: CheckContext) throws -> HostSetting {
    guard let path = environment("KVMCHECK_HARNESS_SETTING") else { throw Skip("KVMCHECK_HARNESS_SETTING not set") }
    return try t.hostSetting(path)
}
