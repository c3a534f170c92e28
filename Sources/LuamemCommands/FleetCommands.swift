import Foundation
import LuamemAgent
import LuamemStore

// The reading commands against a fleet store (`luamem ship`): the same options and listings
// as for a file, answered by queries that ClickHouse executes.

extension LeaksCommand {
    /// Rows whose figures, added over every selected run, grow steadily over the window.
    func fleetLeaks(_ server: ClickHouse) throws {
        try selection.refuseRunID(server)
        let series = try FleetSeries(
            server: server, selection: selection,
            sinceMs: window.sinceMs(nowMs: Clock.epochMs()), untilMs: nil,
            groups: FleetSeries.groups(rows.by), alignRuns: true)
        guard series.snapshots >= 4 else {
            throw CommandError(
                "\(fleetHeading(server)) has at most \(series.snapshots) snapshot(s) per run in the window; "
                    + "leaks needs at least 4 (a longer window)")
        }
        let current = rows.usesCurrent(fitCycles: series.fitCycles)
        let trends = series.rows.compactMap { row -> (FleetSeries.Row, Trend)? in
            Trend(times: series.times, values: current ? row.live : row.afterGC).map { (row, $0) }
        }
        let ranked = trends.filter { all || $0.1.isSuspect }.sorted {
            if $0.1.score != $1.1.score { return $0.1.score > $1.1.score }
            if $0.1.growth != $1.1.growth { return $0.1.growth > $1.1.growth }
            return $0.0.fields.joined(separator: "\u{0}") < $1.0.fields.joined(separator: "\u{0}")
        }
        var listing = Listing(columns: columns(runs: true))
        for (row, trend) in ranked.prefix(output.top) {
            let (site, info) = FleetSeries.label(row.fields, by: rows.by)
            listing.rows.append([
                .bytes(Int64((trend.slope * 60).rounded()), signed: true),
                .text(String(format: "%.2f", trend.fit)),
                .text(String(format: "%.0f%%", trend.late * 100)),
                .bytes(trend.growth, signed: true),
                .bytes(row.live.last ?? 0, signed: false), .integer(row.runs), .text(site),
                .text(rows.by == .line || rows.by == .function ? info.function : nil),
                .text(trend.isSuspect ? "yes" : "no"), .text(info.file),
                rows.by == .line ? .integer(info.line) : .text(nil),
            ])
        }
        let span = (series.times.last ?? 0) - (series.times.first ?? 0)
        let heading =
            "\(fleetHeading(server)): \(series.runs) run(s), \(series.times.count) points over each "
            + "run's part of the window (\(Listing.formatDuration(span)) on average), "
            + (ranked.isEmpty
                ? "no steadily growing site" : "\(ranked.count) \(all ? "rows" : "suspect(s)")")
        output.print(listing, heading: heading)
    }

    private func fleetHeading(_ server: ClickHouse) -> String {
        "fleet \(server.description)\(selection.fleetDescription)"
    }
}

extension HistoryCommand {
    /// One site, or one file, over time, its figures added over every selected run.
    func fleetHistory(_ server: ClickHouse, file: String, line: Int64?) throws {
        try selection.refuseRunID(server)
        let sites =
            "(file = \(ClickHouse.literal(file)) OR endsWith(file, \(ClickHouse.literal("/" + file))))"
            + (line.map { " AND line = \($0)" } ?? "")
        let series = try FleetSeries(
            server: server, selection: selection,
            sinceMs: window.sinceMs(nowMs: Clock.epochMs()), untilMs: nil, groups: ["1"],
            sites: sites)
        let heading = "fleet \(server.description)\(selection.fleetDescription)"
        guard let row = series.rows.first else {
            throw CommandError("no allocation at \(site) in \(heading)")
        }
        let fromLive = series.cycles < growthCyclesNeeded
        if fromLive { warnTooFewCycles(series.cycles) }
        let listing = Self.listing(
            times: series.times, afterGC: row.afterGC, live: row.live, fromLive: fromLive,
            top: output.top)
        output.print(
            listing,
            heading:
                "\(site) in \(heading): \(row.runs) run(s), live bytes after GC and at each of "
                + "\(series.times.count) evenly spaced times")
        if output.format == .table {
            print("\n" + Self.chart(fromLive ? row.live : row.afterGC))
        }
    }
}

extension SnapshotsCommand {
    /// The snapshots of every selected run, newest last; --top keeps the latest ones.
    func fleetSnapshots(_ server: ClickHouse) throws {
        try selection.refuseRunID(server)
        let db = server.database
        let answer = try server.execute(
            """
            SELECT * FROM (
                SELECT s.run_uuid, r.host, s.snapshot_id, s.state, s.time_ms, s.kind, s.live_bytes,
                       s.gc_live_bytes, s.live_count, s.alloc_bytes, s.gc_cycles
                FROM (SELECT * FROM \(db).snapshots FINAL
                      WHERE \(selection.fleetRuns(db)) AND \(selection.fleetStates(db))) AS s
                ANY LEFT JOIN (SELECT run_uuid, host FROM \(db).runs FINAL) AS r USING run_uuid
                ORDER BY time_ms DESC, run_uuid DESC, snapshot_id DESC LIMIT \(output.top))
            ORDER BY time_ms, run_uuid, snapshot_id
            FORMAT TabSeparated
            """)
        var listing = Listing(
            columns: [
                .init(key: "run", title: "RUN", rightAligned: false),
                .init(key: "host", title: "HOST", rightAligned: false),
            ] + Self.snapshotColumns)
        for line in answer.split(separator: "\n") {
            let fields = ClickHouse.fields(line)
            guard fields.count == 11 else { continue }
            func number(_ index: Int) -> Int64 { Int64(fields[index]) ?? 0 }
            listing.rows.append([
                .text(fields[0]), .text(fields[1]), .integer(number(2)), .text(fields[3]),
                .text(formatTime(number(4))), .text(fields[5]),
                .bytes(number(6), signed: false), .bytes(number(7), signed: false),
                .integer(number(8)), .bytes(number(9), signed: false), .integer(number(10)),
                .integer(number(4)),
            ])
        }
        let heading = "fleet \(server.description)\(selection.fleetDescription)"
        guard !listing.rows.isEmpty else { throw CommandError("\(heading) holds no snapshot") }
        output.print(listing, heading: heading)
    }
}

extension ExportCommand {
    /// Every selected run of a fleet store at its latest snapshots, added up per (state name,
    /// site, type) in the server. A fleet store keeps a site's stack as file:line per frame and
    /// the function only of its innermost frame; an outer frame is named after a site whose
    /// innermost frame is that line, when there is one.
    func fleetContents(_ server: ClickHouse) throws -> Contents {
        try Self.fleetContents(server, selection: selection, current: current)
    }

    static func fleetContents(
        _ server: ClickHouse, selection: SelectionOptions, current: Bool
    ) throws -> Contents {
        try selection.refuseRunID(server)
        let db = server.database
        let answer = try server.execute(
            """
            SELECT state, file, line, line_defined, function, c_function, stack, type,
                   sum(live), sum(live_n), sum(alloc), sum(alloc_n), sum(gc)
            FROM (
                SELECT site_key, state, live, live_n, alloc, alloc_n, gc
                FROM (
                    SELECT run_key, state_id, site_key,
                           argMax(live_bytes, snapshot_id) AS live, argMax(live_count, snapshot_id) AS live_n,
                           argMax(alloc_bytes, snapshot_id) AS alloc, argMax(alloc_count, snapshot_id) AS alloc_n,
                           argMax(gc_live_bytes, snapshot_id) AS gc
                    FROM \(db).site_stats
                    WHERE \(selection.fleetRuns(db)) AND \(selection.fleetStates(db))
                    GROUP BY run_key, state_id, site_key)
                ANY LEFT JOIN (
                    SELECT cityHash64(run_uuid) AS run_key, state_id, any(state) AS state
                    FROM \(db).snapshots
                    GROUP BY run_uuid, state_id) USING (run_key, state_id))
            ANY LEFT JOIN (
                SELECT site_key, file, line, line_defined, function, c_function, stack, type
                FROM \(db).sites FINAL) USING site_key
            GROUP BY state, file, line, line_defined, function, c_function, stack, type
            FORMAT TabSeparated
            """)
        struct Row {
            var state, file, function, cfunction, stack, type: String
            var line, lineDefined: Int64
            var figures: Figures
        }
        var rows: [Row] = []
        for line in answer.split(separator: "\n") {
            let fields = ClickHouse.fields(line)
            guard fields.count == 13 else { continue }
            func number(_ index: Int) -> Int64 { Int64(fields[index]) ?? 0 }
            var figures = Figures()
            figures.liveBytes = number(8)
            figures.liveCount = number(9)
            figures.allocBytes = number(10)
            figures.allocCount = number(11)
            figures.gcLiveBytes = number(12)
            rows.append(
                Row(
                    state: fields[0], file: fields[1], function: fields[4], cfunction: fields[5],
                    stack: fields[6], type: fields[7], line: number(2), lineDefined: number(3),
                    figures: figures))
        }
        // Frames: the innermost frame of each site as shipped; an outer one (file:line) named
        // after an innermost frame at the same line.
        var named: [String: (function: String?, lineDefined: Int64)] = [:]
        for row in rows {
            named["\(row.file):\(row.line)"] = (row.function.isEmpty ? nil : row.function, row.lineDefined)
        }
        var contents = Contents()
        var frameIDs: [String: Int64] = [:]
        func frameID(_ frame: FrameInfo) -> Int64 {
            let key = "\(frame.file)\u{0}\(frame.line)\u{0}\(frame.function ?? "")\u{0}\(frame.lineDefined)"
            if let known = frameIDs[key] { return known }
            let id = Int64(frameIDs.count + 1)
            frameIDs[key] = id
            contents.frames[id] = frame
            return id
        }
        for row in rows {
            let outer = row.stack.split(separator: ";").dropFirst().map { part -> Int64 in
                let colon = part.lastIndex(of: ":") ?? part.endIndex
                let file = String(part[..<colon])
                let line = colon < part.endIndex ? Int64(String(part[part.index(after: colon)...])) ?? 0 : 0
                let known = named["\(file):\(line)"]
                return frameID(
                    FrameInfo(
                        file: file, line: line, function: known?.function,
                        lineDefined: known?.lineDefined ?? 0))
            }
            let innermost = frameID(
                FrameInfo(
                    file: row.file, line: row.line, function: row.function.isEmpty ? nil : row.function,
                    lineDefined: row.lineDefined))
            let info = SiteInfo(
                id: 0, file: row.file, line: row.line, lineDefined: row.lineDefined,
                function: row.function.isEmpty ? nil : row.function, cfunction: row.cfunction,
                stack: ([innermost] + outer).map(String.init).joined(separator: ","))
            contents.entries.append(
                .init(state: row.state, info: info, type: row.type, figures: row.figures))
        }
        // When and how long: the latest snapshot, from the earliest selected run's start; the
        // sampling interval when every run had the same.
        let facts = try server.execute(
            """
            SELECT max(time_ms), uniqExact(run_uuid) FROM \(db).snapshots
            WHERE \(selection.fleetRuns(db)) AND \(selection.fleetStates(db))
            FORMAT TabSeparated
            """
        ).split(separator: "\n").first.map(ClickHouse.fields) ?? []
        let options = try server.execute(
            """
            SELECT min(started_ms), groupUniqArray(options) FROM \(db).runs FINAL
            WHERE \(selection.fleetRuns(db))
            FORMAT TabSeparated
            """
        ).split(separator: "\n").first.map(ClickHouse.fields) ?? []
        let runs = facts.count == 2 ? Int64(facts[1]) ?? 0 : 0
        guard runs > 0 else {
            throw CommandError("fleet \(server.description)\(selection.fleetDescription) holds no run")
        }
        contents.timeMs = facts.count == 2 ? Int64(facts[0]) ?? 0 : 0
        let started = options.count == 2 ? Int64(options[0]) ?? contents.timeMs : contents.timeMs
        contents.durationMs = max(0, contents.timeMs - started)
        // groupUniqArray's strings come back as a ClickHouse array literal of quoted strings.
        let intervals = Set(
            (options.count == 2 ? options[1] : "").components(separatedBy: "\"sample\":").dropFirst()
                .map { Int64($0.prefix { $0.isNumber }) ?? 0 })
        contents.period = intervals.count == 1 ? intervals.first! : 0
        contents.comments = [
            "luamem fleet \(server.description)\(selection.fleetDescription): \(runs) run(s) added up",
            "latest snapshot of each state; inuse is live bytes "
                + (current ? "at the snapshot" : "after GC"),
        ]
        return contents
    }
}

extension Series {
    /// A fleet's rows over time (FleetSeries), as the report draws a file's.
    init(fleet: FleetSeries, by grouping: Grouping) {
        var afterGC: [SiteKey: [Int64]] = [:], live: [SiteKey: [Int64]] = [:]
        var labels: [SiteKey: (site: String, info: SiteInfo)] = [:]
        for row in fleet.rows {
            let (_, fields) = FleetSeries.label(row.fields, by: grouping)
            let type = grouping == .type ? row.fields[0] : "?"
            let info = SiteInfo(
                id: 0, file: fields.file ?? "", line: fields.line,
                lineDefined: grouping == .function ? fields.line : row.lineDefined,
                function: fields.function, cfunction: "", stack: "")
            let key = SiteKey(info, type: type, by: grouping)
            afterGC[key] = zip(afterGC[key] ?? row.afterGC.map { _ in 0 }, row.afterGC).map { $0 + $1 }
            live[key] = zip(live[key] ?? row.live.map { _ in 0 }, row.live).map { $0 + $1 }
            labels[key] = labels[key] ?? (SiteKey.label(info, type: type, by: grouping), info)
        }
        self.init(times: fleet.times, afterGC: afterGC, live: live, labels: labels)
    }
}

extension ReportCommand {
    /// The page of a fleet store: the selected runs' figures added up at up to 60 evenly spaced
    /// times of the window (as `history` and `query` across the fleet), the stacks of their
    /// latest snapshots (as `export`), and with --base/--head the fleet's diff.
    func fleetPage(_ server: ClickHouse) throws -> ReportPage {
        try selection.refuseRunID(server)
        let heading = "fleet \(server.description)\(selection.fleetDescription)"
        progress("reading \(heading)")
        let sinceMs = window.sinceMs(nowMs: Clock.epochMs())
        // Lines: each run spaced over its own part of the window, as `leaks` does (so growth is
        // each run's from its base to its end, added up, as `query` gives it).
        let lines = try FleetSeries(
            server: server, selection: selection, sinceMs: sinceMs, untilMs: nil,
            groups: FleetSeries.groups(.line), alignRuns: true)
        guard lines.times.count >= 1, lines.runs > 0 else {
            throw CommandError("\(heading) has no snapshot to report")
        }
        let types = try FleetSeries(
            server: server, selection: selection, sinceMs: sinceMs, untilMs: nil,
            groups: FleetSeries.groups(.type))
        let byLine = Series(fleet: lines, by: .line), byType = Series(fleet: types, by: .type)
        // The timeline: the fleet's totals at each time, as one state's snapshots.
        let snapshots = byType.times.indices.map { index in
            var totals = Figures()
            totals.liveBytes = byType.live.values.map { $0[index] }.reduce(0, +)
            totals.gcLiveBytes = byType.afterGC.values.map { $0[index] }.reduce(0, +)
            return SnapshotSummary(
                ref: SnapshotRef(id: Int64(index + 1), stateID: 0, timeMs: byType.times[index]),
                runID: 0, state: "fleet", kind: "interval", totals: totals, gcCycles: 0)
        }
        var diff: ReportPage.Diff?
        if let base, let head {
            progress("comparing \(base) with \(head)")
            let comparison = FleetComparison(
                server: server, at: at, by: .line, current: false, state: selection.state)
            let baseSide = try comparison.resolve(base), headSide = try comparison.resolve(head)
            diff = ReportPage.Diff(
                base: baseSide, head: headSide, changes: Comparison.changes(baseSide, headSide))
        }
        _ = lines.fitCycles.warnIfShort()
        let contents = try ExportCommand.fleetContents(server, selection: selection, current: false)
        var stacks: [[String]: Int64] = [:]
        for entry in contents.entries where entry.figures.gcLiveBytes > 0 {
            stacks[ExportCommand.stack(entry.info, contents.frames), default: 0] += entry.figures.gcLiveBytes
        }
        let db = server.database
        let facts = try server.execute(
            """
            SELECT uniqExact(run_uuid), uniqExact(host), arrayStringConcat(groupUniqArray(build), ', '),
                   arrayStringConcat(groupUniqArray(lua_version), ', ')
            FROM \(db).runs FINAL
            WHERE \(selection.fleetRuns(db))
            FORMAT TabSeparated
            """
        ).split(separator: "\n").first.map(ClickHouse.fields) ?? []
        var page = ReportPage(
            run: RunRecord(
                id: 0, build: selection.build, name: selection.name, host: selection.host ?? "",
                pid: 0, command: "", startedMs: snapshots.first?.ref.timeMs ?? 0, endedMs: nil,
                exitStatus: nil, parentID: nil),
            title: heading, facts: (luaVersion: "", options: ""), snapshots: snapshots,
            series: byLine, byType: byType, stacks: stacks.map { ($0.key, $0.value) }, diff: diff,
            top: top, cycles: lines.cycles, fitCycles: lines.fitCycles)
        if facts.count == 4 {
            page.factRows = [
                ("Runs", "\(facts[0]) (with snapshots in the window: \(lines.runs)), added up"),
                ("Hosts", facts[1]), ("Builds", facts[2].isEmpty ? "—" : facts[2]),
                ("Lua", facts[3]),
                (
                    "Times",
                    "\(lines.times.count) evenly spaced; each run counts with its latest figures at each"
                ),
            ]
        }
        return page
    }
}
