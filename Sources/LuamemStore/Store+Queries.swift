/// A run as listed by the CLI.
public struct RunRecord: Sendable {
    public var id: Int64
    public var build: String?
    public var name: String?
    public var host: String
    public var pid: Int64
    public var command: String
    public var startedMs: Int64
    public var endedMs: Int64?
}

/// One snapshot's identity.
public struct SnapshotRef: Sendable, Equatable {
    public var id: Int64
    public var stateID: Int64
    public var timeMs: Int64

    public init(id: Int64, stateID: Int64, timeMs: Int64) {
        self.id = id
        self.stateID = stateID
        self.timeMs = timeMs
    }
}

/// How a site is named: its innermost frame and the C function it went through.
public struct SiteInfo: Sendable {
    public var id: Int64
    public var file: String
    public var line: Int64
    public var lineDefined: Int64
    public var function: String?
    public var cfunction: String
    public var stack: String
}

/// The figures of one (state, site, type) at some snapshot.
public struct SiteFigures: Sendable {
    public var stateID: Int64
    public var siteID: Int64
    public var type: Int64
    public var figures: Figures
}

/// Read-side questions the CLI asks.
extension Store {
    public func latestRunID() throws -> Int64? {
        try database.scalar("SELECT max(id) FROM runs")
    }

    public func run(id: Int64) throws -> RunRecord? {
        let statement = try database.prepare(
            """
            SELECT id, build, name, host, pid, command, started_ms, ended_ms FROM runs WHERE id = ?
            """)
        try statement.bind([.integer(id)])
        guard try statement.step() else { return nil }
        return RunRecord(
            id: statement.int64(0), build: statement.text(1), name: statement.text(2),
            host: statement.text(3) ?? "", pid: statement.int64(4),
            command: statement.text(5) ?? "", startedMs: statement.int64(6),
            endedMs: statement.isNull(7) ? nil : statement.int64(7))
    }

    /// Per state of the run: the latest snapshot at or before `untilMs`.
    public func headSnapshots(runID: Int64, untilMs: Int64?) throws -> [SnapshotRef] {
        try snapshots(
            """
            SELECT s.id, s.state_id, s.time_ms FROM snapshots s
            JOIN (SELECT max(id) AS id FROM snapshots
                  WHERE run_id = ?1 AND time_ms <= coalesce(?2, time_ms) GROUP BY state_id) h
              ON h.id = s.id
            ORDER BY s.state_id
            """, [.integer(runID), untilMs.map(Value.integer) ?? .null])
    }

    /// Per state of the run: the latest snapshot at or before `sinceMs`, or the state's first
    /// snapshot when the window starts before it (or when `sinceMs` is nil).
    public func baseSnapshots(runID: Int64, sinceMs: Int64?) throws -> [SnapshotRef] {
        try snapshots(
            """
            SELECT s.id, s.state_id, s.time_ms FROM snapshots s
            JOIN (SELECT coalesce(max(CASE WHEN time_ms <= ?2 THEN id END), min(id)) AS id
                  FROM snapshots WHERE run_id = ?1 GROUP BY state_id) b
              ON b.id = s.id
            ORDER BY s.state_id
            """, [.integer(runID), sinceMs.map(Value.integer) ?? .null])
    }

    private func snapshots(_ sql: String, _ bindings: [Value]) throws -> [SnapshotRef] {
        let statement = try database.prepare(sql)
        try statement.bind(bindings)
        var result: [SnapshotRef] = []
        while try statement.step() {
            result.append(
                SnapshotRef(
                    id: statement.int64(0), stateID: statement.int64(1), timeMs: statement.int64(2))
            )
        }
        return result
    }

    /// Ids of the run's states called `name`.
    public func stateIDs(runID: Int64, name: String) throws -> Set<Int64> {
        let statement = try database.prepare("SELECT id FROM states WHERE run_id = ? AND name = ?")
        try statement.bind([.integer(runID), .text(name)])
        var result: Set<Int64> = []
        while try statement.step() { result.insert(statement.int64(0)) }
        return result
    }

    public func snapshotCount(runID: Int64) throws -> Int64 {
        try database.scalar("SELECT count(*) FROM snapshots WHERE run_id = ?", [.integer(runID)])
            ?? 0
    }

    /// The full state of a snapshot: per (site, type), the latest row at or before it.
    public func figures(at snapshot: SnapshotRef) throws -> [SiteFigures] {
        let statement = try database.prepare(
            """
            SELECT site_id, type, max(snapshot_id), live_bytes, live_count, alloc_bytes,
                   alloc_count, peak_bytes, gc_live_bytes, gc_live_count
            FROM site_stats WHERE state_id = ? AND snapshot_id <= ?
            GROUP BY site_id, type
            """)
        try statement.bind([.integer(snapshot.stateID), .integer(snapshot.id)])
        var result: [SiteFigures] = []
        while try statement.step() {
            result.append(
                SiteFigures(
                    stateID: snapshot.stateID, siteID: statement.int64(0), type: statement.int64(1),
                    figures: Figures(
                        liveBytes: statement.int64(3), liveCount: statement.int64(4),
                        allocBytes: statement.int64(5), allocCount: statement.int64(6),
                        peakBytes: statement.int64(7), gcLiveBytes: statement.int64(8),
                        gcLiveCount: statement.int64(9))))
        }
        return result
    }

    /// The full state of a snapshot, each (site, type) with its site's name.
    public func namedFigures(at snapshot: SnapshotRef) throws
        -> [(info: SiteInfo, figures: SiteFigures)]
    {
        let entries = try figures(at: snapshot)
        let infos = try siteInfo(ids: Set(entries.map(\.siteID)))
        return entries.compactMap { entry in infos[entry.siteID].map { ($0, entry) } }
    }

    /// Names of the given sites.
    public func siteInfo(ids: Set<Int64>) throws -> [Int64: SiteInfo] {
        let statement = try database.prepare(
            """
            SELECT s.id, f.file, f.line, f.line_defined, f.function, s.c_function, s.stack
            FROM sites s JOIN frames f ON f.id = s.frame_id
            """)
        try statement.bind([])
        var result: [Int64: SiteInfo] = [:]
        while try statement.step() {
            let id = statement.int64(0)
            guard ids.contains(id) else { continue }
            result[id] = SiteInfo(
                id: id, file: statement.text(1) ?? "?", line: statement.int64(2),
                lineDefined: statement.int64(3), function: statement.text(4),
                cfunction: statement.text(5) ?? "", stack: statement.text(6) ?? "")
        }
        return result
    }

    /// Object type names by id.
    public func objectTypeNames() throws -> [Int64: String] {
        let statement = try database.prepare("SELECT id, name FROM object_types")
        try statement.bind([])
        var result: [Int64: String] = [:]
        while try statement.step() { result[statement.int64(0)] = statement.text(1) }
        return result
    }
}

/// A run with what `luamem runs` shows of it.
public struct RunSummary: Sendable {
    public var run: RunRecord
    public var states: Int64
    public var snapshots: Int64
    public var lastSnapshotMs: Int64?
    public var peakLiveBytes: Int64
    public var finalLiveBytes: Int64
    public var finalGCLiveBytes: Int64
}

/// A snapshot with its state and totals.
public struct SnapshotSummary: Sendable {
    public var ref: SnapshotRef
    public var runID: Int64
    public var state: String
    public var kind: String
    public var totals: Figures
    public var gcCycles: Int64
}

extension Store {
    private static let runColumns = "id, build, name, host, pid, command, started_ms, ended_ms"

    private func runRecord(_ statement: Statement, from column: Int32 = 0) -> RunRecord {
        RunRecord(
            id: statement.int64(column), build: statement.text(column + 1),
            name: statement.text(column + 2), host: statement.text(column + 3) ?? "",
            pid: statement.int64(column + 4), command: statement.text(column + 5) ?? "",
            startedMs: statement.int64(column + 6),
            endedMs: statement.isNull(column + 7) ? nil : statement.int64(column + 7))
    }

    /// Runs, oldest first, optionally only one build's.
    public func runs(build: String? = nil) throws -> [RunRecord] {
        let statement = try database.prepare(
            "SELECT \(Self.runColumns) FROM runs WHERE coalesce(?1, build) IS build ORDER BY id")
        try statement.bind([build.map(Value.text) ?? .null])
        var result: [RunRecord] = []
        while try statement.step() { result.append(runRecord(statement)) }
        return result
    }

    /// The run that was going on at `timeMs`: the latest started at or before it.
    public func run(atMs timeMs: Int64) throws -> RunRecord? {
        let statement = try database.prepare(
            "SELECT \(Self.runColumns) FROM runs WHERE started_ms <= ? ORDER BY started_ms DESC, id DESC LIMIT 1"
        )
        try statement.bind([.integer(timeMs)])
        return try statement.step() ? runRecord(statement) : nil
    }

    /// Per run: states, snapshots, and the totals (summed over states) at its peak and at its end.
    public func runSummaries(build: String? = nil) throws -> [RunSummary] {
        try runs(build: build).map { run in
            let snapshots = try self.snapshots(runID: run.id)
            var byTime: [Int64: Int64] = [:]
            var latest: [Int64: SnapshotSummary] = [:]
            for snapshot in snapshots {
                latest[snapshot.ref.stateID] = snapshot
                byTime[snapshot.ref.timeMs, default: 0] = latest.values.map(\.totals.liveBytes)
                    .reduce(0, +)
            }
            return RunSummary(
                run: run, states: Int64(Set(snapshots.map(\.ref.stateID)).count),
                snapshots: Int64(snapshots.count), lastSnapshotMs: snapshots.last?.ref.timeMs,
                peakLiveBytes: byTime.values.max() ?? 0,
                finalLiveBytes: latest.values.map(\.totals.liveBytes).reduce(0, +),
                finalGCLiveBytes: latest.values.map(\.totals.gcLiveBytes).reduce(0, +))
        }
    }

    /// A run's snapshots in order.
    public func snapshots(runID: Int64) throws -> [SnapshotSummary] {
        let statement = try database.prepare(
            """
            SELECT sn.id, sn.state_id, sn.time_ms, sn.run_id, st.name, sn.kind, sn.live_bytes,
                   sn.live_count, sn.alloc_bytes, sn.alloc_count, sn.peak_bytes, sn.gc_live_bytes,
                   sn.gc_live_count, sn.gc_cycles
            FROM snapshots sn JOIN states st ON st.id = sn.state_id
            WHERE sn.run_id = ? ORDER BY sn.id
            """)
        try statement.bind([.integer(runID)])
        var result: [SnapshotSummary] = []
        while try statement.step() {
            result.append(
                SnapshotSummary(
                    ref: SnapshotRef(
                        id: statement.int64(0), stateID: statement.int64(1),
                        timeMs: statement.int64(2)),
                    runID: statement.int64(3), state: statement.text(4) ?? "",
                    kind: statement.text(5) ?? "",
                    totals: Figures(
                        liveBytes: statement.int64(6), liveCount: statement.int64(7),
                        allocBytes: statement.int64(8), allocCount: statement.int64(9),
                        peakBytes: statement.int64(10), gcLiveBytes: statement.int64(11),
                        gcLiveCount: statement.int64(12)),
                    gcCycles: statement.int64(13)))
        }
        return result
    }

    /// One snapshot by id.
    public func snapshot(id: Int64) throws -> SnapshotRef? {
        let statement = try database.prepare(
            "SELECT id, state_id, time_ms FROM snapshots WHERE id = ?")
        try statement.bind([.integer(id)])
        return try statement.step()
            ? SnapshotRef(
                id: statement.int64(0), stateID: statement.int64(1), timeMs: statement.int64(2))
            : nil
    }

    /// Every recorded row of a state up to `lastSnapshot`, in snapshot order: replaying them gives
    /// the state at each snapshot.
    public func changes(stateID: Int64, upTo lastSnapshot: Int64) throws -> [(
        snapshotID: Int64, figures: SiteFigures
    )] {
        let statement = try database.prepare(
            """
            SELECT snapshot_id, site_id, type, live_bytes, live_count, alloc_bytes, alloc_count,
                   peak_bytes, gc_live_bytes, gc_live_count
            FROM site_stats WHERE state_id = ? AND snapshot_id <= ? ORDER BY snapshot_id
            """)
        try statement.bind([.integer(stateID), .integer(lastSnapshot)])
        var result: [(Int64, SiteFigures)] = []
        while try statement.step() {
            result.append(
                (
                    statement.int64(0),
                    SiteFigures(
                        stateID: stateID, siteID: statement.int64(1), type: statement.int64(2),
                        figures: Figures(
                            liveBytes: statement.int64(3), liveCount: statement.int64(4),
                            allocBytes: statement.int64(5), allocCount: statement.int64(6),
                            peakBytes: statement.int64(7), gcLiveBytes: statement.int64(8),
                            gcLiveCount: statement.int64(9)))
                ))
        }
        return result
    }
}

/// What `prune` removed.
public struct PruneResult: Sendable {
    public var runs = 0
    public var snapshots = 0
    public var rows = 0
}

extension Store {
    /// Removes what is older than `cutoffMs`: runs that ended before it entirely, and in other
    /// runs the snapshots before it. The oldest kept snapshot of each state is first given every
    /// row it depended on, so every kept snapshot still reads back in full. Each state is one
    /// short transaction, so a live writer waits at most that long.
    public func prune(olderThan cutoffMs: Int64) throws -> PruneResult {
        var result = PruneResult()
        let db = database
        // A run that never recorded its end (killed) ends at its last snapshot.
        for runID in try db.prepare(
            """
            SELECT id FROM runs WHERE coalesce(ended_ms,
                (SELECT max(time_ms) FROM snapshots WHERE run_id = runs.id), started_ms) < ? ORDER BY id
            """
        )
        .rows([.integer(cutoffMs)]).compactMap({ row -> Int64? in
            if case .integer(let id) = row[0] { return id } else { return nil }
        }) {
            try db.transaction {
                result.rows += Int(
                    try db.scalar(
                        """
                        SELECT count(*) FROM site_stats WHERE state_id IN (SELECT id FROM states WHERE run_id = ?)
                        """, [.integer(runID)]) ?? 0)
                result.snapshots += Int(
                    try db.scalar(
                        "SELECT count(*) FROM snapshots WHERE run_id = ?", [.integer(runID)]) ?? 0)
                try db.prepare(
                    "DELETE FROM site_stats WHERE state_id IN (SELECT id FROM states WHERE run_id = ?)"
                )
                .run([.integer(runID)])
                try db.prepare("DELETE FROM snapshots WHERE run_id = ?").run([.integer(runID)])
                try db.prepare("DELETE FROM states WHERE run_id = ?").run([.integer(runID)])
                try db.prepare("DELETE FROM runs WHERE id = ?").run([.integer(runID)])
                result.runs += 1
            }
        }
        // States that keep a snapshot at or after the cutoff: re-base on the oldest one kept.
        let states = try db.prepare(
            """
            SELECT state_id, min(id) FROM snapshots WHERE time_ms >= ?1 AND state_id IN
                (SELECT state_id FROM snapshots WHERE time_ms < ?1) GROUP BY state_id
            """
        ).rows([.integer(cutoffMs)])
        for row in states {
            guard case .integer(let stateID) = row[0], case .integer(let oldest) = row[1] else {
                continue
            }
            try db.transaction {
                try db.prepare(
                    """
                    INSERT INTO site_stats (state_id, site_id, type, snapshot_id, live_bytes, live_count,
                        alloc_bytes, alloc_count, peak_bytes, gc_live_bytes, gc_live_count)
                    SELECT ss.state_id, ss.site_id, ss.type, ?2, ss.live_bytes, ss.live_count,
                        ss.alloc_bytes, ss.alloc_count, ss.peak_bytes, ss.gc_live_bytes, ss.gc_live_count
                    FROM site_stats ss
                    JOIN (SELECT site_id, type, max(snapshot_id) AS latest FROM site_stats
                          WHERE state_id = ?1 AND snapshot_id <= ?2 GROUP BY site_id, type) l
                      ON l.site_id = ss.site_id AND l.type = ss.type AND l.latest = ss.snapshot_id
                    WHERE ss.state_id = ?1 AND ss.snapshot_id < ?2
                    """
                ).run([.integer(stateID), .integer(oldest)])
                try db.prepare(
                    """
                    UPDATE snapshots SET site_rows = (SELECT count(*) FROM site_stats WHERE snapshot_id = ?1)
                    WHERE id = ?1 AND site_rows IS NOT NULL
                    """
                ).run([.integer(oldest)])
                result.rows += Int(
                    try db.scalar(
                        "SELECT count(*) FROM site_stats WHERE state_id = ? AND snapshot_id < ?",
                        [.integer(stateID), .integer(oldest)]) ?? 0)
                result.snapshots += Int(
                    try db.scalar(
                        "SELECT count(*) FROM snapshots WHERE state_id = ? AND id < ?",
                        [.integer(stateID), .integer(oldest)]) ?? 0)
                try db.prepare("DELETE FROM site_stats WHERE state_id = ? AND snapshot_id < ?")
                    .run([.integer(stateID), .integer(oldest)])
                try db.prepare("DELETE FROM snapshots WHERE state_id = ? AND id < ?")
                    .run([.integer(stateID), .integer(oldest)])
            }
        }
        return result
    }
}

/// A frame as printed in stacks.
public struct FrameInfo: Sendable {
    public var file: String
    public var line: Int64
    public var function: String?
}

extension Store {
    /// Every frame by id.
    public func frames() throws -> [Int64: FrameInfo] {
        let statement = try database.prepare("SELECT id, file, line, function FROM frames")
        try statement.bind([])
        var result: [Int64: FrameInfo] = [:]
        while try statement.step() {
            result[statement.int64(0)] = FrameInfo(
                file: statement.text(1) ?? "?", line: statement.int64(2),
                function: statement.text(3))
        }
        return result
    }
}

extension Store {
    /// A run's Lua version and tracker options (JSON).
    public func runFacts(id: Int64) throws -> (luaVersion: String, options: String) {
        let statement = try database.prepare("SELECT lua_version, options FROM runs WHERE id = ?")
        try statement.bind([.integer(id)])
        guard try statement.step() else { return ("?", "{}") }
        return (statement.text(0) ?? "?", statement.text(1) ?? "{}")
    }
}
