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
        let runs: String, moment: String, combine: Combine, description: String
        switch reference {
        case .build(let label):
            runs = "build = \(ClickHouse.literal(label))"
            (moment, description) = try self.moment()
            combine = .median
            return try side(
                runs: runs, moment: moment, combine: combine,
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
                throw CommandError("run:\(prefix) names several runs in \(server.description): give more of the UUID")
            }
            runs = "run_uuid = \(ClickHouse.literal(match[0]))"
            (moment, description) = try self.moment()
            return try side(
                runs: runs, moment: moment, combine: .sum,
                describe: { _ in "run \(match[0]) (host \(match[1])) at \(description)" },
                missing: "run \(match[0]) has no snapshot at \(description)")
        case .time(let text):
            let timeMs = TimeExpression(text)!.epochMs(nowMs: Clock.epochMs())
            runs = "started_ms <= \(timeMs) AND (ended_ms = 0 OR ended_ms >= \(timeMs))"
            return try side(
                runs: runs, moment: "time_ms <= \(timeMs)", combine: .sum,
                describe: { count in
                    "the fleet at \(formatTime(timeMs)) UTC (\(count) run\(count == 1 ? "" : "s") added up)"
                }, missing: "no run was going on at \(formatTime(timeMs)) UTC in \(server.description)")
        case .run, .snapshot:
            throw CommandError(
                "a fleet store names runs by UUID, not by a file's ids: compare run:UUID, build:LABEL or times")
        }
    }

    enum Combine { case median, sum }

    /// The heads' condition on a snapshot (its `time_ms`, its run's `started_ms`) for --at.
    private func moment() throws -> (String, String) {
        switch at {
        case .end: return ("1", "end")
        case .elapsed(let milliseconds):
            return (
                "time_ms <= started_ms + \(milliseconds)",
                "\(Listing.formatDuration(milliseconds)) in"
            )
        case .peak:
            throw CommandError("--at peak is not available for a fleet store: use end or an elapsed time")
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

    private func side(
        runs: String, moment: String, combine: Combine, describe: (Int64) -> String,
        missing: String
    ) throws -> Side {
        let db = server.database
        let states =
            state.map { " AND state = \(ClickHouse.literal($0))" } ?? ""
        // Per (run, state): its latest snapshot that the moment allows.
        let heads = """
            SELECT run_uuid, state_id, maxIf(snapshot_id, \(moment)) AS head_id,
                   argMaxIf(gc_cycles, snapshot_id, \(moment)) AS head_cycles
            FROM \(db).snapshots FINAL
            ANY INNER JOIN (SELECT run_uuid, started_ms, ended_ms FROM \(db).runs FINAL WHERE \(runs))
                USING run_uuid
            WHERE 1\(states)
            GROUP BY run_uuid, state_id
            HAVING head_id > 0
            """
        let summary = ClickHouse.fields(
            Substring(
                try server.execute(
                    "SELECT uniqExact(run_uuid), min(head_cycles) FROM (\(heads)) FORMAT TabSeparated"
                ).trimmingCharacters(in: .newlines)))
        let count = summary.count == 2 ? Int64(summary[0]) ?? 0 : 0
        guard count > 0 else { throw CommandError(missing) }
        var result = Side(description: describe(count))
        result.beforeTwoCycles = !current && (Int64(summary[1]) ?? 0) < 2

        let figure = current ? "live_bytes" : "gc_live_bytes"
        let named = keys.enumerated().map { "\($1) AS k\($0)" }.joined(separator: ", ")
        let names = keys.indices.map { "k\($0)" }.joined(separator: ", ")
        // Per run, the row's figure; then over runs, their median (runs without the row count
        // as 0, before the others: figures are never negative) or their sum.
        let combined: String
        switch combine {
        case .sum: combined = "sum(v)"
        case .median:
            combined = """
                if(\(count) % 2 = 1, upper,
                   intDiv(lower, 2) + intDiv(upper, 2) + intDiv(lower % 2 + upper % 2, 2))
                """
        }
        let medianParts =
            combine == .median
            ? """
            , arraySort(groupArray(v)) AS sorted, \(count) - toInt64(length(sorted)) AS zeros,
              if(zeros > \(count / 2), 0, arrayElement(sorted, \(count / 2) - zeros + 1)) AS upper,
              if(zeros > \(count / 2 - 1), 0, arrayElement(sorted, \(count / 2 - 1) - zeros + 1)) AS lower
            """ : ""
        let answer = try server.execute(
            """
            SELECT \(names), any(some_line), any(some_defined), any(some_function), any(some_type),
                   \(combined) AS value\(medianParts)
            FROM (
                SELECT run_uuid, \(named), any(line) AS some_line, any(line_defined) AS some_defined,
                       any(function) AS some_function, any(type) AS some_type, sum(v) AS v
                FROM (
                    SELECT run_uuid, state_id, file, line, line_defined, function, c_function, stack, type,
                           argMaxIf(\(figure), snapshot_id, snapshot_id <= head_id) AS v
                    FROM \(db).site_stats
                    ANY INNER JOIN (\(heads)) USING (run_uuid, state_id)
                    GROUP BY run_uuid, state_id, file, line, line_defined, function, c_function, stack, type)
                GROUP BY run_uuid, \(names))
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
        result.total = try total(heads: heads, figure: figure, combine: combine, count: count)
        return result
    }

    /// The side's total: per run, its states' figures added up; then the runs' median or sum.
    private func total(heads: String, figure: String, combine: Combine, count: Int64) throws -> Int64 {
        let db = server.database
        let answer = try server.execute(
            """
            SELECT run_uuid, sum(v) FROM (
                SELECT run_uuid, argMaxIf(\(figure), snapshot_id, snapshot_id <= head_id) AS v
                FROM \(db).site_stats
                ANY INNER JOIN (\(heads)) USING (run_uuid, state_id)
                GROUP BY run_uuid, state_id, file, line, line_defined, function, c_function, stack, type)
            GROUP BY run_uuid
            FORMAT TabSeparated
            """)
        var values = answer.split(separator: "\n").compactMap { line -> Int64? in
            let fields = ClickHouse.fields(line)
            return fields.count == 2 ? Int64(fields[1]) : nil
        }
        switch combine {
        case .sum: return values.reduce(0) { $0.saturatingAdd($1) }
        case .median:
            // Runs with no row count as 0.
            values += [Int64](repeating: 0, count: max(0, Int(count) - values.count))
            return Comparison.median(values)
        }
    }
}
