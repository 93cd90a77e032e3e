import Foundation
import Testing

/// The quick entry of ci/kernel-matrix: Debian 6.12 booted under QEMU TCG (nested SVM),
/// kvmcheck run inside, TAP and verdicts brought back.  It asserts the transport, not the
/// kernel's verdicts (those are the table's point).  Needs /dev/kvm for the host column and
/// root for apt; KVMCHECK_SKIP_MATRIX=1 skips it.
@Suite(.enabled(if: kvmUsable && getuid() == 0 && ProcessInfo.processInfo.environment["KVMCHECK_SKIP_MATRIX"] == nil,
                "needs /dev/kvm, root (apt installs qemu) and KVMCHECK_SKIP_MATRIX unset"))
struct KernelMatrixTests {
    @Test func quickMatrixBootsDebian612AndBringsBackVerdictsAndTAP() throws {
        let out = NSTemporaryDirectory() + "kvmcheck-matrix-\(UUID().uuidString)"
        let script = repositoryRoot.appendingPathComponent("ci/kernel-matrix").path
        let r = try runProcess("/bin/bash", [script, "--quick", "--out", out])
        #expect([0, 5].contains(r.status), "0, or 5 when a boot gave no verdict (shown in the table): \(r.stderr.suffix(2000))")
        let header = try #require(r.lines.first)
        #expect(header.hasPrefix("check") && header.contains("host") && header.contains("debian-6.12"), "\(header)")
        #expect(r.lines.contains { $0.hasPrefix("sync-regs/synced_regs_equal_get_regs/cpl0") }, "a row per check")
        let entries = try FileManager.default.contentsOfDirectory(atPath: out)
        let statusFile = try #require(entries.first { $0.hasPrefix("debian-6.12") && $0.hasSuffix(".status") })
        let status = try String(contentsOfFile: "\(out)/\(statusFile)", encoding: .utf8)
        #expect(status.contains("sync-regs: ") && status.contains("kvmcheck exit"), "the guest's verdict came back: \(status)")
        for line in status.split(separator: "\n") {
            #expect(line.contains("kvmcheck exit") || line.contains("no verdict"), "each boot says what happened: \(String(line))")
        }
        if TapPy.available {
            let dir = try #require(entries.first { $0.hasPrefix("debian-6.12") && !$0.hasSuffix(".status") })
            let tap = try String(contentsOfFile: "\(out)/\(dir)/sync-regs/tap.txt", encoding: .utf8)
            #expect(try TapPy.problems(in: tap) == nil, "TAP from the guest's serial port parses")
        }
    }
}
