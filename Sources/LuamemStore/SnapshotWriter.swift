import CSQLite

/// What a run records about itself.
public struct RunInfo: Sendable {
    public var build: String?
    public var name: String?
    public var host: String
    public var pid: Int64
    public var command: String
    public var luaVersion: String
    /// Tracker options as a JSON object.
    public var options: String
    public var startedMs: Int64
    /// The run of the same file whose process started this one, if any.
    public var parentID: Int64?

    public init(
        build: String?, name: String?, host: String, pid: Int64, command: String,
        luaVersion: String, options: String, startedMs: Int64
    ) {
        self.build = build
        self.name = name
        self.host = host
        self.pid = pid
        self.command = command
        self.luaVersion = luaVersion
        self.options = options
        self.startedMs = startedMs
    }
}

extension RunInfo {
    /// A random (version 4) UUID, lower-case: a run's identity beyond its file.
    public static func randomUUID() -> String {
        // SQLite's generator: seeded from the system's randomness when first used.
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { sqlite3_randomness(16, $0.baseAddress) }
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        return uuidText(bytes)
    }

    /// 16 bytes as a UUID's text: lower-case hex in groups of 8-4-4-4-12.
    public static func uuidText(_ bytes: [UInt8]) -> String {
        let hex = Array("0123456789abcdef")
        var text = ""
        for (index, byte) in bytes.enumerated() {
            if index == 4 || index == 6 || index == 8 || index == 10 { text.append("-") }
            text.append(hex[Int(byte >> 4)])
            text.append(hex[Int(byte & 0x0f)])
        }
        return text
    }
}

/// Figures of one (site, type) or of a whole state, as stored.
public struct Figures: Equatable, Sendable {
    public var liveBytes: Int64 = 0
    public var liveCount: Int64 = 0
    public var allocBytes: Int64 = 0
    public var allocCount: Int64 = 0
    public var peakBytes: Int64 = 0
    public var gcLiveBytes: Int64 = 0
    public var gcLiveCount: Int64 = 0

    public init() {}

    /// The figures a site row stores: without the peak and the count after GC.
    public var siteRow: Figures {
        var row = self
        row.peakBytes = 0
        row.gcLiveCount = 0
        return row
    }

    public init(
        liveBytes: Int64, liveCount: Int64, allocBytes: Int64, allocCount: Int64,
        peakBytes: Int64, gcLiveBytes: Int64, gcLiveCount: Int64
    ) {
        self.liveBytes = liveBytes
        self.liveCount = liveCount
        self.allocBytes = allocBytes
        self.allocCount = allocCount
        self.peakBytes = peakBytes
        self.gcLiveBytes = gcLiveBytes
        self.gcLiveCount = gcLiveCount
    }
}

/// Why a snapshot was taken (`snapshots.kind`).
public enum SnapshotKind: String, Sendable {
    case start, interval, manual, final
}

/// The statements the flusher writes with, prepared once per connection.
public final class SnapshotWriter {
    public let store: Store
    private let insertFrame: Statement
    private let selectFrame: Statement
    private let insertSite: Statement
    private let selectSite: Statement
    private let insertSnapshot: Statement
    private let insertStats: Statement
    private let countRows: Statement

    public init(store: Store) throws {
        countRows = try store.database.prepare("UPDATE snapshots SET site_rows = ? WHERE id = ?")
        self.store = store
        let db = store.database
        insertFrame = try db.prepare(
            "INSERT OR IGNORE INTO frames (source, file, line, line_defined, function) VALUES (?, ?, ?, ?, ?)"
        )
        selectFrame = try db.prepare(
            "SELECT id FROM frames WHERE source = ? AND line = ? AND line_defined = ? AND function IS ?"
        )
        insertSite = try db.prepare(
            "INSERT OR IGNORE INTO sites (frame_id, stack, c_function) VALUES (?, ?, ?)")
        selectSite = try db.prepare("SELECT id FROM sites WHERE stack = ? AND c_function = ?")
        insertSnapshot = try db.prepare(
            """
            INSERT INTO snapshots (run_id, state_id, time_ms, kind, live_bytes, live_count,
                alloc_bytes, alloc_count, peak_bytes, gc_live_bytes, gc_live_count, gc_cycles,
                gc_completed_ms)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        insertStats = try db.prepare(
            """
            INSERT INTO site_stats (state_id, site_id, type, snapshot_id, live_bytes, live_count,
                alloc_bytes, alloc_count, gc_live_bytes)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try store.database.transaction(body)
    }

    /// Records a new run; `parentID` is the run that started this process, when it is in this
    /// file (a stale id is dropped).
    public func beginRun(_ run: RunInfo, parentID: Int64? = nil) throws -> Int64 {
        try store.database.prepare(
            """
            INSERT INTO runs (build, name, host, pid, command, lua_version, options, started_ms, parent_id, uuid)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, (SELECT id FROM runs WHERE id = ?), ?)
            """
        ).run([
            run.build.map(Value.text) ?? .null, run.name.map(Value.text) ?? .null,
            .text(run.host), .integer(run.pid), .text(run.command), .text(run.luaVersion),
            .text(run.options), .integer(run.startedMs), parentID.map(Value.integer) ?? .null,
            .text(RunInfo.randomUUID()),
        ])
        return store.database.lastInsertRowID
    }

    /// Whether this file holds the run row `run` was recorded as (a deleted and recreated, or
    /// replaced, file does not).
    public func holds(runID: Int64, _ run: RunInfo) throws -> Bool {
        try store.database.scalar(
            "SELECT count(*) FROM runs WHERE id = ? AND pid = ? AND started_ms = ?",
            [.integer(runID), .integer(run.pid), .integer(run.startedMs)]) == 1
    }

    public func endRun(_ runID: Int64, endedMs: Int64, exitStatus: Int64? = nil) throws {
        try store.database.prepare("UPDATE runs SET ended_ms = ?, exit_status = ? WHERE id = ?")
            .run([.integer(endedMs), exitStatus.map(Value.integer) ?? .null, .integer(runID)])
    }

    public func addState(runID: Int64, name: String, startedMs: Int64) throws -> Int64 {
        try store.database.prepare("INSERT INTO states (run_id, name, started_ms) VALUES (?, ?, ?)")
            .run([.integer(runID), .text(name), .integer(startedMs)])
        return store.database.lastInsertRowID
    }

    public func closeState(_ stateID: Int64, closedMs: Int64) throws {
        try store.database.prepare("UPDATE states SET closed_ms = ? WHERE id = ?")
            .run([.integer(closedMs), .integer(stateID)])
    }

    /// The id of a frame, inserted when new. `source` is Lua's chunk name.
    public func frameID(source: String, line: Int64, lineDefined: Int64, function: String?) throws
        -> Int64
    {
        try frameID(
            source: Array(source.utf8), line: line, lineDefined: lineDefined,
            function: function.map { Array($0.utf8) })
    }

    /// The id of a frame, inserted when new. `source` is Lua's chunk name and `function` the
    /// function's name, as the bytes Lua has (not always UTF-8): stored as they are, so that
    /// distinct chunks stay distinct.
    public func frameID(source: [UInt8], line: Int64, lineDefined: Int64, function: [UInt8]?)
        throws -> Int64
    {
        try insertFrame.run([
            .bytes(source), .bytes(Self.file(ofSource: source)), .integer(line),
            .integer(lineDefined), function.map(Value.bytes) ?? .null,
        ])
        try selectFrame.bind([
            .bytes(source), .integer(line), .integer(lineDefined), function.map(Value.bytes) ?? .null,
        ])
        defer { try? selectFrame.bind([]) }
        guard try selectFrame.step() else {
            throw StoreError(code: 1, message: "frame row vanished", sql: selectFrame.sql)
        }
        return selectFrame.int64(0)
    }

    /// The id of a site (frame ids innermost first), inserted when new.
    public func siteID(frameIDs: [Int64], cfunction: String?) throws -> Int64 {
        let stack = frameIDs.map(String.init).joined(separator: ",")
        try insertSite.run([.integer(frameIDs[0]), .text(stack), .text(cfunction ?? "")])
        try selectSite.bind([.text(stack), .text(cfunction ?? "")])
        defer { try? selectSite.bind([]) }
        guard try selectSite.step() else {
            throw StoreError(code: 1, message: "site row vanished", sql: selectSite.sql)
        }
        return selectSite.int64(0)
    }

    public func insertSnapshot(
        runID: Int64, stateID: Int64, timeMs: Int64, kind: SnapshotKind, totals: Figures,
        gcCycles: Int64, gcCompletedMs: Int64? = nil
    ) throws -> Int64 {
        try insertSnapshot.run([
            .integer(runID), .integer(stateID), .integer(timeMs), .text(kind.rawValue),
            .integer(totals.liveBytes), .integer(totals.liveCount), .integer(totals.allocBytes),
            .integer(totals.allocCount), .integer(totals.peakBytes), .integer(totals.gcLiveBytes),
            .integer(totals.gcLiveCount), .integer(gcCycles),
            gcCompletedMs.map(Value.integer) ?? .null,
        ])
        return store.database.lastInsertRowID
    }

    /// Records how many site_stats rows a snapshot wrote (its completeness check).
    public func setSiteRows(_ count: Int64, snapshotID: Int64) throws {
        try countRows.run([.integer(count), .integer(snapshotID)])
    }

    /// Fewest site_stats rows a rollup gathers (a state with more sites waits for more: half
    /// its last checkpoint). Tests lower it to exercise rollups on small programs.
    public var minimumRollupRows: Int64 = 4096
    private var checkpointSizes: [Int64: (checkpoint: Int64, rows: Int64)] = [:]

    /// Ends a snapshot that wrote `rows` site_stats rows: records the count, and adds a rollup or
    /// a checkpoint (see Migrations/0004) when enough rows have accumulated since the last one.
    /// Call inside the snapshot's transaction. Where rollups stand is read from the file itself,
    /// so a rolled-back transaction or a reopened file cannot leave a gap.
    public func finishSnapshot(stateID: Int64, snapshotID: Int64, rows: Int64) throws {
        try setSiteRows(rows, snapshotID: snapshotID)
        let db = store.database
        let marks = try store.rollupMarks(stateID: stateID, atOrBefore: snapshotID)
        // After a rollup, the snapshots since it are a short range of ids (+state_id: no index
        // on the state, which has many); before the state's first, the range starts at 0 and
        // would cover every snapshot of the file, so the state's index is the short way.
        let pending =
            try db.scalar(
                marks.boundary == 0
                    ? "SELECT coalesce(sum(site_rows), 0) FROM snapshots WHERE state_id = ? AND id > ? AND id <= ?"
                    : "SELECT coalesce(sum(site_rows), 0) FROM snapshots WHERE +state_id = ? AND id > ? AND id <= ?",
                [.integer(stateID), .integer(marks.boundary), .integer(snapshotID)]) ?? 0
        // The checkpoint's size stands for the number of (site, type) the state has. It only
        // sets when the next rollup comes, so a count cached by checkpoint is good enough.
        let keys: Int64
        if let cached = checkpointSizes[stateID], cached.checkpoint == marks.checkpoint {
            keys = cached.rows
        } else {
            keys =
                try db.scalar(
                    "SELECT count(*) FROM site_rollups WHERE state_id = ? AND level = 2 AND snapshot_id = ?",
                    [.integer(stateID), .integer(marks.checkpoint)]) ?? 0
            checkpointSizes[stateID] = (marks.checkpoint, keys)
        }
        guard pending >= max(minimumRollupRows, keys / 2) else { return }
        let rolledUp =
            try db.scalar(
                "SELECT count(*) FROM site_rollups WHERE state_id = ? AND level = 1 AND snapshot_id > ?",
                [.integer(stateID), .integer(marks.checkpoint)]) ?? 0
        let bindings: [Value] = [
            .integer(stateID), .integer(marks.checkpoint), .integer(marks.boundary),
            .integer(snapshotID),
        ]
        // Every boundary gets a rollup, a checkpoint too included, so that a series can step
        // from rollup to rollup without reading checkpoints. Only a checkpoint at the state's
        // very first snapshot needs none: nothing ever reads changes up to it.
        var firstSnapshot = false
        if marks.boundary == 0 {
            firstSnapshot =
                try db.scalar(
                    "SELECT EXISTS (SELECT 1 FROM snapshots WHERE state_id = ? AND id < ?)",
                    [.integer(stateID), .integer(snapshotID)]) == 0
        }
        let checkpointDue = 2 * (rolledUp + pending) >= 3 * max(minimumRollupRows, keys)
        if !(firstSnapshot && checkpointDue) {
            try db.prepare(
                """
                INSERT INTO site_rollups (state_id, level, snapshot_id, site_id, type, \(Store.figureColumns))
                SELECT ?1, 1, ?4, site_id, type, \(Store.figureColumns) FROM (
                    SELECT max(snapshot_id), site_id, type, \(Store.figureColumns) FROM site_stats
                    WHERE state_id = ?1 AND snapshot_id > ?3 AND snapshot_id <= ?4
                    GROUP BY site_id, type)
                """
            ).run(bindings)
        }
        // A checkpoint once the rollups since the last one are half again its size: reading a
        // state then costs at most 2.5 times its size, and checkpoints add about 6% to the file.
        if checkpointDue {
            try db.prepare(
                """
                INSERT INTO site_rollups (state_id, level, snapshot_id, site_id, type, \(Store.figureColumns))
                SELECT ?1, 2, ?4, site_id, type, \(Store.figureColumns) FROM (\(Store.stateSQL))
                """
            ).run(bindings)
        }
    }

    /// Writes a site row: the figures of `siteRow` (a site's peak and count after GC are not
    /// stored).
    public func insertStats(
        stateID: Int64, siteID: Int64, type: Int64, snapshotID: Int64, figures: Figures
    ) throws {
        try insertStats.bind(
            integers: stateID, siteID, type, snapshotID, figures.liveBytes, figures.liveCount,
            figures.allocBytes, figures.allocCount, figures.gcLiveBytes)
        while try insertStats.step() {}
    }

    /// How luamem prints a chunk name: "@file.lua" → "file.lua", "=stdin" → "stdin", code given
    /// to load() → `[string "first line…"]` as Lua's own messages do.
    public static func file(ofSource source: [UInt8]) -> [UInt8] {
        if let first = source.first, first == UInt8(ascii: "@") || first == UInt8(ascii: "=") {
            return Array(source.dropFirst())
        }
        let line = source.prefix { $0 != UInt8(ascii: "\n") }
        // 40 characters when the line is UTF-8, else 40 bytes.
        let shown: ArraySlice<UInt8> =
            String(validating: line, as: UTF8.self).map { ArraySlice($0.prefix(40).utf8) }
            ?? line.prefix(40)
        let truncated = shown.count < source.count
        return Array("[string \"".utf8) + shown + Array("\(truncated ? "..." : "")\"]".utf8)
    }
}
