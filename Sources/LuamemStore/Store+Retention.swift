import CSQLite

// Retention: what `luamem prune` and the agent's automatic policy remove, in short transactions
// so that a program writing to the file meanwhile waits one batch at most.

/// How much history a long-running process keeps, applied by its flusher thread now and then.
public struct RetentionPolicy: Equatable, Sendable {
    /// Snapshots older than this are thinned to their rollup snapshots (`prune --thin-older-than`).
    public var keepFullMs: Int64?
    /// What is older than this is removed (`prune --older-than`).
    public var keepMs: Int64?
    /// The file's live pages are kept under half of this, by removing the oldest quarter of the
    /// history at a time: the writer, capped at this size, has room until the next pass.
    public var maxBytes: Int64?

    /// Whether a file with `usedBytes` in use is over the size target.
    public func isOverSize(_ usedBytes: Int64) -> Bool {
        maxBytes.map { usedBytes > $0 / 2 } ?? false
    }

    public init(keepFullMs: Int64? = nil, keepMs: Int64? = nil, maxBytes: Int64? = nil) {
        self.keepFullMs = keepFullMs
        self.keepMs = keepMs
        self.maxBytes = maxBytes
    }

    public var isEmpty: Bool { keepFullMs == nil && keepMs == nil && maxBytes == nil }
}

/// What `prune` removed.
public struct PruneResult: Sendable {
    public var runs = 0
    public var snapshots = 0
    public var rows = 0
}

extension Store {
    /// Rows deleted per transaction, so that a live writer never waits long.
    public static let pruneBatchRows = 50_000

    /// Removes what is older than `cutoffMs`: runs that ended before it entirely, and in other
    /// runs the snapshots before it. The oldest kept snapshot of each state first gets every
    /// row it depends on (its full state, in site_stats and as a checkpoint), so every kept
    /// snapshot still reads back in full. Work is split into short transactions, so a live
    /// writer waits at most one batch; an interrupted prune leaves every kept snapshot whole and
    /// is finished by the next one.
    @discardableResult
    public func prune(olderThan cutoffMs: Int64, batchRows: Int = Store.pruneBatchRows) throws
        -> PruneResult
    {
        var result = PruneResult()
        let db = database
        func ids(_ sql: String, _ bindings: [Value]) throws -> [Int64] {
            try db.prepare(sql).integers(bindings)
        }
        // A run that never recorded its end (killed) ends at its last snapshot.
        for runID in try ids(
            """
            SELECT id FROM runs WHERE coalesce(ended_ms,
                (SELECT max(time_ms) FROM snapshots WHERE run_id = runs.id), started_ms) < ? ORDER BY id
            """, [.integer(cutoffMs)])
        {
            let states = try ids("SELECT id FROM states WHERE run_id = ?", [.integer(runID)])
            try db.transaction {
                try db.prepare("DELETE FROM snapshots WHERE run_id = ?").run([.integer(runID)])
                result.snapshots += Int(db.changes)
            }
            for stateID in states {
                result.rows += try deleteRows(stateID: stateID, before: Int64.max, batch: batchRows)
            }
            try db.transaction {
                try db.prepare("DELETE FROM states WHERE run_id = ?").run([.integer(runID)])
                try db.prepare("DELETE FROM runs WHERE id = ?").run([.integer(runID)])
            }
            result.runs += 1
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
                let marks = try rollupMarks(stateID: stateID, atOrBefore: oldest)
                let bindings: [Value] = [
                    .integer(stateID), .integer(marks.checkpoint), .integer(marks.boundary),
                    .integer(oldest),
                ]
                try db.prepare(
                    """
                    INSERT OR IGNORE INTO site_stats (state_id, snapshot_id, site_id, type, \(Self.figureColumns))
                    SELECT ?1, ?4, site_id, type, \(Self.figureColumns) FROM (\(Self.stateSQL))
                    """
                ).run(bindings)
                try db.prepare(
                    """
                    INSERT OR IGNORE INTO site_rollups (state_id, level, snapshot_id, site_id, type, \(Self.figureColumns))
                    SELECT ?1, 2, ?4, site_id, type, \(Self.figureColumns) FROM (\(Self.stateSQL))
                    """
                ).run(bindings)
                try db.prepare(
                    """
                    UPDATE snapshots SET site_rows =
                        (SELECT count(*) FROM site_stats WHERE state_id = ?1 AND snapshot_id = ?2)
                    WHERE id = ?2 AND site_rows IS NOT NULL
                    """
                ).run([.integer(stateID), .integer(oldest)])
                try db.prepare("DELETE FROM snapshots WHERE state_id = ? AND id < ?")
                    .run([.integer(stateID), .integer(oldest)])
                result.snapshots += Int(db.changes)
            }
            result.rows += try deleteRows(stateID: stateID, before: oldest, batch: batchRows)
        }
        return result
    }

    /// Deletes a state's site_stats and site_rollups rows before snapshot `before`, about
    /// `batch` rows per transaction (whole snapshots: a snapshot with more rows goes in one);
    /// returns how many site_stats rows went.
    private func deleteRows(stateID: Int64, before: Int64, batch: Int) throws -> Int {
        var deleted = 0
        let parts = [
            ("site_stats", "1"), ("site_rollups", "level = 1"), ("site_rollups", "level = 2"),
        ]
        for (table, level) in parts {
            let next = try database.prepare(
                """
                SELECT snapshot_id FROM \(table) WHERE state_id = ? AND \(level) AND snapshot_id < ?
                ORDER BY snapshot_id LIMIT 1 OFFSET \(max(0, batch - 1))
                """)
            let delete = try database.prepare(
                "DELETE FROM \(table) WHERE state_id = ? AND \(level) AND snapshot_id <= ?")
            while true {
                try next.bind([.integer(stateID), .integer(before)])
                // The last snapshot of this batch, or of all when fewer rows are left.
                let end = try next.step() ? next.int64(0) : before - 1
                try next.bind([])
                try database.transaction {
                    try delete.run([.integer(stateID), .integer(end)])
                    if table == "site_stats" { deleted += Int(database.changes) }
                }
                if end == before - 1 { break }
            }
        }
        return deleted
    }
}

/// What `thin` removed.
public struct ThinResult: Sendable {
    public var snapshots = 0
    public var rows = 0
}

extension Store {
    /// Down-samples what is older than `cutoffMs` to the snapshots where rollups or checkpoints
    /// were taken: the snapshots between two of them go, and their site_stats rows are replaced
    /// by the later one's rollup (the latest figures of every site that changed in between), so
    /// every kept snapshot still reads back in full, from site_stats alone too. Each span is one
    /// short transaction.
    @discardableResult
    public func thin(olderThan cutoffMs: Int64) throws -> ThinResult {
        var result = ThinResult()
        let db = database
        let states = try db.prepare(
            "SELECT DISTINCT state_id FROM snapshots WHERE time_ms < ? ORDER BY state_id"
        ).integers([.integer(cutoffMs)])
        for stateID in states {
            // The state's rollup and checkpoint snapshots older than the cutoff, with the level
            // that holds the rows of each (a rollup, else a checkpoint).
            let boundaries = try db.prepare(
                """
                SELECT r.snapshot_id, min(r.level) FROM site_rollups r
                JOIN snapshots s ON s.id = r.snapshot_id AND s.time_ms < ?2
                WHERE r.state_id = ?1 GROUP BY r.snapshot_id ORDER BY r.snapshot_id
                """
            ).rows([.integer(stateID), .integer(cutoffMs)]).compactMap {
                row -> (Int64, Int64)? in
                guard case .integer(let id) = row[0], case .integer(let level) = row[1] else {
                    return nil
                }
                return (id, level)
            }
            for (low, high) in zip(boundaries, boundaries.dropFirst()) {
                try db.transaction {
                    try db.prepare(
                        "DELETE FROM snapshots WHERE +state_id = ? AND id > ? AND id < ?"
                    )
                    .run([.integer(stateID), .integer(low.0), .integer(high.0)])
                    let snapshots = Int(db.changes)
                    guard snapshots > 0 else { return }
                    result.snapshots += snapshots
                    try db.prepare(
                        """
                        INSERT OR IGNORE INTO site_stats (state_id, snapshot_id, site_id, type, \(Self.figureColumns))
                        SELECT state_id, snapshot_id, site_id, type, \(Self.figureColumns) FROM site_rollups
                        WHERE state_id = ? AND level = ? AND snapshot_id = ?
                        """
                    ).run([.integer(stateID), .integer(high.1), .integer(high.0)])
                    try db.prepare(
                        "DELETE FROM site_stats WHERE state_id = ? AND snapshot_id > ? AND snapshot_id < ?"
                    ).run([.integer(stateID), .integer(low.0), .integer(high.0)])
                    result.rows += Int(db.changes)
                    try db.prepare(
                        """
                        UPDATE snapshots SET site_rows =
                            (SELECT count(*) FROM site_stats WHERE state_id = ?1 AND snapshot_id = ?2)
                        WHERE id = ?2 AND site_rows IS NOT NULL
                        """
                    ).run([.integer(stateID), .integer(high.0)])
                }
            }
        }
        return result
    }
}

extension Store {
    /// Rows per transaction when the agent applies its policy beside a live writer.
    public static let retentionBatchRows = 5_000

    /// Applies `policy` at `nowMs`: thins, then prunes by age, then, while the file's live pages
    /// pass half the size cap, thins and prunes the oldest quarter of what is left.
    public func applyRetention(_ policy: RetentionPolicy, nowMs: Int64) throws {
        if let keepFullMs = policy.keepFullMs { try thin(olderThan: nowMs - keepFullMs) }
        if let keepMs = policy.keepMs {
            try prune(olderThan: nowMs - keepMs, batchRows: Self.retentionBatchRows)
        }
        for _ in 0..<8 {
            guard try policy.isOverSize(usedBytes()),
                let first = try database.scalar("SELECT min(time_ms) FROM snapshots"),
                let last = try database.scalar("SELECT max(time_ms) FROM snapshots"),
                last > first
            else { return }
            let cutoff = first + (last - first) / 4
            try thin(olderThan: cutoff)
            if try policy.isOverSize(usedBytes()) {
                try prune(olderThan: cutoff, batchRows: Self.retentionBatchRows)
            }
        }
    }

    /// Bytes of the file's pages in use (free pages are reused before the file grows).
    public func usedBytes() throws -> Int64 {
        let pages = try database.scalar("PRAGMA page_count") ?? 0
        let free = try database.scalar("PRAGMA freelist_count") ?? 0
        return (pages - free) * (try database.scalar("PRAGMA page_size") ?? 4096)
    }
}
