import Glibc

/// One `patches/<series>.md`: what a series is and the uAPI it adds.
///
/// Format (markdown a person can read):
///
///     # Title
///     - **subject**: [PATCH …]
///     - **link**: https://lore.kernel.org/…
///     - **status**: merged, Linux 5.15
///     - **suites**: blockirq, guest-debug
///     - **capability**: KVM_CAP_X86_GUEST_DEBUG_CR3 = 245 (optional, repeatable; for unmerged caps)
///     ## uAPI symbols
///     - `KVM_GUESTDBG_BLOCKIRQ` — what it is
public struct SeriesManifest: Sendable, Equatable {
    public var series: String
    public var title: String
    public var subject: String
    public var link: String
    public var status: String
    public var suites: [String]
    /// Capability numbers the manifest assigns to unmerged caps (name → number).
    public var capabilities: [String: Int]
    public var symbols: [String]

    public static let requiredFields = ["subject", "link", "status", "suites"]

    /// Parses a manifest; errors name the line and what is wrong.
    public static func parse(_ text: String, series: String, file: String) throws(ManifestError) -> SeriesManifest {
        var m = SeriesManifest(series: series, title: "", subject: "", link: "", status: "", suites: [], capabilities: [:], symbols: [])
        var seen: Set<String> = []
        var inSymbols = false
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = String(raw), n = i + 1
            if line.hasPrefix("# ") { m.title = String(line.dropFirst(2)); continue }
            if line.hasPrefix("## ") { inSymbols = line.lowercased().contains("uapi symbols"); continue }
            guard line.hasPrefix("- ") else { continue }
            if inSymbols {
                let parts = line.split(separator: "`", omittingEmptySubsequences: false)
                guard parts.count >= 3, !parts[1].isEmpty else {
                    throw ManifestError(file: file, line: n, reason: "a uAPI symbol line must start with the symbol in backticks")
                }
                m.symbols.append(String(parts[1]))
                continue
            }
            guard line.hasPrefix("- **") else { continue }
            let rest = line.dropFirst(4)
            guard let keyEnd = rest.firstRange(of: "**:") else { continue }
            let key = String(rest[..<keyEnd.lowerBound]).lowercased()
            let value = String(rest[keyEnd.upperBound...]).trimmingCharacters(in: " ")
            guard !value.isEmpty else { throw ManifestError(file: file, line: n, reason: "'\(key)' has no value") }
            seen.insert(key)
            switch key {
            case "subject": m.subject = value
            case "link": m.link = value
            case "status": m.status = value
            case "suites":
                m.suites = value.split(separator: ",").map { String($0).trimmingCharacters(in: " ") }
                    .map { $0.hasSuffix(" (planned)") ? String($0.dropLast(10)) : $0 }
            case "capability":
                let sides = value.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: " ") }
                let digits = sides.count == 2 ? String(sides[1].prefix { $0.isNumber }) : ""
                guard sides.count == 2, sides[0].hasPrefix("KVM_CAP_"), let number = Int(digits), number > 0 else {
                    throw ManifestError(file: file, line: n, reason: "capability must read 'KVM_CAP_NAME = NUMBER', got '\(value)'")
                }
                m.capabilities[sides[0]] = number
            default: break
            }
        }
        for field in requiredFields where !seen.contains(field) {
            throw ManifestError(file: file, line: nil, reason: "missing '- **\(field)**:' line")
        }
        return m
    }

    /// Reads and parses `<directory>/<series>.md`.
    public static func load(series: String, from directory: String) throws(ManifestError) -> SeriesManifest {
        let path = directory + "/" + series + ".md"
        guard let text = readTextFile(path) else { throw ManifestError(file: path, line: nil, reason: "cannot read the file") }
        return try parse(text, series: series, file: path)
    }

    /// Every `*.md` manifest in `directory`, sorted by series name.
    public static func loadAll(from directory: String) throws(ManifestError) -> [SeriesManifest] {
        guard let dir = opendir(directory) else { throw ManifestError(file: directory, line: nil, reason: "cannot read the directory") }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".md") && name != "README.md" { names.append(String(name.dropLast(3))) }
        }
        closedir(dir)
        var manifests: [SeriesManifest] = []
        for name in names.sorted() { manifests.append(try load(series: name, from: directory)) }
        return manifests
    }

    /// Where patches/ is: an explicit path, $KVMCHECK_PATCHES, or the nearest `patches/`
    /// above the executable or the working directory (a checkout or a build tree inside one).
    public static func locateDirectory(explicit: String?, executable: String) -> String? {
        if let explicit { return explicit }
        if let env = getenv("KVMCHECK_PATCHES") { return String(cString: env) }
        var starts = [String(executable.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))]
        var buffer = [CChar](repeating: 0, count: 4096)
        if getcwd(&buffer, buffer.count) != nil {
            starts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        for start in starts {
            var dir = start
            while !dir.isEmpty {
                if isDirectory(dir + "/patches") { return dir + "/patches" }
                dir = String(dir.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/"))
            }
        }
        return nil
    }
}

public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let reason: String
    public init(file: String, line: Int?, reason: String) { self.file = file; self.line = line; self.reason = reason }
    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(reason)" }
}

func readTextFile(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&chunk, 1, chunk.count, f)
        if n <= 0 { break }
        bytes += chunk.prefix(n)
    }
    return String(decoding: bytes, as: UTF8.self)
}

func isDirectory(_ path: String) -> Bool {
    var st = stat()
    return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
