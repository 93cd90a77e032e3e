import CheckKit
import Reporting
import SeriesPlan
import KVMKit
import SystemPackage
import Foundation
import Testing

// Issue 12's runtime defects, one test each: restore records, concurrent runs, signals and
// orphans, report writes, closed descriptors, devices that are not KVM, option values.

/// Restore records are a security boundary: only a known setting, only from a safe directory.
@Suite(.serialized) struct RestoreRecordSecurityTests {
    /// Defect 1: a record naming any other file (the victim's ~/.bashrc) used to be written.
    @Test func aRecordNamingAnUnknownFileIsLeftAloneAndReportedOnce() throws {
        let s = try StandIn(value: "1")
        let victim = s.dir + "/bashrc"
        try "echo hello\n".write(toFile: victim, atomically: false, encoding: .utf8)
        try s.configured {
            try s.makeRecordDirectory()
            try record(name: "freeze_on_smi", path: victim, original: "pwned").write(toFile: s.records + "/freeze_on_smi.restore", atomically: false, encoding: .utf8)
            try record(name: "bashrc", path: victim, original: "pwned").write(toFile: s.records + "/bashrc.restore", atomically: false, encoding: .utf8)
            try "\(victim)\npwned\n1\n".write(toFile: s.records + "/old_format.restore", atomically: false, encoding: .utf8)
            let first = HostRestore.applyOrphaned()
            #expect(first.count == 3 && first.allSatisfy { $0.contains("left alone") }, "\(first)")
            #expect(HostRestore.applyOrphaned().isEmpty, "each problem record is reported once")
        }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "echo hello\n")
        #expect(s.value == "1", "the known setting was not written with a value from a record naming another path")
    }

    /// Defect 1: a directory another user could write (mode 777), or a symlinked record, is not trusted.
    @Test func anUnsafeDirectoryOrSymlinkedRecordIsNotFollowed() throws {
        let s = try StandIn(value: "1")
        try s.configured {
            try s.makeRecordDirectory()
            let elsewhere = s.dir + "/elsewhere.restore"
            try record(name: "freeze_on_smi", path: s.file, original: "0").write(toFile: elsewhere, atomically: false, encoding: .utf8)
            try FileManager.default.createSymbolicLink(atPath: s.records + "/freeze_on_smi.restore", withDestinationPath: elsewhere)
            #expect(HostRestore.applyOrphaned().allSatisfy { $0.contains("left alone") })
            #expect(s.value == "1", "a symlinked record is not applied")
            try FileManager.default.removeItem(atPath: s.records + "/freeze_on_smi.restore")

            try record(name: "freeze_on_smi", path: s.file, original: "0").write(toFile: s.records + "/freeze_on_smi.restore", atomically: false, encoding: .utf8)
            chmod(s.records, 0o777)
            let lines = HostRestore.applyOrphaned()
            #expect(lines.count == 1 && lines[0].contains("not safe"), "\(lines)")
            #expect(s.value == "1", "records in a world-writable directory are not applied")
            #expect(throws: HostSettingError.self, "a check cannot record into it either") { try HostSetting(path: s.file).set("2") }
            chmod(s.records, 0o700)
        }
    }

    /// Defect 1: only the harness's own settings can be changed at all.
    @Test func anUnknownPathCannotBeChanged() throws {
        let s = try StandIn(value: "0")
        try s.configured {
            #expect(throws: HostSettingError.self) { try HostSetting(path: s.dir + "/other") }
        }
    }

    /// Defect 3: an empty or relative KVMCHECK_RESTORE_DIR is a usage error, not records in '/'.
    @Test(arguments: ["", "relative/dir"])
    func aBadRestoreDirectoryIsAUsageError(_ value: String) throws {
        let r = try kvmcheck(["run", "--suite", "one-reg"], environment: ["KVMCHECK_RESTORE_DIR": value])
        #expect(r.status == 2 && r.stdout.isEmpty)
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("KVMCHECK_RESTORE_DIR"), "\(r.stderr)")
    }
}

@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct ConcurrentRunAndOrphanTests {
    /// Defect 2: two runs changing the same setting at once used to leave it changed for good
    /// (the second recorded the first's changed value as "original").
    @Test func concurrentRunsNeverLoseTheOriginalValue() throws {
        for trial in 0..<3 {
            let s = try StandIn(value: "0")
            let args = ["run", "--suite", "_harness", "--filter", "*host_setting_changed_then_passes,*host_setting_changed_then_fails", "--timeout", "5"]
            let a = try start(args, environment: s.environment), b = try start(args, environment: s.environment)
            a.waitUntilExit(); b.waitUntilExit()
            #expect(s.value == "0" && s.leftoverRecords.isEmpty, "trial \(trial): the original value is back")
        }
    }

    /// Defect 4: SIGKILL to the runner used to leave its child spinning with the setting changed;
    /// now the child dies with it and the next run restores the setting.
    @Test func aChildDiesWithItsKilledRunnerAndTheNextRunRestores() throws {
        let s = try StandIn(value: "0")
        let runner = try start(["run", "--suite", "_harness", "--filter", "*then_hangs", "--timeout", "60"], environment: s.environment)
        let deadline = Date().addingTimeInterval(10)
        while s.value != "1" && Date() < deadline { usleep(20_000) }
        #expect(s.value == "1")
        let children = childPids(of: runner.processIdentifier)
        #expect(!children.isEmpty, "the check runs in a child")
        kill(runner.processIdentifier, SIGKILL)
        runner.waitUntilExit()
        let gone = Date().addingTimeInterval(5)
        while children.contains(where: { kill($0, 0) == 0 }) && Date() < gone { usleep(20_000) }
        #expect(!children.contains(where: { kill($0, 0) == 0 }), "the child ended with its runner")
        let next = try kvmcheck(["run", "--suite", "_harness", "--filter", "*passes"], environment: s.environment)
        #expect(next.lines.contains { $0.hasPrefix("# earlier run: restored \(s.file) to 0") }, "\(next.stdout)")
        #expect(s.value == "0" && s.leftoverRecords.isEmpty)
    }

    func start(_ arguments: [String], environment: [String: String]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kvmcheckBinary)
        p.arguments = arguments
        p.environment = childEnvironment(environment)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Children of every thread of `parent` (the runner spawns them from worker threads).
    func childPids(of parent: Int32) -> [Int32] {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(parent)/task")) ?? []
        return tasks.flatMap { task in
            ((try? String(contentsOfFile: "/proc/\(parent)/task/\(task)/children", encoding: .utf8)) ?? "")
                .split(separator: " ").compactMap { Int32($0) }
        }
    }
}

/// Reports are never lost silently, and bad option values are one line with exit 2.
@Suite struct ReportAndOptionTests {
    static let skipAll = ["run", "--device", "/nonexistent/kvm"]

    /// Defect 6: a report that cannot be written used to exit 0 with empty artefacts.
    @Test(arguments: ["--junit", "--json", "--tap", "--ktap"])
    func aFailedReportFileExits5AndTheOthersAreComplete(_ option: String) throws {
        let json = NSTemporaryDirectory() + "kvmcheck-\(UUID().uuidString).json"
        let extra = option == "--json" ? ["--tap", json] : ["--json", json]
        let r = try kvmcheck(Self.skipAll + [option, "/dev/full"] + extra)
        #expect(r.status == ReportSink.failedExitStatus, "\(r.stderr)")
        #expect(r.stderr.contains("\(option) /dev/full: write failed: ENOSPC"), "\(r.stderr)")
        // The other report was still finished: the TAP skip-all, or a whole JSON document.
        let other = (try? String(contentsOfFile: json, encoding: .utf8)) ?? ""
        if option == "--json" {
            #expect(other.contains("1..0 # SKIP cannot open /nonexistent/kvm"), "\(other)")
        } else {
            let doc = try JSONSerialization.jsonObject(with: Data(other.utf8)) as? [String: Any]
            #expect((doc?["skippedAll"] as? String)?.contains("ENOENT") == true, "\(other)")
        }
    }

    @Test func stdoutToAFullDeviceExits5() throws {
        let r = try runProcess("/bin/sh", ["-c", "exec \"$0\" run --device /nonexistent/kvm > /dev/full", kvmcheckBinary])
        #expect(r.status == ReportSink.failedExitStatus)
        #expect(r.stderr.contains("stdout: write failed: ENOSPC"), "\(r.stderr)")
    }

    /// Defect 7: with fd 1 closed, the --junit file used to become fd 1 and receive the TAP stream.
    @Test func aClosedStdoutDoesNotTurnAReportFileIntoStdout() throws {
        let xml = NSTemporaryDirectory() + "kvmcheck-\(UUID().uuidString).xml"
        _ = try runProcess("/bin/sh", ["-c", "exec \"$0\" run --device /nonexistent/kvm --junit \"$1\" >&-", kvmcheckBinary, xml])
        let text = try String(contentsOfFile: xml, encoding: .utf8)
        #expect(text.hasPrefix("<?xml"), "the JUnit file holds only JUnit: \(text.prefix(80))")
        #expect(!text.contains("TAP version"))
    }

    /// Defect 8: `| head` used to kill the run by SIGPIPE with 0-byte report files.
    @Test(.enabled(if: kvmUsable, kvmUnusableReason))
    func aClosedPipeStillFinishesTheReportFiles() throws {
        let json = NSTemporaryDirectory() + "kvmcheck-\(UUID().uuidString).json"
        let r = try runProcess("/bin/sh", ["-c", "\"$0\" run --suite one-reg --json \"$1\" | head -1; exit \"${PIPESTATUS:-0}\"", kvmcheckBinary, json])
        #expect(r.stdout == "TAP version 13\n")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any]
        #expect((doc?["checks"] as? [Any])?.isEmpty == false, "the JSON report is complete")
    }

    /// Defect 5: these used to pass validation and trap after `1..N`.
    @Test(arguments: ["inf", "1e16", "1e300", "nan", "-1", "0", "-inf"])
    func outOfRangeTimeoutsAreOneLineUsageErrors(_ value: String) throws {
        let r = try kvmcheck(["run", "--timeout", value])
        #expect(r.status == 2 && r.stdout.isEmpty, "\(value): \(r.status)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains("--timeout"), "\(r.stderr)")
    }

    /// Defect 11: /dev/null, a regular file or a FIFO used to "run" and report kernel failures.
    @Test func aDeviceThatIsNotKVMIsASkipAllWithExit4() throws {
        let regular = try temporaryFile("not a device", suffix: ".bin")
        let fifo = NSTemporaryDirectory() + "kvmcheck-\(UUID().uuidString).fifo"
        mkfifo(fifo, 0o600)
        for device in ["/dev/null", "/dev/zero", regular, fifo] {
            let r = try kvmcheck(["run", "--device", device])
            #expect(r.status == 4, "\(device): \(r.stdout)")
            #expect(r.stdout.contains("1..0 # SKIP \(device) is not a KVM device: KVM_GET_API_VERSION failed: ENOTTY"), "\(r.stdout)")
            let caps = try kvmcheck(["caps", "--device", device])
            #expect(caps.status == 4 && !caps.stdout.contains(" yes "), "caps credits nothing: \(caps.stdout)")
        }
    }

    /// Defect 12: a value starting with '-' used to break every child ("exited with status 2").
    @Test func optionValuesStartingWithADashReachTheChild() throws {
        let r = try kvmcheck(["run", "--device=-kvm", "--suite", "one-reg"])
        #expect(r.status == 4 && r.stdout.contains("1..0 # SKIP cannot open -kvm: ENOENT"), "\(r.stdout)")
        let invocation = ChildInvocation(id: "a/b", settings: { var s = CheckSettings(); s.devicePath = "-kvm"; try? s.proposedCapabilities.assign("KVM_CAP_X", 7, source: "--x"); return s }(),
                                         parentPID: 42, deadlineSeconds: 15)
        #expect(try ChildInvocation.parse(invocation.arguments).get() == invocation)
        #expect(try kvmcheck(["run", "--debug-cr3-cap=-5"]).status == 2)
        #expect(try kvmcheck(["run", "--debug-cr3-cap", "0"]).status == 2)
    }

    /// Defect 18: usage errors are one line, and errno values are named.
    @Test func usageErrorsAreOneLine() throws {
        for args in [["--no-such-flag"], ["run", "--cpl", "1"], ["run", "--tap-version", "12"], ["list", "--bogus"]] {
            let r = try kvmcheck(args)
            #expect(r.status == 2 && r.stderr.split(separator: "\n").count == 1, "\(args): \(r.stderr)")
        }
    }

    /// Defect 15: with too few file descriptors every check used to fail on the harness's own
    /// errno, reported as a kernel verdict.
    @Test(.enabled(if: kvmUsable, kvmUnusableReason))
    func resourceExhaustionIsAHarnessErrorNotAKernelVerdict() throws {
        let r = try runProcess("/bin/sh", ["-c", "ulimit -n 8; exec \"$0\" run --suite one-reg --filter 'one-reg/vm_fd_enotty' --format json --jobs 1",
                                           kvmcheckBinary])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], "\(r.stderr)")
        let check = try #require((doc["checks"] as? [[String: Any]])?.first)
        #expect(check["status"] as? String == "error", "\(check)")
        #expect((check["message"] as? String)?.hasPrefix("harness error (not a kernel verdict): ") == true)
        #expect((doc["summary"] as? [String: Any])?["harnessErrors"] as? Int == 1)
        #expect(r.status == 1 && r.stderr.contains("(1 harness errors, not kernel verdicts)"), "\(r.stderr)")
        let ktap = try runProcess("/bin/sh", ["-c", "ulimit -n 8; exec \"$0\" run --suite one-reg --filter 'one-reg/vm_fd_enotty' --format ktap --jobs 1",
                                              kvmcheckBinary])
        #expect(ktap.stdout.contains("not ok 1 vm_fd_enotty # ERROR"), "\(ktap.stdout)")
    }

    @Test func aRefusedThreadOrDescriptorIsTheHarnessesNotTheKernels() {
        #expect(HarnessResource.refusal(KVMError("KVM_CREATE_VCPU", .failed(errno: .tooManyOpenFiles))) != nil)
        #expect(HarnessResource.refusal(KVMError("timer_create(watchdog)", .failed(errno: .resourceTemporarilyUnavailable))) != nil)
        #expect(HarnessResource.refusal(KVMError("KVM_RUN", .failed(errno: .resourceTemporarilyUnavailable))) == nil, "a KVM ioctl's EAGAIN is the kernel's")
        #expect(HarnessResource.refusal(KVMError("KVM_SET_ONE_REG", .failed(errno: .invalidArgument))) == nil)
    }

    @Test func errnoValuesHaveTheirNames() {
        #expect(Errno(rawValue: EMFILE).symbolicName == "EMFILE")
        #expect(Errno(rawValue: ENOTDIR).symbolicName == "ENOTDIR")
        #expect(Errno(rawValue: ELOOP).symbolicName == "ELOOP")
    }
}
