import Foundation
import KVMKit
import Testing

/// The quick entry of ci/kernel-matrix: Debian 6.12 booted under QEMU TCG (nested SVM, kvm_amd),
/// kvmcheck run inside, TAP and verdicts brought back.  It asserts the transport, and that the
/// column is green against ci/expectations/kvm_amd-6.12-qemu.txt: its verdicts were the same in
/// repeated runs, so a FAIL or XPASS there means a check or the expectations went stale (the
/// other columns are `ci/kernel-matrix`'s, not the tests').  The Bochs (kvm_intel) columns take
/// minutes per boot and stay out of the tests: run `ci/kernel-matrix`.  The boot is the slow
/// tier (about 100 s alone on this machine): plain `swift test` skips it, and `scripts/test`
/// (what CI runs) runs it afterwards with KVMCHECK_SLOW_TESTS=1.  Needs /dev/kvm for the host
/// column and root for apt.
@Suite(.enabled(if: kvmUsable && getuid() == 0 && ProcessInfo.processInfo.environment["KVMCHECK_SLOW_TESTS"] == "1",
                "the slow tier (a QEMU boot): scripts/test runs it with KVMCHECK_SLOW_TESTS=1; needs /dev/kvm and root (apt installs qemu)"))
struct KernelMatrixTests {
    @Test func quickMatrixBootsDebian612AndBringsBackVerdictsAndTAP() throws {
        let out = NSTemporaryDirectory() + "kvmcheck-matrix-\(UUID().uuidString)"
        // The boot's initramfs, logs and reports (10-100 MB a run) go once the matrix is green;
        // otherwise they stay for the developer, and the messages name the directory.
        var green = false
        defer { if green { try? FileManager.default.removeItem(atPath: out) } }
        let script = repositoryRoot.appendingPathComponent("ci/kernel-matrix").path
        let r = try runProcess("/bin/bash", [script, "--quick", "--out", out])
        green = r.status == 0
        if !green { print("KernelMatrixTests: the boot's files are kept in \(out)") }
        #expect([0, 1, 5].contains(r.status), "0 green, 1 a change against the expectations, 5 a boot gave no verdict: \(r.stderr.suffix(2000))")
        let header = try #require(r.lines.first { $0.hasPrefix("check") })
        #expect(header.contains("host") && header.contains("6.12-kvm_amd-qemu"), "\(header)")
        #expect(r.lines.contains { $0.hasPrefix("# 6.12-kvm_amd-qemu = Debian linux-image-6.12") && $0.contains("kvm_amd") },
                "the legend names the image and the backend")
        #expect(r.lines.contains { $0.hasPrefix("sync-regs/synced_regs_equal_get_regs/cpl0") }, "a row per check")
        #expect(r.lines.contains { $0.hasPrefix("# 6.12-kvm_amd-qemu: ") && $0.contains("min") && $0.contains("backend reported kvm_amd") },
                "a summary line with the minutes and the backend the guest reported")
        let status = try String(contentsOfFile: "\(out)/6.12-kvm_amd-qemu.status", encoding: .utf8)
        #expect(status.contains("boot all: ") && status.contains("kvmcheck exit"), "the guest's verdict came back: \(status)")
        for line in status.split(separator: "\n") where line.hasPrefix("boot ") {
            #expect(line.contains("kvmcheck exit") || line.contains("no verdict"), "each boot says what happened: \(String(line))")
        }
        // Green against its expectations file: name every check that failed or passed unexpectedly.
        let results = try Data(contentsOf: URL(fileURLWithPath: "\(out)/6.12-kvm_amd-qemu/all/results.json"))
        let checks = try #require((try JSONSerialization.jsonObject(with: results) as? [String: Any])?["checks"] as? [[String: Any]])
        let unexpected = checks.compactMap { c -> String? in
            let status = c["status"] as? String ?? "?"
            return ["pass", "skip", "xfail", "informational"].contains(status) ? nil : "\(c["id"] as? String ?? "?") \(status)"
        }
        #expect(!checks.isEmpty && unexpected.isEmpty,
                "6.12-kvm_amd-qemu is not green against ci/expectations/kvm_amd-6.12-qemu.txt (fix the check, or list it with its cause): \(unexpected)")
        #expect(r.lines.contains { $0.hasPrefix("# 6.12-kvm_amd-qemu: green:") }, "the column's summary says green")
        if TapPy.available {
            let tap = try String(contentsOfFile: "\(out)/6.12-kvm_amd-qemu/all/tap.txt", encoding: .utf8)
            #expect(try TapPy.problems(in: tap) == nil, "TAP from the guest's serial port parses")
        }
    }
}

/// Which vendor module serves /dev/kvm, read from a fake /proc and /sys tree.  With KVM built
/// in, kvm_intel and kvm_amd both sit in /sys/module (for their parameters): the header must
/// name the one that registered, or the VMX-only debugctl rules skip on kvm_intel.
@Suite struct ServingBackendTests {
    /// A fake root: cpuinfo with these flags, and /sys/module/<name> for each module, with
    /// `initstate` for a loadable one (nil: built in).
    func host(flags: String, modules: [String: String?]) throws -> HostInfo {
        let root = NSTemporaryDirectory() + "kvmcheck-hostinfo-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/proc/sys/kernel", withIntermediateDirectories: true)
        try "6.18.15-test\n".write(toFile: root + "/proc/sys/kernel/osrelease", atomically: true, encoding: .utf8)
        try "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu \(flags) lm\nvmx flags\t: ept vpid\n"
            .write(toFile: root + "/proc/cpuinfo", atomically: true, encoding: .utf8)
        for (name, initstate) in modules {
            try fm.createDirectory(atPath: root + "/sys/module/\(name)/parameters", withIntermediateDirectories: true)
            if let initstate { try "\(initstate)\n".write(toFile: root + "/sys/module/\(name)/initstate", atomically: true, encoding: .utf8) }
        }
        return HostInfo.current(root: root)
    }

    @Test func builtInVendorModulesResolveToTheOneTheCPUSupports() throws {
        #expect(try host(flags: "vmx msr", modules: ["kvm_intel": nil, "kvm_amd": nil]).kvmFlavour == "kvm_intel")
        #expect(try host(flags: "svm msr", modules: ["kvm_intel": nil, "kvm_amd": nil]).kvmFlavour == "kvm_amd")
    }

    @Test func aLoadedModuleWinsOverBuiltInOnes() throws {
        #expect(try host(flags: "vmx", modules: ["kvm_intel": nil, "kvm_amd": nil, "kvm_pvm": "live"]).kvmFlavour == "kvm_pvm")
        #expect(try host(flags: "svm", modules: ["kvm_amd": "live"]).kvmFlavour == "kvm_amd")
    }

    @Test func aSingleModuleIsThatModule() throws {
        #expect(try host(flags: "msr", modules: ["kvm_pvm": nil]).kvmFlavour == "kvm_pvm")
        #expect(try host(flags: "msr", modules: [:]).kvmFlavour == "unknown")
    }

    @Test func anUnresolvableSetIsShownNotGuessed() throws {
        // Built-in vendor modules and a CPU with neither extension: which one serves is unknown.
        let flavour = try host(flags: "msr", modules: ["kvm_intel": nil, "kvm_amd": nil]).kvmFlavour
        #expect(flavour == "kvm_intel+kvm_amd")
        // "vmx flags" (a separate cpuinfo line) is not the flags line.
        #expect(try host(flags: "msr", modules: ["kvm_intel": nil, "kvm_amd": nil]).cpuVendor == "GenuineIntel")
    }
}

/// ci/lib/matrix-table.py over a fake matrix: cells, per-column summary lines, --differ and
/// the exit status the matrix reports (green, RED, NO VERDICT).
@Suite struct MatrixTableTests {
    func json(_ checks: [(String, String)], flavour: String) -> String {
        let items = checks.map { "{\"id\": \"\($0.0)\", \"status\": \"\($0.1)\"}" }.joined(separator: ", ")
        return "{\"kvmFlavour\": \"\(flavour)\", \"checks\": [\(items)]}"
    }

    func matrix(_ columns: [(id: String, checks: [(String, String)], boot: String)]) throws -> String {
        let out = NSTemporaryDirectory() + "kvmcheck-table-\(UUID().uuidString)"
        for c in columns {
            try FileManager.default.createDirectory(atPath: "\(out)/\(c.id)/all", withIntermediateDirectories: true)
            try json(c.checks, flavour: "kvm_x").write(toFile: "\(out)/\(c.id)/all/results.json", atomically: true, encoding: .utf8)
            try "label: kernel \(c.id)\nboot all: \(c.boot)\nminutes: 2.5\n".write(toFile: "\(out)/\(c.id).status", atomically: true, encoding: .utf8)
        }
        return out
    }

    var script: String { repositoryRoot.appendingPathComponent("ci/lib/matrix-table.py").path }

    @Test func greenWhenEveryBootMatchedItsExpectations() throws {
        let out = try matrix([("a", [("s/one", "pass"), ("s/two", "xfail")], "initramfs 1s, kvmcheck exit 0"),
                              ("b", [("s/one", "pass"), ("s/two", "pass")], "initramfs 1s, kvmcheck exit 0")])
        let r = try runProcess("/usr/bin/python3", [script, out, "a", "b"])
        #expect(r.status == 0)
        #expect(r.lines.contains { $0.hasPrefix("# a = kernel a") }, "the legend names each column")
        #expect(r.lines.contains { $0.hasPrefix("s/two") && $0.contains("xfail") && $0.contains("ok") })
        #expect(r.lines.contains { $0.hasPrefix("# a: green: 1 ok, 0 FAIL, 1 xfail, 0 skip") && $0.contains("2.5 min") }, "\(r.lines)")
        let differ = try runProcess("/usr/bin/python3", [script, "--differ", out, "a", "b"])
        #expect(differ.lines.contains { $0.hasPrefix("s/two") } && !differ.lines.contains { $0.hasPrefix("s/one") })
    }

    @Test func anUnexpectedFailureIsRedAndAMissingVerdictWinsOverIt() throws {
        let red = try matrix([("a", [("s/one", "fail")], "kvmcheck exit 1")])
        #expect(try runProcess("/usr/bin/python3", [script, red, "a"]).status == 1)
        let none = try matrix([("a", [("s/one", "fail")], "kvmcheck exit 1"),
                               ("b", [], "no verdict: the guest kernel panicked after 0 results")])
        let r = try runProcess("/usr/bin/python3", [script, none, "a", "b"])
        #expect(r.status == 5)
        #expect(r.lines.contains { $0.hasPrefix("# b: NO VERDICT") && $0.contains("1 not reported") })
    }

    /// Bochs' serial port can put a stray 0x1f before the JSON; when the JSON is unreadable the TAP
    /// decides, where kvmcheck marks an expected failure `# XFAIL` (an `ok` line, yet no pass).
    @Test func aStrayByteBeforeTheJSONAndAnXFAILInTheTAPAreReadAsExpectedFailures() throws {
        let out = try matrix([("a", [("s/one", "pass"), ("s/two", "xfail")], "kvmcheck exit 0")])
        let path = "\(out)/a/all/results.json"
        try ("\u{1f}" + String(contentsOfFile: path, encoding: .utf8)).write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runProcess("/usr/bin/python3", [script, out, "a"])
        #expect(r.lines.contains { $0.hasPrefix("# a: green: 1 ok, 0 FAIL, 1 xfail") && $0.contains("backend reported kvm_x") }, "\(r.lines)")
        try "{\"checks\": [".write(toFile: path, atomically: true, encoding: .utf8) // the boot died mid-JSON
        try "# Subtest: s\n    1..2\n    ok 1 - one\n    ok 2 - two # XFAIL known\nok 1 - s\n"
            .write(toFile: "\(out)/a/all/tap.txt", atomically: true, encoding: .utf8)
        let tap = try runProcess("/usr/bin/python3", [script, out, "a"])
        #expect(tap.lines.contains { $0.hasPrefix("# a: green: 1 ok, 0 FAIL, 1 xfail") }, "\(tap.lines)")
    }
}
