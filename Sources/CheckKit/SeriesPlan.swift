import Glibc
import KVMKit

/// One uAPI symbol a patch adds or changes.
public struct UAPIChange: Hashable, Sendable {
    public enum Kind: String, Sendable { case define = "#define", field = "struct field", apiDoc = "api.rst section" }
    /// As manifests spell it: `KVM_CAP_FOO`, `struct kvm_debug_exit_arch.cr3`.
    public let symbol: String
    public let kind: Kind
    public let file: String
    public let patch: String

    /// The comparable form: no `struct ` prefix, no array bounds.
    public var key: String { uapiKey(symbol) }
}

func uapiKey(_ symbol: String) -> String {
    var s = symbol.hasPrefix("struct ") ? String(symbol.dropFirst(7)) : symbol
    if let bracket = s.firstIndex(of: "[") { s = String(s[..<bracket]) }
    return s
}

public struct PlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Reads `kvmcheck plan`'s input: a `git format-patch` directory, an mbox, or one .patch.
/// Returns (name, text) per patch (mbox messages are split on their `From ` lines).
public func loadSeries(at path: String) throws(PlanError) -> [(name: String, text: String)] {
    var st = stat()
    guard stat(path, &st) == 0 else { throw PlanError("\(path): \(Errno(rawValue: Glibc.errno).symbolicName) (no such file or directory?)") }
    var files: [(String, String)] = []
    if (st.st_mode & S_IFMT) == S_IFDIR {
        guard let dir = opendir(path) else { throw PlanError("\(path): cannot read the directory") }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasSuffix(".patch") || name.hasSuffix(".diff") { names.append(name) }
        }
        closedir(dir)
        guard !names.isEmpty else { throw PlanError("\(path): no .patch files (expected `git format-patch` output)") }
        for name in names.sorted() {
            guard let text = readTextFile(path + "/" + name) else { throw PlanError("\(path)/\(name): cannot read") }
            files.append((name, text))
        }
    } else {
        guard let text = readTextFile(path) else { throw PlanError("\(path): cannot read") }
        files.append((path.split(separator: "/").last.map(String.init) ?? path, text))
    }
    // Split mboxes into messages; a lone patch is one message.
    var patches: [(name: String, text: String)] = []
    for (name, text) in files {
        var messages: [[Substring]] = [[]]
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("From ") && !messages[messages.count - 1].isEmpty { messages.append([]) }
            messages[messages.count - 1].append(line)
        }
        let parts = messages.filter { !$0.isEmpty }
        for (i, m) in parts.enumerated() {
            let subject = m.first { $0.hasPrefix("Subject: ") }.map { String($0.dropFirst(9)) }
            patches.append((parts.count == 1 ? name : "\(name) #\(i + 1)" + (subject.map { ": \($0)" } ?? ""),
                            m.joined(separator: "\n")))
        }
    }
    guard patches.contains(where: { $0.text.contains("\ndiff --git ") || $0.text.hasPrefix("diff --git ") }) else {
        throw PlanError("\(path): no diff found (expected patches from `git format-patch`, an mbox, or a .patch)")
    }
    return patches
}

/// The uAPI a patch adds or changes: `#define KVM_*` and struct fields added in include/uapi
/// headers, and KVM_* section titles added to Documentation/virt/kvm/api.rst.
public func uapiChanges(in patch: String, name: String) throws(PlanError) -> [UAPIChange] {
    var changes: [UAPIChange] = []
    var file: String?
    // Open aggregates, innermost last: a struct's name, or nil for an anonymous union/struct.
    var scopes: [String?] = []
    var structName: String? { scopes.last { $0 != nil } ?? nil }
    var inHunk = false
    for (i, raw) in patch.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
        let line = String(raw)
        if line.hasPrefix("diff --git ") {
            file = line.split(separator: " ").last.map { $0.hasPrefix("b/") ? String($0.dropFirst(2)) : String($0) }
            scopes = []; inHunk = false
            continue
        }
        if line.hasPrefix("@@") {
            let parts = line.split(separator: "@@", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[1].contains("-"), parts[1].contains("+") else {
                throw PlanError("\(name):\(i + 1): malformed hunk header '\(line)'")
            }
            inHunk = true
            // git names the enclosing aggregate in the hunk header ("@@ … @@ struct kvm_run {").
            scopes = structOpened(String(parts[2...].joined(separator: "@@"))).map { [$0] } ?? []
            continue
        }
        guard inHunk, let file, let first = line.first, first == "+" || first == " " || first == "-" else { continue }
        if line.hasPrefix("+++") || line.hasPrefix("---") { continue }
        let body = String(line.dropFirst())
        if first != "-" {
            let trimmed = body.drop { $0 == " " || $0 == "\t" }
            if let opened = structOpened(body) { scopes.append(opened); continue }
            if trimmed.hasSuffix("{") { scopes.append(nil); continue } // anonymous union/struct member
            if trimmed.hasPrefix("}") {
                // "};" closes a struct; "} s;" closes a member aggregate, which the hunk may have opened off-screen.
                if trimmed.hasPrefix("};") || scopes.count > 1 { _ = scopes.popLast() }
                continue
            }
        }
        guard first == "+" else { continue }
        if file.contains("include/uapi/") {
            let words = withoutComment(body).split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if words.count >= 2, words[0] == "#define", words[1].hasPrefix("KVM_") {
                let symbol = String(words[1].prefix { $0 != "(" })
                changes.append(UAPIChange(symbol: symbol, kind: .define, file: file, patch: name))
            } else if let structName, let field = fieldName(words) {
                changes.append(UAPIChange(symbol: "struct \(structName).\(field)", kind: .field, file: file, patch: name))
            }
        } else if file.hasSuffix("Documentation/virt/kvm/api.rst") {
            // Section titles: "4.87 KVM_SET_GUEST_DEBUG", "7.45 KVM_CAP_FOO".
            let words = body.split(separator: " ").map(String.init)
            if words.count >= 2, words[0].first?.isNumber == true, words[0].allSatisfy({ $0.isNumber || $0 == "." }),
               words[1].hasPrefix("KVM_") {
                changes.append(UAPIChange(symbol: words[1], kind: .apiDoc, file: file, patch: name))
            }
        }
    }
    return changes
}

/// `struct name {` (or a hunk header ending in it) → name.
func structOpened(_ text: String) -> String? {
    let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
    guard let s = words.firstIndex(of: "struct"), s + 2 < words.count, words[s + 2] == "{" else { return nil }
    return String(words[s + 1])
}

/// `__u64 cr3;` / `__u64 bitmap[16];` → the field name.
func fieldName(_ words: [String]) -> String? {
    guard words.count >= 2, let last = words.last, last.hasSuffix(";"), !words[0].hasPrefix("#"),
          !words.contains("struct") || words.count >= 3 else { return nil }
    var name = String(last.dropLast())
    if let bracket = name.firstIndex(of: "[") { name = String(name[..<bracket]) }
    while name.hasPrefix("*") { name.removeFirst() }
    guard let c = name.first, c.isLetter || c == "_", name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { return nil }
    return name
}

/// Which manifests (and so suites) cover which changed symbols, and what nothing covers.
public struct SeriesPlan: Sendable {
    public let changes: [UAPIChange]
    public let covered: [(manifest: SeriesManifest, symbols: [String])]
    public let uncovered: [UAPIChange]

    public init(changes: [UAPIChange], manifests: [SeriesManifest]) {
        // One entry per symbol; a #define or field says more than the api.rst title naming it.
        var unique: [UAPIChange] = []
        for c in changes {
            if let i = unique.firstIndex(where: { $0.key == c.key }) {
                if unique[i].kind == .apiDoc && c.kind != .apiDoc { unique[i] = c }
            } else {
                unique.append(c)
            }
        }
        self.changes = unique
        covered = manifests.compactMap { m in
            let keys = Set(m.symbols.map(uapiKey))
            let hits = unique.filter { keys.contains($0.key) }.map(\.symbol)
            return hits.isEmpty ? nil : (m, hits)
        }
        let coveredKeys = Set(covered.flatMap(\.symbols).map(uapiKey))
        uncovered = unique.filter { !coveredKeys.contains($0.key) }
    }

    /// Suites to run for this series, in manifest order.
    public var suites: [String] {
        var out: [String] = []
        for (m, _) in covered { for s in m.suites where !out.contains(s) { out.append(s) } }
        return out
    }
}

/// The line without a trailing `/* … */` or `// …` comment.
func withoutComment(_ line: String) -> String {
    var text = line
    if let r = text.firstRange(of: "/*") { text = String(text[..<r.lowerBound]) }
    if let r = text.firstRange(of: "//") { text = String(text[..<r.lowerBound]) }
    return text
}
