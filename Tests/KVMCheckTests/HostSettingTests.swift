import CheckKit
import Reporting
import SeriesPlan
import Foundation
import Testing

/// A stand-in "sysfs" file and a private restore-record directory.
struct StandIn {
    let dir = NSTemporaryDirectory() + "kvmcheck-setting-\(UUID().uuidString)"
    var file: String { dir + "/freeze_on_smi" }
    var records: String { dir + "/records" }
    var environment: [String: String] {
        ["KVMCHECK_HARNESS_SELFTEST": "1", "KVMCHECK_HARNESS_SETTING": file, "KVMCHECK_RESTORE_DIR": records,
         "KVMCHECK_FREEZE_ON_SMI": file]
    }

    init(value: String = "0") throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try value.write(toFile: file, atomically: false, encoding: .utf8)
    }

    /// Runs `body` in-process with this stand-in as the only known setting (no environment changes,
    /// which other tests running in parallel would see).
    func configured(_ body: () throws -> Void) throws {
        try HostRestore.withConfiguration(settings: [KnownHostSetting(name: "freeze_on_smi", path: file)], directory: records, body)
    }

    func makeRecordDirectory() throws {
        try FileManager.default.createDirectory(atPath: records, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    var value: String { ((try? String(contentsOfFile: file, encoding: .utf8)) ?? "?").trimmingCharacters(in: .whitespacesAndNewlines) }
    /// Restore records left in the directory (lock files stay by design: they hold no state).
    var leftoverRecords: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: records)) ?? []).filter { $0.hasSuffix(".restore") } }
}

/// The pid of a process that has already exited (a restore record's dead owner).
func deadPid() throws -> Int32 {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/bin/true")
    try p.run()
    p.waitUntilExit()
    return p.processIdentifier
}

@Suite(.serialized) struct HostSettingTests {
    @Test func setRecordsTheOriginalFirstAndRestoreDropsTheRecord() throws {
        let s = try StandIn(value: "0")
        try s.configured {
            let setting = try HostSetting(path: s.file)
            try setting.set("1")
            #expect(s.value == "1")
            let text = try String(contentsOfFile: s.records + "/freeze_on_smi.restore", encoding: .utf8)
            #expect(text.contains("path=\(s.file)\noriginal=0\n"), "path and original value, written before the change")
            #expect(setting.restore())
            #expect(s.value == "0" && s.leftoverRecords.isEmpty)
        }
    }

    @Test func orphanedRecordsAreAppliedAndLiveOnesLeftAlone() throws {
        let s = try StandIn(value: "1")
        try s.configured {
            try s.makeRecordDirectory()
            try record(name: "freeze_on_smi", path: s.file, original: "0").write(toFile: s.records + "/freeze_on_smi.restore", atomically: false, encoding: .utf8)
            let done = HostRestore.applyOrphaned()
            #expect(done.count == 1 && done[0].hasPrefix("restored \(s.file) to 0"), "\(done)")
            #expect(s.value == "0")
            #expect(s.leftoverRecords.isEmpty)

            // A record whose owner still holds the setting's lock is not touched.
            let live = try HostSetting(path: s.file)
            try live.set("1")
            #expect(HostRestore.applyOrphaned().isEmpty)
            #expect(s.value == "1", "a live run's record is left alone")
            #expect(live.restore() && s.value == "0")
        }
    }
}

/// A restore record in the format this harness writes.
func record(name: String, path: String, original: String, pid: Int32 = 999_999) -> String {
    "kvmcheck-restore-record 2\nname=\(name)\npath=\(path)\noriginal=\(original)\npid=\(pid)\n"
}

/// Every path a check can end on restores the host setting (with a stand-in file).
@Suite(.enabled(if: kvmUsable, kvmUnusableReason), .serialized)
struct HostSettingRestoreEndToEndTests {
    @Test func passFailTimeoutAndCrashAllRestore() throws {
        let s = try StandIn()
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "*host_setting*", "--timeout", "1"], environment: s.environment)
        #expect(r.status == 1)
        #expect(s.value == "0", "original value back after all four checks")
        #expect(s.leftoverRecords.isEmpty)
        let restoredNotes = r.lines.filter { $0.contains("# restored \(s.file) to 0 (changed by pid") }
        #expect(restoredNotes.count == 2, "the runner restored after the timed-out and the crashed child: \(r.stdout)")
    }

    @Test(arguments: [("SIGINT", SIGINT), ("SIGTERM", SIGTERM), ("SIGHUP", SIGHUP)])
    func aSignalToTheRunnerRestores(_ name: String, _ signal: Int32) throws {
        let s = try StandIn()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: kvmcheckBinary)
        p.arguments = ["run", "--suite", "_harness", "--filter", "*then_hangs", "--timeout", "30"]
        p.environment = childEnvironment(s.environment)
        let out = Pipe()
        p.standardOutput = out
        p.standardError = Pipe()
        try p.run()
        let deadline = Date().addingTimeInterval(10)
        while s.value != "1" && Date() < deadline { usleep(20_000) }
        #expect(s.value == "1", "the check changed the setting")
        kill(p.processIdentifier, signal)
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 130, "\(name): \(text)")
        #expect(text.contains("Bail out! interrupted by \(name)"))
        #expect(s.value == "0" && s.leftoverRecords.isEmpty, "\(name): restored before exiting")
    }

    @Test func aRecordLeftByAKilledRunnerIsAppliedByTheNextRun() throws {
        let s = try StandIn(value: "1")
        try FileManager.default.createDirectory(atPath: s.records, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        try record(name: "freeze_on_smi", path: s.file, original: "0", pid: try deadPid())
            .write(toFile: s.records + "/freeze_on_smi.restore", atomically: false, encoding: .utf8)
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "*passes"], environment: s.environment)
        #expect(r.status == 0)
        #expect(r.lines.contains { $0.hasPrefix("# earlier run: restored \(s.file) to 0 (changed by pid") }, "\(r.stdout)")
        #expect(s.value == "0" && s.leftoverRecords.isEmpty)
    }

    @Test func freezeOnSMICheckRunsAgainstAStandInAndRestoresIt() throws {
        let s = try StandIn(value: "0")
        let r = try kvmcheck(["run", "--suite", "debugctl", "--filter", "*freeze_on_smi*"], environment: s.environment)
        #expect(r.lines.contains { $0.contains("freeze_on_smi_toggles_invisible_to_guest/cpl0") }, "\(r.stdout)")
        #expect(!r.stdout.contains("# SKIP"), "with a writable stand-in the check runs")
        #expect(r.lines.contains { $0.contains("writes to \(s.file) from a second thread") })
        #expect(s.value == "0" && s.leftoverRecords.isEmpty)
    }
    /// Without the self-test switch the variable cannot point the check at another file: it
    /// probes and would write only /sys/devices/cpu/freeze_on_smi (kvmcheck runs as root).
    @Test func theStandInVariableAloneDoesNotMoveTheCheck() throws {
        let s = try StandIn(value: "0")
        let r = try kvmcheck(["run", "--suite", "debugctl", "--filter", "*freeze_on_smi*"],
                             environment: ["KVMCHECK_FREEZE_ON_SMI": s.file, "KVMCHECK_RESTORE_DIR": s.records])
        #expect(!r.stdout.contains(s.file), "the check names only the real sysfs file: \(r.stdout)")
        #expect(r.lines.contains { $0.contains("freeze_on_smi_toggles_invisible_to_guest/cpl0") }, "\(r.stdout)")
        #expect(s.value == "0", "the stand-in was not written")
    }
}
