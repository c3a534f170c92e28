import ArgumentParser
import Foundation

/// How a listing is printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv, markdown
}

/// One value of a listing.
enum Cell {
    case integer(Int64)
    /// Bytes: printed for people as "1.5 MiB" (with a sign when `signed`), as an integer otherwise.
    case bytes(Int64, signed: Bool)
    case text(String?)
    /// Milliseconds: "1h02m", "3.5s" for people, an integer otherwise.
    case duration(Int64)
    /// A fraction: "12.5%" for people, a number otherwise; nil prints as empty / null.
    case percent(Double?)
}

/// A listing with named columns, printed as an aligned table, JSON (an array of objects with the
/// columns' keys) or CSV.
struct Listing {
    struct Column {
        var key: String
        var title: String
        var rightAligned: Bool
    }

    var columns: [Column]
    var rows: [[Cell]] = []

    /// The listing in `format`; `colored` paints growth red and shrinkage green (tables only).
    func render(_ format: OutputFormat, colored: Bool = false) -> String {
        switch format {
        case .table: table(colored: colored)
        case .json: json()
        case .csv: csv()
        case .markdown: markdown()
        }
    }

    /// Only the columns people read in a table (those with a title).
    private var shown: [Int] { columns.indices.filter { !columns[$0].title.isEmpty } }

    private func markdown() -> String {
        let indices = shown
        var lines = ["| " + indices.map { columns[$0].title }.joined(separator: " | ") + " |"]
        lines.append(
            "| "
                + indices.map { columns[$0].rightAligned ? "---:" : "---" }.joined(separator: " | ")
                + " |")
        for row in rows {
            lines.append(
                "| "
                    + indices.map {
                        Self.human(row[$0]).replacingOccurrences(of: "|", with: "\\|")
                    }.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private func table(colored: Bool) -> String {
        let indices = shown
        let columns = indices.map { self.columns[$0] }
        let rows = self.rows.map { row in indices.map { row[$0] } }
        let texts = rows.map { $0.map(Self.human) }
        var widths = columns.map(\.title.count)
        for row in texts {
            for (index, text) in row.enumerated() { widths[index] = max(widths[index], text.count) }
        }
        func line(_ cells: [String], _ values: [Cell]?) -> String {
            var parts: [String] = []
            for (index, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                let last = index == cells.count - 1
                var text = cell
                if colored, case .bytes(let value, true)? = values?[index], value != 0 {
                    text = (value > 0 ? "\u{1B}[31m" : "\u{1B}[32m") + cell + "\u{1B}[0m"
                }
                parts.append(
                    columns[index].rightAligned ? padding + text : (last ? text : text + padding))
            }
            return parts.joined(separator: "  ")
        }
        var lines = [line(columns.map(\.title), nil)]
        lines += zip(texts, rows).map { line($0, $1) }
        return lines.map {
            $0.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
        }
        .joined(separator: "\n") + "\n"
    }

    private func json() -> String {
        let objects = rows.map { row in
            "  {"
                + zip(columns, row).map { "\(Self.jsonString($0.key)): \(Self.jsonValue($1))" }
                .joined(separator: ", ") + "}"
        }
        return objects.isEmpty ? "[]\n" : "[\n" + objects.joined(separator: ",\n") + "\n]\n"
    }

    private func csv() -> String {
        var lines = [columns.map(\.key).joined(separator: ",")]
        for row in rows {
            lines.append(
                row.map { cell in
                    switch cell {
                    case .integer(let value), .bytes(let value, _), .duration(let value):
                        String(value)
                    case .text(let text): Self.csvField(text ?? "")
                    case .percent(let value): value.map { String(format: "%.4f", $0) } ?? ""
                    }
                }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func human(_ cell: Cell) -> String {
        switch cell {
        case .integer(let value): String(value)
        case .bytes(let value, let signed): formatBytes(value, signed: signed)
        case .text(let text): shortened(printable(text ?? ""))
        case .duration(let value): formatDuration(value)
        case .percent(let value): value.map { String(format: "%+.1f%%", $0 * 100) } ?? ""
        }
    }

    /// `text` safe for a terminal: control characters (a newline, an escape sequence) become
    /// `\n`, `\t`, `\r` or `\xNN`; with `keepingNewlines`, newlines stay (headings).
    static func printable(_ text: String, keepingNewlines: Bool = false) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        return replacingScalars(text) { scalar in
            switch scalar {
            case "\n" where keepingNewlines: nil
            case "\n": "\\n"
            case "\t": "\\t"
            case "\r": "\\r"
            case _ where isControl(scalar): String(format: "\\x%02X", scalar.value)
            default: nil
            }
        }
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// The longest text a table cell shows; longer names keep their end, as Lua shortens long
    /// chunk names in its messages (the end of a path is what tells files apart).
    static let cellLimit = 80

    static func shortened(_ text: String) -> String {
        text.count <= cellLimit ? text : "..." + text.suffix(cellLimit - 3)
    }

    /// 999 B, 1.5 KiB, 12.3 MiB; with `signed`, "+" for growth and "-" for shrinkage.
    static func formatBytes(_ value: Int64, signed: Bool = false) -> String {
        let sign = value < 0 ? "-" : (signed && value > 0 ? "+" : "")
        let magnitude = Double(value.magnitude)
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var scaled = magnitude
        var unit = 0
        while scaled >= 1024 && unit < units.count - 1 {
            scaled /= 1024
            unit += 1
        }
        if unit == 0 { return "\(sign)\(value.magnitude) B" }
        return sign
            + String(format: scaled < 10 ? "%.2f" : (scaled < 100 ? "%.1f" : "%.0f"), scaled)
            + " " + units[unit]
    }

    private static func jsonValue(_ cell: Cell) -> String {
        switch cell {
        case .integer(let value), .bytes(let value, _), .duration(let value): String(value)
        case .text(let text): text.map(jsonString) ?? "null"
        case .percent(let value): value.map { String(format: "%.6f", $0) } ?? "null"
        }
    }

    /// 850ms, 12.3s, 4m05s, 2h07m, 3d04h.
    static func formatDuration(_ milliseconds: Int64) -> String {
        let seconds = milliseconds / 1000
        switch milliseconds {
        case ..<1000: return "\(milliseconds)ms"
        case ..<60_000: return String(format: "%.1fs", Double(milliseconds) / 1000)
        case ..<3_600_000: return String(format: "%dm%02ds", seconds / 60, seconds % 60)
        case ..<86_400_000: return String(format: "%dh%02dm", seconds / 3600, seconds % 3600 / 60)
        default: return String(format: "%dd%02dh", seconds / 86400, seconds % 86400 / 3600)
        }
    }

    /// `text` with every scalar that `replacement` names a string for replaced by that string, in
    /// one pass (Foundation's replacingOccurrences goes through NSString once per pattern).
    static func replacingScalars(
        _ text: String, _ replacement: (Unicode.Scalar) -> String?
    ) -> String {
        var result = ""
        result.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let replaced = replacement(scalar) {
                result += replaced
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    static func jsonString(_ text: String) -> String {
        let escaped = replacingScalars(text) { scalar in
            switch scalar {
            case "\"": "\\\""
            case "\\": "\\\\"
            case "\n": "\\n"
            case "\r": "\\r"
            case "\t": "\\t"
            case _ where scalar.value < 0x20: String(format: "\\u%04x", scalar.value)
            default: nil
            }
        }
        return "\"" + escaped + "\""
    }

    private static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A failure the user can act on, printed as one line.
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
