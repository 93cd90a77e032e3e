// Text tables for people (`bench`, `caps`, `plan`, `list --mutants`): one padding rule.

extension String {
    /// The string padded with spaces to `width` (on the left when `right`); never cut.
    public func padded(to width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - count))
        return right ? fill + self : self + fill
    }
}

/// `rows` as lines of columns two spaces apart, each padded to its widest cell (the columns in
/// `rightAligned` on the left, for numbers); the last column is not padded.
public func alignedColumns(_ rows: [[String]], rightAligned: Set<Int> = []) -> [String] {
    let columns = rows.map(\.count).max() ?? 0
    let widths = (0..<columns).map { c in rows.map { c < $0.count ? $0[c].count : 0 }.max() ?? 0 }
    return rows.map { row in
        row.enumerated().map { c, cell in
            c == row.count - 1 ? cell : cell.padded(to: widths[c], right: rightAligned.contains(c))
        }.joined(separator: "  ")
    }
}
