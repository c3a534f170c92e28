import ArgumentParser
import Foundation

/// How a listing is printed.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// One value of a listing.
enum Cell {
    case integer(Int64)
    /// Bytes: printed for people as "1.5 MiB" (with a sign when `signed`), as an integer otherwise.
    case bytes(Int64, signed: Bool)
    case text(String?)
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

    func render(_ format: OutputFormat) -> String {
        switch format {
        case .table: table()
        case .json: json()
        case .csv: csv()
        }
    }

    private func table() -> String {
        let texts = rows.map { $0.map(Self.human) }
        var widths = columns.map(\.title.count)
        for row in texts {
            for (index, text) in row.enumerated() { widths[index] = max(widths[index], text.count) }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (index, cell) in cells.enumerated() {
                let padding = String(repeating: " ", count: widths[index] - cell.count)
                let last = index == cells.count - 1
                parts.append(columns[index].rightAligned ? padding + cell : (last ? cell : cell + padding))
            }
            return parts.joined(separator: "  ")
        }
        var lines = [line(columns.map(\.title))]
        lines += texts.map(line)
        return lines.joined(separator: "\n") + "\n"
    }

    private func json() -> String {
        let objects = rows.map { row in
            "  {" + zip(columns, row).map { "\(Self.jsonString($0.key)): \(Self.jsonValue($1))" }
                .joined(separator: ", ") + "}"
        }
        return objects.isEmpty ? "[]\n" : "[\n" + objects.joined(separator: ",\n") + "\n]\n"
    }

    private func csv() -> String {
        var lines = [columns.map(\.key).joined(separator: ",")]
        for row in rows {
            lines.append(row.map { cell in
                switch cell {
                case .integer(let value), .bytes(let value, _): String(value)
                case .text(let text): Self.csvField(text ?? "")
                }
            }.joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func human(_ cell: Cell) -> String {
        switch cell {
        case .integer(let value): String(value)
        case .bytes(let value, let signed): formatBytes(value, signed: signed)
        case .text(let text): text ?? ""
        }
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
        return sign + String(format: scaled < 10 ? "%.2f" : (scaled < 100 ? "%.1f" : "%.0f"), scaled)
            + " " + units[unit]
    }

    private static func jsonValue(_ cell: Cell) -> String {
        switch cell {
        case .integer(let value), .bytes(let value, _): String(value)
        case .text(let text): text.map(jsonString) ?? "null"
        }
    }

    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where scalar.value < 0x20: result += String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
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
