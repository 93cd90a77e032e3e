import CheckKit
import Foundation
import Testing

/// `kvmcheck run --coverage DIR` (Sources/CheckKit/Coverage.swift) against a fake gcov root, and
/// ci/coverage-report's line mapping (its self-tests on Tests/Fixtures/coverage), without a
/// gcov kernel or a boot.
@Suite(.serialized)
struct CoverageTests {
    /// A scratch directory, removed by the caller's `defer`.
    func scratch() throws -> String {
        let path = NSTemporaryDirectory() + "kvmcheck-coverage-test.\(getpid()).\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        return path
    }

    /// A gcov root shaped like debugfs': the build tree's path, KVM and non-KVM counters, and
    /// the .gcno symlinks debugfs makes.
    func fakeGcovRoot(in base: String) throws -> String {
        let root = base + "/gcov"
        let fm = FileManager.default
        for dir in ["build/tree/arch/x86/kvm/vmx", "build/tree/virt/kvm", "build/tree/kernel"] {
            try fm.createDirectory(atPath: "\(root)/\(dir)", withIntermediateDirectories: true)
        }
        try Data([0x67, 0x63, 0x64, 0x61, 1, 2, 3]).write(to: URL(fileURLWithPath: "\(root)/build/tree/arch/x86/kvm/x86.gcda"))
        try Data([0x67, 0x63, 0x64, 0x61, 9]).write(to: URL(fileURLWithPath: "\(root)/build/tree/arch/x86/kvm/vmx/vmx.gcda"))
        try Data([0x67, 0x63, 0x64, 0x61, 7]).write(to: URL(fileURLWithPath: "\(root)/build/tree/virt/kvm/kvm_main.gcda"))
        try Data([0x67, 0x63, 0x64, 0x61, 5]).write(to: URL(fileURLWithPath: "\(root)/build/tree/kernel/fork.gcda"))
        try fm.createSymbolicLink(atPath: "\(root)/build/tree/arch/x86/kvm/x86.gcno", withDestinationPath: "/nonexistent/x86.gcno")
        try fm.createSymbolicLink(atPath: "\(root)/build/tree/arch/x86/kvm/linked.gcda", withDestinationPath: "\(root)/build/tree/kernel/fork.gcda")
        try Data().write(to: URL(fileURLWithPath: "\(root)/reset"))
        return root
    }

    @Test func checkIDsBecomeOneDistinctPathComponent() {
        #expect(CoverageCollector.directoryName(for: "debug-cr3/hw-breakpoint") == "debug-cr3%2Fhw-breakpoint")
        #expect(CoverageCollector.directoryName(for: "a/b c") == "a%2Fb%20c")
        #expect(CoverageCollector.directoryName(for: "a/b") != CoverageCollector.directoryName(for: "a%2Fb"), "% itself is encoded")
        #expect(CoverageCollector.directoryName(for: "..") == "%2E%2E")
        #expect(CoverageCollector.directoryName(for: "x/é") == "x%2F%C3%A9")
    }

    @Test func resetZeroesAndCollectCopiesOnlyKVMCountersUnderTheCheckDirectory() throws {
        let base = try scratch()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try fakeGcovRoot(in: base)
        let out = base + "/out"
        let collector = try CoverageCollector(directory: out, gcovRoot: root)
        #expect(collector.reset() == nil)
        #expect(try String(contentsOfFile: root + "/reset", encoding: .utf8) == "1", "reset writes to the gcov reset file")
        #expect(collector.collect(checkID: "suite/check one").isEmpty)

        let dir = out + "/suite%2Fcheck%20one"
        let copied = try FileManager.default.subpathsOfDirectory(atPath: dir).filter { $0.hasSuffix(".gcda") }.sorted()
        #expect(copied == ["build/tree/arch/x86/kvm/vmx/vmx.gcda", "build/tree/arch/x86/kvm/x86.gcda", "build/tree/virt/kvm/kvm_main.gcda"],
                "KVM counters only; no non-KVM object, no symlink followed")
        #expect(try Data(contentsOf: URL(fileURLWithPath: dir + "/build/tree/arch/x86/kvm/x86.gcda")) == Data([0x67, 0x63, 0x64, 0x61, 1, 2, 3]))
        let mode = try #require(FileManager.default.attributesOfItem(atPath: out)[.posixPermissions] as? Int)
        #expect(mode == 0o700)

        let index = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/index.json"))) as? [String: Any]
        let checks = try #require(index?["checks"] as? [[String: Any]])
        #expect(checks.count == 1)
        #expect(checks.first?["id"] as? String == "suite/check one")
        #expect(checks.first?["directory"] as? String == "suite%2Fcheck%20one")
        #expect(checks.first?["files"] as? Int == 3)

        // The same check twice would mix two runs' counters: said, not merged.
        #expect(collector.collect(checkID: "suite/check one").contains { $0.contains("EEXIST") })
    }

    @Test func aSymlinkAForeignOrANonEmptyDirectoryIsRefused() throws {
        let base = try scratch()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let root = try fakeGcovRoot(in: base)
        let fm = FileManager.default

        try fm.createDirectory(atPath: base + "/elsewhere", withIntermediateDirectories: false)
        try fm.createSymbolicLink(atPath: base + "/link", withDestinationPath: base + "/elsewhere")
        #expect(throws: CoverageError.self) { try CoverageCollector(directory: base + "/link", gcovRoot: root) }
        #expect(try fm.contentsOfDirectory(atPath: base + "/elsewhere").isEmpty, "nothing written through the link")

        try fm.createDirectory(atPath: base + "/used", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        try Data().write(to: URL(fileURLWithPath: base + "/used/stale.gcda"))
        #expect(throws: CoverageError.self) { try CoverageCollector(directory: base + "/used", gcovRoot: root) }

        try fm.createDirectory(atPath: base + "/open", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        #expect(throws: CoverageError.self) { try CoverageCollector(directory: base + "/open", gcovRoot: root) }

        try Data().write(to: URL(fileURLWithPath: base + "/file"))
        #expect(throws: CoverageError.self) { try CoverageCollector(directory: base + "/file", gcovRoot: root) }

        // Owned by someone else: only root can make one.
        if geteuid() == 0 {
            try fm.createDirectory(atPath: base + "/theirs", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
            #expect(chown(base + "/theirs", 65534, 65534) == 0)
            #expect(throws: CoverageError.self) { try CoverageCollector(directory: base + "/theirs", gcovRoot: root) }
        }
        // And an empty directory of ours is fine.
        try fm.createDirectory(atPath: base + "/mine", withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        _ = try CoverageCollector(directory: base + "/mine", gcovRoot: root)
    }

    @Test func aKernelWithoutGcovIsSaidOnceAndTheRunGoesOn() throws {
        var notes: [String] = []
        let result = CoverageCollector.locateGcov(root: "/nonexistent/gcov", notes: &notes)
        guard case .failure(let why) = result else { Issue.record("a missing gcov root was found"); return }
        #expect(why.description.contains("CONFIG_GCOV_KERNEL"))
        #expect(notes.isEmpty)
    }

    @Test(.enabled(if: kvmUsable, kvmUnusableReason)) func runWithoutGcovSaysSoOnceAndRunsNormally() throws {
        // This host's kernel may have gcov: then the message differs, and the directory is used.
        guard !FileManager.default.fileExists(atPath: CoverageCollector.defaultGcovRoot) else { return }
        let base = try scratch()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let debugfsMountedBefore = debugfsMounted()
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "_harness/passes", "--coverage", base + "/cov"],
                             environment: ["KVMCHECK_HARNESS_SELFTEST": "1"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.components(separatedBy: "--coverage").count == 2, "one message: \(r.stderr)")
        #expect(r.stderr.contains("running without coverage"))
        #expect(!FileManager.default.fileExists(atPath: base + "/cov"), "nothing created without gcov")
        #expect(debugfsMounted() == debugfsMountedBefore, "a debugfs mounted only to look for gcov is unmounted again")
    }

    @Test func anEmptyCoverageDirectoryIsAUsageError() throws {
        let r = try kvmcheck(["run", "--suite", "_harness", "--filter", "_harness/passes", "--coverage", ""],
                             environment: ["KVMCHECK_HARNESS_SELFTEST": "1"])
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains("--coverage needs a directory name"))
        #expect(r.stdout.isEmpty, "nothing ran")
    }

    func debugfsMounted() -> Bool {
        ((try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? "")
            .split(separator: "\n").contains { $0.split(separator: " ").dropFirst().first == "/sys/kernel/debug" }
    }

    @Test func coverageReportSelfTestsPass() throws {
        let script = repositoryRoot.appendingPathComponent("ci/coverage-report").path
        let r = try runProcess("/usr/bin/python3", [script, "--self-test"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        // unittest writes its summary on the stream it is given (stdout here)
        let ran = r.stdout.split(separator: "\n").first { $0.hasPrefix("Ran ") }
        #expect(ran.map { Int($0.split(separator: " ")[1]) ?? 0 } ?? 0 >= 12, "every mapping test ran: \(r.stdout)")
        #expect(!r.stdout.contains("skipped") || which("gcov") == nil, "the real-gcov test runs where gcov exists")
    }

    /// The Bochs transport (ci/lib/extract-coverage --e9): a framed, checksummed base64 tar among
    /// Bochs' own output is unpacked; a damaged or truncated frame, foreign text inside it, and
    /// tar members with '..', absolute paths or links are refused.
    @Test func bochsFrameDecoderSelfTestsPass() throws {
        let script = repositoryRoot.appendingPathComponent("ci/lib/extract-coverage").path
        let r = try runProcess("/usr/bin/python3", [script, "--self-test"])
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        let summary = r.stdout.split(separator: "\n").last { $0.hasPrefix("extract-coverage self-test: ") }
        #expect(summary?.hasSuffix("16 of 16 cases right") == true, "every case ran and passed: \(r.stdout)")
    }
}
