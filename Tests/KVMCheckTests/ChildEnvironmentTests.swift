import Foundation
import Testing

/// A switch left in the shell that runs `swift test` (a mutant, the self-test gate, a restore
/// directory) must not reach the kvmcheck processes the tests start: each test passes what it means.
struct ChildEnvironmentTests {
    @Test func kvmcheckSwitchesFromTheShellAreDroppedAndExplicitOnesKept() {
        let shell = ["PATH": "/usr/bin", "KVMCHECK_MUTANT": "blockirq-ignored", "KVMCHECK_HARNESS_SELFTEST": "1",
                     "KVMCHECK_RESTORE_DIR": "/tmp/elsewhere", "KVMCHECK_SLOW_TESTS": "1"]
        let env = childEnvironment(["KVMCHECK_MODEL": "conditional-sync"], inheriting: shell)
        #expect(env == ["PATH": "/usr/bin", "KVMCHECK_SLOW_TESTS": "1", "KVMCHECK_MODEL": "conditional-sync"])
    }

    /// Every variable the binary reads is on the list, so a new switch cannot leak in unnoticed.
    @Test func theListNamesEveryVariableTheBinaryReads() throws {
        let sources = repositoryRoot.appendingPathComponent("Sources")
        var read = Set<String>()
        let files = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil)!
        let name = try Regex("KVMCHECK_[A-Z0-9_]+")
        for case let file as URL in files where ["swift", "c", "h"].contains(file.pathExtension) {
            let text = try String(contentsOf: file, encoding: .utf8)
            for match in text.matches(of: name) { read.insert(String(text[match.range])) }
        }
        #expect(read.count >= 8, "the scan found the switches at all")
        #expect(read == kvmcheckSwitches)
    }
}
