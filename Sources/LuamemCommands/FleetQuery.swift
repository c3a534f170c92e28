import Foundation
import LuamemAgent

extension QueryCommand {
    /// `query --db clickhouse://…`: growth summed over every selected run of a fleet store
    /// (`luamem ship`), aggregated in the server; only the rows shown come back.
    ///
    /// Per run and state, the window runs from its last snapshot at or before --since (else its
    /// first) to its last at or before --until; a site's figure at a snapshot is its latest row
    /// at or before it (argMaxIf). Runs with no snapshot in the window are left out.
    func fleetGrowth(_ server: ClickHouse) throws {
        let db = server.database
        let now = Clock.epochMs()
        let sinceMs = window.sinceMs(nowMs: now) ?? -1
        let untilMs = until.flatMap(TimeExpression.init)?.epochMs(nowMs: now) ?? Int64.max / 2
        guard sinceMs <= untilMs else { throw CommandError("--since is later than --until") }
        try selection.refuseRunID(server)
        let figure = rows.current ? "live_bytes" : "gc_live_bytes"
        let groups = FleetSeries.groups(rows.by)
        let grouped = groups.joined(separator: ", ")
        // Per (run, state) from the snapshots table (small): whether it has a snapshot in the
        // window, and, when its first snapshot comes after --since, that snapshot (its base).
        let pairs = try server.execute(
            """
            SELECT run_uuid, state_id, countIf(time_ms <= \(sinceMs)) = 0 AS late, min(snapshot_id),
                   cityHash64(run_uuid)
            FROM \(db).snapshots FINAL
            WHERE \(selection.fleetRuns(db)) AND \(selection.fleetStates(db))
            GROUP BY run_uuid, state_id
            HAVING countIf(time_ms <= \(untilMs)) > 0 AND maxIf(time_ms, time_ms <= \(untilMs)) >= \(sinceMs)
            FORMAT TabSeparated
            """
        ).split(separator: "\n").map(ClickHouse.fields).filter { $0.count == 5 }
        let runList = Set(pairs.map { ClickHouse.literal($0[0]) }).sorted().joined(separator: ", ")
        // Rows carry their run as run_key (cityHash64 of the UUID), a number.
        let pairList = pairs.map { "(\($0[4]), \($0[1]))" }.joined(separator: ", ")
        let late = pairs.filter { $0[2] == "1" }
        let lateBase: String
        if late.isEmpty {
            lateBase = "b_since"
        } else {
            let keys = late.map { ClickHouse.literal("\($0[4]):\($0[1])") }.joined(separator: ", ")
            let firsts = late.map { "toInt64(\($0[3]))" }.joined(separator: ", ")
            lateBase = """
                if((run_key, state_id) IN (\(late.map { "(\($0[4]), \($0[1]))" }.joined(separator: ", "))),
                   if(first_id = transform(concat(toString(run_key), ':', toString(state_id)), [\(keys)], [\(firsts)], toInt64(0)), b_first, 0),
                   b_since)
                """
        }
        // One pass over the selected runs' rows, without a join: a state's figures at its latest
        // snapshot at or before a time are, per site, its latest row at or before that time.
        let answer =
            pairs.isEmpty
            ? ""
            : try server.execute(
                """
                SELECT \(grouped), sum(head - base) AS growth, sum(head) AS live, sum(base) AS base_total,
                       uniqExact(run_key) AS runs, any(function) AS any_function
                FROM (
                    SELECT run_key, state_id, site_key, head, \(lateBase) AS base
                    FROM (
                        SELECT run_key, state_id, site_key,
                               argMax(\(figure), snapshot_id) AS head,
                               argMaxIf(\(figure), snapshot_id, time_ms <= \(sinceMs)) AS b_since,
                               min(snapshot_id) AS first_id, argMin(\(figure), snapshot_id) AS b_first
                        FROM \(db).site_stats
                        WHERE run_uuid IN (\(runList)) AND time_ms <= \(untilMs)
                        GROUP BY run_key, state_id, site_key)
                    WHERE (run_key, state_id) IN (\(pairList)))
                ANY LEFT JOIN (SELECT site_key, file, line, line_defined, function, type FROM \(db).sites FINAL)
                    USING site_key
                GROUP BY \(grouped) WITH TOTALS
                ORDER BY growth DESC, \(grouped)
                LIMIT \(output.top)
                FORMAT TabSeparated
                """)
        // Rows, then an empty line and the totals row.
        let parts = answer.components(separatedBy: "\n\n")
        let lines = (parts.first ?? "").split(separator: "\n")
        let totals =
            parts.count > 1 ? ClickHouse.fields(Substring(parts[1].trimmingCharacters(in: .newlines))) : []
        var listing = Listing(columns: [
            .init(key: "growth_bytes", title: "GROWTH", rightAligned: true),
            .init(key: rows.current ? "live_bytes" : "gc_live_bytes", title: "LIVE", rightAligned: true),
            .init(key: "runs", title: "RUNS", rightAligned: true),
            .init(key: "site", title: rows.by == .type ? "TYPE" : "SITE", rightAligned: false),
            .init(
                key: "function", title: rows.by == .line || rows.by == .function ? "FUNCTION" : "",
                rightAligned: false),
            .init(key: "source", title: "", rightAligned: false),
            .init(key: "line", title: "", rightAligned: false),
        ])
        var rowGrowth: [(label: String, growth: Int64)] = []
        for line in lines {
            let fields = ClickHouse.fields(line)
            guard fields.count == groups.count + 5 else { continue }
            let values = fields.suffix(5).map { Int64($0) ?? 0 }
            let (growth, live, runs) = (values[0], values[1], values[3])
            // The group's fields and any function name, as leaks and history label a row.
            let (site, info) = FleetSeries.label(
                Array(fields.prefix(groups.count)) + [fields[fields.count - 1]], by: rows.by)
            let withLine = rows.by == .line || rows.by == .function
            rowGrowth.append((site, growth))
            listing.rows.append([
                .bytes(growth, signed: true), .bytes(live, signed: false), .integer(runs),
                .text(site), .text(withLine ? info.function : nil), .text(info.file),
                withLine ? .integer(info.line) : .text(nil),
            ])
        }
        let runCount = totals.count >= 4 ? Int64(totals[totals.count - 2]) ?? 0 : 0
        let heading =
            "fleet \(server.description)\(selection.fleetDescription): "
            + "\(runCount) run(s), growth of live bytes \(rows.current ? "at the snapshots" : "after GC")"
        output.print(listing, heading: heading)
        let total = totals.count >= 5 ? Int64(totals[totals.count - 5]) ?? 0 : 0
        let baseTotal = totals.count >= 5 ? Int64(totals[totals.count - 3]) ?? 0 : 0
        try gate.check(total: total, base: baseTotal, baseName: "the window's start", rows: rowGrowth)
    }
}
