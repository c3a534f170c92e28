import Foundation
import LuamemAgent
import LuamemStore
import Testing

/// The SQLite file: migrations, identity checks, and change-only rows that still give the full
/// state at every snapshot.
@Suite struct StoreTests {
    @Test func everyMigrationFileIsEmbeddedInOrder() throws {
        let directory = Harness.repositoryRoot.appendingPathComponent("Migrations")
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".sql") }.sorted()
        #expect(files.map { String($0.dropLast(4)) } == Store.migrations.map(\.name))
        #expect(Store.migrations.map(\.version) == Array(1...files.count))
        for (file, migration) in zip(files, Store.migrations) {
            let text = try String(
                contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            #expect(text == migration.sql)
        }
    }

    @Test func newDatabaseGetsTheSchemaInWALMode() throws {
        let directory = try Harness.temporaryDirectory()
        let path = directory.appendingPathComponent("new.db").path
        let store = try Store.openForWriting(path: path)
        #expect(try store.database.scalar("PRAGMA user_version") == Int64(Store.latestVersion))
        #expect(try store.database.scalar("PRAGMA application_id") == Store.applicationID)
        let mode = try store.database.prepare("PRAGMA journal_mode")
        #expect(try mode.step())
        #expect(mode.text(0) == "wal")
    }

    @Test func refusesNewerSchemasAndForeignFiles() throws {
        let directory = try Harness.temporaryDirectory()
        let newer = directory.appendingPathComponent("newer.db").path
        _ = try Store.openForWriting(path: newer)
        try Database(path: newer, mode: .readWrite).execute("PRAGMA user_version = 99")
        #expect(throws: StoreError.self) { try Store.openForWriting(path: newer) }
        do {
            _ = try Store.openForReading(path: newer)
            Issue.record("opened a newer schema")
        } catch let error as StoreError {
            #expect(error.message.contains("schema version 99, newer than this luamem knows"))
        }

        let foreign = directory.appendingPathComponent("foreign.db").path
        try Database(path: foreign, mode: .readWrite).execute("CREATE TABLE t (x)")
        #expect(throws: StoreError.self) { try Store.openForWriting(path: foreign) }

        let text = directory.appendingPathComponent("text.db")
        try String(repeating: "not sqlite ", count: 100).write(
            to: text, atomically: true, encoding: .utf8)
        do {
            _ = try Store.openForReading(path: text.path)
            Issue.record("opened a text file")
        } catch let error as StoreError {
            #expect(error.message == "\(text.path) is not a SQLite database")
        }
    }

    @Test func unchangedSitesCostNoRowsYetEverySnapshotReadsBackInFull() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let spinning = directory.appendingPathComponent("spinning")
        try Harness.track(
            "idle.lua", db: db, options: ["--interval", "0.05"], arguments: ["0.5", spinning.path])
        // The snapshots taken once the loop spins (the first of them may have been under way
        // as it began); a loaded machine can take the start-up past several intervals.
        let began = try #require(
            try FileManager.default.attributesOfItem(atPath: spinning.path)[.modificationDate]
                as? Date)
        let snapshots = try Harness.rows(
            db,
            """
            SELECT id FROM snapshots WHERE kind = 'interval' AND time_ms > \(Int64(began.timeIntervalSince1970 * 1000))
            ORDER BY id
            """
        )
        .map { Int64($0[0]!)! }
        #expect(snapshots.count >= 3)
        // The spinning loop allocates nothing: its interval snapshots add no per-site rows.
        let quiet = snapshots.dropFirst()
        let rows = try Harness.integer(
            db,
            """
            SELECT count(*) FROM site_stats WHERE snapshot_id IN (\(quiet.map(String.init).joined(separator: ",")))
            """)
        #expect(rows == 0)
        // …and each still reads back as the full state.
        let store = try Store.openForReading(path: db.path)
        let stateID = try #require(try store.database.scalar("SELECT id FROM states"))
        var previous: [String: Figures]?
        for id in quiet {
            let figures = try store.figures(at: SnapshotRef(id: id, stateID: stateID, timeMs: 0))
            let byKey = Dictionary(
                uniqueKeysWithValues: figures.map { ("\($0.siteID)/\($0.type)", $0.figures) })
            #expect(byKey.count > 10)
            if let previous { #expect(byKey == previous) }
            previous = byKey
            let held = figures.filter { $0.type == 2 }.map(\.figures.liveCount).reduce(0, +)
            #expect(held >= 101)
        }
    }

    @Test func readmeRecipesRunInSQLite3() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        let readme = try String(
            contentsOf: Harness.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let recipes = readme.components(separatedBy: "```sql\n").dropFirst()
            .compactMap { $0.components(separatedBy: "```").first }
        #expect(recipes.count >= 3)
        for recipe in recipes {
            let output = try Harness.run("/usr/bin/sqlite3", ["-bail", db.path, recipe])
            #expect(output.status == 0, "\(recipe)\n\(output.stderr)")
            #expect(!output.stdout.isEmpty, "no rows from:\n\(recipe)")
        }
    }
}

/// `luamem prune`: old runs and snapshots go, every kept snapshot still reads back in full.
@Suite struct PruneTests {
    @Test func pruneKeepsEveryLaterSnapshotWhole() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        Thread.sleep(forTimeInterval: 0.3)
        try Harness.track("idle.lua", db: db, options: ["--interval", "0.05"], arguments: ["0.6"])
        let store = try Store.openForReading(path: db.path)
        let snapshots = try store.snapshots(runID: 2)
        #expect(snapshots.count >= 8)
        let middle = snapshots[snapshots.count / 2].ref.timeMs
        var before: [Int64: [String: Figures]] = [:]
        for snapshot in snapshots where snapshot.ref.timeMs >= middle {
            before[snapshot.ref.id] = Dictionary(
                uniqueKeysWithValues: try store.figures(at: snapshot.ref)
                    .map { ("\($0.siteID)/\($0.type)", $0.figures) })
        }
        let age = Clock.epochMs() - middle
        let output = try Harness.luamem(["prune", "--db", db.path, "--older-than", "\(age)ms"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.hasPrefix("removed 1 run(s), "))
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 1)
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        let kept = try Store.openForReading(path: db.path).snapshots(runID: 2)
        #expect(!kept.isEmpty && kept.count < snapshots.count)
        for snapshot in kept {
            let after = Dictionary(
                uniqueKeysWithValues: try store.figures(at: snapshot.ref)
                    .map { ("\($0.siteID)/\($0.type)", $0.figures) })
            #expect(after == before[snapshot.ref.id], "snapshot \(snapshot.ref.id)")
        }
        #expect(
            try Harness.integer(
                db,
                """
                SELECT count(*) FROM snapshots s WHERE site_rows IS NOT (SELECT count(*) FROM site_stats WHERE snapshot_id = s.id)
                """) == 0)
        #expect(try Harness.luamem(["query", "--db", db.path]).status == 0)
        let bad = try Harness.luamem(["prune", "--db", db.path, "--older-than", "soon"])
        #expect(bad.status == 64 && bad.stderr.contains("--older-than must be a duration"))
    }
}
