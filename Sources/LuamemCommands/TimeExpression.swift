import Foundation
import LuamemAgent

/// A moment given on the command line: a duration back from now (`30s`, `15m`, `1h`, `2d`,
/// `1h30m`, or with a leading minus, `-1h`), or an ISO 8601 time (`2026-11-24T10:00:00Z`,
/// `2026-11-24 10:00`, `2026-11-24`; without a zone, UTC).
struct TimeExpression {
    let text: String

    /// Parses `text`; nil when it is neither a duration nor a time.
    init?(_ text: String) {
        guard TimeExpression.milliseconds(text, nowMs: 0) != nil else { return nil }
        self.text = text
    }

    /// The moment in Unix milliseconds.
    func epochMs(nowMs: Int64) -> Int64 {
        TimeExpression.milliseconds(text, nowMs: nowMs)!
    }

    static let help = "30s, 15m, 1h, 2d, 1h30m or -1h (back from now), or an ISO 8601 time"

    private static func milliseconds(_ text: String, nowMs: Int64) -> Int64? {
        if let duration = durationMs(text) { return nowMs - duration }
        return isoTimeMs(text)
    }

    /// "1h30m" → 5_400_000, "-1h" → 3_600_000; nil unless the whole text is number+unit pairs.
    static func durationMs(_ text: String) -> Int64? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest.hasPrefix("-") { rest = rest.dropFirst() }
        return DurationText.milliseconds(String(rest))
    }

    private static func isoTimeMs(_ text: String) -> Int64? {
        let formats = [
            "yyyy-MM-dd'T'HH:mm:ss.SSSXXXXX", "yyyy-MM-dd'T'HH:mm:ssXXXXX",
            "yyyy-MM-dd'T'HH:mmXXXXX", "yyyy-MM-dd'T'HH:mm:ss.SSS", "yyyy-MM-dd'T'HH:mm:ss",
            "yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd HH:mm", "yyyy-MM-dd",
        ]
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        for format in formats {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) {
                return Int64((date.timeIntervalSince1970 * 1000).rounded())
            }
        }
        return nil
    }
}
