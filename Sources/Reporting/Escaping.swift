import CheckKit
// Escaping for each format: what may appear on one TAP/KTAP line, in YAML, in XML.

/// Whether a scalar may not appear raw inside one report line: C0 and C1 controls (CR, LF,
/// NUL, ESC…), DEL, Unicode line/paragraph separators (Python's splitlines() breaks on them),
/// the BOM and the noncharacters U+FFFE/U+FFFF.
func isLineUnsafe(_ v: Unicode.Scalar) -> Bool {
    switch v.value {
    case 0..<0x20, 0x7F...0x9F, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF: return true
    default: return false
    }
}

/// `\xNN` for scalars up to 0xFF, `\u{NNNN}` above: visible, and never a line break.
func visibleEscape(_ v: Unicode.Scalar) -> String {
    let hex = String(v.value, radix: 16, uppercase: true)
    return v.value <= 0xFF ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                           : "\\u{" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex + "}"
}

/// Text that stays one line: unsafe scalars become visible escapes; scalars in `special`
/// get a backslash in front (TAP's `\\` and `\#`).
func lineSafe(_ s: String, escaping special: String = "") -> String {
    var out = String.UnicodeScalarView()
    for v in s.unicodeScalars {
        if isLineUnsafe(v) {
            out.append(contentsOf: visibleEscape(v).unicodeScalars)
        } else {
            if special.unicodeScalars.contains(v) { out.append("\\") }
            out.append(v)
        }
    }
    return String(out)
}

/// A TAP description or directive reason: one line, `\` and `#` escaped (TAP 13/14 spec).
func tapDescription(_ s: String) -> String { lineSafe(s, escaping: "\\#") }

/// A TAP/KTAP diagnostic line.
func tapComment(_ s: String) -> String { "# " + lineSafe(s) }

private let yamlEscapes: [Unicode.Scalar: String] = ["\\": "\\\\", "\"": "\\\"", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0", "\u{1B}": "\\e"]

/// A YAML 1.1 double-quoted scalar that PyYAML loads back to the same text: every character
/// YAML may not hold raw (or would fold as a line break) is an escape.
func yamlQuote(_ s: String) -> String {
    escaped(s, quote: "\"", table: yamlEscapes) { v in
        guard isLineUnsafe(v) || v.value == 0x85 else { return nil }
        return v.value <= 0xFF ? "\\x" + paddedHex(v.value, digits: 2, uppercase: true) : "\\u" + paddedHex(v.value, digits: 4, uppercase: true)
    }
}

/// KTAP descriptions may not contain `#` at all (kunit_parser reads the name as `[^#]*`).
func ktapDescription(_ s: String) -> String { lineSafe(s).replacing("#", with: "no.") }

/// A directive's reason, one line; a `#` followed by a space is escaped, so a reason holding " # SKIP"
/// cannot become kunit_parser's SKIP (`#GP` stays as it is).
func ktapReason(_ s: String) -> String { lineSafe(s).replacing("# ", with: "\\# ") }


private let xmlEscapes: [Unicode.Scalar: String] = ["&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "\n": "&#10;", "\t": "&#9;", "\r": "&#13;"]

/// Text for an XML 1.0 attribute or element: markup escaped, tab/LF/CR as character
/// references (kept through attribute normalisation), and every character XML 1.0 cannot
/// hold at all (NUL, other C0 controls, U+FFFE/U+FFFF), and C1 controls, as a visible `\xNN`.
func xmlEscape(_ s: String) -> String {
    escaped(s, table: xmlEscapes) { scalar in
        isLineUnsafe(scalar) && scalar.value != 0x2028 && scalar.value != 0x2029 && scalar.value != 0xFEFF ? visibleEscape(scalar) : nil
    }
}

