import Foundation
import Testing

/// A real ClickHouse server (Debian's clickhouse-server) on loopback, with a config and a data
/// folder of the test's own, started and stopped by its PID.
final class ClickHouseServer: @unchecked Sendable {
    let folder: URL
    let httpPort: Int

    init() throws {
        folder = try Harness.temporaryDirectory()
        httpPort = try Self.freePort()
        let tcpPort = try Self.freePort()
        let path = folder.path
        try """
        <?xml version="1.0"?>
        <yandex>
            <logger><level>warning</level><log>\(path)/server.log</log><errorlog>\(path)/error.log</errorlog><console>0</console></logger>
            <http_port>\(httpPort)</http_port>
            <tcp_port>\(tcpPort)</tcp_port>
            <listen_host>127.0.0.1</listen_host>
            <path>\(path)/data/</path>
            <tmp_path>\(path)/tmp/</tmp_path>
            <user_files_path>\(path)/user_files/</user_files_path>
            <format_schema_path>\(path)/format_schemas/</format_schema_path>
            <users_config>\(path)/users.xml</users_config>
            <default_profile>default</default_profile>
            <default_database>default</default_database>
            <mark_cache_size>5368709</mark_cache_size>
            <timezone>UTC</timezone>
        </yandex>
        """.write(to: folder.appendingPathComponent("config.xml"), atomically: true, encoding: .utf8)
        try """
        <?xml version="1.0"?>
        <yandex>
            <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
            <users><default><password></password><networks><ip>127.0.0.1</ip></networks>
            <profile>default</profile><quota>default</quota></default></users>
            <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors>
            <result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time>
            </interval></default></quotas>
        </yandex>
        """.write(to: folder.appendingPathComponent("users.xml"), atomically: true, encoding: .utf8)
        starter = try Harness.buildHost(Harness.fixture("default_signals.c"), in: folder)
        try start()
    }

    deinit { stop() }

    /// Starts a command with every signal unblocked: the test runner's threads block them, and
    /// a server started with SIGTERM blocked could not be stopped.
    private var starter = ""

    var url: String { "clickhouse://127.0.0.1:\(httpPort)" }

    /// The server's PID. It is started through a shell that returns at once, so the server is
    /// not a Foundation Process of the test runner (it closes the descriptors Foundation
    /// watches, and Foundation then waits for it to exit).
    private var pid: pid_t = 0

    func start() throws {
        let server = "/usr/sbin/clickhouse-server"
        try #require(
            FileManager.default.fileExists(atPath: server),
            "install clickhouse-server (scripts/install-deps.sh --tests)")
        let launched = try Harness.run(
            "/bin/sh",
            [
                "-c",
                "'\(starter)' \(server) --config-file='\(folder.path)/config.xml' </dev/null >/dev/null 2>&1 & echo $!",
            ])
        pid = try #require(pid_t(launched.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if (try? query("SELECT 1")) == "1\n" { return }
            usleep(100_000)
        }
        throw ServerError(message: "clickhouse-server did not answer on port \(httpPort) within 30 s")
    }

    /// Stops the server by its PID: SIGTERM, then SIGKILL after 30 s.
    func stop() {
        guard pid > 0 else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while isRunning && Date() < deadline { usleep(50_000) }
        if isRunning {
            kill(pid, SIGKILL)
            usleep(200_000)
        }
        pid = 0
    }

    /// Whether the server still runs: it exists and is not a zombie (its parent, once the shell
    /// that started it has exited, may never reap it).
    private var isRunning: Bool {
        guard kill(pid, 0) == 0,
            let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return !stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).hasPrefix("Z")
    }

    struct ServerError: Error { var message: String }

    /// Runs `sql` over HTTP with curl and returns the body; throws on an HTTP error.
    @discardableResult
    func query(_ sql: String) throws -> String {
        let output = try Harness.run(
            "/usr/bin/curl",
            ["-sS", "--fail-with-body", "--data-binary", sql, "http://127.0.0.1:\(httpPort)/"])
        guard output.status == 0 else {
            throw ServerError(message: "\(sql): \(output.stdout) \(output.stderr)")
        }
        return output.stdout
    }

    func integer(_ sql: String) throws -> Int {
        try #require(Int(try query(sql).trimmingCharacters(in: .whitespacesAndNewlines)), "\(sql)")
    }

    private static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0
            }
        }
        try #require(bound)
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// `luamem ship` into a real ClickHouse: several simulated hosts, shipped twice, a ship killed
/// half-way, a server stopped under --follow; and the fleet question answered in the server.
@Suite(.serialized) struct FleetTests {
    /// The README's fleet recipe (its `sql clickhouse` block): what each line holds after GC at
    /// the latest snapshot of every run of a build, added up over the fleet.
    static func fleetLines(_ database: String, build: String) throws -> String {
        let readme = try String(
            contentsOf: Harness.repositoryRoot.appendingPathComponent("README.md"), encoding: .utf8)
        let recipe = try #require(
            readme.components(separatedBy: "```sql clickhouse\n").dropFirst().first?
                .components(separatedBy: "```").first)
        #expect(recipe.contains("luamem.site_stats") && recipe.contains("build = 'v2'"))
        return recipe.replacingOccurrences(of: "luamem.", with: "\(database).")
            .replacingOccurrences(of: "build = 'v2'", with: "build = '\(build)'")
    }

    @Test func threeHostsShippedTwiceAnswerTheFleetQuestion() throws {
        let server = try ClickHouseServer()
        defer { server.stop() }
        let directory = try Harness.temporaryDirectory()
        var files: [URL] = []
        var expected = 0, expectedGrowth = 0
        for host in ["eu-1", "eu-2", "us-1"] {
            let db = directory.appendingPathComponent("\(host).db")
            try Harness.track("sites.lua", db: db, options: ["--host", host, "--build", "v1"])
            files.append(db)
            let rows = try Harness.jsonRows(
                Harness.luamem(["query", "--db", db.path, "--format", "json", "--top", "100"]).stdout)
            let line5 = try #require(rows.first { $0["line"] as? Int == 5 })
            expected += try #require(line5["gc_live_bytes"] as? Int)
            expectedGrowth += try #require(line5["growth_bytes"] as? Int)
        }
        let target = server.url + "/fleet"
        let arguments = ["ship"] + files.flatMap { ["--db", $0.path] } + ["--to", target]
        let first = try Harness.luamem(arguments)
        #expect(first.status == 0, "\(first.stderr)")
        #expect(first.stdout.hasPrefix("shipped 3 run(s), "), "\(first.stdout)")
        let second = try Harness.luamem(arguments)
        #expect(second.stdout == "shipped 0 run(s), 0 snapshot(s), 0 site row(s) to \(target)\n")

        let snapshots = try files.map { try Harness.integer($0, "SELECT count(*) FROM snapshots") }
            .reduce(0, +)
        let siteRows = try files.map { try Harness.integer($0, "SELECT count(*) FROM site_stats") }
            .reduce(0, +)
        #expect(try server.integer("SELECT count() FROM fleet.runs FINAL") == 3)
        #expect(try server.integer("SELECT count() FROM fleet.snapshots") == snapshots)
        #expect(try server.integer("SELECT count() FROM fleet.site_stats") == siteRows)
        #expect(
            try server.query("SELECT host FROM fleet.runs FINAL ORDER BY host FORMAT TabSeparated")
                == "eu-1\neu-2\nus-1\n")

        // The fleet question, aggregated in the server: line 5 holds what the hosts' add up to.
        let lines = try server.query(try Self.fleetLines("fleet", build: "v1"))
        let line5 = try #require(
            lines.split(separator: "\n").first { $0.contains("sites.lua\t5\t") }, "\(lines)")
        #expect(Int(line5.split(separator: "\t").last ?? "") == expected, "\(line5)")

        // runs reads the fleet store: each host's run, its status and totals.
        let fleetRuns = try Harness.jsonRows(
            Harness.luamem(["runs", "--db", target, "--format", "json"]).stdout)
        #expect(fleetRuns.map { $0["host"] as? String }.sorted { ($0 ?? "") < ($1 ?? "") } == ["eu-1", "eu-2", "us-1"])
        for (run, file) in zip(fleetRuns.sorted { ($0["host"] as? String ?? "") < ($1["host"] as? String ?? "") }, files) {
            let local = try #require(
                try Harness.jsonRows(Harness.luamem(["runs", "--db", file.path, "--format", "json"]).stdout).first)
            #expect(run["status"] as? String == "exited 0", "\(run)")
            #expect(run["uuid"] as? String == local["uuid"] as? String)
            #expect(run["snapshots"] as? Int == local["snapshots"] as? Int)
            #expect(run["final_gc_live_bytes"] as? Int == local["final_gc_live_bytes"] as? Int)
        }
        // query across the fleet: line 5's growth is the hosts' added up, by the server.
        let fleetQuery = try Harness.luamem([
            "query", "--db", target, "--build", "v1", "--format", "json", "--top", "100",
        ])
        #expect(fleetQuery.status == 0, "\(fleetQuery.stderr)")
        let fleetRows = try Harness.jsonRows(fleetQuery.stdout)
        let fleetLine5 = try #require(fleetRows.first { $0["line"] as? Int == 5 }, "\(fleetRows)")
        #expect(fleetLine5["growth_bytes"] as? Int == expectedGrowth, "\(fleetLine5)")
        #expect(fleetLine5["runs"] as? Int == 3)
        #expect(fleetLine5["function"] as? String == "keep_tables")
        // A store made by the first schema (no site keys) is upgraded when read, and answers
        // the same.
        try server.query("DROP TABLE fleet.sites_of_site_stats")
        try server.query("DROP TABLE fleet.sites")
        try server.query("ALTER TABLE fleet.site_stats DROP COLUMN site_key")
        try server.query("ALTER TABLE fleet.site_stats DROP COLUMN run_key")
        let upgraded = try Harness.luamem([
            "query", "--db", target, "--build", "v1", "--format", "json", "--top", "100",
        ])
        #expect(upgraded.stdout == fleetQuery.stdout, "\(upgraded.stderr)")
        #expect(try server.integer("SELECT count() FROM fleet.sites") > 0)
        let table = try Harness.luamem(["query", "--db", target, "--build", "v1", "--top", "3"])
        #expect(table.stdout.hasPrefix("fleet \(target), build v1: 3 run(s), growth of live bytes after GC\n"), "\(table.stdout)")
        let gated = try Harness.luamem(["query", "--db", target, "--build", "v1", "--fail-above", "1KiB"])
        #expect(gated.status == 1, "\(gated.stderr)")
        let unsupported = try Harness.luamem(["prune", "--db", target, "--older-than", "1h"])
        #expect(unsupported.status == 2 && unsupported.stderr.contains("does not read ClickHouse"), "\(unsupported.stderr)")
        let byHost = try Harness.jsonRows(
            Harness.luamem(["query", "--db", target, "--host", "eu-2", "--format", "json", "--top", "100"]).stdout)
        #expect(byHost.first { $0["line"] as? Int == 5 }?["runs"] as? Int == 1)
        let noHost = try Harness.luamem(["runs", "--db", target, "--host", "mars"])
        #expect(noHost.status == 2 && noHost.stderr.contains("no run on host 'mars'"), "\(noHost.stderr)")
        for command in ["query", "leaks", "snapshots", "export"] {
            let none = try Harness.luamem([command, "--db", target, "--build", "v9"])
            #expect(none.status == 2 && none.stderr.contains("no run of build 'v9'"), "\(command): \(none.stderr)")
        }

        for (url, message) in [
            ("clickhouse://127.0.0.1:\(server.httpPort)", "the database must be a name"),
            ("http://127.0.0.1/x", "is not a clickhouse://"),
            ("clickhouse://127.0.0.1:1/x", "cannot connect"),
        ] {
            let bad = try Harness.luamem(["ship", "--db", files[0].path, "--to", url])
            #expect(bad.status != 0 && bad.stderr.contains(message), "\(url): \(bad.stderr)")
        }
    }

    /// Two builds of one program on three hosts: `diff build:v1 build:v2` in the server gives
    /// each side's median over its runs, with a line matched although v2 moved it; then a leak
    /// on two hosts: `leaks` ranks it first with both runs, `history` ends at what the hosts
    /// hold added up, `snapshots --host` lists one host's.
    @Test func buildsCompareAndLeaksRankAcrossTheFleet() throws {
        let server = try ClickHouseServer()
        defer { server.stop() }
        let directory = try Harness.temporaryDirectory()
        let target = server.url + "/fleet"
        let original = try String(contentsOfFile: Harness.fixture("sites.lua"), encoding: .utf8)
        #expect(original.contains("\nkeep_tables(300)\n"))
        let sources = [
            "v1": original,
            // One line more above everything, and twice the tables kept on the moved line 6.
            "v2": "-- v2\n" + original.replacingOccurrences(of: "\nkeep_tables(300)\n", with: "\nkeep_tables(600)\n"),
        ]
        var kept: [String: [Int]] = [:]
        for build in ["v1", "v2"] {
            let folder = directory.appendingPathComponent(build)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            try sources[build]!.write(
                to: folder.appendingPathComponent("sites.lua"), atomically: true, encoding: .utf8)
            for host in ["eu-1", "eu-2", "us-1"] {
                let ran = try Harness.luamem(
                    ["run", "--db", "\(host).db", "--host", host, "--build", build, "sites.lua"],
                    in: folder)
                #expect(ran.status == 0, "\(ran.stderr)")
                let rows = try Harness.jsonRows(
                    Harness.luamem([
                        "query", "--db", folder.appendingPathComponent("\(host).db").path,
                        "--format", "json", "--top", "100",
                    ]).stdout)
                let line = try #require(rows.first { $0["line"] as? Int == (build == "v1" ? 5 : 6) })
                kept[build, default: []].append(try #require(line["gc_live_bytes"] as? Int))
            }
        }
        let shipped = try Harness.luamem([
            "ship", "--db", directory.appendingPathComponent("v1").path, "--db",
            directory.appendingPathComponent("v2").path, "--to", target,
        ])
        #expect(shipped.stdout.hasPrefix("shipped 6 run(s)"), "\(shipped.stdout) \(shipped.stderr)")
        let diff = try Harness.luamem([
            "diff", "--db", target, "--base", "build:v1", "--head", "build:v2", "--format", "json",
            "--top", "100",
        ])
        #expect(diff.status == 0, "\(diff.stderr)")
        let changes = try Harness.jsonRows(diff.stdout)
        let moved = try #require(changes.first { $0["function"] as? String == "keep_tables" }, "\(changes)")
        let median = { (values: [Int]) in values.sorted()[1] }
        #expect(moved["base_bytes"] as? Int == median(kept["v1"]!), "\(moved) \(kept)")
        #expect(moved["head_bytes"] as? Int == median(kept["v2"]!), "\(moved) \(kept)")
        #expect(moved["status"] as? String == "changed")
        #expect(moved["line"] as? Int == 6)
        #expect(changes.first?["function"] as? String == "keep_tables", "\(changes)")
        let table = try Harness.luamem(["diff", "--db", target, "--base", "build:v1", "--head", "build:v2"])
        #expect(table.stdout.hasPrefix("base: build v1 (median of 3 runs) at end\nhead: build v2 (median of 3 runs) at end\n"), "\(table.stdout)")
        // export: the hosts' stacks added up; a pprof profile go tool pprof reads, with the line
        // holding the hosts' bytes.
        var expected6 = 0
        for host in ["eu-1", "eu-2", "us-1"] {
            let folded = try Harness.luamem([
                "export", "--db", directory.appendingPathComponent("v2/\(host).db").path,
            ]).stdout
            expected6 += Int(folded.split(separator: "\n").first { $0.hasPrefix("sites.lua:6 ") }?
                .split(separator: " ").last ?? "") ?? 0
        }
        let fleetFolded = try Harness.luamem(["export", "--db", target, "--build", "v2"])
        #expect(fleetFolded.status == 0, "\(fleetFolded.stderr)")
        #expect(fleetFolded.stdout.contains("\nsites.lua:6 \(expected6)\n") || fleetFolded.stdout.hasPrefix("sites.lua:6 \(expected6)\n"), "\(fleetFolded.stdout)")
        let profile = directory.appendingPathComponent("fleet.pb.gz")
        let written = try Harness.luamem([
            "export", "--db", target, "--build", "v2", "--format", "pprof", "-o", profile.path,
        ])
        #expect(written.status == 0, "\(written.stderr)")
        let top = try Harness.run(
            "/usr/bin/go",
            ["tool", "pprof", "-top", "-lines", "-sample_index=inuse_space", "-unit=B", profile.path],
            environment: ["HOME": directory.path])
        #expect(top.stdout.contains("luamem fleet \(target), build v2: 3 run(s) added up"), "\(top.stdout) \(top.stderr)")
        let keep = top.stdout.split(separator: "\n").first { $0.hasSuffix("keep_tables sites.lua:6") }
        #expect(keep?.split(separator: " ").first == "\(expected6)B", "\(top.stdout)")

        let snapshotRef = try Harness.luamem(["diff", "--db", target, "--base", "snapshot:1", "--head", "build:v2"])
        #expect(snapshotRef.status == 2 && snapshotRef.stderr.contains("names runs by UUID"))

        // A leak on two hosts.
        var leakFiles: [URL] = []
        var live13 = 0, gcLive13 = 0
        for host in ["a", "b"] {
            let db = directory.appendingPathComponent("leak-\(host).db")
            try Harness.track(
                "patterns.lua", db: db, options: ["--interval", "0.05", "--host", host, "--build", "leak"],
                arguments: ["1.5"])
            leakFiles.append(db)
            let rows = try Harness.jsonRows(
                Harness.luamem(["query", "--db", db.path, "--format", "json", "--top", "100"]).stdout)
            let line = try #require(rows.first { $0["line"] as? Int == 13 })
            live13 += try #require(line["live_bytes"] as? Int)
            gcLive13 += try #require(line["gc_live_bytes"] as? Int)
        }
        _ = try Harness.luamem(["ship"] + leakFiles.flatMap { ["--db", $0.path] } + ["--to", target])
        let leaks = try Harness.luamem(["leaks", "--db", target, "--build", "leak", "--format", "json"])
        #expect(leaks.status == 0, "\(leaks.stderr)")
        let suspects = try Harness.jsonRows(leaks.stdout)
        let first = try #require(suspects.first, "\(leaks.stderr)")
        #expect(first["line"] as? Int == 13, "\(suspects)")
        #expect(first["runs"] as? Int == 2)
        #expect(first["live_bytes"] as? Int == live13)
        #expect(!suspects.contains { $0["line"] as? Int == 14 }, "\(suspects)")
        // report: the same suspect, and the growth query gives, for the fleet.
        let fleetGrowth = try Harness.jsonRows(
            Harness.luamem(["query", "--db", target, "--build", "leak", "--format", "json"]).stdout)
        let page = try Harness.luamem(["report", "--db", target, "--build", "leak", "-o", "-"])
        #expect(page.status == 0, "\(page.stderr)")
        #expect(page.stdout.contains("<tr><th>Runs</th><td>2 (with snapshots in the window: 2), added up</td></tr>"))
        let suspect = try #require(
            page.stdout.firstMatch(of: try Regex(#"<tr class="suspect" data-site="([^"]+)">"#, as: (Substring, Substring).self)))
        #expect(suspect.1.hasSuffix("patterns.lua:13"), "\(suspect.1)")
        let grown = try #require(
            page.stdout.firstMatch(
                of: try Regex(#"<tr class="site" data-site="([^"]+)" data-growth="(-?\d+)""#, as: (Substring, Substring, Substring).self)))
        let topGrowth = try #require(fleetGrowth.first)
        #expect(String(grown.1) == topGrowth["site"] as? String)
        #expect(Int(grown.2) == topGrowth["growth_bytes"] as? Int, "\(topGrowth)")

        let history = try Harness.luamem([
            "history", "--db", target, "--build", "leak", "patterns.lua:13", "--format", "json", "--top", "100",
        ])
        #expect(history.status == 0, "\(history.stderr)")
        let points = try Harness.jsonRows(history.stdout)
        #expect(points.last?["gc_live_bytes"] as? Int == gcLive13, "\(points)")
        #expect((points.first?["gc_live_bytes"] as? Int ?? .max) < gcLive13 / 2, "\(points)")
        let listed = try Harness.jsonRows(
            Harness.luamem(["snapshots", "--db", target, "--host", "b", "--top", "100000", "--format", "json"]).stdout)
        #expect(listed.count == (try Harness.integer(leakFiles[1], "SELECT count(*) FROM snapshots")))
        #expect(Set(listed.compactMap { $0["host"] as? String }) == ["b"])

        // GC cycles bunched early in the runs: the fleet's leaks falls back to the live bytes,
        // as a file's does (QuestionsTests.cyclesBunchedEarlyFallBackToLiveBytes).
        let late = directory.appendingPathComponent("late.db")
        try Harness.trackLateCycles(db: late, options: ["--build", "late"])
        #expect(try Harness.luamem(["ship", "--db", late.path, "--to", target]).status == 0)
        let lateLeaks = try Harness.luamem([
            "leaks", "--db", target, "--build", "late", "--all", "--format", "json", "--top", "100",
        ])
        #expect(
            lateLeaks.stderr.contains(
                "of the 5 GC cycles in this window completed in its later half, too few"),
            "\(lateLeaks.stderr)")
        let lateRows = try Harness.jsonRows(lateLeaks.stdout)
        #expect(lateRows.first?["line"] as? Int == 11, "\(lateRows)")
        #expect(lateRows.first { $0["line"] as? Int == 12 }?["suspect"] as? String == "no")
    }

    @Test func aShipKilledHalfWayIsTakenUpWithoutLossOrDuplicates() throws {
        let server = try ClickHouseServer()
        defer { server.stop() }
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("long.db")
        // Hundreds of snapshots, shipped one per batch: seconds of work to be killed in.
        try Harness.track(
            "patterns.lua", db: db, options: ["--interval", "0.005", "--host", "long"],
            arguments: ["1.5"])
        let snapshots = try Harness.integer(db, "SELECT count(*) FROM snapshots")
        let siteRows = try Harness.integer(db, "SELECT count(*) FROM site_stats")
        #expect(snapshots > 100)
        let target = server.url + "/resumed"
        // One snapshot per batch, killed once some are on the server.
        let ship = try Harness.launchLuamem([
            "ship", "--db", db.path, "--to", target, "--batch-snapshots", "1",
        ])
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline,
            ((try? server.integer("SELECT count() FROM resumed.snapshots")) ?? 0) < 3
        {
            usleep(5_000)
        }
        kill(ship.process.processIdentifier, SIGKILL)
        ship.process.waitUntilExit()
        let partial = try server.integer("SELECT count() FROM resumed.snapshots")
        #expect(partial >= 3 && partial < snapshots, "\(partial) of \(snapshots)")
        let resumed = try Harness.luamem(["ship", "--db", db.path, "--to", target])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(try server.integer("SELECT count() FROM resumed.snapshots") == snapshots)
        // A site row shipped again (the kill fell between rows and their snapshot) is the same
        // row: the table's key keeps one.
        #expect(try server.integer("SELECT count() FROM resumed.site_stats FINAL") == siteRows)
    }

    @Test func followWaitsForAStoppedServerAndCatchesUp() throws {
        let server = try ClickHouseServer()
        defer { server.stop() }
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("live.db")
        let target = server.url + "/followed"
        let program = try Harness.launchLuamem([
            "run", "--db", db.path, "--interval", "0.05", "--host", "live",
            Harness.fixture("patterns.lua"), "3",
        ])
        let follow = try Harness.launchLuamem([
            "ship", "--db", db.path, "--to", target, "--follow", "--interval", "0.1",
        ])
        // SIGKILL: the test runner's children have SIGTERM blocked.
        defer {
            kill(follow.process.processIdentifier, SIGKILL)
            follow.process.waitUntilExit()
        }
        usleep(800_000)
        server.stop()
        usleep(800_000)
        try server.start()
        let ran = program.finish()
        #expect(ran.status == 0, "\(ran.stderr)")
        let snapshots = try Harness.integer(db, "SELECT count(*) FROM snapshots")
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline,
            ((try? server.integer("SELECT count() FROM followed.snapshots FINAL")) ?? 0) < snapshots
        {
            usleep(100_000)
        }
        // FINAL: a snapshot row the server kept while it went down, then shipped again because
        // the answer was lost, is the same row.
        #expect(try server.integer("SELECT count() FROM followed.snapshots FINAL") == snapshots)
        #expect(
            try server.integer("SELECT count() FROM followed.site_stats FINAL")
                == (try Harness.integer(db, "SELECT count(*) FROM site_stats")))
        #expect(try server.integer("SELECT ended_ms > 0 FROM followed.runs FINAL") == 1)
        kill(follow.process.processIdentifier, SIGKILL)
        let output = follow.finish()
        #expect(output.stderr.contains("trying again"), "\(output.stderr)")
        #expect(output.stderr.components(separatedBy: "trying again").count == 2, "\(output.stderr)")
    }
}
