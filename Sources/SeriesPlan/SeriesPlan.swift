import CheckKit
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

    public init(symbol: String, kind: Kind, file: String, patch: String) {
        self.symbol = symbol; self.kind = kind; self.file = file; self.patch = patch
    }

    /// The comparable form: no `struct ` prefix, no array bounds.
    public var key: String { uapiKey(symbol) }
}

/// `struct kvm_run.s` → `kvm_run.s`; `bitmap[16]` → `bitmap`; `KVM_X86_REG_MSR()` → `KVM_X86_REG_MSR`
/// (a manifest names a function-like macro with its parentheses, a diff's `#define` without).
func uapiKey(_ symbol: String) -> String {
    var s = symbol.hasPrefix("struct ") ? String(symbol.dropFirst(7)) : symbol
    if let cut = s.firstIndex(where: { $0 == "[" || $0 == "(" }) { s = String(s[..<cut]) }
    return s.trimmingCharacters(in: " ")
}

public struct PlanError: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Reads `kvmcheck plan`'s input: a `git format-patch` directory, an mbox, one .patch, a saved
/// review reply that quotes the diff (`> `), or stdin (`-`).  Only regular files are read, each
/// at most `TextInput.defaultLimit` bytes.
/// Returns (name, text) per patch (mbox messages are split on their `From ` lines).
public func loadSeries(at path: String) throws(PlanError) -> [(name: String, text: String)] {
    func read(_ file: String) throws(PlanError) -> String {
        do { return try TextInput.read(file) } catch { throw PlanError(error.description) }
    }
    var files: [(String, String)] = []
    if path != "-", !path.isEmpty, isDirectory(path) {
        let names: [String]
        do { names = try directoryEntries(path).filter { $0.hasSuffix(".patch") || $0.hasSuffix(".diff") } } catch {
            throw PlanError("\(messageSafe(path)): cannot read the directory (\(error.symbolicName) (\(error.message)))")
        }
        guard !names.isEmpty else { throw PlanError("\(messageSafe(path)): no .patch files (expected `git format-patch` output)") }
        for name in names { files.append((name, try read(path + "/" + name))) }
    } else {
        let text = try read(path)
        files.append((path == "-" ? TextInput.stdinName : path.split(separator: "/").last.map(String.init) ?? path, text))
    }
    // Split mboxes into messages; a lone patch is one message.
    var patches: [(name: String, text: String)] = []
    for (name, text) in files {
        var messages: [[Substring]] = [[]]
        for line in textLines(text) {
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
    guard patches.contains(where: { textLines($0.text).contains { unquoted($0).text.hasPrefix("diff --git ") } }) else {
        throw PlanError("\(messageSafe(TextInput.displayName(path))): no diff found (expected patches from `git format-patch`, an mbox, a .patch, or a reply quoting one)")
    }
    return patches
}

/// `> > +foo` → (2, "+foo"): review replies quote the diff they discuss, once per reply level.
func unquoted(_ line: Substring) -> (depth: Int, text: Substring) {
    var depth = 0, rest = line
    while rest.first == ">" {
        depth += 1
        rest = rest.dropFirst()
        if rest.first == " " { rest = rest.dropFirst() }
    }
    return (depth, rest)
}

/// One line inside a hunk, quoting removed.
struct DiffLine {
    enum Kind { case hunkHeader, added, removed, context }
    let kind: Kind
    let file: String
    /// A header's text after its second `@@` (git's enclosing function or struct); else the line without its marker.
    let text: Substring
}

/// The hunk lines of every diff in `patch`.  A diff quoted in a reply is read at its quoting
/// depth; lines at another depth (the reply's own words, even inside a hunk) are not part of it.
func diffLines(in patch: String, name: String) throws(PlanError) -> [DiffLine] {
    var out: [DiffLine] = []
    var file: String?
    var depth = 0, inHunk = false
    for (i, raw) in textLines(patch).enumerated() {
        let (d, line) = unquoted(raw)
        if line.hasPrefix("diff --git ") {
            file = line.split(separator: " ").last.map { $0.hasPrefix("b/") ? String($0.dropFirst(2)) : String($0) }
            depth = d; inHunk = false
            continue
        }
        guard let file, d == depth else { continue }
        if line.hasPrefix("@@") {
            let parts = line.split(separator: "@@", omittingEmptySubsequences: false)
            guard parts.count >= 3, parts[1].contains("-"), parts[1].contains("+") else {
                throw PlanError("\(messageSafe(name)):\(i + 1): malformed hunk header \(messageQuoted(String(line)))")
            }
            inHunk = true
            let context = line[parts[1].endIndex...].dropFirst(2) // after the second "@@"
            out.append(DiffLine(kind: .hunkHeader, file: file, text: context))
            continue
        }
        guard inHunk, let first = line.first else { continue }
        if line.hasPrefix("+++") || line.hasPrefix("---") { continue }
        switch first {
        case "+": out.append(DiffLine(kind: .added, file: file, text: line.dropFirst()))
        case "-": out.append(DiffLine(kind: .removed, file: file, text: line.dropFirst()))
        case " ": out.append(DiffLine(kind: .context, file: file, text: line.dropFirst()))
        default: continue // mail clients drop a context line's leading space: not part of the hunk
        }
    }
    return out
}

/// The uAPI a patch adds or changes: `#define KVM_*` and struct fields added in include/uapi
/// headers, and KVM_* section titles added to Documentation/virt/kvm/api.rst.
public func uapiChanges(in patch: String, name: String) throws(PlanError) -> [UAPIChange] {
    var changes: [UAPIChange] = []
    // Open aggregates, innermost last: a struct's name, or nil for an anonymous union/struct.
    var scopes: [String?] = []
    var structName: String? { scopes.last { $0 != nil } ?? nil }
    for d in try diffLines(in: patch, name: name) {
        let file = d.file, body = String(d.text)
        if d.kind == .hunkHeader {
            // git names the enclosing aggregate in the hunk header ("@@ … @@ struct kvm_run {").
            scopes = structOpened(body).map { [$0] } ?? []
            continue
        }
        if d.kind != .removed {
            let trimmed = body.drop { $0 == " " || $0 == "\t" }
            if let opened = structOpened(body) { scopes.append(opened); continue }
            if trimmed.hasSuffix("{") { scopes.append(nil); continue } // anonymous union/struct member
            if trimmed.hasPrefix("}") {
                // "};" closes a struct; "} s;" closes a member aggregate, which the hunk may have opened off-screen.
                if trimmed.hasPrefix("};") || scopes.count > 1 { _ = scopes.popLast() }
                continue
            }
        }
        guard d.kind == .added else { continue }
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

/// What a series changes in the kernel beyond its uAPI: the files its hunks touch, and every
/// identifier on a changed line or in a hunk header (the function or struct a change sits in).
public struct CodeTouched: Sendable, Equatable {
    public var files: Set<String> = []
    public var identifiers: Set<String> = []
    public init() {}

    public mutating func formUnion(_ other: CodeTouched) {
        files.formUnion(other.files)
        identifiers.formUnion(other.identifiers)
    }

    /// Whether a manifest's kernel code entry names something here: a file (`a/b.c`, `b.c`),
    /// a directory (`arch/x86/kvm/pvm/`), or an identifier (`pvm_set_dr7`, `pvm_set_dr7()`).
    public func touches(_ entry: String) -> Bool {
        if entry.hasSuffix("/") { return files.contains { $0.hasPrefix(entry) } }
        if entry.contains("/") { return files.contains(entry) }
        if entry.contains(".") { return files.contains { $0 == entry || $0.hasSuffix("/" + entry) } }
        return identifiers.contains(entry.hasSuffix("()") ? String(entry.dropLast(2)) : entry)
    }
}

public func codeTouched(in patch: String, name: String) throws(PlanError) -> CodeTouched {
    var touched = CodeTouched()
    for d in try diffLines(in: patch, name: name) where d.kind != .context {
        touched.files.insert(d.file)
        collectIdentifiers(d.text, into: &touched.identifiers)
    }
    return touched
}

/// C identifiers in `text`, by bytes (linear; no Character segmentation).
func collectIdentifiers(_ text: Substring, into set: inout Set<String>) {
    let bytes = Array(text.utf8)
    func isStart(_ b: UInt8) -> Bool { (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F }
    func isPart(_ b: UInt8) -> Bool { isStart(b) || (b >= 0x30 && b <= 0x39) }
    var i = 0
    while i < bytes.count {
        if isStart(bytes[i]) && (i == 0 || !isPart(bytes[i - 1])) {
            var j = i + 1
            while j < bytes.count && isPart(bytes[j]) { j += 1 }
            set.insert(String(decoding: bytes[i..<j], as: UTF8.self))
            i = j
        } else {
            i += 1
        }
    }
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

/// Which manifests (and so suites) cover which changed symbols or touched code, and what nothing covers.
public struct SeriesPlan: Sendable {
    public let changes: [UAPIChange]
    public let covered: [(manifest: SeriesManifest, symbols: [String])]
    public let uncovered: [UAPIChange]
    /// Manifests naming kernel code the series touches, with the entries that matched.
    public let touching: [(manifest: SeriesManifest, code: [String])]
    /// Suites that exist in this build; nil: every suite a manifest names that is not "(planned)".
    public let knownSuites: [String]?

    /// Linear in the number of changes (one dictionary pass; each manifest checks a set).
    public init(changes: [UAPIChange], manifests: [SeriesManifest], code: CodeTouched = CodeTouched(), knownSuites: [String]? = nil) {
        // One entry per symbol; a #define or field says more than the api.rst title naming it.
        var unique: [UAPIChange] = []
        var position: [String: Int] = [:]
        for c in changes {
            if let i = position[c.key] {
                if unique[i].kind == .apiDoc && c.kind != .apiDoc { unique[i] = c }
            } else {
                position[c.key] = unique.count
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
        touching = manifests.compactMap { m in
            let hits = m.code.filter(code.touches)
            return hits.isEmpty ? nil : (m, hits)
        }
        self.knownSuites = knownSuites
    }

    /// Suites to run for this series, in manifest order: only suites that can run.
    public var suites: [String] {
        var out: [String] = []
        for m in covered.map(\.manifest) + touching.map(\.manifest) {
            let runnable = knownSuites.map(m.runnableSuites) ?? m.suites.filter { !m.plannedSuites.contains($0) }
            for s in runnable where !out.contains(s) { out.append(s) }
        }
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
