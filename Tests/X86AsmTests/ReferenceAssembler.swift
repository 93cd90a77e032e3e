import Foundation
import Testing
import X86Asm

/// An independent assembler + linker used as the oracle for encodings.
///
/// All cases are assembled in ONE run: each case's text sits between
/// `.LcaseN` labels in `.text`, and a table of `.long .LcaseN - _start`
/// values (plus a count) is appended so the bytes can be split per case.
/// The object is linked at `linkAddress` so absolute label values
/// (`.quad label`, `movabs r, offset label`) are real; each Swift case is
/// then assembled with origin = linkAddress + its offset.
struct ReferenceToolchain: Sendable {
    enum Flavor: String, Sendable {
        case gnu = "GNU as"
        case llvm = "LLVM (clang)"
    }

    let flavor: Flavor
    /// Resolved executables, keyed by tool name.
    let paths: [String: String]
    /// Why the toolchain cannot be used, or nil if it can.
    let unavailableReason: String?

    static let linkAddress: UInt64 = 0x100_0000

    static let gnu = locate(.gnu)
    static let llvm = locate(.llvm)

    var isAvailable: Bool { unavailableReason == nil }
    var skipComment: Comment { Comment(rawValue: unavailableReason ?? "") }

    private static func toolNames(_ flavor: Flavor) -> [String] {
        switch flavor {
        case .gnu: ["as", "ld", "objcopy"]
        case .llvm: ["clang", "ld.lld", "llvm-objcopy"]
        }
    }

    private static func locate(_ flavor: Flavor) -> ReferenceToolchain {
        let searchPath = (ProcessInfo.processInfo.environment["PATH"] ?? "")
            .split(separator: ":").map(String.init) + ["/opt/swift/usr/bin"]
        var paths: [String: String] = [:]
        var missing: [String] = []
        for tool in toolNames(flavor) {
            let candidate = searchPath.lazy.map { "\($0)/\(tool)" }
                .first { FileManager.default.isExecutableFile(atPath: $0) }
            if let candidate { paths[tool] = candidate } else { missing.append(tool) }
        }
        if !missing.isEmpty {
            return ReferenceToolchain(flavor: flavor, paths: paths, unavailableReason:
                "\(flavor.rawValue) cross-check skipped: \(missing.joined(separator: ", ")) not found in PATH or /opt/swift/usr/bin")
        }
        // A GNU as built for another architecture would fail on every case;
        // treat it as missing rather than as an encoder bug.
        if flavor == .gnu, let asPath = paths["as"] {
            let version = (try? run(asPath, ["--version"])) ?? ""
            if !version.contains("x86_64") && !version.contains("x86-64") {
                return ReferenceToolchain(flavor: flavor, paths: paths, unavailableReason:
                    "GNU as cross-check skipped: \(asPath) does not target x86-64")
            }
        }
        return ReferenceToolchain(flavor: flavor, paths: paths, unavailableReason: nil)
    }

    struct Failure: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    /// Per-case expected bytes and the address each case was linked at.
    struct Reference: Sendable {
        let bytes: [Int: [UInt8]]
        let address: [Int: UInt64]
    }

    /// Assembled once per toolchain (static lets are initialized lazily and
    /// exactly once) and shared by all parameterized test cases.
    static let gnuReference: Result<Reference, Failure> = gnu.assembleAll(EncodingCase.all)
    static let llvmReference: Result<Reference, Failure> = llvm.assembleAll(EncodingCase.all)

    static func reference(_ flavor: Flavor) -> Result<Reference, Failure> {
        flavor == .gnu ? gnuReference : llvmReference
    }

    func assembleAll(_ cases: [EncodingCase]) -> Result<Reference, Failure> {
        let included = cases.compactMap { c in c.source(for: flavor).map { (c.index, $0) } }
        var source = """
            .intel_syntax noprefix
            .text
            .globl _start
            _start:

            """
        for (index, text) in included {
            source += ".Lcase\(index):\n\(text)\n"
        }
        source += ".Lend:\n.balign 4, 0\n"
        for (index, _) in included {
            source += ".long .Lcase\(index) - _start\n"
        }
        source += ".long .Lend - _start\n.long \(included.count + 1)\n"
        source += ".section .note.GNU-stack,\"\",@progbits\n"

        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("x86asm-\(flavor == .gnu ? "gnu" : "llvm")-\(UUID().uuidString)")
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let asm = directory.appendingPathComponent("cases.s").path
            let object = directory.appendingPathComponent("cases.o").path
            let linked = directory.appendingPathComponent("cases.elf").path
            let binary = directory.appendingPathComponent("cases.bin").path
            try source.write(toFile: asm, atomically: true, encoding: .utf8)

            let textAddress = "-Ttext=0x\(String(Self.linkAddress, radix: 16))"
            switch flavor {
            case .gnu:
                try Self.run(paths["as"]!, ["--64", asm, "-o", object])
                try Self.run(paths["ld"]!, ["-o", linked, textAddress, object])
                try Self.run(paths["objcopy"]!, ["-O", "binary", "-j", ".text", linked, binary])
            case .llvm:
                try Self.run(paths["clang"]!, ["-target", "x86_64-none-elf", "-c", "-x", "assembler", asm, "-o", object])
                try Self.run(paths["ld.lld"]!, ["-o", linked, textAddress, object])
                try Self.run(paths["llvm-objcopy"]!, ["-O", "binary", "-j", ".text", linked, binary])
            }
            let image = [UInt8](try Data(contentsOf: URL(fileURLWithPath: binary)))
            return .success(try Self.split(image, indices: included.map(\.0)))
        } catch let failure as Failure {
            return .failure(failure)
        } catch {
            return .failure(Failure(description: "\(flavor.rawValue): \(error)"))
        }
    }

    /// Cuts the linked `.text` image into per-case byte strings using the
    /// offset table at its end.
    private static func split(_ image: [UInt8], indices: [Int]) throws(Failure) -> Reference {
        func word(at offset: Int) -> Int {
            (0..<4).reduce(0) { $0 | Int(image[offset + $1]) << (8 * $1) }
        }
        guard image.count >= 4 else { throw Failure(description: "linked image too small") }
        let count = word(at: image.count - 4)
        let tableStart = image.count - 4 - 4 * count
        guard count == indices.count + 1, tableStart >= 0 else {
            throw Failure(description: "offset table malformed (count \(count), expected \(indices.count + 1))")
        }
        let offsets = (0..<count).map { word(at: tableStart + 4 * $0) }
        var bytes: [Int: [UInt8]] = [:]
        var address: [Int: UInt64] = [:]
        for (position, index) in indices.enumerated() {
            bytes[index] = Array(image[offsets[position]..<offsets[position + 1]])
            address[index] = linkAddress + UInt64(offsets[position])
        }
        return Reference(bytes: bytes, address: address)
    }

    @discardableResult
    private static func run(_ executable: String, _ arguments: [String]) throws(Failure) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        do {
            try process.run()
        } catch {
            throw Failure(description: "could not start \(executable): \(error)")
        }
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(executable) \(arguments.joined(separator: " ")) failed:\n\(text)")
        }
        return text
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.isEmpty ? "(none)" : bytes.map { String(format: "%02x", $0) }.joined(separator: " ")
}
