import Foundation
import LuamemAgent
import LuamemStore
import Testing

@testable import LuamemCommands

/// Rollups and checkpoints (Migrations/0004) only make reading cheaper: every answer must be
/// what replaying every site_stats row gives.
@Suite struct RollupTests {
    static var gendbPath: String {
        Harness.productsDirectory.appendingPathComponent("luamem-gendb").path
    }

    /// A synthetic history written by the real writer, with rollups every `rollupRows` rows.
    static func generate(
        _ db: URL, hours: Double, sites: Int, changing: Int, runs: Int = 1, rollupRows: Int
    ) throws {
        let output = try Harness.run(
            gendbPath,
            [
                "--db", db.path, "--hours", String(hours), "--sites", String(sites),
                "--changing", String(changing), "--runs", String(runs), "--rollup-rows",
                String(rollupRows),
            ])
        try #require(output.status == 0, "luamem-gendb: \(output.stderr)")
    }

    /// A state's figures at a snapshot by replaying every site_stats row up to it.
    static func replayed(_ db: URL, stateID: Int64, snapshotID: Int64) throws -> [String: [Int64]] {
        var result: [String: [Int64]] = [:]
        for row in try Harness.rows(
            db,
            """
            SELECT site_id, type, max(snapshot_id), live_bytes, live_count, alloc_bytes,
                   alloc_count, gc_live_bytes
            FROM site_stats WHERE state_id = \(stateID) AND snapshot_id <= \(snapshotID)
            GROUP BY site_id, type
            """)
        {
            result["\(row[0]!)/\(row[1]!)"] = row[3...].map { Int64($0!)! }
        }
        return result
    }

    static func read(_ store: Store, _ snapshot: SnapshotRef) throws -> [String: [Int64]] {
        Dictionary(
            uniqueKeysWithValues: try store.figures(at: snapshot).map {
                let f = $0.figures
                return (
                    "\($0.siteID)/\($0.type)",
                    [f.liveBytes, f.liveCount, f.allocBytes, f.allocCount, f.gcLiveBytes]
                )
            })
    }

    @Test func everySnapshotReadsBackAsReplayingEveryRowGives() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("g.db")
        try Self.generate(db, hours: 1, sites: 400, changing: 60, rollupRows: 300)
        let levels = try Harness.rows(
            db, "SELECT level, count(DISTINCT snapshot_id) FROM site_rollups GROUP BY level")
        // Rollups every few snapshots, and checkpoints once rollups add up to the state's size.
        #expect(
            levels.count == 2 && Int(levels[0][1]!)! > 20 && Int(levels[1][1]!)! > 3, "\(levels)")
        let store = try Store.openForReading(path: db.path)
        let snapshots = try store.snapshots(runID: 1)
        #expect(snapshots.count == 360)
        for snapshot in snapshots {
            let expected = try Self.replayed(
                db, stateID: snapshot.ref.stateID, snapshotID: snapshot.ref.id)
            #expect(expected.count == 400)
            #expect(try Self.read(store, snapshot.ref) == expected, "snapshot \(snapshot.ref.id)")
        }
    }

    @Test func aProgramWhoseSitesDoNotChangeWritesNoRows() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("idle.db")
        try Self.generate(db, hours: 2, sites: 500, changing: 0, rollupRows: 100)
        // The first snapshot holds every site (and is the one checkpoint); the 719 others write
        // nothing.
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") == 720)
        #expect(try Harness.integer(db, "SELECT count(*) FROM site_stats") == 500)
        #expect(
            try Harness.rows(db, "SELECT level, count(*) FROM site_rollups GROUP BY level")
                == [["2", "500"]])
    }

    @Test func seriesFromRollupsEqualsEveryRowAtItsTimes() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("g.db")
        try Self.generate(db, hours: 1, sites: 300, changing: 50, rollupRows: 200)
        let store = try Store.openForReading(path: db.path)
        let run = try #require(try store.run(id: 1))
        let from = try store.snapshots(runID: 1)[40].ref.timeMs
        let full = try Series(
            store: store, run: run, fromMs: from, by: .line, selected: { _ in true },
            rowsBeforeRollups: .max)
        let rolled = try Series(
            store: store, run: run, fromMs: from, by: .line, selected: { _ in true },
            rowsBeforeRollups: 0)
        // Every snapshot of the window, against the rollups plus the snapshots after the last.
        #expect(full.times.count == 320)
        #expect(rolled.times.count > 10 && rolled.times.count < 120, "\(rolled.times.count)")
        #expect(rolled.times.first == full.times.first && rolled.times.last == full.times.last)
        #expect(Set(rolled.afterGC.keys) == Set(full.afterGC.keys))
        let index = Dictionary(uniqueKeysWithValues: full.times.enumerated().map { ($1, $0) })
        for (key, values) in rolled.afterGC {
            let expected = rolled.times.map { full.afterGC[key]![index[$0]!] }
            #expect(values == expected, "\(key)")
            #expect(rolled.live[key]! == rolled.times.map { full.live[key]![index[$0]!] })
        }
        // The leak the generator plants is found either way.
        let leaky = try #require(
            full.afterGC.first { key, _ in key.file == "server/module0.lua" && key.line == 1 })
        #expect(Trend(times: full.times, values: leaky.value)!.isSuspect)
        #expect(Trend(times: rolled.times, values: rolled.afterGC[leaky.key]!)!.isSuspect)
    }

    @Test func longWindowsAreThinnedToTheBudget() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("g.db")
        try Self.generate(db, hours: 2, sites: 60_000, changing: 100, rollupRows: 100_000)
        let store = try Store.openForReading(path: db.path)
        let run = try #require(try store.run(id: 1))
        let series = try Series(
            store: store, run: run, fromMs: nil, by: .line, selected: { _ in true })
        // 60,000 rows leave room for 66 times in the budget; the floor is 100.
        #expect(series.afterGC.count == 60_000)
        #expect(series.times.count == Series.minimumTimes)
        let snapshots = try store.snapshots(runID: 1)
        #expect(series.times.first == snapshots.first!.ref.timeMs)
        #expect(series.times.last == snapshots.last!.ref.timeMs)
        // The last time's figures are the run's last snapshot's, in full.
        let last = try Self.read(store, snapshots.last!.ref)
        #expect(
            series.afterGC.values.map { $0.last! }.reduce(0, +)
                == last.values.map { $0[4] }.reduce(0, +))
    }

    @Test func aTrackedRunAnswersTheSameWithoutItsRollups() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let output = try Harness.luamem(
            [
                "run", "--db", db.path, "--interval", "0.05", Harness.fixture("patterns.lua"),
                "1.5",
            ], environment: ["LUAMEM_ROLLUP_ROWS": "3"])
        try #require(output.status == 0, "\(output.stderr)")
        #expect(try Harness.integer(db, "SELECT count(DISTINCT snapshot_id) FROM site_rollups") > 5)
        let snapshots = try Harness.rows(db, "SELECT id FROM snapshots ORDER BY id").map { $0[0]! }
        let questions = [
            ["query", "--format", "json"],
            ["query", "--format", "json", "--current", "--by", "type"],
            [
                "diff", "--format", "json", "--base", "snapshot:\(snapshots[3])", "--head",
                "snapshot:\(snapshots[snapshots.count - 2])",
            ],
            ["export", "--format", "json"],
        ]
        func answers(_ file: URL) throws -> [String] {
            try questions.map { question in
                let answer = try Harness.luamem(
                    [question[0], "--db", file.path] + question.dropFirst())
                #expect(answer.status == 0, "\(question): \(answer.stderr)")
                return answer.stdout
            }
        }
        let withRollups = try answers(db)
        let bare = directory.appendingPathComponent("bare.db")
        _ = try Harness.run("/usr/bin/sqlite3", [db.path, ".backup \(bare.path)"])
        _ = try Harness.run("/usr/bin/sqlite3", [bare.path, "DELETE FROM site_rollups"])
        #expect(try Harness.integer(bare, "SELECT count(*) FROM site_rollups") == 0)
        #expect(try answers(bare) == withRollups)
    }

    @Test func pruneInSmallBatchesKeepsEveryLaterSnapshotWhole() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("g.db")
        try Self.generate(db, hours: 1, sites: 300, changing: 40, runs: 2, rollupRows: 150)
        let store = try Store.openForWriting(path: db.path)
        let snapshots = try store.snapshots(runID: 2)
        let cut = snapshots[snapshots.count / 3]
        var before: [Int64: [String: [Int64]]] = [:]
        for snapshot in snapshots where snapshot.ref.timeMs >= cut.ref.timeMs {
            before[snapshot.ref.id] = try Self.read(store, snapshot.ref)
        }
        let result = try store.prune(olderThan: cut.ref.timeMs, batchRows: 500)
        #expect(result.runs == 1)
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 1)
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        let oldest = try #require(try store.snapshots(runID: 2).first).ref
        #expect(oldest.id == cut.ref.id)
        #expect(
            try Harness.integer(
                db,
                """
                SELECT (SELECT count(*) FROM site_stats WHERE snapshot_id < \(oldest.id))
                     + (SELECT count(*) FROM site_rollups WHERE snapshot_id < \(oldest.id))
                """) == 0)
        // The oldest kept snapshot became a checkpoint, and every kept snapshot reads the same,
        // both through the rollups and by replaying site_stats.
        #expect(
            try Harness.integer(
                db,
                "SELECT count(*) FROM site_rollups WHERE level = 2 AND snapshot_id = \(oldest.id)")
                == 300)
        for snapshot in try store.snapshots(runID: 2) {
            let after = try Self.read(store, snapshot.ref)
            #expect(after == before[snapshot.ref.id], "snapshot \(snapshot.ref.id)")
            #expect(
                after
                    == (try Self.replayed(
                        db, stateID: snapshot.ref.stateID, snapshotID: snapshot.ref.id)))
        }
        // The writer carries on after a prune: rollups keep reading right.
        try Self.generate(db, hours: 0.2, sites: 300, changing: 40, rollupRows: 150)
        let reopened = try Store.openForReading(path: db.path)
        for snapshot in try reopened.snapshots(runID: 3) {
            #expect(
                try Self.read(reopened, snapshot.ref)
                    == (try Self.replayed(
                        db, stateID: snapshot.ref.stateID, snapshotID: snapshot.ref.id)))
        }
    }

    @Test func thinningKeepsRollupSnapshotsWholeAndTheRestUntouched() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("g.db")
        try Self.generate(db, hours: 1, sites: 300, changing: 40, rollupRows: 150)
        let snapshots = try Store.openForReading(path: db.path).snapshots(runID: 1)
        let cut = snapshots[snapshots.count / 2].ref.timeMs
        let boundaries = Set(
            try Harness.rows(db, "SELECT DISTINCT snapshot_id FROM site_rollups").map {
                Int64($0[0]!)!
            })
        var before: [Int64: [String: [Int64]]] = [:]
        for snapshot in snapshots {
            before[snapshot.ref.id] = try Self.replayed(
                db, stateID: snapshot.ref.stateID, snapshotID: snapshot.ref.id)
        }
        let rows = try Harness.integer(db, "SELECT count(*) FROM site_stats")
        let output = try Harness.luamem([
            "prune", "--db", db.path, "--thin-older-than", "\(Clock.epochMs() - cut)ms",
        ])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("thinned out "), "\(output.stdout)")
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM site_stats") < rows)
        let store = try Store.openForReading(path: db.path)
        let kept = try store.snapshots(runID: 1)
        let firstBoundary = boundaries.min()!
        for snapshot in snapshots {
            let id = snapshot.ref.id
            let old = snapshot.ref.timeMs < cut
            // Older snapshots are kept where rollups were taken (and before the first of them).
            let expected = !old || boundaries.contains(id) || id < firstBoundary
            #expect(kept.contains { $0.ref.id == id } == expected, "snapshot \(id)")
        }
        // Every kept snapshot reads as before, through rollups and from site_stats alone.
        for snapshot in kept {
            let replayed = try Self.replayed(
                db, stateID: snapshot.ref.stateID, snapshotID: snapshot.ref.id)
            #expect(replayed == before[snapshot.ref.id], "snapshot \(snapshot.ref.id)")
            #expect(try Self.read(store, snapshot.ref) == replayed, "snapshot \(snapshot.ref.id)")
        }
        #expect(
            try Harness.integer(
                db,
                """
                SELECT count(*) FROM snapshots s WHERE site_rows IS NOT
                    (SELECT count(*) FROM site_stats WHERE state_id = s.state_id AND snapshot_id = s.id)
                """) == 0)
        // The series over the whole run still finds the planted leak.
        let series = try Series(
            store: store, run: try #require(try store.run(id: 1)), fromMs: nil, by: .line,
            selected: { _ in true })
        let leaky = try #require(
            series.afterGC.first { key, _ in key.file == "server/module0.lua" && key.line == 1 })
        #expect(Trend(times: series.times, values: leaky.value)!.isSuspect)
        let bad = try Harness.luamem(["prune", "--db", db.path])
        #expect(bad.status == 64 && bad.stderr.contains("give --older-than, --thin-older-than"))
    }
}
