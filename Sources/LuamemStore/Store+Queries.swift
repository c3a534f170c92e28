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
    public var exitStatus: Int64?
    public var parentID: Int64?
    /// The run's identity beyond its file (nil for runs recorded before luamem 0.2).
    public var uuid: String? = nil

    public init(
        id: Int64, build: String?, name: String?, host: String, pid: Int64, command: String,
        startedMs: Int64, endedMs: Int64?, exitStatus: Int64?, parentID: Int64?,
        uuid: String? = nil
    ) {
        self.id = id
        self.build = build
        self.name = name
        self.host = host
        self.pid = pid
        self.command = command
        self.startedMs = startedMs
        self.endedMs = endedMs
        self.exitStatus = exitStatus
        self.parentID = parentID
        self.uuid = uuid
    }
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

    public init(
        id: Int64, file: String, line: Int64, lineDefined: Int64, function: String?,
        cfunction: String, stack: String
    ) {
        self.id = id
        self.file = file
        self.line = line
        self.lineDefined = lineDefined
        self.function = function
        self.cfunction = cfunction
        self.stack = stack
    }

    /// The ids of the frames in `stack`, innermost first.
    public var frameIDs: [Int64] { stack.split(separator: ",").compactMap { Int64($0) } }
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
    /// The latest top-level run: children that a tracked program started (a 2 ms `lua5.3 -e`)
    /// are not what "the latest run" means.
    public func latestRunID() throws -> Int64? {
        try database.scalar(
            "SELECT coalesce((SELECT max(id) FROM runs WHERE parent_id IS NULL), max(id)) FROM runs")
    }

    public func run(id: Int64) throws -> RunRecord? {
        let statement = try database.prepare("SELECT \(Self.runColumns) FROM runs WHERE id = ?")
        try statement.bind([.integer(id)])
        guard try statement.step() else { return nil }
        return runRecord(statement)
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

    /// How many GC cycles a state had completed at a snapshot.
    public func gcCycles(snapshotID: Int64) throws -> Int64 {
        try database.scalar("SELECT gc_cycles FROM snapshots WHERE id = ?", [.integer(snapshotID)])
            ?? 0
    }

    /// The site rows a state's snapshots after `afterID` up to `throughID` wrote (the sites
    /// that changed at each), as stored, by snapshot id: one range read in key order.
    public func changedRows(stateID: Int64, after afterID: Int64, through throughID: Int64) throws
        -> [Int64: [SiteFigures]]
    {
        let statement = try database.prepare(
            """
            SELECT snapshot_id, site_id, type, live_bytes, live_count, alloc_bytes, alloc_count,
                   gc_live_bytes
            FROM site_stats WHERE state_id = ? AND snapshot_id > ? AND snapshot_id <= ?
            """)
        try statement.bind([.integer(stateID), .integer(afterID), .integer(throughID)])
        var result: [Int64: [SiteFigures]] = [:]
        while try statement.step() {
            var figures = Figures()
            figures.liveBytes = statement.int64(3)
            figures.liveCount = statement.int64(4)
            figures.allocBytes = statement.int64(5)
            figures.allocCount = statement.int64(6)
            figures.gcLiveBytes = statement.int64(7)
            result[statement.int64(0), default: []].append(
                SiteFigures(
                    stateID: stateID, siteID: statement.int64(1), type: statement.int64(2),
                    figures: figures))
        }
        return result
    }

    /// A state's name, "?" when there is no such state.
    public func stateName(id: Int64) throws -> String {
        let statement = try database.prepare("SELECT name FROM states WHERE id = ?")
        try statement.bind([.integer(id)])
        return try statement.step() ? statement.text(0) ?? "?" : "?"
    }

    /// The names of a run's states, in the order they started, each once.
    public func stateNames(runID: Int64) throws -> [String] {
        try database.prepare(
            "SELECT name FROM states WHERE run_id = ? GROUP BY name ORDER BY min(id)"
        ).rows([.integer(runID)]).compactMap { row in
            if case .text(let name) = row[0] { name } else { nil }
        }
    }

    public func snapshotCount(runID: Int64) throws -> Int64 {
        try database.scalar("SELECT count(*) FROM snapshots WHERE run_id = ?", [.integer(runID)])
            ?? 0
    }

    /// The figure columns of site_stats and site_rollups, in order.
    public static let figureColumns =
        "live_bytes, live_count, alloc_bytes, alloc_count, gc_live_bytes"

    /// The full state of state ?1 at snapshot ?4, given its checkpoint ?2 and its rollup
    /// boundary ?3 at or before ?4 (see Migrations/0004): per (site, type), the latest of the
    /// checkpoint's rows, the rollups after it, and the site_stats rows after the boundary.
    /// Columns: snapshot_id, site_id, type, then `figureColumns`.
    public static let stateSQL = """
        SELECT max(snapshot_id) AS snapshot_id, site_id, type, \(figureColumns) FROM (
            SELECT snapshot_id, site_id, type, \(figureColumns) FROM site_rollups
            WHERE state_id = ?1 AND level = 2 AND snapshot_id = ?2
            UNION ALL
            SELECT snapshot_id, site_id, type, \(figureColumns) FROM site_rollups
            WHERE state_id = ?1 AND level = 1 AND snapshot_id > ?2 AND snapshot_id <= ?3
            UNION ALL
            SELECT snapshot_id, site_id, type, \(figureColumns) FROM site_stats
            WHERE state_id = ?1 AND snapshot_id > ?3 AND snapshot_id <= ?4)
        GROUP BY site_id, type
        """

    /// Where a state's rollups stand at a snapshot: its latest checkpoint, and its latest rollup
    /// or checkpoint (the boundary), at or before it; 0 when there is none.
    public func rollupMarks(stateID: Int64, atOrBefore snapshotID: Int64) throws -> (
        checkpoint: Int64, boundary: Int64
    ) {
        let latest = try database.prepare(
            """
            SELECT coalesce(max(snapshot_id), 0) FROM site_rollups
            WHERE state_id = ? AND level = ? AND snapshot_id <= ?
            """)
        func mark(_ level: Int64) throws -> Int64 {
            try latest.bind([.integer(stateID), .integer(level), .integer(snapshotID)])
            defer { try? latest.bind([]) }
            return try latest.step() ? latest.int64(0) : 0
        }
        let checkpoint = try mark(2)
        return (checkpoint, max(checkpoint, try mark(1)))
    }

    /// The full state of a snapshot: per (site, type), its figures as of that snapshot. Reads
    /// the same rows as `stateSQL`, in key and snapshot order, and keeps the latest per (site,
    /// type) itself, which is several times faster than SQLite's GROUP BY on 50k sites.
    public func figures(at snapshot: SnapshotRef) throws -> [SiteFigures] {
        let marks = try rollupMarks(stateID: snapshot.stateID, atOrBefore: snapshot.id)
        var state = StateReader(stateID: snapshot.stateID)
        try state.read(self, level: 2, after: marks.checkpoint - 1, through: marks.checkpoint)
        try state.read(self, level: 1, after: marks.checkpoint, through: marks.boundary)
        try state.read(self, level: 0, after: marks.boundary, through: snapshot.id)
        return state.result
    }

    /// The full state of `snapshot`, given `baseFigures`, the full state at an earlier snapshot
    /// `base` of the same state: only the rollups and rows in between are read.
    public func figures(
        at snapshot: SnapshotRef, from base: SnapshotRef, baseFigures: [SiteFigures]
    ) throws -> [SiteFigures] {
        guard base.stateID == snapshot.stateID, base.id <= snapshot.id else {
            return try figures(at: snapshot)
        }
        let marks = try rollupMarks(stateID: snapshot.stateID, atOrBefore: snapshot.id)
        let baseMarks = try rollupMarks(stateID: base.stateID, atOrBefore: base.id)
        var state = StateReader(stateID: snapshot.stateID, start: baseFigures)
        if marks.boundary > baseMarks.boundary {
            // The rollups after the base's boundary cover every change up to the last of them,
            // the base's own rows after its boundary included.
            try state.read(self, level: 1, after: baseMarks.boundary, through: marks.boundary)
            try state.read(self, level: 0, after: marks.boundary, through: snapshot.id)
        } else {
            try state.read(self, level: 0, after: base.id, through: snapshot.id)
        }
        return state.result
    }

    /// The latest figures per (site, type) of rows read in snapshot order.
    private struct StateReader {
        let stateID: Int64
        var result: [SiteFigures]
        var index: [Int64: Int] = [:]

        init(stateID: Int64, start: [SiteFigures] = []) {
            self.stateID = stateID
            result = start
            index.reserveCapacity(start.count)
            for (at, entry) in start.enumerated() { index[entry.siteID << 8 | entry.type] = at }
        }

        /// Rows of `level` (0: site_stats) after snapshot `after` up to `through`.
        mutating func read(_ store: Store, level: Int, after: Int64, through: Int64) throws {
            try store.readRows(stateID: stateID, level: level, after: after, through: through) {
                _, entry in
                let key = entry.siteID << 8 | entry.type
                if let at = index[key] {
                    result[at] = entry
                } else {
                    index[key] = result.count
                    result.append(entry)
                }
            }
        }
    }

    /// Calls `each` with the rows of `level` (0: site_stats, 1: rollups, 2: checkpoints) of a
    /// state after snapshot `after` up to `through`, in snapshot order.
    func readRows(
        stateID: Int64, level: Int, after: Int64, through: Int64,
        _ each: (_ snapshotID: Int64, _ entry: SiteFigures) -> Void
    ) throws {
        guard through > after else { return }
        let source =
            level == 0
            ? "site_stats WHERE state_id = ?1"
            : "site_rollups WHERE state_id = ?1 AND level = \(level)"
        let statement = try database.prepare(
            """
            SELECT snapshot_id, site_id, type, \(Store.figureColumns) FROM \(source)
            AND snapshot_id > ?2 AND snapshot_id <= ?3 ORDER BY snapshot_id
            """)
        try statement.bind([.integer(stateID), .integer(after), .integer(through)])
        while try statement.step() {
            each(
                statement.int64(0),
                SiteFigures(
                    stateID: stateID, siteID: statement.int64(1), type: statement.int64(2),
                    figures: Store.figures(statement, from: 3)))
        }
    }

    /// The figures in `figureColumns` order, starting at `column` (a site row has no peak or
    /// count after GC: they are 0).
    static func figures(_ statement: Statement, from column: Int32) -> Figures {
        Figures(
            liveBytes: statement.int64(column), liveCount: statement.int64(column + 1),
            allocBytes: statement.int64(column + 2), allocCount: statement.int64(column + 3),
            peakBytes: 0, gcLiveBytes: statement.int64(column + 4), gcLiveCount: 0)
    }

    /// The full state of a snapshot, each (site, type) with its site's name.
    public func namedFigures(at snapshot: SnapshotRef) throws
        -> [(info: SiteInfo, figures: SiteFigures)]
    {
        try named(try figures(at: snapshot))
    }

    /// Each entry with its site's name.
    public func named(_ entries: [SiteFigures]) throws -> [(info: SiteInfo, figures: SiteFigures)] {
        let infos = try siteInfo(ids: Set(entries.map(\.siteID)))
        return entries.compactMap { entry in infos[entry.siteID].map { ($0, entry) } }
    }

    /// Names of the given sites (nil: of every site).
    public func siteInfo(ids: Set<Int64>?) throws -> [Int64: SiteInfo] {
        let statement = try database.prepare(
            """
            SELECT s.id, f.file, f.line, f.line_defined, f.function, s.c_function, s.stack
            FROM sites s JOIN frames f ON f.id = s.frame_id
            """)
        try statement.bind([])
        var result: [Int64: SiteInfo] = [:]
        result.reserveCapacity(ids?.count ?? 1024)
        while try statement.step() {
            let id = statement.int64(0)
            guard ids?.contains(id) ?? true else { continue }
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

    public init(
        ref: SnapshotRef, runID: Int64, state: String, kind: String, totals: Figures,
        gcCycles: Int64
    ) {
        self.ref = ref
        self.runID = runID
        self.state = state
        self.kind = kind
        self.totals = totals
        self.gcCycles = gcCycles
    }
}

extension Store {
    private static let runColumns =
        "id, build, name, host, pid, command, started_ms, ended_ms, exit_status, parent_id, uuid"

    private func runRecord(_ statement: Statement, from column: Int32 = 0) -> RunRecord {
        RunRecord(
            id: statement.int64(column), build: statement.text(column + 1),
            name: statement.text(column + 2), host: statement.text(column + 3) ?? "",
            pid: statement.int64(column + 4), command: statement.text(column + 5) ?? "",
            startedMs: statement.int64(column + 6),
            endedMs: statement.isNull(column + 7) ? nil : statement.int64(column + 7),
            exitStatus: statement.isNull(column + 8) ? nil : statement.int64(column + 8),
            parentID: statement.isNull(column + 9) ? nil : statement.int64(column + 9),
            uuid: statement.text(column + 10))
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
                    .reduce(0) { $0.saturatingAdd($1) }
            }
            return RunSummary(
                run: run, states: Int64(Set(snapshots.map(\.ref.stateID)).count),
                snapshots: Int64(snapshots.count), lastSnapshotMs: snapshots.last?.ref.timeMs,
                peakLiveBytes: byTime.values.max() ?? 0,
                finalLiveBytes: latest.values.map(\.totals.liveBytes).reduce(0) { $0.saturatingAdd($1) },
                finalGCLiveBytes: latest.values.map(\.totals.gcLiveBytes).reduce(0) {
                    $0.saturatingAdd($1)
                })
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

    /// What a state recorded after snapshot `after` up to `through`, for replaying on top of
    /// the state at `after`. With `rollups`, whole spans come from rollups (one row per (site,
    /// type) per span) and only the rows after the last rollup are read one by one; `points`
    /// then holds the snapshots at which the replayed state is exact (the rollups and every
    /// later snapshot), else it is nil (every snapshot is exact).
    public func changes(
        stateID: Int64, after: Int64, through: Int64, rollups: Bool
    ) throws -> (rows: [(snapshotID: Int64, figures: SiteFigures)], points: Set<Int64>?) {
        var boundary = after
        var points: Set<Int64>?
        var result: [(snapshotID: Int64, figures: SiteFigures)] = []
        if rollups {
            boundary = max(after, try rollupMarks(stateID: stateID, atOrBefore: through).boundary)
            try readRows(stateID: stateID, level: 1, after: after, through: boundary) {
                result.append(($0, $1))
            }
            points = Set(result.map(\.snapshotID))
            points!.formUnion(
                try database.prepare(
                    "SELECT id FROM snapshots WHERE +state_id = ? AND id > ? AND id <= ?"
                ).integers([.integer(stateID), .integer(boundary), .integer(through)]))
            points!.insert(after)
        }
        try readRows(stateID: stateID, level: 0, after: boundary, through: through) {
            result.append(($0, $1))
        }
        return (result, points)
    }

    /// How many site_stats rows a state's snapshots after `after` up to `through` wrote.
    public func rowCount(stateID: Int64, after: Int64, through: Int64) throws -> Int64 {
        try database.scalar(
            """
            SELECT coalesce(sum(site_rows), count(*) * 1000000) FROM snapshots
            WHERE +state_id = ? AND id > ? AND id <= ?
            """, [.integer(stateID), .integer(after), .integer(through)]) ?? 0
    }
}

/// A frame as printed in stacks.
public struct FrameInfo: Sendable {
    public var file: String
    public var line: Int64
    public var function: String?
    /// The first line of the enclosing function (0: the main chunk).
    public var lineDefined: Int64 = 0

    public init(file: String, line: Int64, function: String?, lineDefined: Int64 = 0) {
        self.file = file
        self.line = line
        self.function = function
        self.lineDefined = lineDefined
    }
}

extension Store {
    /// Every frame by id.
    public func frames() throws -> [Int64: FrameInfo] {
        let statement = try database.prepare(
            "SELECT id, file, line, function, line_defined FROM frames")
        try statement.bind([])
        var result: [Int64: FrameInfo] = [:]
        while try statement.step() {
            result[statement.int64(0)] = FrameInfo(
                file: statement.text(1) ?? "?", line: statement.int64(2),
                function: statement.text(3), lineDefined: statement.int64(4))
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
