import Foundation
import Testing

/// The shared library: `require "luamem"` in the stock lua5.3, and the C API used by the sample
/// host with several states on several threads.
@Suite struct EmbeddingTests {
    static var library: String {
        Harness.productsDirectory.appendingPathComponent("libluamem-embed.so").path
    }

    /// A directory where `require "luamem"` finds the library.
    private func moduleDirectory() throws -> URL {
        let library = Self.library
        try #require(
            FileManager.default.fileExists(atPath: library), "build the library first: swift build")
        let directory = try Harness.temporaryDirectory()
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("luamem.so").path, withDestinationPath: library
        )
        return directory
    }

    @Test func libraryLinksNeitherLuaNorFoundation() throws {
        let output = try Harness.run("/usr/bin/readelf", ["-d", Self.library])
        #expect(output.status == 0)
        let needed = output.stdout.split(separator: "\n").filter { $0.contains("NEEDED") }
        #expect(!needed.isEmpty)
        for line in needed {
            #expect(!line.contains("lua"), "\(line)")
            #expect(!line.contains("Foundation"), "\(line)")
        }
        let symbols = try Harness.run("/usr/bin/nm", ["-D", "--defined-only", Self.library]).stdout
        for symbol in [
            "luaopen_luamem", "luaopen_luamem_auto", "luamem_newstate", "luamem_attach",
            "luamem_detach", "luamem_resume", "luamem_flush", "luamem_last_error",
        ] {
            #expect(symbols.contains(" \(symbol)\n"), "missing \(symbol)")
        }
    }

    @Test func requireInStockLuaTracksKnownSitesAndCoroutines() throws {
        let modules = try moduleDirectory()
        let db = modules.appendingPathComponent("m.db")
        let output = try Harness.run(
            "/usr/bin/lua5.3", [Harness.fixture("module.lua"), db.path],
            environment: ["LUA_CPATH": modules.path + "/?.so"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout == "module ok\n")
        let rows = try Harness.rows(
            db,
            """
            SELECT line, live_count FROM site_latest WHERE file LIKE '%module.lua' AND type = 'table'
            ORDER BY line
            """)
        let counts = Dictionary(uniqueKeysWithValues: rows.map { (Int($0[0]!)!, Int($0[1]!)!) })
        #expect(counts[9] == 400)
        #expect(counts[11] == 25)  // charged inside the coroutine.wrap body
        #expect(counts[14] == nil)
        #expect(counts[26] == nil)  // after stop
        let run = try Harness.rows(db, "SELECT build, name FROM runs")
        #expect(run.count == 1 && run[0][0] == "mod-build" && run[0][1] == "gate")
        let kinds = try Harness.rows(db, "SELECT kind FROM snapshots ORDER BY id").map {
            $0[0] ?? ""
        }
        #expect(kinds.first == "start" && kinds.last == "final" && kinds.contains("manual"))
        #expect(
            try Harness.integer(db, "SELECT count(*) FROM states WHERE closed_ms IS NOT NULL") == 1)
    }

    @Test func wrongOptionsRaiseAndRuntimeFailuresReturnNil() throws {
        let modules = try moduleDirectory()
        let script = """
            local luamem = require "luamem"
            for _, options in ipairs{ { interval = "x" }, { depth = 0 }, { depth = 1.5 }, { db = 3 },
                                      { interval = -1 }, { name = {} } } do
              local ok, message = pcall(luamem.start, options)
              print(ok, message)
            end
            print(pcall(luamem.start, "db.sqlite"))
            print(luamem.start{ db = "/nonexistent/dir/x.db" })
            """
        let output = try Harness.run(
            "/usr/bin/lua5.3", ["-"], environment: ["LUA_CPATH": modules.path + "/?.so"],
            stdin: script)
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n").map(String.init)
        #expect(
            lines[0]
                == "false\tbad argument #1 to 'luamem.start' (option 'interval' must be a number, got string)"
        )
        #expect(lines[1].contains("option 'depth' must be an integer from 1 to 32"))
        #expect(lines[2].contains("option 'depth' must be an integer from 1 to 32"))
        #expect(lines[3].contains("option 'db' must be a string, got number"))
        #expect(lines[4].contains("option 'interval' must be a positive number"))
        #expect(lines[5].contains("option 'name' must be a string, got table"))
        #expect(
            lines[6].hasPrefix(
                "false\tbad argument #1 to 'luamem.start' (table expected, got string)"))
        #expect(lines[7].hasPrefix("nil\tcannot open /nonexistent/dir/x.db"))
    }

    @Test func autoModuleStartsFromTheEnvironmentAndOsExitWritesTheFinalSnapshot() throws {
        let modules = try moduleDirectory()
        let db = modules.appendingPathComponent("auto.db")
        let output = try Harness.run(
            "/usr/bin/lua5.3", ["-l", "luamem.auto", Harness.fixture("exits.lua")],
            environment: [
                "LUA_CPATH": modules.path + "/?.so", "LUAMEM_DB": db.path, "LUAMEM_NAME": "auto",
            ])
        #expect(output.status == 3, "\(output.stderr)")
        #expect(
            try Harness.integer(
                db,
                """
                SELECT live_count FROM site_latest WHERE file LIKE '%exits.lua' AND line = 2 AND type = 'table'
                """) == 25)
        #expect(
            try Harness.rows(db, "SELECT kind FROM snapshots ORDER BY id").map { $0[0] } == [
                "start", "final",
            ])
        #expect(try Harness.rows(db, "SELECT name FROM states").map { $0[0] } == ["auto"])
    }

    @Test func sampleHostTracksEveryStateOnItsThreadWithoutCrossTalk() throws {
        let directory = try Harness.temporaryDirectory()
        let host = try Harness.buildHost(
            Harness.repositoryRoot.appendingPathComponent("examples/host/host.c").path,
            in: directory)
        let db = directory.appendingPathComponent("host.db")
        let output = try Harness.run(host, [db.path])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout == "4 services done\n")
        for n in 1...4 {
            let counts = try Harness.rows(
                db,
                """
                SELECT line, live_count FROM site_latest
                WHERE state = 'svc-\(n)' AND file = 'service\(n)' AND type = 'table' AND line IN (3, 6)
                ORDER BY line
                """
            ).map { $0.map { Int($0!)! } }
            #expect(counts == [[3, n * 100], [6, n * 10 + 1]], "svc-\(n)")
            let foreign = try Harness.integer(
                db,
                """
                SELECT count(*) FROM site_latest
                WHERE state = 'svc-\(n)' AND file LIKE 'service%' AND file <> 'service\(n)'
                """)
            #expect(foreign == 0)
            #expect(
                try Harness.integer(
                    db,
                    """
                    SELECT count(*) FROM snapshots sn JOIN states s ON s.id = sn.state_id
                    WHERE s.name = 'svc-\(n)' AND sn.kind = 'final'
                    """) == 1)
        }
        let query = try Harness.jsonRows(
            Harness.luamem(
                ["query", "--db", db.path, "--state", "svc-3", "--format", "json", "--top", "1"])
                .stdout)
        #expect(query.first?["source"] as? String == "service3")
        #expect(query.first?["line"] as? Int == 3)
        // Headings name the states their figures cover.
        let one = try Harness.luamem(["query", "--db", db.path, "--state", "svc-3", "--top", "1"])
        // The run is named after whichever state started first (the threads race).
        #expect(
            one.stdout.firstMatch(
                of: try Regex(#"^run 1 \(svc-[1-4], build host-example\), state svc-3: "#)) != nil,
            "\(one.stdout)")
        let all = try Harness.luamem(["leaks", "--db", db.path, "--all", "--top", "1"])
        let heading = all.stdout.split(separator: ":").first.map(String.init) ?? ""
        #expect(
            heading.firstMatch(of: try Regex(#"^run 1 \(svc-[1-4], build host-example\), states svc-"#))
                != nil, "\(heading)")
        #expect((1...4).allSatisfy { heading.contains("svc-\($0)") }, "\(heading)")
        let unknown = try Harness.luamem(["query", "--db", db.path, "--state", "nope"])
        #expect(unknown.status != 0 && unknown.stderr.contains("no Lua state named 'nope'"))
    }
}
