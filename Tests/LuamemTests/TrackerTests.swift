import Foundation
import Testing

/// Where allocations are charged, checked on the rows real `luamem run` runs leave in SQLite.
@Suite struct TrackerTests {
    /// Live figures at the end of sites.lua per (line, type, C function).
    private func sites() throws -> [String: (live: Int64, count: Int64, allocs: Int64)] {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        var result: [String: (Int64, Int64, Int64)] = [:]
        for row in try Harness.rows(
            db,
            """
            SELECT line, type, c_function, live_bytes, live_count, alloc_count, function
            FROM site_latest WHERE file LIKE '%sites.lua'
            """)
        {
            let key = "\(row[0]!) \(row[1]!) \(row[2]!)"
            result[key] = (Int64(row[3]!)!, Int64(row[4]!)!, Int64(row[5]!)!)
        }
        return result
    }

    @Test func retainedTablesAreChargedToTheirLine() throws {
        let sites = try sites()
        let retained = try #require(sites["5 table "])
        #expect(retained.count == 300)
        #expect(retained.live == 300 * 56)  // sizeof(Table) on 64-bit Lua 5.3
    }

    @Test func collectedStringsAreFreedBackToTheirSite() throws {
        let sites = try sites()
        let formatted = try #require(sites["12 string string.format"])
        #expect(formatted.allocs == 200)
        #expect(formatted.count == 0)
        #expect(formatted.live == 0)
        let repeated = try #require(sites["12 string string.rep"])
        #expect(repeated.allocs == 200)
        #expect(repeated.count == 0)
    }

    @Test func allocationsInsideCFunctionsGoToTheCallingLine() throws {
        let sites = try sites()
        let rep = try #require(sites["17 string string.rep"])
        #expect(rep.count == 1)
        #expect(rep.live == 3000 + 25)  // bytes plus the string header and terminator
        let concat = try #require(sites["18 string table.concat"])
        #expect(concat.live == 6001 + 25)
    }

    @Test func coroutineAllocationsGoToTheCoroutinesLines() throws {
        let sites = try sites()
        #expect(sites["22 table "]?.count == 50)  // coroutine.resume
        #expect(sites["30 table "]?.count == 40)  // coroutine.wrap
        #expect(sites["26 table "] == nil)  // not the resume call
        #expect(sites["33 table "] == nil)  // not the wrapped call
        // The coroutine's first call frame exists before it has a Lua frame: the resume line.
        #expect(sites["26 other coroutine.resume"]?.count == 1)
        #expect(sites["20 thread coroutine.create"]?.count == 1)
    }

    @Test func trackedTotalEqualsLuasOwnCountExactly() throws {
        let directory = try Harness.temporaryDirectory()
        let output = try Harness.track("exact.lua", db: directory.appendingPathComponent("m.db"))
        #expect(output.stdout == "exact\t298\n", "\(output.stderr)")
    }

    @Test func reusedChunkAddressesNeverGiveAnotherChunksName() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("reload.lua", db: db)
        let rows = try Harness.rows(
            db,
            """
            SELECT file, sum(live_count) FROM site_latest
            WHERE file LIKE 'gen%' AND line = 1 AND type = 'table' GROUP BY file
            """)
        #expect(rows.count == 150)
        for row in rows {
            #expect(row[1] == "8", "\(row[0] ?? "?") holds \(row[1] ?? "?") tables")  // t + 7 kept
        }
    }

    @Test func depthRecordsTheCallStack() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("depth.lua", db: db, options: ["--depth", "3"])
        let stacks = try Harness.rows(
            db,
            """
            SELECT group_concat(f.line || ' ' || coalesce(f.function, '?'), ' < ')
            FROM site_stats ss JOIN sites s ON s.id = ss.site_id
            JOIN json_each('[' || s.stack || ']') j
            JOIN frames f ON f.id = j.value
            WHERE ss.type = 2 AND f.file LIKE '%depth.lua'
            GROUP BY s.id ORDER BY s.id
            """
        ).map { $0[0] ?? "" }
        #expect(stacks.contains("1 leaf < 2 middle < 3 top"))
    }

    /// Outer frames are found by following Lua's call links (checked against lua_getstack by a
    /// probe); C frames in between (pcall, table.sort) are skipped as lua_getstack would.
    @Test func deepStacksThroughCFramesAndCoroutines() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("deep.lua", db: db, options: ["--depth", "8"])
        // Each frame as line/first line of its function.
        let stacks = Set(
            try Harness.rows(
                db,
                """
                SELECT group_concat(f.line || '/' || f.line_defined, ' < ')
                FROM site_stats ss JOIN sites s ON s.id = ss.site_id
                JOIN json_each('[' || s.stack || ']') j
                JOIN frames f ON f.id = j.value
                WHERE ss.type = 2 AND s.frame_id IN
                    (SELECT id FROM frames WHERE file LIKE '%deep.lua' AND line = 2)
                GROUP BY s.id
                """
            ).map { $0[0] ?? "" })
        #expect(
            stacks == [
                "2/2 < 3/3 < 3/3 < 3/3 < 3/3 < 4/4 < 8/0",
                "2/2 < 3/3 < 3/3 < 6/6 < 5/5 < 8/0",
                "2/2 < 3/3 < 7/7",
            ], "\(stacks)")
    }

    @Test func allocationsWithoutLuaCodeGoToHost() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("depth.lua", db: db)
        let host = try Harness.integer(
            db, "SELECT sum(live_bytes) FROM site_latest WHERE file = '[host]'")
        #expect(host > 10_000)  // the standard libraries, opened before any Lua code runs
    }
}

/// `--sample`: per-site estimates converge on the truth; totals stay exact.
@Suite struct SamplingTests {
    @Test func estimatesAreCloseToTheRetainedBytes() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        // A fixed seed: the tolerances below are for one run.
        let run = try Harness.luamem(
            ["run", "--db", db.path, "--sample", "1KiB", Harness.fixture("sampled.lua")],
            environment: ["LUAMEM_SAMPLE_SEED": "7"])
        #expect(run.status == 0, "\(run.stderr)")
        func figures(_ line: Int, _ type: String) throws -> (bytes: Double, count: Double) {
            let row = try Harness.rows(
                db,
                """
                SELECT sum(live_bytes), sum(live_count) FROM site_latest
                WHERE file LIKE '%sampled.lua' AND line = \(line) AND type = '\(type)'
                """)[0]
            return (Double(row[0] ?? "0")!, Double(row[1] ?? "0")!)
        }
        let tables = try figures(4, "table")
        #expect(abs(tables.bytes / 1_120_000 - 1) < 0.1, "\(tables)")
        #expect(abs(tables.count / 20_000 - 1) < 0.1, "\(tables)")
        let strings = try figures(5, "string")
        #expect(abs(strings.bytes / 2_050_000 - 1) < 0.1, "\(strings)")
        #expect(abs(strings.count / 2_000 - 1) < 0.15, "\(strings)")
        #expect(
            try Harness.integer(db, "SELECT count(*) FROM site_latest WHERE file = '[unsampled]'")
                == 0)
        #expect(
            try Harness.rows(db, "SELECT options FROM runs")[0][0]
                == "{\"interval_ms\":10000,\"depth\":1,\"sample\":1024,\"sample_seed\":7}")
    }

    /// Each tracker seeds its sampler from the system: estimates differ from run to run, and
    /// over many seeds they centre on the exact figure.
    @Test func estimatesCentreOnTheExactFigureAcrossSeeds() throws {
        let directory = try Harness.temporaryDirectory()
        func estimate(_ index: Int, seed: String?) throws -> Double {
            let db = directory.appendingPathComponent("s\(index).db")
            let run = try Harness.luamem(
                ["run", "--db", db.path, "--sample", "4KiB", Harness.fixture("blocks.lua")],
                environment: seed.map { ["LUAMEM_SAMPLE_SEED": $0] } ?? [:])
            #expect(run.status == 0, "\(run.stderr)")
            return Double(
                try Harness.integer(
                    db,
                    "SELECT coalesce(sum(live_bytes), 0) FROM site_latest "
                        + "WHERE file LIKE '%blocks.lua' AND line = 4 AND type = 'string'"))
        }
        let exact = 60.0 * 3025
        let seeded = try (1...40).map { try estimate($0, seed: String($0)) }
        let mean = seeded.reduce(0, +) / Double(seeded.count)
        #expect(abs(mean / exact - 1) < 0.08, "mean \(mean) of \(seeded)")
        #expect(Set(seeded).count > 10)
        // Each run records its seed; without LUAMEM_SAMPLE_SEED, each run draws its own.
        func seed(_ index: Int) throws -> String? {
            let options = try Harness.rows(
                directory.appendingPathComponent("s\(index).db"), "SELECT options FROM runs")[0][0]
            return options?.split(separator: ":").last.map { String($0.dropLast()) }
        }
        #expect(try seed(3) == "3")
        _ = try (41...43).map { try estimate($0, seed: nil) }
        let drawn = try (41...43).map(seed)
        #expect(Set(drawn).count == 3, "\(drawn)")
    }

    @Test func totalsStayExact() throws {
        let directory = try Harness.temporaryDirectory()
        let output = try Harness.track(
            "exact.lua", db: directory.appendingPathComponent("m.db"),
            options: ["--sample", "4096"])
        #expect(output.stdout == "exact\t298\n", "\(output.stderr)")
    }

    @Test func badSampleSizesAreRefused() throws {
        let output = try Harness.luamem(["run", "--sample", "lots", Harness.fixture("args.lua")])
        #expect(output.status == 64)
        #expect(output.stderr.contains("--sample must be a size such as 512KiB"))
    }
}

/// What the post-GC figures mean: the live blocks a completed GC cycle kept.
@Suite struct PostGCTests {
    @Test func postGCFiguresNeverExceedLiveOnes() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("gc.db")
        try Harness.track("gc_chunks.lua", db: db, options: ["--interval", "0.01"])
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") >= 20)
        #expect(try Harness.integer(db, "SELECT max(gc_cycles) FROM snapshots") >= 3)
        // Harness.luamem checked the invariant on every row; the kept tables are all there.
        #expect(
            try Harness.integer(
                db,
                "SELECT sum(live_count) FROM site_latest WHERE type = 'table' AND file LIKE 'chunk%' AND line = 4")
                == 400)
    }

    /// A completed cycle settles only the slots allocated to in it or in the cycle before; a
    /// line that allocated once, cycles ago, still shows all it keeps as post-GC figures.
    @Test func linesThatStoppedAllocatingKeepTheirPostGCFigures() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("settle.db")
        let output = try Harness.track("settle.lua", db: db)
        #expect(output.stdout == "300\n", "\(output.stderr)")
        let rows = try Harness.rows(
            db,
            """
            SELECT file, live_count, live_bytes, gc_live_bytes FROM site_latest
            WHERE file GLOB 'settle[0-9]*' AND type = 'table'
            """)
        #expect(rows.count == 300)
        for row in rows {
            let file = try #require(row[0]), number = try #require(Int(file.dropFirst(6)))
            let kept = number % 2 == 1 ? 4 : 5
            let bytes = "\(kept * 56)"  // sizeof(Table)
            #expect(row[1] == "\(kept)" && row[2] == bytes && row[3] == bytes, "\(row)")
        }
    }
}

extension PostGCTests {
    /// A run that ends with os.exit (or luamem.stop()), or a script that runs off its end under
    /// `luamem run`, has exact post-GC figures in its final snapshot (two full collections
    /// first, while the main chunk's locals are still reachable), however few cycles
    /// completed: the retained line shows what it keeps, the garbage line only its last table.
    @Test(arguments: ["os.exit", "return"])
    func aQuietShortRunShowsWhatItsLineKeeps(_ ending: String) throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("quiet.db")
        try Harness.track("quiet.lua", db: db, arguments: ending == "return" ? ["return"] : [])
        #expect(try Harness.integer(db, "SELECT gc_cycles FROM snapshots WHERE kind = 'final'") >= 2)
        let output = try Harness.luamem(["query", "--db", db.path, "--format", "json"])
        #expect(!output.stderr.contains("too few"), "\(output.stderr)")
        let rows = try Harness.jsonRows(output.stdout)
        let row = try #require(rows.first { $0["line"] as? Int == 5 })
        let growth = try #require(row["growth_bytes"] as? Int)
        let live = try #require(row["live_bytes"] as? Int)
        #expect(live >= 1000 * 256)
        #expect(Double(growth) >= 0.9 * Double(live), "\(row)")
        let garbage = try #require(rows.first { $0["line"] as? Int == 11 })
        #expect(garbage["live_bytes"] as? Int ?? .max <= 200, "\(garbage)")
    }

    /// The script's chunk is changed only at its end: tracebacks, line numbers, `...` and
    /// results are lua5.3's; a chunk ending with an explicit return is left as it is.
    @Test func theScriptsEndLooksAsUnderLua() throws {
        let directory = try Harness.temporaryDirectory()
        let script = directory.appendingPathComponent("end.lua")
        try """
            local t = {}
            local function f(n) if n > 2 then error("deep " .. n) end return f(n + 1) end
            for i = 1, 10 do t[i] = {i} end
            print(select("#", ...), ..., debug.getinfo(1, "l").currentline)
            if ... == "fail" then f(0) end
            goto done
            print("skipped")
            ::done::
            if ... == "return" then return 1, 2 end
            """.write(to: script, atomically: true, encoding: .utf8)
        for arguments in [["a", "b"], ["fail"], ["return"]] {
            let lua = try Harness.run("/usr/bin/lua5.3", [script.path] + arguments)
            let tracked = try Harness.luamem(
                ["run", "--db", directory.appendingPathComponent("e.db").path, script.path]
                    + arguments)
            #expect(tracked.status == lua.status)
            #expect(tracked.stdout == lua.stdout)
            #expect(
                tracked.stderr.replacingOccurrences(of: "luamem: ", with: "/usr/bin/lua5.3: ")
                    == lua.stderr, "\(tracked.stderr)")
        }
    }
}

extension PostGCTests {
    /// A window with fewer than two completed GC cycles says so and falls back to the live
    /// bytes at the snapshots; snapshots record when the last cycle completed.
    @Test func tooFewCyclesAreSaidAndFallBackToLiveBytes() throws {
        let directory = try Harness.temporaryDirectory()
        let tiny = directory.appendingPathComponent("tiny.db")
        try Harness.track("tiny.lua", db: tiny)
        let query = try Harness.luamem(["query", "--db", tiny.path, "--format", "json"])
        #expect(query.status == 0)
        #expect(
            query.stderr == "luamem: only 0 GC cycles completed in this window, too few for figures "
                + "after GC: the live bytes at the snapshots stand in, uncollected garbage included "
                + "(as with --current)\n")
        let row = try #require(try Harness.jsonRows(query.stdout).first { $0["line"] as? Int == 3 })
        #expect(row["growth_bytes"] as? Int == row["live_bytes"] as? Int)
        #expect((row["live_bytes"] as? Int ?? 0) >= 10 * 56)
        // A completion time exactly when a cycle has completed.
        #expect(
            try Harness.integer(
                tiny,
                "SELECT count(*) FROM snapshots WHERE (gc_cycles > 0) != (gc_completed_ms IS NOT NULL)")
                == 0)

        let busy = directory.appendingPathComponent("busy.db")
        try Harness.track("gc_chunks.lua", db: busy, options: ["--interval", "0.01"])
        let quiet = try Harness.luamem(["query", "--db", busy.path])
        #expect(quiet.stderr == "")
        #expect(
            try Harness.integer(
                busy,
                "SELECT count(*) FROM snapshots WHERE gc_cycles > 0 AND (gc_completed_ms IS NULL "
                    + "OR gc_completed_ms > time_ms)") == 0)
        #expect(try Harness.integer(busy, "SELECT count(*) FROM snapshots WHERE gc_completed_ms IS NOT NULL") > 0)
    }
}

extension PostGCTests {
    /// diff says when a side's figures after GC are only the live bytes (fewer than two cycles).
    @Test func diffSaysWhenASideHadTooFewCycles() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("d.db")
        try Harness.track("tiny.lua", db: db)
        try Harness.track("gc_chunks.lua", db: db)
        let output = try Harness.luamem(["diff", "--db", db.path, "--base", "run:1", "--head", "run:2"])
        #expect(output.status == 0)
        #expect(
            output.stderr == "luamem: run 1 (tiny.lua) at end: fewer than two GC cycles had "
                + "completed, too few for figures after GC: the live bytes at the snapshot stand in, "
                + "uncollected garbage included\n")
        let current = try Harness.luamem(
            ["diff", "--db", db.path, "--base", "run:1", "--head", "run:2", "--current"])
        #expect(current.stderr == "")
    }
}
