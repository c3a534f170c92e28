import Foundation
import Testing

/// The host's output and exit status never change because of luamem's database; each problem is
/// one line on stderr; nothing recorded is lost once the problem goes away.
@Suite struct FaultTests {
    static let expectedOutput = "kept\t5000\tsum\t12497500\n"

    /// Runs steady.lua under luamem (as an unprivileged user when `unprivileged`, so that file
    /// permissions apply even to root) and checks its output and status.
    @discardableResult
    private func runSteady(
        db: String, seconds: String = "0.6", options: [String] = [], unprivileged: Bool = false
    ) throws -> ProcessOutput {
        var command =
            [Harness.luamemPath, "run", "--db", db, "--interval", "0.05"] + options
            + [Harness.fixture("steady.lua"), seconds]
        if unprivileged && getuid() == 0 {
            command =
                ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + command
        }
        let output = try Harness.run(command[0], Array(command.dropFirst()))
        #expect(output.stdout == Self.expectedOutput)
        #expect(output.status == 7, "\(output.stderr)")
        return output
    }

    /// Live tables at steady.lua's line 6 (5000 kept, plus garbage not yet collected), at the
    /// latest snapshot of `runID` (any run when nil).
    private func keptTables(_ db: URL, runID: Int64? = nil) throws -> Int64 {
        try Harness.integer(
            db,
            """
            SELECT live_count FROM site_latest WHERE file LIKE '%steady.lua' AND line = 6
            AND type = 'table' \(runID.map { "AND run_id = \($0)" } ?? "")
            """)
    }

    /// Starts steady.lua under `luamem run` at a 50 ms interval, without waiting for it.
    private func launchSteady(_ db: URL, seconds: String) throws -> Launched {
        try Harness.launchLuamem([
            "run", "--db", db.path, "--interval", "0.05", Harness.fixture("steady.lua"), seconds,
        ])
    }

    private func luamemLines(_ stderr: String) -> [String] {
        stderr.split(separator: "\n").map(String.init).filter { $0.hasPrefix("luamem: ") }
    }

    @Test func plainLuaGivesTheSameOutputAndStatus() throws {
        let plain = try Harness.run("/usr/bin/lua5.3", [Harness.fixture("steady.lua"), "0.2"])
        #expect(plain.stdout == Self.expectedOutput)
        #expect(plain.status == 7)
    }

    @Test func unwritableLocationsGiveOneMessageEach() throws {
        let directory = try Harness.temporaryDirectory()
        let missing = try runSteady(db: directory.appendingPathComponent("no/such/dir/m.db").path)
        #expect(luamemLines(missing.stderr).count == 1)
        #expect(missing.stderr.contains("unable to open database file"))

        let readOnlyDirectory = directory.appendingPathComponent("ro")
        try FileManager.default.createDirectory(
            at: readOnlyDirectory, withIntermediateDirectories: false)
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o555], ofItemAtPath: readOnlyDirectory.path)
        let inReadOnly = try runSteady(
            db: readOnlyDirectory.appendingPathComponent("m.db").path, unprivileged: true)
        #expect(luamemLines(inReadOnly.stderr).count == 1, "\(inReadOnly.stderr)")

        let readOnlyFile = directory.appendingPathComponent("readonly.db")
        try runSteady(db: readOnlyFile.path, seconds: "0.1")
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o444], ofItemAtPath: readOnlyFile.path)
        for suffix in ["-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: readOnlyFile.path + suffix)
        }
        let onReadOnly = try runSteady(db: readOnlyFile.path, unprivileged: true)
        #expect(luamemLines(onReadOnly.stderr).count == 1, "\(onReadOnly.stderr)")
    }

    @Test func foreignAndNewerFilesAreLeftAloneWithOneMessage() throws {
        let directory = try Harness.temporaryDirectory()
        let foreign = directory.appendingPathComponent("foreign.db")
        _ = try Harness.run(
            "/usr/bin/sqlite3", [foreign.path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);"])
        let onForeign = try runSteady(db: foreign.path)
        #expect(
            luamemLines(onForeign.stderr) == [
                "luamem: cannot write snapshot to \(foreign.path): \(foreign.path) is a SQLite database but not a luamem database"
            ])
        #expect(try Harness.integer(foreign, "SELECT count(*) FROM sqlite_master") == 1)

        let newer = directory.appendingPathComponent("newer.db")
        try runSteady(db: newer.path, seconds: "0.1")
        _ = try Harness.run("/usr/bin/sqlite3", [newer.path, "PRAGMA user_version = 99;"])
        let onNewer = try runSteady(db: newer.path)
        #expect(luamemLines(onNewer.stderr).count == 1)
        #expect(onNewer.stderr.contains("schema version 99, newer than this luamem knows"))
        #expect(try Harness.integer(newer, "SELECT count(*) FROM runs") == 1)

        // No tables yet, but a user_version: another program's file, left as it was (not
        // switched to WAL, not migrated).
        let versioned = directory.appendingPathComponent("versioned.db")
        _ = try Harness.run("/usr/bin/sqlite3", [versioned.path, "PRAGMA user_version = 3;"])
        let onVersioned = try runSteady(db: versioned.path)
        #expect(
            luamemLines(onVersioned.stderr) == [
                "luamem: cannot write snapshot to \(versioned.path): \(versioned.path) is a SQLite database but not a luamem database"
            ])
        #expect(try Harness.rows(versioned, "PRAGMA journal_mode") == [["delete"]])
        #expect(try Harness.integer(versioned, "SELECT count(*) FROM sqlite_master") == 0)
        #expect(try Harness.integer(versioned, "PRAGMA user_version") == 3)
    }

    @Test func aFullDatabaseIsReportedOnceAndKeepsWhatItHas() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("full.db")
        let output = try Harness.luamem([
            "run", "--db", db.path, "--interval", "0.02", "--max-db-size", "1",
            Harness.fixture("generated.lua"), "3000",
        ])
        #expect(output.status == 0)
        #expect(output.stdout == "3000\n")
        #expect(
            luamemLines(output.stderr) == [
                "luamem: cannot write snapshot to \(db.path): database or disk is full"
            ])
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") >= 1)
    }

    /// A final snapshot that waited its 10 s for another writer's lock in vain says so, as lost
    /// (the fixture has the lock taken at its end and held until after luamem gives up).
    @Test func aFinalSnapshotLockedOutIsReportedAsLost() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("locked-out.db")
        let output = try Harness.luamem([
            "run", "--db", db.path, Harness.fixture("final_locked.lua"), db.path,
        ])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout == "locked\n")
        #expect(
            luamemLines(output.stderr) == [
                "luamem: cannot write the final snapshot to \(db.path): database is locked; "
                    + "the figures since the last snapshot written are lost"
            ])
    }

    @Test func aLockHeldLongerThanTheIntervalDelaysButLosesNothing() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("locked.db")
        try runSteady(db: db.path, seconds: "0.1")
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [
            "-c",
            """
            import sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None)
            c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(2.5); c.execute('ROLLBACK')
            """, db.path,
        ]
        let ready = Pipe()
        holder.standardOutput = ready
        try holder.run()
        _ = ready.fileHandleForReading.availableData  // "locked"
        let output = try runSteady(db: db.path, seconds: "3.5")
        holder.waitUntilExit()
        let lines = luamemLines(output.stderr)
        #expect(
            lines == [
                "luamem: cannot write snapshot to \(db.path): database is locked",
                "luamem: snapshots are written to \(db.path) again",
            ])
        // Counters kept accumulating while the file was locked: the final snapshot has them all.
        #expect(
            try keptTables(db, runID: 2) >= 5000)
        #expect(
            try Harness.integer(
                db, "SELECT count(*) FROM snapshots WHERE run_id = 2 AND kind = 'final'") == 1)
    }

    /// A host that begins and closes a state while another process holds the file's write
    /// lock: luamem_newstate and lua_close return while the lock is held (the holder lets go
    /// when the host is done, or after 5 s; before, they waited 2 s and 10 s), and the flusher
    /// thread writes the state's start snapshot and, from its figures as it closed, its final
    /// one once the lock is free.
    @Test func aStateBegunAndClosedWhileTheFileIsLockedDoesNotWaitForTheLock() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("busy.db").path
        let (ready, go, done) = (
            directory.appendingPathComponent("ready").path, directory.appendingPathComponent("go").path,
            directory.appendingPathComponent("done").path
        )
        let host = try Harness.launch(
            Harness.buildHost(Harness.fixture("busy_file_host.c"), in: directory), [db, ready, go, done])
        for _ in 0..<3000 where access(ready, F_OK) != 0 { usleep(10_000) }
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        holder.arguments = [
            "-c",
            """
            import os, sqlite3, sys, time
            c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
            c.execute('BEGIN IMMEDIATE'); print('locked', flush=True)
            for _ in range(500):
                if os.path.exists(sys.argv[2]): break
                time.sleep(0.01)
            print('host done' if os.path.exists(sys.argv[2]) else 'gave up', flush=True)
            c.execute('ROLLBACK')
            """, db, done,
        ]
        let locked = Pipe()
        holder.standardOutput = locked
        try holder.run()
        _ = locked.fileHandleForReading.availableData  // "locked"
        #expect(FileManager.default.createFile(atPath: go, contents: nil))
        let output = host.finish()
        holder.waitUntilExit()
        #expect(output.status == 0, "\(output.stderr)")
        let said = String(decoding: locked.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.contains("host done"), "\(said) \(output.stderr)")
        #expect(output.stderr.contains("second state closed\n"), "\(output.stderr)")
        #expect(!output.stderr.contains("lost"), "\(output.stderr)")
        let file = URL(fileURLWithPath: db)
        let snapshots = try Harness.rows(
            file,
            """
            SELECT n.kind, n.live_count FROM snapshots n JOIN states s ON s.id = n.state_id
            WHERE s.name = 'second' ORDER BY n.id
            """)
        #expect(snapshots.first?[0] == "start" && snapshots.last?[0] == "final", "\(snapshots)")
        // The final snapshot has the state as it closed, its 100 kept tables alive, not what
        // lua_close left after freeing everything.
        #expect((snapshots.last?[1].flatMap { Int($0) } ?? 0) >= 100, "\(snapshots)")
        #expect(
            try Harness.integer(
                file, "SELECT count(*) FROM states WHERE closed_ms IS NOT NULL") == 2)
    }

    @Test func aDeletedDatabaseIsRecreatedWithTheWholeState() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("deleted.db")
        let process = try launchSteady(db, seconds: "1.2")
        Thread.sleep(forTimeInterval: 0.5)
        Harness.removeDatabase(db)
        let result = process.finish()
        #expect(result.status == 7)
        #expect(result.stdout == Self.expectedOutput)
        let stderr = result.stderr
        #expect(
            luamemLines(stderr) == [
                "luamem: \(db.path) was deleted or replaced: recording this run in the new file"
            ])
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 1)
        #expect(
            try keptTables(db) >= 5000)
    }

    @Test func aReplacedDatabaseIsLeftAloneWhenForeignAndUsedWhenLuamems() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("replaced.db")
        let other = directory.appendingPathComponent("other.db")
        try Harness.track("idle.lua", db: other, arguments: ["0.05"])  // a luamem file of its own
        let foreign = directory.appendingPathComponent("foreign.db")
        _ = try Harness.run("/usr/bin/sqlite3", [foreign.path, "CREATE TABLE t(x);"])
        let process = try launchSteady(db, seconds: "1.4")
        // Replaced the way SQLite requires: the file together with its -wal and -shm.
        func replace(with file: URL) throws {
            Harness.removeDatabase(db)
            try FileManager.default.copyItem(at: file, to: db)
        }
        Thread.sleep(forTimeInterval: 0.4)
        try replace(with: foreign)
        Thread.sleep(forTimeInterval: 0.4)
        try replace(with: other)
        let result = process.finish()
        #expect(result.status == 7)
        #expect(result.stdout == Self.expectedOutput)
        let stderr = result.stderr
        let lines = luamemLines(stderr)
        #expect(
            lines.filter { $0.contains("is a SQLite database but not a luamem database") }.count
                == 1, "\(stderr)")
        #expect(lines.last == "luamem: snapshots are written to \(db.path) again", "\(stderr)")
        // The run went into the luamem file that replaced the foreign one, next to its own run.
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 2)
        #expect(
            try keptTables(db) >= 5000)
    }

    /// The WAL deleted while a program runs, then a crash: the WAL is checkpointed every second,
    /// so the database file holds all but the last second's snapshots.
    @Test func aDeletedWalThenACrashLosesOnlyTheLatestSnapshots() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("wal.db")
        let process = try launchSteady(db, seconds: "10")
        Thread.sleep(forTimeInterval: 0.5)
        try FileManager.default.removeItem(atPath: db.path + "-wal")
        Thread.sleep(forTimeInterval: 3)
        kill(process.process.processIdentifier, SIGKILL)
        _ = process.finish()
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        // About 20 snapshots a second for 3.5 s; the last second's may be lost.
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") >= 30)
        #expect(try keptTables(db) >= 5000)
    }

    @Test func killDuringHeavyFlushingLeavesOnlyCompleteSnapshots() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("killed.db")
        let process = try Harness.launchLuamem([
            "run", "--db", db.path, "--interval", "0.01",
            Harness.repositoryRoot.appendingPathComponent("Benchmarks/workloads/game_tick.lua")
                .path, "1000000",
        ])
        Thread.sleep(forTimeInterval: 1.0)
        kill(process.process.processIdentifier, SIGKILL)
        _ = process.finish()
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") >= 10)
        #expect(
            try Harness.integer(
                db,
                """
                SELECT count(*) FROM snapshots s
                WHERE site_rows IS NOT (SELECT count(*) FROM site_stats WHERE snapshot_id = s.id)
                """) == 0)
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs WHERE ended_ms IS NULL") == 1)
        let query = try Harness.luamem(["query", "--db", db.path])
        #expect(query.status == 0)
    }

    @Test func readersInALoopNeverDisturbTheWriter() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("read.db")
        try runSteady(db: db.path, seconds: "0.1")
        // steady.lua counts CPU seconds: 6 of them leave time for several reads even while the
        // rest of the suite loads both cores.
        let writer = try Harness.launchLuamem([
            "run", "--db", db.path, "--interval", "0.1", Harness.fixture("steady.lua"), "6",
        ])
        var reads = 0
        while writer.isRunning {
            let query = try Harness.luamem(["query", "--db", db.path, "--format", "json"])
            #expect(query.status == 0, "\(query.stderr)")
            // The shell waits for no lock by default; while a connection opening the file
            // rebuilds the WAL index, any reader briefly gets "database is locked".
            let sql = try Harness.run(
                "/usr/bin/sqlite3",
                ["-cmd", ".timeout 5000", db.path, "SELECT count(*) FROM site_latest"])
            #expect(sql.status == 0 && sql.stderr.isEmpty, "\(sql.stderr)")
            reads += 1
        }
        let result = writer.finish()
        #expect(result.status == 7)
        #expect(result.stderr.isEmpty)
        #expect(reads >= 5)
    }

    @Test func trackerMemoryIsBoundedAndWhatIsFoldedIsReported() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("sites.db")
        let output = try Harness.luamem([
            "run", "--db", db.path, "--max-sites", "500", Harness.fixture("generated.lua"), "3000",
        ])
        #expect(output.status == 0)
        #expect(output.stdout == "3000\n")
        #expect(luamemLines(output.stderr).count == 1)
        #expect(output.stderr.contains("more than 500 distinct allocation sites"))
        #expect(try Harness.integer(db, "SELECT count(*) FROM sites") == 500)
        let folded = try Harness.integer(
            db,
            "SELECT sum(live_count) FROM site_latest WHERE file = '[other sites]' AND type = 'table'"
        )
        let kept = try Harness.integer(
            db,
            "SELECT sum(live_count) FROM site_latest WHERE file LIKE 'generated%' AND file NOT LIKE '% (load)' AND type = 'table'"
        )
        #expect(folded + kept == 3000)
        #expect(folded > 2000)
    }

    /// The pre-fork worker pattern: 20 rounds of 20 workers forked at once from a master whose
    /// flusher writes every 10 ms; each worker tracks a state of its own and exits.
    @Test func preForkWorkersAreAllRecordedWithoutHangOrCorruption() throws {
        let directory = try Harness.temporaryDirectory()
        let host = try Harness.buildHost(Harness.fixture("fork_host.c"), in: directory)
        let db = directory.appendingPathComponent("fork.db")
        let output = try Harness.run("/usr/bin/timeout", ["120", host, db.path, "20", "20"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout == "forked 400 workers, 0 failed\n")
        #expect(output.stderr == "")
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 401)
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs WHERE ended_ms IS NULL") == 0)
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 401)
        // Every worker's own state, whole: 500 tables on line 2 of its chunk.
        #expect(
            try Harness.rows(
                db,
                """
                SELECT live_count, count(*) FROM site_latest JOIN states s ON s.id = state_id
                WHERE s.name = 'worker' AND line = 2 AND type = 'table' GROUP BY live_count
                """) == [["500", "400"]])
        // The master's inherited state is not recorded by the workers.
        #expect(
            try Harness.integer(
                db,
                "SELECT max(live_count) FROM site_latest JOIN states s ON s.id = state_id "
                    + "WHERE s.name = 'master' AND type = 'table'") == 40000)
    }

    /// Ten processes share one file at a 50 ms interval: each waits its turn for the lock, and
    /// none loses its final snapshot. (An interval snapshot may wait longer than the writer's
    /// busy timeout while the others write: it says so once and is written later.)
    @Test func manyWritersEachKeepTheirFinalSnapshot() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("shared.db")
        // Each makes 10,000 new sites, so the final snapshots are long transactions.
        let runs = try (0..<10).map { _ in
            try Harness.launch(
                Harness.luamemPath,
                ["run", "--db", db.path, "--interval", "0.05", Harness.fixture("generated.lua"), "10000"])
        }
        for run in runs {
            let output = run.finish()
            #expect(output.status == 0, "\(output.stderr)")
            #expect(output.stdout == "10000\n")
            let delayed = [
                "luamem: cannot write snapshot to \(db.path): database is locked",
                "luamem: snapshots are written to \(db.path) again",
            ]
            #expect(luamemLines(output.stderr).allSatisfy(delayed.contains), "\(output.stderr)")
        }
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 10)
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs WHERE ended_ms IS NULL") == 0)
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 10)
    }

    /// The -shm deleted while a second writer joins: each writer notices that the -shm at the
    /// path is no longer the one it shares, reopens (one message), and the file stays whole.
    @Test func aDeletedShmWithASecondWriterLeavesTheFileWhole() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("shm.db")
        let first = try launchSteady(db, seconds: "3")
        Thread.sleep(forTimeInterval: 0.7)
        try FileManager.default.removeItem(atPath: db.path + "-shm")
        let second = try launchSteady(db, seconds: "2")
        let firstOutput = first.finish(), secondOutput = second.finish()
        #expect(firstOutput.status == 7 && secondOutput.status == 7)
        #expect(
            luamemLines(firstOutput.stderr) == [
                "luamem: the -wal or -shm file of \(db.path) was deleted or replaced: reopening it"
            ])
        #expect(luamemLines(secondOutput.stderr) == [])
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 2)
        #expect(try keptTables(db, runID: 1) >= 5000)
        #expect(try keptTables(db, runID: 2) >= 5000)
    }

    /// Another database moved over the file while its -wal stays: the run's connection empties
    /// its log into the file it had open first, so the new file is never read with it.
    @Test func aDatabaseMovedOverTheFileIsNeverMixedWithTheOldLog() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("moved.db")
        let other = directory.appendingPathComponent("other.db")
        try runSteady(db: other.path, seconds: "0.2")
        let otherRows = try Harness.integer(other, "SELECT count(*) FROM site_stats")
        let writer = try launchSteady(db, seconds: "2")
        Thread.sleep(forTimeInterval: 0.7)
        #expect(rename(other.path, db.path) == 0)
        let output = writer.finish()
        #expect(output.status == 7)
        #expect(
            luamemLines(output.stderr) == [
                "luamem: \(db.path) was deleted or replaced: recording this run in the new file"
            ])
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        #expect(try Harness.integer(db, "SELECT count(*) FROM site_stats WHERE state_id = 1") == otherRows)
        #expect(try Harness.integer(db, "SELECT count(*) FROM runs") == 2)
        #expect(try keptTables(db, runID: 2) >= 5000)
    }
}
