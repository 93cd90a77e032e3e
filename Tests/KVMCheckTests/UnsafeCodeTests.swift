import Foundation
import Testing

/// Raw-pointer code lives in KVMKit, each block with a `// SAFETY:` reason (as rust-vmm
/// writes them); the few C-interop points outside it, and the kernel doubles' seam, carry one too;
/// suites have none.
struct UnsafeCodeTests {
    static let pointerCode = try! NSRegularExpression(pattern:
        #"Unsafe\w*Pointer|UnsafeRaw\w*|withUnsafe\w*|Unmanaged|\.pointee\b|bindMemory|assumingMemoryBound|loadUnaligned|storeBytes|OpaquePointer|\bstrdup\b"#)

    /// (file, line number, line) of every line of code using a raw pointer.
    static func pointerLines(under directory: String) throws -> [(file: String, number: Int, lines: [String])] {
        let root = repositoryRoot.appendingPathComponent(directory)
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var found: [(String, Int, [String])] = []
        for case let path as String in walker where path.hasSuffix(".swift") {
            let lines = try String(contentsOf: root.appendingPathComponent(path), encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() {
                let code = line.components(separatedBy: "//")[0]
                if pointerCode.firstMatch(in: code, range: NSRange(code.startIndex..., in: code)) != nil {
                    found.append(("\(directory)/\(path)", i + 1, Array(lines[max(0, i - 7)...i])))
                }
            }
        }
        return found
    }

    @Test func everyPointerBlockSaysWhyItIsSound() throws {
        let unexplained = try Self.pointerLines(under: "Sources").filter { !$0.lines.contains { $0.contains("SAFETY:") } }
        #expect(unexplained.map { "\($0.file):\($0.number)" } == [], "each needs a `// SAFETY:` line just above it")
    }

    @Test func pointerCodeLivesInKVMKit() throws {
        // The test-only kernel doubles sit at the ioctl seam: editing the caller's argument structs and
        // the vCPU's kvm_run in place is their job (issue 13 allows it), so their module may hold pointer code.
        let outside = try Self.pointerLines(under: "Sources").filter {
            !$0.file.hasPrefix("Sources/KVMKit/") && !$0.file.hasPrefix("Sources/KernelDoubles/")
        }
        // C interop that cannot be typed away: the suite registry's linker section, libcap's
        // cap_free, getline, a report's FILE *, posix_spawn's argv.
        let allowed = ["Sources/CheckKit/Registry.swift", "Sources/CheckKit/Requirement.swift", "Sources/CheckKit/KernelLog.swift",
                       "Sources/Reporting/DocumentReporter.swift", "Sources/kvmcheck/BenchCommand.swift"]
        #expect(Set(outside.map(\.file)).subtracting(allowed).sorted() == [])
        #expect(try Self.pointerLines(under: "Suites").map { "\($0.file):\($0.number)" } == [])
    }
}
