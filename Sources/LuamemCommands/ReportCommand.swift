import ArgumentParser
import Foundation
import LuamemAgent
import LuamemStore

/// `luamem report`: one self-contained HTML page about a run.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract:
            "Write a self-contained HTML report of a run: memory over time, top sites, treemap.",
        discussion: """
            The page works offline: its styles, charts (SVG) and script are inline, nothing is \
            fetched. It shows the run's facts, total live memory over time (at each snapshot and \
            after GC), the sites that grew most with a sparkline each, the leak suspects, and a \
            treemap of live memory by file, function and line, coloured by growth. Hover over \
            anything for exact figures. Long series are down-sampled and the treemap keeps the \
            largest lines (the rest is one "other" cell), so the page stays small.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions
    @OptionGroup var window: WindowOptions

    @Option(name: .shortAndLong, help: "The HTML file to write; - writes to standard output.")
    var output = "luamem-report.html"

    @Option(help: "Rows in the tables, and lines in the treemap before the rest is 'other'.")
    var top = 20

    @Option(
        help:
            "With --head: add the diff of two runs, builds, snapshots or times (\(Reference.help))."
    )
    var base: Reference?

    @Option(help: "With --base: what to compare.")
    var head: Reference?

    @Option(help: "Which moment of a run the diff compares: end, peak, or an elapsed time.")
    var at: Moment = .end

    mutating func validate() throws {
        guard top > 0 else { throw ValidationError("--top must be at least 1, got \(top)") }
        top = min(top, OutputOptions.maxTop)
        guard (base == nil) == (head == nil) else {
            throw ValidationError("--base and --head go together")
        }
    }

    func run() throws {
        // Where the page goes is checked first: nothing to read if it cannot be written.
        let target = output == "-" ? nil : try Self.writableFile(output)
        let page =
            ClickHouse.isURL(database.path)
            ? try fleetPage(ClickHouse.forReading(database.path)) : try filePage()
        let html = page.html()
        guard let target else {
            print(html, terminator: "")
            return
        }
        do {
            try html.write(toFile: target, atomically: true, encoding: .utf8)
        } catch {
            throw CommandError("cannot write \(output): \(error.localizedDescription)")
        }
        print("wrote \(output)")
    }

    private func filePage() throws -> ReportPage {
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        progress("reading \(describe(run))")
        let fromMs = window.sinceMs(nowMs: Clock.epochMs())
        let runSnapshots = try store.snapshots(runID: run.id)
        let snapshots = try windowSnapshots(
            store, run: run, selected: selected, fromMs: fromMs, runSnapshots: runSnapshots)
        guard !snapshots.isEmpty else {
            throw CommandError("\(describe(run)) has no snapshot to report")
        }
        // Rows by line and by object type, from one reading of the window's rows.
        let both = try Series.replay(
            store: store, run: run, fromMs: fromMs, by: [.line, .type], selected: selected,
            runSnapshots: runSnapshots)
        let byLine = both[0], byType = both[1]
        var diff: ReportPage.Diff?
        if let base, let head {
            progress("comparing \(base) with \(head)")
            let comparison = try Comparison(
                store: store, at: at, by: .line, current: false, state: selection.state)
            let baseSide = try comparison.resolve(base), headSide = try comparison.resolve(head)
            diff = ReportPage.Diff(
                base: baseSide, head: headSide, changes: Comparison.changes(baseSide, headSide))
        }
        // As query and leaks do: with too few completed GC cycles in the window, figures after
        // GC move in a few stale steps, and the live bytes at the snapshots stand in.
        let cycles = completedCycles(snapshots), fitCycles = FitCycles(snapshots)
        _ = fitCycles.warnIfShort()
        progress("building charts")
        let page = ReportPage(
            run: run, title: try selection.describe(run, in: store), facts: try store.runFacts(id: run.id), snapshots: snapshots, series: byLine,
            byType: byType,
            stacks: try stacks(store, run: run, selected: selected), diff: diff,
            top: top, cycles: cycles, fitCycles: fitCycles)
        return page
    }

    /// The regular file to write for `path`: the path itself, or the file a symlink points to
    /// (the link stays a link, as with a shell's `>`). A directory, FIFO, device or socket is
    /// refused: the page is written atomically, by renaming over the path, which would replace
    /// the node itself.
    static func writableFile(_ path: String) throws -> String {
        if let kind = Database.otherThanFile(path) {
            throw CommandError("cannot write \(path): it is \(kind); give a file path or - for standard output")
        }
        guard FileManager.default.fileExists(atPath: path) else {
            // Nothing there yet; a dangling link is written through like an existing one.
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path)
            else { return path }
            return target.hasPrefix("/")
                ? target
                : (path as NSString).deletingLastPathComponent + "/" + target
        }
        return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
    }

    /// Live bytes (after GC) per call stack at the latest snapshot of each state.
    private func stacks(_ store: Store, run: RunRecord, selected: (Int64) -> Bool) throws
        -> [(stack: [String], bytes: Int64)]
    {
        let frames = try store.frames()
        var result: [[String]: Int64] = [:]
        for head in try store.headSnapshots(runID: run.id, untilMs: nil)
        where selected(head.stateID) {
            for (info, entry) in try store.namedFigures(at: head)
            where entry.figures.gcLiveBytes > 0 {
                result[ExportCommand.stack(info, frames), default: 0] += entry.figures.gcLiveBytes
            }
        }
        return result.map { ($0.key, $0.value) }
    }

    func progress(_ message: String) {
        if isatty(STDERR_FILENO) == 1 { FileHandle.standardError.write(Data("\(message)…\n".utf8)) }
    }
}

/// The HTML of a report.
struct ReportPage {
    var run: RunRecord
    /// The run and the states shown.
    var title: String
    var facts: (luaVersion: String, options: String)
    var snapshots: [SnapshotSummary]
    var series: Series
    var byType: Series
    var stacks: [(stack: [String], bytes: Int64)]
    var diff: Diff?
    var top: Int
    /// Completed GC cycles in the window (the fewest of any state), and those before its final
    /// snapshots, which a fit can use (FitCycles).
    var cycles: Int64
    var fitCycles: FitCycles

    /// Whether growth (2 cycles needed, as for query) and leak suspects (as for leaks) are
    /// figured from the live bytes at the snapshots rather than after GC.
    var growthFromLive: Bool { cycles < growthCyclesNeeded }
    var leaksFromLive: Bool { !fitCycles.suffice }

    /// Two sides of `--base`/`--head` and their changes.
    struct Diff {
        var base: Side
        var head: Side
        var changes: [Comparison.Change]
    }

    /// Row figures: growth over the window, live bytes (after GC) at the end, and its series.
    struct Row {
        var key: SiteKey
        var site: String
        var info: SiteInfo
        var values: [Int64]
        var growth: Int64 { (values.last ?? 0) - (values.first ?? 0) }
        var live: Int64 { values.last ?? 0 }
    }

    var rows: [Row] { rows(fromLive: false) }

    func rows(fromLive: Bool) -> [Row] {
        (fromLive ? series.live : series.afterGC).map { key, values in
            let label = series.labels[key]!
            return Row(key: key, site: label.site, info: label.info, values: values)
        }
    }

    /// The line query and leaks print on stderr when they fall back to live bytes.
    /// `shortfall` says why ("only 3 GC cycles completed in this window").
    private func fallbackNote(_ shortfall: String?) -> String {
        guard let shortfall else { return "" }
        return "<p class=\"note\">\(shortfall.prefix(1).uppercased() + shortfall.dropFirst()), "
            + "too few for figures after GC: the live bytes at the snapshots stand in, "
            + "uncollected garbage included (as with <code>--current</code>).</p>"
    }

    func html() -> String {
        let rows = self.rows
        let growthRows = growthFromLive ? self.rows(fromLive: true) : rows
        let growing = growthRows.filter { $0.growth > 0 }.sorted { $0.growth > $1.growth }.prefix(
            top)
        let leakRows = leaksFromLive ? self.rows(fromLive: true) : rows
        let suspects = leakRows.compactMap { row -> (Row, Trend)? in
            Trend(times: series.times, values: row.values).flatMap {
                $0.isSuspect ? (row, $0) : nil
            }
        }.sorted { $0.1.score > $1.1.score }.prefix(top)
        let first = snapshots.first!.ref.timeMs, last = snapshots.last!.ref.timeMs
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8">
            <title>luamem report: \(escape(title))</title>
            <style>\(Self.style)</style></head>
            <body data-ready="0">
            <h1>luamem report: \(escape(title))</h1>
            <section id="facts"><table class="facts">
            \(factRows.map { $0.map { fact($0.0, $0.1) }.joined() } ?? """
            \(fact("Build", run.build ?? "—"))\(fact("Name", run.name ?? "—"))\(fact("Host", "\(run.host) (pid \(run.pid))"))
            \(fact("Command", run.command))\(fact("Lua", facts.luaVersion))\(fact("Options", facts.options))
            """)
            \(fact("Window", "\(formatTime(first)) → \(formatTime(last)) UTC (\(Listing.formatDuration(last - first)), \(snapshots.count) \(factRows == nil ? "snapshots" : "points"))"))
            </table></section>
            <section id="timeline"><h2>Live memory over time</h2>\(timeline())
            <p class="legend"><span class="live">■</span> live bytes at each snapshot
            <span class="gc">■</span> live bytes after GC</p>
            <h3>After GC, by object type</h3>\(stackedByType(current: false, figure: "after GC"))
            <h3>At each snapshot (uncollected garbage included), by object type</h3>\
            \(stackedByType(current: true, figure: "live"))</section>
            \(diffSection())
            <section id="growth"><h2>Sites that grew most</h2>\(fallbackNote(growthFromLive ? onlyCompleted(cycles) : nil))\
            \(growthTable(Array(growing)))</section>
            <section id="leaks"><h2>Leak suspects</h2>\(fallbackNote(fitCycles.shortfall))\
            \(leakTable(Array(suspects)))</section>
            <section id="treemap"><h2>Live memory by file, function and line</h2>
            <p class="legend">Area: live bytes after GC at the end. Colour: growth over the window,
            <span style="color:hsl(24,90%,40%)">■</span> darker as a line grew more next to the
            line that grew most, <span style="color:hsl(130,45%,45%)">■</span> shrank,
            <span style="color:#bdbdbd">■</span> unchanged.
            <b>[host]</b> is what was allocated with no Lua function running: the standard
            libraries being opened and luamem's own GC sentinel (a host's own allocations, when
            luamem is embedded). <b>[other sites]</b> holds the sites past --max-sites, counted
            together; <i>script.lua (load)</i> is the script's bytecode.</p>
            \(treemap(rows))</section>
            \(icicle())
            <footer>Written by luamem \(Luamem.configuration.version) at \(formatTime(Clock.epochMs())) UTC.</footer>
            <script>\(Self.script)</script>
            </body></html>
            """
    }

    /// Rows of the facts table in place of the run's (a fleet's page).
    var factRows: [(String, String)]? = nil

    private func fact(_ name: String, _ value: String) -> String {
        "<tr><th>\(escape(name))</th><td>\(escape(value))</td></tr>"
    }

    // MARK: Charts

    /// Total live and post-GC bytes over time, summed over states at each snapshot time.
    private func timeline() -> String {
        var latest: [Int64: SnapshotSummary] = [:]
        var points: [(time: Int64, live: Int64, gc: Int64)] = []
        for snapshot in snapshots {
            latest[snapshot.ref.stateID] = snapshot
            let point = (
                snapshot.ref.timeMs, latest.values.map(\.totals.liveBytes).reduce(0, +),
                latest.values.map(\.totals.gcLiveBytes).reduce(0, +)
            )
            if points.last?.time == point.0 {
                points[points.count - 1] = point
            } else {
                points.append(point)
            }
        }
        points = Self.downsample(points, to: 600)
        let width = 900.0, height = 240.0, left = 70.0, bottom = 24.0
        let t0 = Double(points.first!.time),
            t1 = Double(max(points.last!.time, points.first!.time + 1))
        let top = Double(max(points.map { max($0.live, $0.gc) }.max() ?? 1, 1))
        func x(_ t: Int64) -> Double { left + (Double(t) - t0) / (t1 - t0) * (width - left - 10) }
        func y(_ v: Int64) -> Double { height - bottom - Double(v) / top * (height - bottom - 10) }
        func line(_ value: (Int64, Int64, Int64) -> Int64) -> String {
            points.map {
                String(format: "%.1f,%.1f", x($0.time), y(value($0.time, $0.live, $0.gc)))
            }
            .joined(separator: " ")
        }
        var marks = ""
        for point in points where points.count <= 120 || point.time == points.last!.time {
            marks += """
                <circle class="point" cx="\(String(format: "%.1f", x(point.time)))" cy="\(String(format: "%.1f", y(point.live)))" r="3">\
                <title>\(formatTime(point.time)) UTC: \(Listing.formatBytes(point.live)) live (\(point.live) bytes), \
                \(Listing.formatBytes(point.gc)) after GC (\(point.gc) bytes)</title></circle>
                """
        }
        return """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="live memory over time">
            <line class="axis" x1="\(left)" y1="\(height - bottom)" x2="\(width - 10)" y2="\(height - bottom)"/>
            <line class="axis" x1="\(left)" y1="10" x2="\(left)" y2="\(height - bottom)"/>
            <text class="tick" x="\(left - 6)" y="16" text-anchor="end">\(Listing.formatBytes(Int64(top)))</text>
            <text class="tick" x="\(left - 6)" y="\(height - bottom)" text-anchor="end">0</text>
            <text class="tick" x="\(left)" y="\(height - 6)">\(formatTime(points.first!.time))</text>
            <text class="tick" x="\(width - 10)" y="\(height - 6)" text-anchor="end">\(formatTime(points.last!.time))</text>
            <polyline class="live" points="\(line { _, live, _ in live })"/>
            <polyline class="gc" points="\(line { _, _, gc in gc })"/>
            \(marks)</svg>
            """
    }

    /// Bytes over time (at the snapshots when `current`, else after GC), stacked by object type.
    private func stackedByType(current: Bool, figure: String) -> String {
        let times = byType.times
        guard times.count >= 2 else { return "<p>Too few snapshots for a chart.</p>" }
        let series = byType.values(current: current)
        let keys = series.keys.sorted { (series[$0]?.last ?? 0) > (series[$1]?.last ?? 0) }
        let indices = Self.downsample(Array(times.indices), to: 300)
        let width = 900.0, height = 200.0, left = 70.0, bottom = 20.0
        let totals = indices.map { index in keys.map { series[$0]![index] }.reduce(0, +) }
        let top = Double(max(totals.max() ?? 1, 1))
        let t0 = Double(times.first!), t1 = Double(max(times.last!, times.first! + 1))
        func x(_ index: Int) -> Double {
            left + (Double(times[index]) - t0) / (t1 - t0) * (width - left - 10)
        }
        func y(_ value: Int64) -> Double {
            height - bottom - Double(value) / top * (height - bottom - 10)
        }
        var below = indices.map { _ in Int64(0) }
        var layers = ""
        for key in keys {
            let values = indices.map { series[key]![$0] }
            let above = zip(below, values).map { $0 + $1 }
            let upper = zip(indices, above).map { String(format: "%.1f,%.1f", x($0), y($1)) }
            let lower = zip(indices, below).reversed().map {
                String(format: "%.1f,%.1f", x($0), y($1))
            }
            let name = key.type ?? "?"
            layers += """
                <polygon class="layer" data-type="\(escape(name))" style="fill:\(Self.colour(ofType: name))" \
                points="\((upper + lower).joined(separator: " "))"><title>\(escape(name)): \
                \(Listing.formatBytes(values.last ?? 0)) \(figure) at the end (\(values.last ?? 0) bytes)</title></polygon>
                """
            below = above
        }
        let legend = keys.map { key in
            "<span style=\"color:\(Self.colour(ofType: key.type ?? "?"))\">■</span> \(escape(key.type ?? "?"))"
        }.joined(separator: " ")
        return """
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(height))" role="img" aria-label="\(figure) by type">
            <line class="axis" x1="\(left)" y1="\(height - bottom)" x2="\(width - 10)" y2="\(height - bottom)"/>
            <text class="tick" x="\(left - 6)" y="16" text-anchor="end">\(Listing.formatBytes(Int64(top)))</text>
            \(layers)</svg><p class="legend">\(legend)</p>
            """
    }

    /// A treemap cell's colour: orange as dark as its growth is large next to the largest
    /// line's, green for shrinkage, grey for none.
    static func growthColour(_ growth: Int64, largest: UInt64) -> String {
        guard growth != 0, largest > 0 else { return "#d9d9d9" }
        let strength = min(1, Double(growth.magnitude) / Double(largest)).squareRoot()
        let lightness = Int((88 - 48 * strength).rounded())
        return growth > 0 ? "hsl(24,90%,\(lightness)%)" : "hsl(130,45%,\(lightness)%)"
    }

    /// One colour per object type, the same in every chart of the page.
    static func colour(ofType type: String) -> String {
        switch type {
        case "string": "#1f77b4"
        case "table": "#ff7f0e"
        case "function": "#2ca02c"
        case "userdata": "#d62728"
        case "thread": "#9467bd"
        case "proto": "#8c564b"
        case "other": "#7f7f7f"
        default: "#e377c2"
        }
    }

    /// An icicle of live bytes (after GC) by call stack, outermost frame on top; only for runs
    /// recorded with --depth above 1.
    private func icicle() -> String {
        // Worth drawing only when some stack has two Lua frames (recorded with --depth > 1).
        guard
            stacks.contains(where: {
                $0.stack.count > 1 && $0.stack.filter { $0.utf8.contains(".lua:".utf8) }.count > 1
            })
        else { return "" }
        final class Frame {
            var bytes: Int64 = 0
            var children: [String: Frame] = [:]
        }
        let root = Frame()
        for (stack, bytes) in stacks {
            var node = root
            node.bytes += bytes
            for name in stack {
                let child = node.children[name] ?? Frame()
                node.children[name] = child
                child.bytes += bytes
                node = child
            }
        }
        let width = 900.0, rowHeight = 18.0
        var cells = "", depth = 0
        func layout(_ node: Frame, name: String, x: Double, span: Double, level: Int) {
            guard span >= 0.5 else { return }
            depth = max(depth, level + 1)
            if level > 0 {
                cells += """
                    <rect class="frame" x="\(String(format: "%.1f", x))" y="\(Double(level - 1) * rowHeight)" \
                    width="\(String(format: "%.1f", max(span - 1, 0.5)))" height="\(rowHeight - 1)"><title>\(escape(name)): \
                    \(Listing.formatBytes(node.bytes)) after GC (\(node.bytes) bytes)</title></rect>
                    """
                if span > 60 {
                    cells +=
                        "<text class=\"label\" x=\"\(String(format: "%.1f", x + 3))\" y=\"\(Double(level - 1) * rowHeight + 12)\">\(escape(String(name.split(separator: "/").last ?? "")))</text>"
                }
            }
            var offset = x
            for (childName, child) in node.children.sorted(by: { $0.value.bytes > $1.value.bytes })
            {
                let childSpan = span * Double(child.bytes) / Double(max(node.bytes, 1))
                layout(child, name: childName, x: offset, span: childSpan, level: level + 1)
                offset += childSpan
            }
        }
        layout(root, name: "all", x: 0, span: width, level: 0)
        return """
            <section id="icicle"><h2>Live memory by call stack</h2>
            <p class="legend">Outermost frame on top; width: live bytes after GC at the end.</p>
            <svg class="icicle" viewBox="0 0 \(Int(width)) \(Int(Double(depth) * rowHeight))">\(cells)</svg></section>
            """
    }

    /// The `--base`/`--head` comparison: bars of the largest changes, then the table.
    private func diffSection() -> String {
        guard let diff else { return "" }
        let shown = Array(diff.changes.prefix(top))
        let largest = Double(max(shown.map { abs($0.change) }.max() ?? 1, 1))
        let width = 900.0, rowHeight = 20.0, middle = 450.0
        var bars = ""
        for (index, change) in shown.enumerated() {
            let label = diff.head.labels[change.key] ?? diff.base.labels[change.key]!
            let length = Double(abs(change.change)) / largest * (middle - 10)
            let x = change.change >= 0 ? middle : middle - length
            bars += """
                <rect class="bar \(change.change >= 0 ? "up" : "down")" x="\(String(format: "%.1f", x))" \
                y="\(Double(index) * rowHeight + 2)" width="\(String(format: "%.1f", max(length, 1)))" \
                height="\(rowHeight - 4)"><title>\(escape(label.site)): \(Listing.formatBytes(change.base ?? 0)) → \
                \(Listing.formatBytes(change.head ?? 0)) (\(change.change) bytes, \(change.status))</title></rect>\
                <text class="label" x="\(change.change >= 0 ? middle - 4 : middle + 4)" y="\(Double(index) * rowHeight + 14)" \
                text-anchor="\(change.change >= 0 ? "end" : "start")">\(escape(label.site))</text>
                """
        }
        let rows = shown.map { change -> String in
            let label = diff.head.labels[change.key] ?? diff.base.labels[change.key]!
            return """
                <tr class="change" data-site="\(escape(label.site))" data-change="\(change.change)">\
                <td class="num">\(Listing.formatBytes(change.base ?? 0))</td>\
                <td class="num">\(Listing.formatBytes(change.head ?? 0))</td>\
                <td class="num" title="\(change.change) bytes">\(Listing.formatBytes(change.change, signed: true))</td>\
                <td>\(change.note ?? "")</td>\
                <td>\(escape(label.site))</td><td>\(escape(SiteKey.functionName(label.info) ?? ""))</td></tr>
                """
        }.joined(separator: "\n")
        return """
            <section id="diff"><h2>Diff: \(escape(diff.base.description)) → \(escape(diff.head.description))</h2>
            <p>Total after GC: \(Listing.formatBytes(diff.base.total)) → \(Listing.formatBytes(diff.head.total)) \
            (\(Listing.formatBytes(diff.head.total - diff.base.total, signed: true))).</p>
            <svg class="chart" viewBox="0 0 \(Int(width)) \(Int(Double(max(shown.count, 1)) * rowHeight))">\
            <line class="axis" x1="\(middle)" y1="0" x2="\(middle)" y2="\(Double(shown.count) * rowHeight)"/>\(bars)</svg>
            <table class="sites"><thead><tr><th>Base</th><th>Head</th><th>Change</th><th></th><th>Site</th>\
            <th>Function</th></tr></thead><tbody>
            \(rows)
            </tbody></table></section>
            """
    }

    /// A small line of a row's values.
    private func sparkline(_ values: [Int64]) -> String {
        let sampled = Self.downsample(values.enumerated().map { (Int64($0), $1) }, to: 60).map(\.1)
        let low = sampled.min() ?? 0, high = max(sampled.max() ?? 1, low + 1)
        let step = 120.0 / Double(max(sampled.count - 1, 1))
        let points = sampled.enumerated().map {
            String(
                format: "%.1f,%.1f", Double($0) * step,
                22 - Double($1 - low) / Double(high - low) * 20)
        }.joined(separator: " ")
        return "<svg class=\"spark\" viewBox=\"0 0 120 24\"><polyline points=\"\(points)\"/></svg>"
    }

    private func siteLink(_ row: Row) -> String {
        guard !SiteKey.isLineless(row.info.file),
            row.info.file.hasPrefix("/") || !row.info.file.hasPrefix("[")
        else {
            return escape(row.site)
        }
        // A chunk name is the path the program used, relative to where it ran: link it only when
        // it names a file that exists, as an absolute path; otherwise it is shown as text.
        let path =
            row.info.file.hasPrefix("/")
            ? row.info.file : FileManager.default.currentDirectoryPath + "/" + row.info.file
        guard FileManager.default.fileExists(atPath: path) else { return escape(row.site) }
        let absolute = URL(fileURLWithPath: path).standardizedFileURL.path
        return "<a href=\"file://\(escape(absolute))#L\(row.info.line)\">\(escape(row.site))</a>"
    }

    private func growthTable(_ rows: [Row]) -> String {
        guard !rows.isEmpty else {
            return "<p>No site grew \(growthFromLive ? "" : "after GC ")in this window.</p>"
        }
        let body = rows.map { row in
            """
            <tr class="site" data-site="\(escape(row.site))" data-growth="\(row.growth)" data-live="\(row.live)">\
            <td class="num" title="\(row.growth) bytes">\(Listing.formatBytes(row.growth, signed: true))</td>\
            <td class="num" title="\(row.live) bytes">\(Listing.formatBytes(row.live))</td>\
            <td>\(sparkline(row.values))</td><td>\(siteLink(row))</td>\
            <td>\(escape(SiteKey.functionName(row.info) ?? ""))</td></tr>
            """
        }.joined(separator: "\n")
        return """
            <table class="sites"><thead><tr><th>Growth</th><th>\(growthFromLive ? "Live" : "Live after GC")</th><th>Over time</th>\
            <th>Site</th><th>Function</th></tr></thead><tbody>
            \(body)
            </tbody></table>
            """
    }

    private func leakTable(_ suspects: [(Row, Trend)]) -> String {
        guard !suspects.isEmpty else {
            return
                "<p>No site grows steadily in this window (see <code>luamem leaks --all</code>).</p>"
        }
        let body = suspects.map { row, trend in
            """
            <tr class="suspect" data-site="\(escape(row.site))">\
            <td class="num">\(Listing.formatBytes(Int64((trend.slope * 60).rounded()), signed: true))/min</td>\
            <td class="num">\(String(format: "%.2f", trend.fit))</td>\
            <td class="num">\(String(format: "%.0f%%", trend.late * 100))</td>\
            <td>\(sparkline(row.values))</td><td>\(siteLink(row))</td>\
            <td>\(escape(SiteKey.functionName(row.info) ?? ""))</td></tr>
            """
        }.joined(separator: "\n")
        return """
            <table class="sites"><thead><tr><th>Rate</th><th>Fit</th><th>Late</th><th>Over time</th>\
            <th>Site</th><th>Function</th></tr></thead><tbody>
            \(body)
            </tbody></table>
            """
    }

    // MARK: Treemap

    /// A node of the treemap: a file, a function in it, or a line in that.
    final class Node {
        var name: String
        var value: Int64 = 0
        var growth: Int64 = 0
        var children: [String: Node] = [:]
        var detail = ""
        init(_ name: String) { self.name = name }

        /// Largest first; equal sizes by name (a dictionary's order changes from run to run).
        static func ordered(_ nodes: [String: Node]) -> [Node] {
            nodes.values.sorted { ($0.value, $1.name) > ($1.value, $0.name) }
        }
    }

    private func treemap(_ rows: [Row]) -> String {
        let positive = rows.filter { $0.live > 0 }.sorted { $0.live > $1.live }
        let root = Node("all")
        for (index, row) in positive.enumerated() {
            let isOther = index >= top * 5
            let fileName = isOther ? "other" : row.info.file
            let functionName = isOther ? "other" : (SiteKey.functionName(row.info) ?? "?")
            let file = root.children[fileName] ?? Node(fileName)
            root.children[fileName] = file
            let function = file.children[functionName] ?? Node(functionName)
            file.children[functionName] = function
            let lineName = isOther ? "other lines" : row.site
            let line = function.children[lineName] ?? Node(lineName)
            function.children[lineName] = line
            line.detail =
                isOther ? "the smaller lines together" : (SiteKey.functionName(row.info) ?? "")
            for node in [root, file, function, line] {
                node.value += row.live
                node.growth += row.growth
            }
        }
        guard root.value > 0 else { return "<p>No live memory at the end of the window.</p>" }
        let largestGrowth = root.children.values.flatMap { $0.children.values }
            .flatMap { $0.children.values }.map { $0.growth.magnitude }.max() ?? 0
        var cells = ""
        let width = 900.0, height = 420.0
        for (file, fileRect) in Self.squarify(
            Node.ordered(root.children), in: (0, 0, width, height))
        {
            cells +=
                "<g class=\"file\"><rect class=\"file\" x=\"\(f(fileRect.0))\" y=\"\(f(fileRect.1))\" width=\"\(f(fileRect.2))\" height=\"\(f(fileRect.3))\"><title>\(escape(file.name)): \(Listing.formatBytes(file.value)) (\(file.value) bytes)</title></rect>"
            let inner = (
                fileRect.0 + 2, fileRect.1 + 14, max(fileRect.2 - 4, 0), max(fileRect.3 - 16, 0)
            )
            for (function, functionRect) in Self.squarify(
                Node.ordered(file.children), in: inner)
            {
                for (line, rect) in Self.squarify(
                    Node.ordered(function.children), in: functionRect)
                {
                    cells += """
                        <rect class="cell" style="fill:\(Self.growthColour(line.growth, largest: largestGrowth))" \
                        data-bytes="\(line.value)" data-growth="\(line.growth)" x="\(f(rect.0))" y="\(f(rect.1))" \
                        width="\(f(rect.2))" height="\(f(rect.3))"><title>\(escape(line.name)) \(escape(line.detail)): \
                        \(Listing.formatBytes(line.value)) live after GC (\(line.value) bytes), \
                        \(Listing.formatBytes(line.growth, signed: true)) over the window</title></rect>
                        """
                    if rect.2 > 70 && rect.3 > 14 {
                        cells +=
                            "<text class=\"label\" x=\"\(f(rect.0 + 3))\" y=\"\(f(rect.1 + 12))\">\(escape(String(line.name.split(separator: "/").last ?? "")))</text>"
                    }
                }
            }
            cells +=
                "<text class=\"file-label\" x=\"\(f(fileRect.0 + 3))\" y=\"\(f(fileRect.1 + 11))\">\(escape(String(file.name.split(separator: "/").last ?? "")))</text></g>"
        }
        return "<svg class=\"treemap\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">\(cells)</svg>"
    }

    private func f(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Squarified treemap layout (Bruls, Huizing, van Wijk) of nodes sorted by value, largest
    /// first, into a rectangle (x, y, width, height).
    static func squarify(_ nodes: [Node], in rect: (Double, Double, Double, Double))
        -> [(Node, (Double, Double, Double, Double))]
    {
        var result: [(Node, (Double, Double, Double, Double))] = []
        var remaining = nodes.filter { $0.value > 0 }
        var (x, y, width, height) = rect
        let total = Double(remaining.map(\.value).reduce(0, +))
        guard total > 0, width > 0, height > 0 else { return [] }
        var areaScale = width * height / total
        while !remaining.isEmpty {
            let side = min(width, height)
            var row: [Node] = []
            var worst = Double.infinity
            for node in remaining {
                let candidate = row + [node]
                let sum = candidate.map { Double($0.value) * areaScale }.reduce(0, +)
                let maxArea = candidate.map { Double($0.value) * areaScale }.max()!
                let minArea = candidate.map { Double($0.value) * areaScale }.min()!
                let ratio = max(
                    side * side * maxArea / (sum * sum), sum * sum / (side * side * minArea))
                if ratio > worst { break }
                worst = ratio
                row = candidate
            }
            remaining.removeFirst(row.count)
            let rowArea = row.map { Double($0.value) * areaScale }.reduce(0, +)
            let thickness = rowArea / side
            var offset = 0.0
            for node in row {
                let length = Double(node.value) * areaScale / thickness
                if width >= height {
                    result.append((node, (x, y + offset, thickness, length)))
                } else {
                    result.append((node, (x + offset, y, length, thickness)))
                }
                offset += length
            }
            if width >= height {
                x += thickness; width -= thickness
            } else {
                y += thickness; height -= thickness
            }
            let left = Double(remaining.map(\.value).reduce(0, +))
            if left > 0 { areaScale = width * height / left }
        }
        return result
    }

    // MARK: Helpers

    /// At most `limit` points, keeping the first and last and spreading the rest evenly.
    static func downsample<T>(_ points: [T], to limit: Int) -> [T] {
        guard points.count > limit, limit >= 2 else { return points }
        return (0..<limit).map { points[$0 * (points.count - 1) / (limit - 1)] }
    }

    /// HTML-escapes `text` in one pass, not four through NSString; most names need nothing and
    /// come back as they are.
    private func escape(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 })
        else { return text }
        return Listing.replacingScalars(text) {
            switch $0 {
            case "&": "&amp;"
            case "<": "&lt;"
            case ">": "&gt;"
            case "\"": "&quot;"
            default: nil
            }
        }
    }


    static let style = """
        body{font:14px/1.4 system-ui,sans-serif;margin:24px auto;max-width:960px;color:#222}
        h1{font-size:20px}h2{font-size:16px;margin-top:28px}
        p.note{background:#fff6e0;border-left:3px solid #e0a030;padding:4px 8px}
        table{border-collapse:collapse;width:100%}th,td{padding:3px 6px;text-align:left;vertical-align:middle;overflow-wrap:anywhere}
        table.sites tr:nth-child(even){background:#f5f5f5}td.num{text-align:right;white-space:nowrap}
        table.facts th{width:110px;color:#555;font-weight:normal}
        svg.chart,svg.treemap{width:100%;height:auto;border:1px solid #ddd}
        .axis{stroke:#999}.tick{font-size:11px;fill:#555}
        polyline.live{fill:none;stroke:#d62728;stroke-width:1.5}polyline.gc{fill:none;stroke:#1f77b4;stroke-width:1.5}
        .point{fill:#d62728}.legend .live{color:#d62728}.legend .gc{color:#1f77b4}
        svg.spark{width:120px;height:24px}svg.spark polyline{fill:none;stroke:#555;stroke-width:1.2}
        rect.file{fill:#fff;stroke:#333;stroke-width:1}rect.cell{stroke:#fff;stroke-width:1}
        rect.up,.legend .up{fill:#e6550d;color:#e6550d}rect.flat,.legend .flat{fill:#bdbdbd;color:#888}
        rect.down,.legend .down{fill:#31a354;color:#31a354}
        rect.bar.up{fill:#e6550d}rect.bar.down{fill:#31a354}
        rect.cell:hover,rect.frame:hover,rect.bar:hover{opacity:.75}svg.icicle{width:100%;height:auto}
        rect.frame{fill:#fdae6b;stroke:none}polygon.layer{stroke:#fff;stroke-width:.5}h3{font-size:14px}.label{font-size:10px;fill:#111;pointer-events:none}
        .file-label{font-size:11px;font-weight:bold;fill:#333;pointer-events:none}
        tr.highlight{outline:2px solid #e6550d}
        footer{margin-top:32px;color:#888;font-size:12px}
        @media print{body{max-width:none;margin:0}section{break-inside:avoid}}
        """

    /// Clicking a treemap cell highlights its rows in the tables; the page marks itself ready
    /// (or records the first script error) so tests can tell it loaded.
    static let script = """
        window.addEventListener('error', function (e) { document.body.dataset.error = String(e.message); });
        document.querySelectorAll('rect.cell').forEach(function (cell) {
          cell.addEventListener('click', function () {
            var name = cell.querySelector('title').textContent.split(' ')[0];
            document.querySelectorAll('tr[data-site]').forEach(function (row) {
              row.classList.toggle('highlight', row.dataset.site === name);
            });
          });
        });
        document.body.dataset.cells = String(document.querySelectorAll('rect.cell').length);
        document.body.dataset.ready = '1';
        """
}
