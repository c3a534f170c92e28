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
        try Harness.track("sampled.lua", db: db, options: ["--sample", "1KiB"])
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
                == "{\"interval_ms\":10000,\"depth\":1,\"sample\":1024}")
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
