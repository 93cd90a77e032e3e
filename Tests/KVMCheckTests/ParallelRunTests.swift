import Foundation
import Testing

/// `--jobs N` runs checks side by side, yet every format is the one a serial run writes.
@Suite(.enabled(if: kvmUsable, kvmUnusableReason))
struct ParallelRunTests {
    /// Drops per-check timings, the only thing allowed to differ between two runs.
    static func withoutTimings(_ text: String) -> String {
        text.replacingOccurrences(of: #""milliseconds" *: *[0-9]+"#, with: "", options: .regularExpression)
            .replacingOccurrences(of: #" time="[0-9.]+""#, with: "", options: .regularExpression)
    }

    @Test func parallelOutputIsTheSerialOutputInEveryFormat() throws {
        // Passes, failures, skips, a crash, a watchdog and host-setting (exclusive) checks.
        let s = try StandIn(value: "0")
        let selection = ["run", "--suite", "_harness,one-reg,sync-regs", "--filter",
                         "_harness/passes,_harness/fails*,_harness/skips,_harness/child_crashes,_harness/*until_watchdog,_harness/host_setting_changed_then_passes,one-reg/*,sync-regs/*",
                         "--timeout", "5"]
        // No kernel log lines: with checks side by side a line goes to every check whose window
        // holds it (and says so), the one thing that may legitimately differ from a serial run.
        let emptyLog = try temporaryFile("", suffix: ".kmsg")
        var outputs: [String: [String]] = [:]
        for jobs in ["1", "2", "4"] {
            let dir = NSTemporaryDirectory() + "kvmcheck-jobs-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let r = try kvmcheck(selection + ["--jobs", jobs, "--ktap", dir + "/r.ktap", "--junit", dir + "/r.xml", "--json", dir + "/r.json"],
                                 environment: s.environment.merging(["KVMCHECK_KERNEL_LOG": emptyLog]) { $1 })
            #expect(r.status == 1, "the harness suite has failures: \(r.stderr)")
            outputs[jobs] = try [r.stdout] + ["r.ktap", "r.xml", "r.json"].map {
                Self.withoutTimings(try String(contentsOfFile: dir + "/" + $0, encoding: .utf8))
            }
        }
        #expect(outputs["1"]!.first!.contains("ok 1 - _harness/passes"))
        for jobs in ["2", "4"] {
            for (format, (serial, parallel)) in zip(["tap", "ktap", "junit", "json"], zip(outputs["1"]!, outputs[jobs]!)) {
                #expect(serial == parallel, "--jobs \(jobs) \(format) differs from the serial run")
            }
        }
        #expect(s.value == "0" && s.leftoverRecords.isEmpty)
    }
}
