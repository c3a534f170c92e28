import Foundation
import Testing

/// `luamem query` on databases written by real runs.
@Suite struct QueryCommandTests {
    /// A database with one run of sites.lua.
    private func database() throws -> URL {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        return db
    }

    @Test func jsonRanksTheRetainingLineFirstWithIntegerFigures() throws {
        let db = try database()
        let output = try Harness.luamem([
            "query", "--db", db.path, "--format", "json", "--top", "100",
        ])
        #expect(output.status == 0, "\(output.stderr)")
        let rows = try Harness.jsonRows(output.stdout)
        let first = try #require(rows.first)
        #expect((first["source"] as? String)?.hasSuffix("sites.lua") == true)
        #expect(first["line"] as? Int == 5)
        #expect(first["function"] as? String == "keep_tables")
        // 300 tables + the array part, and a call frame (CallInfo) when a GC finalizer called
        // during the loop needed a new one.
        #expect((301...302).contains(first["live_count"] as? Int ?? 0), "\(first)")
        #expect((first["growth_bytes"] as? Int ?? 0) >= 300 * 56)
        for key in [
            "source", "line", "function", "live_bytes", "live_count", "growth_bytes", "alloc_bytes",
        ] {
            #expect(first[key] != nil, "missing \(key)")
        }
        #expect(first["live_bytes"] is Int)
        let rep = try #require(rows.first { $0["line"] as? Int == 17 })
        #expect(rep["c_function"] as? String == "string.rep")
        // The string itself is exact; a collection that runs a finalizer during the line may add
        // a call frame or stack growth (type other) there, depending on GC timing, which Lua's
        // randomised string hashing makes vary from run to run.
        #expect((rep["live_bytes"] as? Int ?? 0) >= 3025)
        #expect(
            try Harness.integer(
                db,
                "SELECT live_bytes FROM site_latest WHERE line = 17 AND type = 'string' "
                    + "AND file LIKE '%sites.lua'") == 3025)
        // Garbage collected before the end shows no growth: none of its strings is left, at most
        // a call frame Lua keeps for string.format (type other, 72 bytes).
        let garbage = try #require(rows.first { $0["line"] as? Int == 12 })
        #expect(garbage["growth_bytes"] as? Int ?? .max <= 72, "\(garbage)")
        #expect(
            try Harness.integer(
                db,
                "SELECT sum(gc_live_bytes) FROM site_latest WHERE line = 12 AND type = 'string' "
                    + "AND file LIKE '%sites.lua'") == 0)
        #expect(garbage["alloc_bytes"] as? Int ?? 0 > 200 * 64)
    }

    @Test func tableShowsSitesFunctionsAndCFunctions() throws {
        let db = try database()
        let output = try Harness.luamem(["query", "--db", db.path, "--top", "5"])
        #expect(output.status == 0)
        let lines = output.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("run 1 (sites.lua): "))
        #expect(
            lines[1].split(separator: " ", omittingEmptySubsequences: true)
                == ["GROWTH", "LIVE", "COUNT", "ALLOC", "SITE", "FUNCTION", "C", "FUNCTION"])
        #expect(lines.count == 2 + 5)
        #expect(lines[2].contains("sites.lua:5") && lines[2].contains("keep_tables"))
        #expect(lines[2].contains("+"))
        #expect(output.stdout.contains("string.rep") || output.stdout.contains("table.concat"))
    }

    @Test func groupsByFileTypeAndFunction() throws {
        let db = try database()
        let byType = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--by", "type", "--format", "json"]).stdout)
        #expect(
            Set(byType.compactMap { $0["type"] as? String }).isSuperset(of: [
                "table", "string", "other",
            ]))
        let byFile = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--by", "file", "--format", "json"]).stdout)
        #expect(byFile.contains { ($0["source"] as? String)?.hasSuffix("sites.lua") == true })
        #expect(byFile.contains { $0["source"] as? String == "[host]" })
        let byFunction = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--by", "function", "--format", "json"])
                .stdout)
        let keep = try #require(byFunction.first { $0["function"] as? String == "keep_tables" })
        #expect(keep["line"] as? Int == 3)
        let csv = try Harness.luamem(["query", "--db", db.path, "--format", "csv", "--top", "1"])
        #expect(
            csv.stdout.hasPrefix(
                "growth_bytes,live_bytes,live_count,alloc_bytes,site,function,c_function,source,line"
            ))
        #expect(csv.stdout.split(separator: "\n").count == 2)
    }

    @Test func windowStartsAtTheLastSnapshotBeforeSince() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("idle.lua", db: db, options: ["--interval", "0.05"], arguments: ["0.3"])
        // A window that starts after the allocations: nothing grew in it.
        let recent = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--since", "100ms", "--format", "json"])
                .stdout)
        let held = try #require(recent.first { $0["line"] as? Int == 4 })
        #expect(held["growth_bytes"] as? Int == 0)
        #expect(held["live_count"] as? Int == 201)  // 100 tables and their array parts
        let whole = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--since", "1h", "--format", "json"]).stdout)
        #expect(whole.first { $0["line"] as? Int == 4 }?["growth_bytes"] as? Int ?? 0 > 0)
    }

    @Test func badInputGetsOneLineAndNonZeroStatus() throws {
        let db = try database()
        let directory = try Harness.temporaryDirectory()
        let cases: [([String], String)] = [
            (["--since", "yesterday"], "is not a time"),
            (["--until", "5x"], "is not a time"),
            (["--top", "0"], "--top must be at least 1"),
            (["--run", "99"], "no run 99"),
            (["--by", "colour"], "colour"),
        ]
        for (arguments, message) in cases {
            let output = try Harness.luamem(["query", "--db", db.path] + arguments)
            #expect(output.status != 0, "\(arguments)")
            #expect(output.stderr.contains(message), "\(arguments): \(output.stderr)")
        }
        let missing = try Harness.luamem([
            "query", "--db", directory.appendingPathComponent("none.db").path,
        ])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("no database at"))
        #expect(
            !FileManager.default.fileExists(
                atPath: directory.appendingPathComponent("none.db").path))
        let foreign = directory.appendingPathComponent("foreign.db")
        _ = try Harness.run("/usr/bin/sqlite3", [foreign.path, "CREATE TABLE t(x);"])
        let notOurs = try Harness.luamem(["query", "--db", foreign.path])
        #expect(notOurs.stderr.contains("not a luamem database"))
        #expect(notOurs.stderr.split(separator: "\n").count == 1)
    }
}
