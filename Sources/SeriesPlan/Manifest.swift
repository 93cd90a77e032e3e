import CheckKit
import Glibc
import KVMKit

/// One `patches/<series>.md`: what a series is, the uAPI it adds, and the kernel code it changes.
///
/// Format (markdown a person can read):
///
///     # Title
///     - **subject**: [PATCH …]
///     - **link**: https://lore.kernel.org/…
///     - **status**: merged, Linux 5.15
///     - **suites**: blockirq, guest-debug, later-suite (planned)
///     - **capability**: KVM_CAP_FOO = 250 (optional, repeatable; for unmerged caps: see ProposedCapabilities)
///     ## uAPI symbols
///     - `KVM_GUESTDBG_BLOCKIRQ` — what it is
///     ## Kernel code
///     - `arch/x86/kvm/pvm/pvm.c` — a file (or `dir/`) the series changes
///     - `pvm_set_dr7()` — a function, macro or field the series adds, changes or calls
///
/// `kvmcheck plan` matches diffs on the uAPI symbols and, for series that change behaviour
/// without new uAPI, on the kernel code.
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
    /// Kernel files (`path`, or `dir/`) and identifiers (`name` or `name()`), as written.
    public var code: [String] = []
    /// Suites marked "(planned)": not written yet, so not an error when unknown, never suggested.
    public var plannedSuites: Set<String> = []
    /// Where it was read from and where its suites line is, for messages.
    public var file: String = ""
    public var suitesLine: Int?

    public static let requiredFields = ["subject", "link", "status", "suites"]

    /// Parses a manifest; errors name the line and what is wrong.  CRLF is fine.
    public static func parse(_ text: String, series: String, file: String) throws(ManifestError) -> SeriesManifest {
        var m = SeriesManifest(series: series, title: "", subject: "", link: "", status: "", suites: [], capabilities: [:], symbols: [])
        m.file = file
        enum Section { case fields, symbols, code, other }
        var seen: Set<String> = []
        var section = Section.fields
        for (i, raw) in textLines(text).enumerated() {
            let line = String(raw), n = i + 1
            if line.hasPrefix("# ") { m.title = String(line.dropFirst(2)); continue }
            if line.hasPrefix("## ") {
                let heading = line.lowercased()
                section = heading.contains("uapi symbols") ? .symbols : heading.contains("kernel code") ? .code : .other
                continue
            }
            guard line.hasPrefix("- ") else { continue }
            switch section {
            case .symbols:
                let parts = line.split(separator: "`", omittingEmptySubsequences: false)
                guard parts.count >= 3, !parts[1].isEmpty else {
                    throw ManifestError(file: file, line: n, reason: "a uAPI symbol line must start with the symbol in backticks")
                }
                m.symbols.append(String(parts[1]))
                continue
            case .code:
                let item = line.dropFirst(2)
                let parts = item.split(separator: "`", omittingEmptySubsequences: false)
                let entry = parts.count >= 3 ? String(parts[1]) : ""
                guard item.hasPrefix("`"), !entry.isEmpty, !entry.contains(" ") else {
                    throw ManifestError(file: file, line: n, reason: "a kernel code line must start with a file or function in backticks, e.g. - `arch/x86/kvm/x86.c` or - `kvm_vcpu_ioctl()`")
                }
                m.code.append(entry)
                continue
            case .other:
                continue
            case .fields:
                break
            }
            guard line.hasPrefix("- **") else { continue }
            let rest = line.dropFirst(4)
            guard let keyEnd = rest.firstRange(of: "**:") else { continue }
            let key = String(rest[..<keyEnd.lowerBound]).lowercased()
            let value = String(rest[keyEnd.upperBound...]).trimmingCharacters(in: " ")
            guard !value.isEmpty else { throw ManifestError(file: file, line: n, reason: "\(messageQuoted(key)) has no value") }
            seen.insert(key)
            switch key {
            case "subject": m.subject = value
            case "link": m.link = value
            case "status": m.status = value
            case "suites":
                m.suitesLine = n
                m.suites = []
                for item in value.split(separator: ",", omittingEmptySubsequences: false) {
                    var name = String(item).trimmingCharacters(in: " ")
                    if name.hasSuffix(" (planned)") {
                        name = String(name.dropLast(10)).trimmingCharacters(in: " ")
                        m.plannedSuites.insert(name)
                    }
                    guard !name.isEmpty else { throw ManifestError(file: file, line: n, reason: "an empty suite name in \(messageQuoted(value))") }
                    m.suites.append(name)
                }
            case "capability":
                let sides = value.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: " ") }
                let digits = sides.count == 2 ? String(sides[1].prefix { $0.isNumber }) : ""
                guard sides.count == 2, sides[0].hasPrefix("KVM_CAP_"), let number = Int(digits), number > 0 else {
                    throw ManifestError(file: file, line: n, reason: "capability must read 'KVM_CAP_NAME = NUMBER', got \(messageQuoted(value))")
                }
                if let earlier = m.capabilities[sides[0]], earlier != number {
                    throw ManifestError(file: file, line: n, reason: "\(sides[0]) is already \(earlier) above: one number per capability")
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

    /// Every suite the manifest names must exist (or be marked "(planned)"): otherwise `plan`
    /// would credit a series with a suite that cannot run.
    public func checkSuites(known: [String]) throws(ManifestError) {
        for name in suites where !known.contains(name) && !plannedSuites.contains(name) {
            throw ManifestError(file: file, line: suitesLine,
                                reason: "unknown suite \(messageQuoted(name)) (known: \(known.joined(separator: ", ")); mark one not written yet '(planned)')")
        }
    }

    /// The suites that can run now, in manifest order.
    public func runnableSuites(known: [String]) -> [String] { suites.filter { known.contains($0) } }

    /// Reads and parses `<directory>/<series>.md`.
    public static func load(series: String, from directory: String) throws(ManifestError) -> SeriesManifest {
        let path = directory + "/" + series + ".md"
        let text: String
        do { text = try TextInput.read(path, allowStdin: false) } catch { throw ManifestError(file: path, line: nil, reason: error.reason) }
        return try parse(text, series: series, file: path)
    }

    /// Every `*.md` manifest in `directory`, sorted by series name.
    public static func loadAll(from directory: String) throws(ManifestError) -> [SeriesManifest] {
        let names: [String]
        do { names = try directoryEntries(directory).filter { $0.hasSuffix(".md") && $0 != "README.md" }.map { String($0.dropLast(3)) } } catch {
            throw ManifestError(file: directory, line: nil, reason: "cannot read the directory (\(error.symbolicName))")
        }
        var manifests: [SeriesManifest] = []
        for name in names.sorted() { manifests.append(try load(series: name, from: directory)) }
        return manifests
    }

    /// Where patches/ is: an explicit path, $KVMCHECK_PATCHES, or the nearest `patches/`
    /// above the executable or the working directory (a checkout or a build tree inside one).
    /// An empty `--patches` or `$KVMCHECK_PATCHES` is an error, not the root directory.
    public static func locateDirectory(explicit: String?, executable: String) throws(ManifestError) -> String? {
        if let explicit {
            guard !explicit.isEmpty else { throw ManifestError(file: "--patches", line: nil, reason: "empty path (name the manifests' directory)") }
            return explicit
        }
        if let env = getenv("KVMCHECK_PATCHES") {
            let value = String(cString: env)
            guard !value.isEmpty else {
                throw ManifestError(file: "KVMCHECK_PATCHES", line: nil, reason: "set but empty (unset it, or name the manifests' directory)")
            }
            return value
        }
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
