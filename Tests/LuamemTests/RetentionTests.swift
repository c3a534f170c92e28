import Foundation
import Testing

/// Months of uptime: the agent applies a retention policy itself (`--keep`, `--keep-full`,
/// `--max-db-size`), so recording never stops and the file stays bounded.
@Suite struct RetentionTests {
    private func size(_ path: String) throws -> Int64 {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (attributes[.size] as? NSNumber)?.int64Value ?? 0
    }

    @Test func aShortPolicyAndASmallCapKeepRecordingWithinBounds() throws {
        let directory = try Harness.temporaryDirectory()
        let script = Harness.fixture("churn.lua")
        // Without a policy, the run writes well past the cap.
        let unbounded = directory.appendingPathComponent("unbounded.db")
        try Harness.track("churn.lua", db: unbounded, options: ["--interval", "0.05"], arguments: ["4"])
        #expect(try size(unbounded.path) > 1024 * 1024)

        let db = directory.appendingPathComponent("bounded.db")
        let output = try Harness.luamem([
            "run", "--db", db.path, "--interval", "0.05", "--keep", "2s", "--keep-full", "1s",
            "--max-db-size", "1MB", script, "4",
        ])
        #expect(output.status == 0 && output.stdout == "churned\n")
        #expect(output.stderr == "", "\(output.stderr)")
        #expect(try size(db.path) <= 1024 * 1024)
        #expect(try Harness.rows(db, "PRAGMA integrity_check") == [["ok"]])
        // Old history went; recording went on to the end, the final snapshot included. Snapshot
        // ids count the snapshots written (thinning leaves holes, never reuses one): the kept ones
        // start after the first (history was removed), end with the final one, and at least four
        // were written in the kept window, which spans at most `--keep` and a little: interval
        // snapshots were still being written in the run's last seconds, however late a busy
        // machine let the flusher run.
        #expect(try Harness.integer(db, "SELECT max(time_ms) - min(time_ms) FROM snapshots") <= 2500)
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 1)
        #expect(try Harness.rows(db, "SELECT kind FROM snapshots ORDER BY id DESC LIMIT 1") == [["final"]])
        #expect(try Harness.integer(db, "SELECT min(id) FROM snapshots") > 1)
        #expect(try Harness.integer(db, "SELECT max(id) - min(id) FROM snapshots") >= 4)
        // Every kept snapshot still reads back whole: the kept window's sites are all there.
        let query = try Harness.luamem(["query", "--db", db.path, "--by", "file", "--top", "1000", "--format", "json"])
        #expect(query.status == 0, "\(query.stderr)")
        #expect(try Harness.jsonRows(query.stdout).filter { ($0["site"] as? String)?.hasPrefix("site") == true }.count == 500)
    }

    @Test func retentionOptionsAreCheckedEverywhere() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("r.db").path
        let run = try Harness.luamem(["run", "--db", db, "--keep", "soon", Harness.fixture("sites.lua")])
        #expect(run.status == 64 && run.stderr.hasPrefix("Error: --keep must be a duration such as 30d or 12h, got 'soon'"))
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("luamem.so").path,
            withDestinationPath: EmbeddingTests.library)
        let module = try Harness.run(
            "/usr/bin/lua5.3", ["-"], environment: ["LUA_CPATH": directory.path + "/?.so"],
            stdin: """
                local luamem = require "luamem"
                print(select(2, pcall(luamem.start, { db = "\(db)", keep = "soon" })))
                print(select(2, pcall(luamem.start, { db = "\(db)", max_db_size = "big" })))
                print(luamem.start { db = "\(db)", keep = "1d", keep_full = "1h", max_db_size = "64MB" })
                """)
        #expect(
            module.stdout.split(separator: "\n").map(String.init) == [
                "bad argument #1 to 'luamem.start' (option 'keep' must be a duration such as 30d or 12h, got 'soon')",
                "bad argument #1 to 'luamem.start' (option 'max_db_size' must be a size such as 512MB, got 'big')",
                "true",
            ], "\(module.stderr)")
        let auto = try Harness.run(
            "/usr/bin/lua5.3", ["-l", "luamem.auto", "-e", "print('ran')"],
            environment: ["LUA_CPATH": directory.path + "/?.so", "LUAMEM_DB": db, "LUAMEM_KEEP_FULL": "x"])
        #expect(auto.stdout == "ran\n")
        #expect(auto.stderr == "luamem: LUAMEM_KEEP_FULL must be a duration such as 30d or 12h, got 'x'; not tracking\n")
    }
}
