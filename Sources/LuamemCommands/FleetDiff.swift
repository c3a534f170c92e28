import Foundation
import LuamemAgent
import LuamemStore

/// `diff` against a fleet store: each side resolved and aggregated in the server, then compared
/// as for a file. A build is the median of its runs, site by site (a run without the site
/// counts as 0); a run is named by its UUID (or a unique prefix); a time is every run going on
/// then, added together. Sites are matched across builds as in a file: by file, function and
/// distance from the function's first line.
struct FleetComparison {
    var server: ClickHouse
    var at: Moment
    var by: Grouping
    var current: Bool
    var state: String?

    func resolve(_ reference: Reference) throws -> Side {
        let db = server.database
        switch reference {
        case .build(let label):
            let description = try momentDescription()
            return try side(
                runs: "build = \(ClickHouse.literal(label))", combine: .median,
                describe: { count in
                    "build \(label) (median of \(count) run\(count == 1 ? "" : "s")) at \(description)"
                }, missing: "no run of build '\(label)' in \(server.description)")
        case .runUUID(let prefix):
            let matches = try server.execute(
                """
                SELECT run_uuid, host FROM \(db).runs FINAL
                WHERE startsWith(run_uuid, \(ClickHouse.literal(prefix))) LIMIT 2
                FORMAT TabSeparated
                """
            ).split(separator: "\n").map(ClickHouse.fields)
            guard let match = matches.first, match.count == 2 else {
                throw CommandError("no run \(prefix) in \(server.description)")
            }
            guard matches.count == 1 else {
                throw CommandError(
                    "run:\(prefix) names several runs in \(server.description): give more of the UUID")
            }
            let description = try momentDescription()
            return try side(
                runs: "run_uuid = \(ClickHouse.literal(match[0]))", combine: .sum,
                describe: { _ in "run \(match[0]) (host \(match[1])) at \(description)" },
                missing: "run \(match[0]) has no snapshot at \(description)")
        case .time(let text):
            let timeMs = TimeExpression(text)!.epochMs(nowMs: Clock.epochMs())
            return try side(
                runs: "started_ms <= \(timeMs) AND (ended_ms = 0 OR ended_ms >= \(timeMs))",
                combine: .sum, atMs: timeMs,
                describe: { count in
                    "the fleet at \(formatTime(timeMs)) UTC (\(count) run\(count == 1 ? "" : "s") added up)"
                }, missing: "no run was going on at \(formatTime(timeMs)) UTC in \(server.description)")
        case .run, .snapshot:
            throw CommandError(
                "a fleet store names runs by UUID, not by a file's ids: compare run:UUID, build:LABEL or times")
        }
    }

    enum Combine { case median, sum }

    private func momentDescription() throws -> String {
        switch at {
        case .end: return "end"
        case .elapsed(let milliseconds): return "\(Listing.formatDuration(milliseconds)) in"
        case .peak:
            throw CommandError(
                "--at peak is not available for a fleet store: use end or an elapsed time")
        }
    }

    /// The SQL expressions that name a row across builds, as SiteKey(acrossBuilds:) does.
    private var keys: [String] {
        switch by {
        case .line: ["file", "function", "line - line_defined"]
        case .function: ["file", "function"]
        case .file: ["file"]
        case .type: ["type"]
        }
    }

    /// One side: the runs that `runs` (a condition on the runs table) selects, each at its
    /// moment (`atMs`, else --at), their rows' figures per row, then the median or the sum over
    /// runs. The moment is a condition on a row's time (a state's figures at its latest
    /// snapshot at or before a time are, per site, its latest row at or before that time), so
    /// each side is one pass over its runs' rows, without a join.
    private func side(
        runs: String, combine: Combine, atMs: Int64? = nil, describe: (Int64) -> String,
        missing: String
    ) throws -> Side {
        let db = server.database
        let selected = try server.execute(
            """
            SELECT run_uuid, started_ms, cityHash64(run_uuid) FROM \(db).runs FINAL WHERE \(runs)
            FORMAT TabSeparated
            """
        ).split(separator: "\n").map(ClickHouse.fields).filter { $0.count == 3 }
        guard !selected.isEmpty else { throw CommandError(missing) }
        let uuids = selected.map { ClickHouse.literal($0[0]) }.joined(separator: ", ")
        // The moment as a condition on a snapshot (`moment`) and on a site row (`rowMoment`,
        // whose run is the number run_key).
        let moment: String, rowMoment: String
        if let atMs {
            (moment, rowMoment) = ("time_ms <= \(atMs)", "time_ms <= \(atMs)")
        } else if case .elapsed(let milliseconds) = at {
            let limits = selected.map { "toInt64(\((Int64($0[1]) ?? 0).saturatingAdd(milliseconds)))" }
                .joined(separator: ", ")
            let keys = selected.map { "toUInt64(\($0[2]))" }.joined(separator: ", ")
            moment = "time_ms <= transform(run_uuid, [\(uuids)], [\(limits)], toInt64(0))"
            rowMoment = "time_ms <= transform(run_key, [\(keys)], [\(limits)], toInt64(0))"
        } else {
            (moment, rowMoment) = ("1", "1")
        }
        let named = state.map { "state = \(ClickHouse.literal($0))" }
        let rows =
            "run_uuid IN (\(uuids))"
            + (named.map {
                " AND (run_uuid, state_id) IN (SELECT run_uuid, state_id FROM \(db).snapshots WHERE \($0))"
            } ?? "")
        let siteRows =
            "run_uuid IN (\(uuids))"
            + (named.map {
                " AND (run_key, state_id) IN (SELECT cityHash64(run_uuid), state_id FROM \(db).snapshots WHERE \($0))"
            } ?? "")
        let figure = current ? "live_bytes" : "gc_live_bytes"

        // Per (run, state): its snapshot at the moment: the runs that have one, the fewest GC
        // cycles done there, and per run its states' totals there.
        let perRun = try server.execute(
            """
            SELECT run_uuid, sum(total), min(cycles) FROM (
                SELECT run_uuid, state_id, argMaxIf(\(figure), snapshot_id, \(moment)) AS total,
                       argMaxIf(gc_cycles, snapshot_id, \(moment)) AS cycles
                FROM \(db).snapshots FINAL
                WHERE \(rows)
                GROUP BY run_uuid, state_id
                HAVING countIf(\(moment)) > 0)
            GROUP BY run_uuid
            FORMAT TabSeparated
            """
        ).split(separator: "\n").map(ClickHouse.fields).filter { $0.count == 3 }
        let count = Int64(perRun.count)
        guard count > 0 else {
            throw CommandError(state.map { "\(missing) (none with a Lua state named '\($0)')" } ?? missing)
        }
        var result = Side(description: describe(count))
        result.beforeTwoCycles = !current && perRun.contains { (Int64($0[2]) ?? 0) < 2 }
        let totals = perRun.map { Int64($0[1]) ?? 0 }
        result.total =
            combine == .sum ? totals.reduce(0) { $0.saturatingAdd($1) } : Comparison.median(totals)

        let keyed = keys.enumerated().map { "\($1) AS k\($0)" }.joined(separator: ", ")
        let names = keys.indices.map { "k\($0)" }.joined(separator: ", ")
        // Over runs: the median (runs without the row count as 0, ahead of the others:
        // figures are never negative) or the sum.
        let combined: String, medianParts: String
        switch combine {
        case .sum:
            (combined, medianParts) = ("sum(v)", "")
        case .median:
            combined = """
                if(\(count) % 2 = 1, upper,
                   intDiv(lower, 2) + intDiv(upper, 2) + intDiv(lower % 2 + upper % 2, 2))
                """
            medianParts = """
                , arraySort(groupArray(v)) AS sorted, \(count) - toInt64(length(sorted)) AS zeros,
                  if(zeros > \(count / 2), 0, arrayElement(sorted, \(count / 2) - zeros + 1)) AS upper,
                  if(zeros > \(count / 2 - 1), 0, arrayElement(sorted, \(count / 2 - 1) - zeros + 1)) AS lower
                """
        }
        let answer = try server.execute(
            """
            SELECT \(names), any(some_line), any(some_defined), any(some_function), any(some_type),
                   \(combined) AS value\(medianParts)
            FROM (
                SELECT run_key, \(keyed), any(line) AS some_line, any(line_defined) AS some_defined,
                       any(function) AS some_function, any(type) AS some_type, sum(v) AS v
                FROM (
                    SELECT run_key, state_id, site_key, argMaxIf(\(figure), snapshot_id, \(rowMoment)) AS v
                    FROM \(db).site_stats
                    WHERE \(siteRows)
                    GROUP BY run_key, state_id, site_key
                    HAVING countIf(\(rowMoment)) > 0)
                ANY LEFT JOIN (SELECT site_key, file, line, line_defined, function, type FROM \(db).sites FINAL)
                    USING site_key
                GROUP BY run_key, \(names))
            GROUP BY \(names)
            FORMAT TabSeparated
            """)
        for line in answer.split(separator: "\n") {
            let fields = ClickHouse.fields(line)
            guard fields.count >= keys.count + 5 else { continue }
            let offset = keys.count
            let file = by == .type ? "" : fields[0]
            let lineNumber = Int64(fields[offset]) ?? 0, defined = Int64(fields[offset + 1]) ?? 0
            let function = fields[offset + 2].isEmpty ? nil : fields[offset + 2]
            let type = fields[offset + 3]
            let value = Int64(fields[offset + 4]) ?? 0
            let info = SiteInfo(
                id: 0, file: file, line: lineNumber, lineDefined: defined, function: function,
                cfunction: "", stack: "")
            let key = SiteKey(info, type: type, by: by, acrossBuilds: true)
            result.values[key] = (result.values[key] ?? 0).saturatingAdd(value)
            if result.labels[key] == nil {
                result.labels[key] = (SiteKey.label(info, type: type, by: by), info)
            }
        }
        return result
    }
}
