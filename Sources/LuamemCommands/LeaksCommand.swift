import ArgumentParser
import Foundation
import LuamemAgent
import LuamemStore

/// `luamem leaks`: sites whose live memory grows steadily.
struct LeaksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "leaks",
        abstract: "Rank sites whose live memory grows steadily over a window.",
        discussion: """
            For each row, fits a straight line to its live bytes after GC at every snapshot of \
            the window. RATE is the slope, FIT how well the line fits (R², 0 to 1), LATE the \
            share of the growth that happened in the second half of the window. A leak grows \
            at a steady rate: a good fit, growth in both halves, and a rise from one snapshot \
            to the next at least three times (so the window needs four snapshots). A cache \
            that fills up and then stays flat has little LATE growth, and memory that rises \
            and falls with load fits badly; neither is listed. --all lists every row with its figures. Times: \
            \(TimeExpression.help).
            """
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions
    @OptionGroup var output: OutputOptions

    @OptionGroup var window: WindowOptions
    @OptionGroup var rows: RowOptions

    @Flag(help: "List every row, suspect or not.")
    var all = false

    /// The listing's columns; a fleet's adds RUNS, how many runs a row's figures come from.
    func columns(runs: Bool) -> [Listing.Column] {
        [
            .init(key: "rate_bytes_per_minute", title: "RATE/MIN", rightAligned: true),
            .init(key: "fit", title: "FIT", rightAligned: true),
            .init(key: "late", title: "LATE", rightAligned: true),
            .init(key: "growth_bytes", title: "GROWTH", rightAligned: true),
            .init(key: "live_bytes", title: "LIVE", rightAligned: true),
        ] + (runs ? [.init(key: "runs", title: "RUNS", rightAligned: true)] : []) + [
            .init(key: "site", title: rows.by == .type ? "TYPE" : "SITE", rightAligned: false),
            .init(
                key: "function", title: rows.by == .file || rows.by == .type ? "" : "FUNCTION",
                rightAligned: false),
            .init(key: "suspect", title: all ? "SUSPECT" : "", rightAligned: false),
            .init(key: "source", title: "", rightAligned: false),
            .init(key: "line", title: "", rightAligned: false),
        ]
    }

    /// Completed GC cycles a window needs for a fit through figures after GC.
    static let cyclesNeeded: Int64 = 5

    func run() throws {
        if ClickHouse.isURL(database.path) {
            return try fleetLeaks(ClickHouse.forReading(database.path))
        }
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let fromMs = window.sinceMs(nowMs: Clock.epochMs())
        let runSnapshots = try store.snapshots(runID: run.id)
        let series = try Series(
            store: store, run: run, fromMs: fromMs, by: rows.by, selected: selected,
            runSnapshots: runSnapshots)
        guard series.times.count >= 4 else {
            throw CommandError(
                "\(describe(run)) has \(series.times.count) snapshot(s) in the window; leaks needs at least 4 "
                    + "(use a shorter --interval or a longer window)")
        }
        // A line fit through figures after GC needs several cycles to have steps to fit, and
        // some late in the window (FitCycles).
        let cycles = FitCycles(
            try windowSnapshots(
                store, run: run, selected: selected, fromMs: fromMs, runSnapshots: runSnapshots))
        let current = rows.usesCurrent(fitCycles: cycles)
        let trends = series.values(current: current).compactMap {
            key, values -> (SiteKey, Trend)? in
            Trend(times: series.times, values: values).map { (key, $0) }
        }
        let ranked = trends.filter { all || $0.1.isSuspect }.sorted {
            if $0.1.score != $1.1.score { return $0.1.score > $1.1.score }
            if $0.1.growth != $1.1.growth { return $0.1.growth > $1.1.growth }
            return $0.0.order < $1.0.order  // ties in a fixed order, not a dictionary's
        }
        var listing = Listing(columns: columns(runs: false))
        for (key, trend) in ranked.prefix(output.top) {
            let label = series.labels[key]!
            listing.rows.append([
                .bytes(Int64((trend.slope * 60).rounded()), signed: true),
                .text(String(format: "%.2f", trend.fit)),
                .text(String(format: "%.0f%%", trend.late * 100)),
                .bytes(trend.growth, signed: true),
                .bytes(series.live[key]?.last ?? 0, signed: false),
                .text(label.site),
                .text(
                    rows.by == .file || rows.by == .type ? nil : SiteKey.functionName(label.info)),
                .text(trend.isSuspect ? "yes" : "no"),
                .text(rows.by == .type ? nil : label.info.file),
                rows.by == .line ? .integer(label.info.line) : .text(nil),
            ])
        }
        let span = (series.times.last ?? 0) - (series.times.first ?? 0)
        let heading =
            "\(try selection.describe(run, in: store)): \(series.times.count) snapshots over \(Listing.formatDuration(span)), "
            + (ranked.isEmpty
                ? "no steadily growing site" : "\(ranked.count) \(all ? "rows" : "suspect(s)")")
        output.print(listing, heading: heading)
    }
}

/// `luamem history SITE`: one site, or one file, over time.
struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show one site (file.lua:LINE) or one file over time, with a chart.",
        discussion:
            "A file matches by its name or the end of its path (server.lua matches examples/server.lua)."
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions
    @OptionGroup var output: OutputOptions

    @Argument(help: "file.lua:LINE, or file.lua for every line of the file.")
    var site: String

    @OptionGroup var window: WindowOptions

    /// The file and, when given, the line of SITE.
    private var target: (file: String, line: Int64?) {
        if let colon = site.lastIndex(of: ":"), let line = Int64(site[site.index(after: colon)...])
        {
            return (String(site[..<colon]), line)
        }
        return (site, nil)
    }

    func run() throws {
        let (file, line) = target
        if ClickHouse.isURL(database.path) {
            return try fleetHistory(ClickHouse.forReading(database.path), file: file, line: line)
        }
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let matches: (SiteInfo) -> Bool = { info in
            (info.file == file || info.file.hasSuffix("/" + file))
                && (line == nil || info.line == line)
        }
        let fromMs = window.sinceMs(nowMs: Clock.epochMs())
        let runSnapshots = try store.snapshots(runID: run.id)
        let series = try Series(
            store: store, run: run, fromMs: fromMs, by: .file, selected: selected, include: matches,
            runSnapshots: runSnapshots)
        guard !series.afterGC.isEmpty else {
            throw CommandError("no allocation at \(site) in \(describe(run))")
        }
        let sum: ([SiteKey: [Int64]]) -> [Int64] = { rows in
            series.times.indices.map { index in rows.values.map { $0[index] }.reduce(0, +) }
        }
        let gcValues = sum(series.afterGC), liveValues = sum(series.live)
        // CHANGE and the chart follow the figures after GC, or the live bytes when the window
        // holds too few completed GC cycles (as query says).
        let cycles = completedCycles(
            try windowSnapshots(
                store, run: run, selected: selected, fromMs: fromMs, runSnapshots: runSnapshots))
        let fromLive = cycles < growthCyclesNeeded
        if fromLive { warnTooFewCycles(cycles) }
        output.print(
            Self.listing(
                times: series.times, afterGC: gcValues, live: liveValues, fromLive: fromLive,
                top: output.top),
            heading: "\(site) in \(try selection.describe(run, in: store)), live bytes after GC and at each snapshot")
        if output.format == .table {
            print("\n" + Self.chart(fromLive ? liveValues : gcValues))
        }
    }

    /// The last `top` times with both figures, and CHANGE from the previous time in the live
    /// bytes (`fromLive`) or the figures after GC.
    static func listing(
        times: [Int64], afterGC: [Int64], live: [Int64], fromLive: Bool, top: Int
    ) -> Listing {
        let followed = fromLive ? live : afterGC
        var listing = Listing(columns: [
            .init(key: "time", title: "TIME (UTC)", rightAligned: false),
            .init(key: "gc_live_bytes", title: "AFTER GC", rightAligned: true),
            .init(key: "live_bytes", title: "LIVE", rightAligned: true),
            .init(key: "change_bytes", title: "CHANGE", rightAligned: true),
            .init(key: "time_ms", title: "", rightAligned: false),
        ])
        for index in times.indices.suffix(top) {
            let change = index == 0 ? 0 : followed[index] - followed[index - 1]
            listing.rows.append([
                .text(formatTime(times[index])), .bytes(afterGC[index], signed: false),
                .bytes(live[index], signed: false), .bytes(change, signed: true),
                .integer(times[index]),
            ])
        }
        return listing
    }

    /// A one-line bar chart of the values, at most 72 columns wide.
    static func chart(_ values: [Int64]) -> String {
        let bars = Array("▁▂▃▄▅▆▇█")
        var sampled = values
        if values.count > 72 {
            sampled = (0..<72).map { values[$0 * (values.count - 1) / 71] }
        }
        guard let low = sampled.min(), let high = sampled.max() else { return "" }
        let line = sampled.map { value -> Character in
            high == low
                ? bars[0]
                : bars[Int(Double(value - low) / Double(high - low) * Double(bars.count - 1))]
        }
        return "\(String(line))  \(Listing.formatBytes(low)) … \(Listing.formatBytes(high))"
    }
}
