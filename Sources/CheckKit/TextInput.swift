import Glibc
import KVMKit

/// Why a text input could not be read: names the path and says what to do.
public struct TextInputError: Error, Sendable, Equatable, CustomStringConvertible {
    public let path: String
    public let reason: String
    public init(path: String, reason: String) { self.path = path; self.reason = reason }
    public var description: String { "\(messageSafe(path)): \(reason)" }
}

/// Every text kvmcheck is given (expectations, manifests, patches, mboxes) is read here:
/// a regular file (symlinks followed), or stdin for `-`, never more than `limit` bytes.
/// A FIFO, a device or a directory is refused before it is opened, so `/dev/zero` cannot
/// grow memory without bound and a FIFO with no writer cannot hang the run.
public enum TextInput {
    /// Far above any real series, mbox or expectations file; a path to something huge stops here.
    public static let defaultLimit = 64 << 20

    /// How stdin is named in messages.
    public static let stdinName = "<stdin>"

    /// The path as messages should show it.
    public static func displayName(_ path: String) -> String { path == "-" ? stdinName : path }

    /// Reads `path` (or stdin for `-` when `allowStdin`) as UTF-8; invalid bytes become U+FFFD.
    public static func read(_ path: String, limit: Int = defaultLimit, allowStdin: Bool = true) throws(TextInputError) -> String {
        String(decoding: try readBytes(path, limit: limit, allowStdin: allowStdin), as: UTF8.self)
    }

    public static func readBytes(_ path: String, limit: Int = defaultLimit, allowStdin: Bool = true) throws(TextInputError) -> [UInt8] {
        if path == "-" && allowStdin { return try readAll(fd: 0, name: stdinName, limit: limit) }
        guard !path.isEmpty else { throw TextInputError(path: "''", reason: "empty path") }
        var st = stat()
        guard stat(path, &st) == 0 else { throw TextInputError(path: path, reason: errnoText()) }
        // Checked before open(): opening some devices has effects of its own.
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw notRegular(path, st.st_mode) }
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)
        guard fd >= 0 else { throw TextInputError(path: path, reason: errnoText()) }
        defer { close(fd) }
        // The path may have been swapped between stat() and open().
        guard fstat(fd, &st) == 0 else { throw TextInputError(path: path, reason: errnoText()) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw notRegular(path, st.st_mode) }
        return try readAll(fd: fd, name: path, limit: limit)
    }

    /// Reads to end of file, refusing to go past `limit` bytes.
    static func readAll(fd: Int32, name: String, limit: Int) throws(TextInputError) -> [UInt8] {
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            throw TextInputError(path: name, reason: "is a directory")
        }
        switch readToEnd(fd, limit: limit) {
        case .success(let bytes): return bytes
        case .failure(.failed(let e)): throw TextInputError(path: name, reason: "\(e.symbolicName) (\(e.message))")
        case .failure(.tooLarge(let limit)):
            throw TextInputError(path: name, reason: "larger than \(limit >= 1 << 20 ? "\(limit >> 20) MiB" : "\(limit) bytes"); kvmcheck reads at most that much")
        }
    }

    static func notRegular(_ path: String, _ mode: mode_t) -> TextInputError {
        let kind: String
        switch mode & S_IFMT {
        case S_IFDIR: kind = "a directory"
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR: kind = "a character device"
        case S_IFBLK: kind = "a block device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "not a regular file"
        }
        return TextInputError(path: path, reason: "is \(kind), not a regular file (give a file, or '-' for stdin)")
    }

    public static func errnoText() -> String {
        let e = Errno(rawValue: errno)
        return "\(e.symbolicName) (\(e.message))"
    }
}

/// The lines of `text`, split at LF with a CR before it dropped, so CRLF files read like LF
/// ones. (`"\r\n"` is one Character in Swift, so splitting on "\n" never splits it.)
/// A final line without a newline is kept; like `split(omittingEmptySubsequences: false)`.
public func textLines(_ text: String) -> [Substring] {
    var lines: [Substring] = []
    let utf8 = text.utf8
    var start = utf8.startIndex
    var i = start
    func line(to end: String.Index) -> Substring {
        var end = end
        if end > start, utf8[utf8.index(before: end)] == 0x0D { end = utf8.index(before: end) }
        // LF and CR are always grapheme boundaries, so these indices are Character-aligned.
        return text[start..<end]
    }
    while i != utf8.endIndex {
        if utf8[i] == 0x0A {
            lines.append(line(to: i))
            start = utf8.index(after: i)
        }
        i = utf8.index(after: i)
    }
    lines.append(line(to: utf8.endIndex))
    return lines
}

/// `value` for a one-line message: unchanged unless it holds control characters, which are escaped.
public func messageSafe(_ value: String) -> String {
    value.unicodeScalars.contains(where: needsEscape) ? String(messageQuoted(value).dropFirst().dropLast()) : value
}

func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
    scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
}

private let messageEscapes: [Unicode.Scalar: String] = ["\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"]

/// `value` in single quotes for a one-line message: control characters (a newline in a
/// path or option value would split the message) are written as escapes.
public func messageQuoted(_ value: String) -> String {
    escaped(value, quote: "'", table: messageEscapes) { scalar in
        needsEscape(scalar) ? "\\u{\(String(scalar.value, radix: 16))}" : nil
    }
}

/// `s` between `quote`s, each scalar `table` names replaced by its text, and each other scalar
/// for which `other` returns text replaced by that: the one loop every format's escaping uses
/// (the formats differ only in their tables).
public func escaped(_ s: String, quote: String = "", table: [Unicode.Scalar: String],
                    other: (Unicode.Scalar) -> String? = { _ in nil }) -> String {
    var out = quote
    for scalar in s.unicodeScalars {
        if let text = table[scalar] ?? other(scalar) { out += text } else { out.unicodeScalars.append(scalar) }
    }
    return out + quote
}

/// `value` in hex, zero-padded to `digits`.
public func paddedHex(_ value: UInt32, digits: Int, uppercase: Bool = false) -> String {
    let hex = String(value, radix: 16, uppercase: uppercase)
    return String(repeating: "0", count: max(0, digits - hex.count)) + hex
}

/// A message folded onto one line (for a SKIP reason or a caps cell built from a failure).
public func oneLine(_ s: String) -> String { s.replacing("\n", with: " ") }


/// A malformed line of a file kvmcheck reads (a series manifest, an expectations file).
public struct ManifestError: Error, Sendable, Equatable, CustomStringConvertible {
    public let file: String
    public let line: Int?
    public let reason: String
    public init(file: String, line: Int?, reason: String) { self.file = file; self.line = line; self.reason = reason }
    public var description: String { "\(messageSafe(file))\(line.map { ":\($0)" } ?? ""): \(reason)" }
}


extension String {
    /// The string without leading and trailing `set` characters.
    public func trimmingCharacters(in set: Character) -> String {
        String(drop { $0 == set }.reversed().drop { $0 == set }.reversed())
    }
}
