import Foundation
import LuamemAgent

/// The runs of a fleet store that --build, --name and --host select, and the states --state
/// selects, as SQL conditions on a table with `run_uuid` (and `state_id`) columns.
extension SelectionOptions {
    func fleetRuns(_ db: String) -> String {
        "run_uuid IN (SELECT run_uuid FROM \(db).runs FINAL\(Self.runFilter(build: build, name: name, host: host)))"
    }

    /// " WHERE build = … AND …" on the runs table, or nothing when no label is given.
    static func runFilter(build: String?, name: String?, host: String?) -> String {
        let conditions = [
            build.map { "build = \(ClickHouse.literal($0))" },
            name.map { "name = \(ClickHouse.literal($0))" },
            host.map { "host = \(ClickHouse.literal($0))" },
        ].compactMap { $0 }
        return conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
    }

    func fleetStates(_ db: String) -> String {
        guard let state else { return "1" }
        return "(run_uuid, state_id) IN (SELECT run_uuid, state_id FROM \(db).snapshots "
            + "WHERE state = \(ClickHouse.literal(state)))"
    }

    /// ", build v2, host a, state svc": what the selection adds to a fleet heading.
    var fleetDescription: String {
        [
            build.map { "build \($0)" }, name.map { "name \($0)" }, host.map { "host \($0)" },
            state.map { "state \($0)" },
        ].compactMap { $0 }.map { ", " + $0 }.joined()
    }

    /// A fleet names runs by UUID: --run (a file's own id) means nothing there. And when
    /// --build, --name or --host select no run at all, that is said rather than an empty
    /// answer given.
    func refuseRunID(_ server: ClickHouse) throws {
        guard runID == nil else {
            throw CommandError(
                "a fleet store names runs by UUID, not by a file's ids: select runs with --build, --name or --host")
        }
        let db = server.database
        let count = try server.execute(
            "SELECT count() FROM \(db).runs FINAL WHERE \(fleetRuns(db)) FORMAT TabSeparated"
        ).trimmingCharacters(in: .whitespacesAndNewlines)
        guard count != "0" else {
            throw CommandError(
                criteria.isEmpty
                    ? "\(server.description) holds no run yet" : "no run \(criteria) in \(server.description)")
        }
    }
}

/// Rows over time across a fleet store: at each of up to `maxPoints` evenly spaced times of a
/// window, per row, the figures of every selected run and state at that time (each state's
/// latest row at or before it), added together in the server. A run that ended counts with its
/// last figures. Only the sums per row and time come back.
struct FleetSeries {
    /// The times, oldest first: the window's start, then evenly spaced up to its end.
    var times: [Int64] = []
    struct Row {
        /// The values of the `groups` expressions, then any function name of the row's sites.
        var fields: [String]
        /// Any first line of the function of the row's sites.
        var lineDefined: Int64 = 0
        var afterGC: [Int64]
        var live: [Int64]
        /// How many runs the row's figures come from.
        var runs: Int64
    }
    var rows: [Row] = []
    /// Runs with a snapshot in the window.
    var runs: Int64 = 0
    /// The most snapshots any (run, state) took in the window.
    var snapshots: Int64 = 0
    /// GC cycles completed in the window: for each (run, state), between its first and last
    /// snapshot in it; the fewest of any. `fitCycles` leaves out final snapshots and counts
    /// those late in the window too, as FitCycles does.
    var cycles: Int64 = 0
    var fitCycles = FitCycles(completed: 0, late: 0)

    static let maxPoints = 60

    /// `groups`: SQL expressions over site_stats naming a row; `sites`: an SQL condition on
    /// site_stats choosing the sites counted. `alignRuns`: each (run, state) is spaced over its
    /// own part of the window (its first to its last snapshot in it) instead of the clock, so
    /// that runs one after another (a restart, a job per night) line up: point p is p/(points-1)
    /// of the way through each; `times` then spans the runs' mean length.
    init(
        server: ClickHouse, selection: SelectionOptions, sinceMs: Int64?, untilMs: Int64?,
        groups: [String], sites: String = "1", alignRuns: Bool = false
    ) throws {
        let db = server.database
        let selected = "\(selection.fleetRuns(db)) AND \(selection.fleetStates(db))"
        let until = untilMs ?? Int64.max / 2
        // The window: from --since (else the first snapshot) to the last snapshot at or before
        // --until.
        let bounds = ClickHouse.fields(
            Substring(
                try server.execute(
                    """
                    SELECT min(time_ms), max(time_ms) FROM \(db).snapshots
                    WHERE \(selected) AND time_ms <= \(until)
                    FORMAT TabSeparated
                    """
                ).trimmingCharacters(in: .newlines)))
        guard bounds.count == 2, let first = Int64(bounds[0]), let last = Int64(bounds[1]),
            last > 0
        else { return }
        let start = min(sinceMs ?? first, last), end = last
        let counts = ClickHouse.fields(
            Substring(
                try server.execute(
                    """
                    SELECT uniqExact(run_uuid), max(n), min(cycles), min(fit), toInt64(avg(span)),
                           min(late) FROM (
                        SELECT run_uuid, state_id, count() AS n, max(time_ms) - min(time_ms) AS span,
                               max(gc_cycles) - min(gc_cycles) AS cycles,
                               maxIf(gc_cycles, kind != 'final') - minIf(gc_cycles, kind != 'final') AS fit,
                               intDiv(minIf(time_ms, kind != 'final') + maxIf(time_ms, kind != 'final'), 2) AS middle,
                               groupArrayIf(time_ms, kind != 'final') AS fit_times,
                               groupArrayIf(gc_cycles, kind != 'final') AS fit_cycles,
                               maxIf(gc_cycles, kind != 'final')
                                   - arrayReduce('max', arrayFilter((c, t) -> t <= middle, fit_cycles, fit_times)) AS late
                        FROM \(db).snapshots FINAL
                        WHERE \(selected) AND time_ms >= \(start) AND time_ms <= \(end)
                        GROUP BY run_uuid, state_id)
                    FORMAT TabSeparated
                    """
                ).trimmingCharacters(in: .newlines)))
        guard counts.count == 6 else { return }
        runs = Int64(counts[0]) ?? 0
        snapshots = Int64(counts[1]) ?? 0
        cycles = Int64(counts[2]) ?? 0
        fitCycles = FitCycles(completed: Int64(counts[3]) ?? 0, late: Int64(counts[5]) ?? 0)
        let points = Int(max(2, min(Int64(Self.maxPoints), snapshots)))
        let width = max(1, (end - start + Int64(points) - 2) / Int64(points - 1))
        if alignRuns {
            let span = max(1, Int64(counts[4]) ?? 1)
            times = (0..<points).map { start + span * Int64($0) / Int64(points - 1) }
        } else {
            times = (0..<points).map { min(end, start + Int64($0) * width) }
        }
        // Where a row falls: the first point at or after its time, on the clock or within its
        // run's own part of the window. Per (run, state), its part: from its first snapshot (or
        // the window's start) to its last, in steps. A run of one state (most) gets its bounds
        // through transform() on the row's run: cheaper than joining every row.
        var runBounds = "", point = "if(time_ms <= \(start), 0, intDiv(time_ms - \(start) + \(width - 1), \(width)))"
        if alignRuns {
            let parts = try server.execute(
                """
                SELECT cityHash64(run_uuid), uniqExact(state_id), greatest(min(time_ms), \(start)) AS from_ms,
                       greatest(1, intDiv(max(time_ms) - from_ms + \(points - 2), \(points - 1))) AS step
                FROM \(db).snapshots FINAL
                WHERE \(selected) AND time_ms <= \(end)
                GROUP BY run_uuid
                FORMAT TabSeparated
                """
            ).split(separator: "\n").map(ClickHouse.fields).filter { $0.count == 4 }
            let fromMs: String, step: String
            if !parts.isEmpty && parts.allSatisfy({ $0[1] == "1" }) {
                let keys = parts.map { "toUInt64(\($0[0]))" }.joined(separator: ", ")
                let froms = parts.map { "toInt64(\($0[2]))" }.joined(separator: ", ")
                let steps = parts.map { "toInt64(\($0[3]))" }.joined(separator: ", ")
                fromMs = "transform(run_key, [\(keys)], [\(froms)], toInt64(\(start)))"
                step = "transform(run_key, [\(keys)], [\(steps)], toInt64(1))"
            } else {
                runBounds = """
                    ANY INNER JOIN (
                        SELECT cityHash64(run_uuid) AS run_key, state_id,
                               greatest(min(time_ms), \(start)) AS from_ms,
                               greatest(1, intDiv(max(time_ms) - from_ms + \(points - 2), \(points - 1))) AS step
                        FROM \(db).snapshots FINAL
                        WHERE \(selected) AND time_ms <= \(end)
                        GROUP BY run_uuid, state_id) USING (run_key, state_id)
                    """
                (fromMs, step) = ("from_ms", "step")
            }
            point =
                "if(time_ms <= \(fromMs), 0, least(\(points - 1), intDiv(time_ms - \(fromMs) + \(step) - 1, \(step))))"
        }

        // Per (run, state, site, type): its latest row up to each point, at the first point at
        // or after the row's time; then carried forward to every later point.
        let site = "run_key, state_id, site_key"
        let grouped = groups.enumerated().map { "\($1) AS g\($0)" }.joined(separator: ", ")
        let names = groups.indices.map { "g\($0)" }.joined(separator: ", ")
        let chosen =
            sites == "1" ? "" : " AND site_key IN (SELECT site_key FROM \(db).sites WHERE \(sites))"
        // (ClickHouse 18.16 leaves out of a subquery the columns that only a lambda inside a
        // lambda reads: the WHERE reads them outside.)
        let answer = try server.execute(
            """
            SELECT \(names), any(line_defined) AS any_defined, any(function) AS any_function,
                   sumForEach(gc) AS gc_sums,
                   sumForEach(live) AS live_sums, uniqExact(run_key) AS runs
            FROM (
                SELECT run_key, line_defined, function, \(names),
                       arrayMap(p -> arrayElement(gs, arrayCount(x -> x <= p, ks)), range(\(points))) AS gc,
                       arrayMap(p -> arrayElement(ls, arrayCount(x -> x <= p, ks)), range(\(points))) AS live
                FROM (
                    SELECT run_key, line_defined, function, \(grouped),
                           arrayMap(t -> tupleElement(t, 1), steps) AS ks,
                           arrayMap(t -> tupleElement(t, 2), steps) AS gs,
                           arrayMap(t -> tupleElement(t, 3), steps) AS ls
                    FROM (
                        SELECT \(site), arraySort(x -> tupleElement(x, 1), groupArray((k, g, l))) AS steps
                        FROM (
                            SELECT \(site), \(point) AS k,
                                   argMax(gc_live_bytes, snapshot_id) AS g, argMax(live_bytes, snapshot_id) AS l
                            FROM \(db).site_stats
                            \(runBounds)
                            WHERE \(selected) AND time_ms <= \(end)\(chosen)
                            GROUP BY \(site), k)
                        GROUP BY \(site))
                    ANY LEFT JOIN (SELECT site_key, file, line, line_defined, function, type FROM \(db).sites FINAL)
                        USING site_key)
                WHERE length(ks) = length(gs) AND length(gs) = length(ls))
            GROUP BY \(names)
            HAVING arrayExists(x -> x != 0, gc_sums) OR arrayExists(x -> x != 0, live_sums)
            FORMAT TabSeparated
            """)
        for line in answer.split(separator: "\n") {
            let fields = ClickHouse.fields(line)
            guard fields.count == groups.count + 5 else { continue }
            let afterGC = Self.integers(fields[groups.count + 2])
            let live = Self.integers(fields[groups.count + 3])
            guard afterGC.count == points, live.count == points else { continue }
            rows.append(
                Row(
                    fields: Array(fields.prefix(groups.count)) + [fields[groups.count + 1]],
                    lineDefined: Int64(fields[groups.count]) ?? 0, afterGC: afterGC, live: live,
                    runs: Int64(fields[groups.count + 4]) ?? 0))
        }
    }

    /// The integers of a ClickHouse array in TabSeparated form: [1,-2,3].
    static func integers(_ text: String) -> [Int64] {
        text.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).split(separator: ",")
            .compactMap { Int64($0) }
    }

    /// The SQL expressions that name a row of `grouping`, and how to print one from its fields.
    static func groups(_ grouping: Grouping) -> [String] {
        switch grouping {
        case .line: ["file", "line"]
        case .function: ["file", "line_defined", "function"]
        case .file: ["file"]
        case .type: ["type"]
        }
    }

    /// A row as the file's commands print it: its site label and the SiteInfo for its columns.
    static func label(_ fields: [String], by grouping: Grouping) -> (site: String, info: SiteInfoFields) {
        let function = fields.last.flatMap { $0.isEmpty ? nil : $0 }
        switch grouping {
        case .line:
            let line = Int64(fields[1]) ?? 0
            return (
                SiteKey.isLineless(fields[0]) ? fields[0] : "\(fields[0]):\(line)",
                SiteInfoFields(file: fields[0], line: line, function: function))
        case .function:
            let defined = Int64(fields[1]) ?? 0
            return (
                SiteKey.isLineless(fields[0]) ? fields[0] : "\(fields[0]):\(defined)",
                SiteInfoFields(file: fields[0], line: defined, function: fields[2].isEmpty ? nil : fields[2]))
        case .file: return (fields[0], SiteInfoFields(file: fields[0], line: 0, function: nil))
        case .type: return (fields[0], SiteInfoFields(file: nil, line: 0, function: nil))
        }
    }

    struct SiteInfoFields {
        var file: String?
        var line: Int64
        var function: String?
    }
}
