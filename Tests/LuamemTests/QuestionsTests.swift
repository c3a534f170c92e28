import Foundation
import LuamemStore
import Testing

/// diff, leaks, history, runs and snapshots on databases written by real runs.
@Suite struct QuestionsTests {
    @Test func nightlyExampleFindsTheRegressionAndFails() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("nightly.db")
        let script = Harness.repositoryRoot.appendingPathComponent("examples/nightly.sh").path
        let output = try Harness.run("/bin/bash", [script, Harness.luamemPath, db.path])
        #expect(output.status == 1, "\(output.stderr)")
        // The gate says why it failed: the threshold against its base, then what crossed it.
        let gate = output.stderr.split(separator: "\n").map(String.init)
        #expect(gate.first?.hasPrefix("luamem: growth above --fail-above 5% (") == true, "\(gate)")
        #expect(gate.first?.contains(", 5% of the base's ") == true)
        #expect(gate.contains { $0.hasPrefix("  total: +") && $0.hasSuffix(" over") })
        #expect(gate.contains { $0.hasPrefix("  app.lua:9: +") })
        let lines = output.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0].hasPrefix("base: build v1 (median of 2 runs: 1, 2)"))
        #expect(lines.contains("| BASE | HEAD | CHANGE | % | NOTE | SITE | FUNCTION |"))
        let firstRow = try #require(lines.first { $0.hasPrefix("| ") && $0.contains("app.lua") })
        #expect(firstRow.contains("| new | app.lua:9 | remember_session |"))
        // log_message moved from line 10 to 14 and kept its size: matched, not new or gone.
        let json = try Harness.jsonRows(
            Harness.luamem([
                "diff", "--db", db.path, "--base", "build:v1", "--head", "build:v2", "--format",
                "json", "--top", "100",
            ]).stdout)
        let logLine = try #require(json.first { $0["function"] as? String == "log_message" })
        #expect(logLine["status"] as? String == "changed" || logLine["change_bytes"] as? Int == 0)
        #expect(logLine["line"] as? Int == 14)
        #expect(
            !json.contains {
                $0["function"] as? String == "log_message" && $0["status"] as? String == "gone"
            })
        let session = try #require(json.first { $0["line"] as? Int == 8 })
        #expect(session["status"] as? String == "changed")
        #expect((session["change_fraction"] as? Double ?? 0) > 0.3)
    }

    @Test func diffBetweenRunsSnapshotsAndTimesWithThresholds() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("idle.lua", db: db, arguments: ["0.1"])
        try Harness.track("sites.lua", db: db)
        let runs = try Harness.luamem([
            "diff", "--db", db.path, "--base", "run:1", "--head", "run:2", "--format", "json",
        ])
        #expect(runs.status == 0)
        let rows = try Harness.jsonRows(runs.stdout)
        #expect(
            rows.first {
                ($0["source"] as? String)?.hasSuffix("sites.lua") == true && $0["line"] as? Int == 5
            }?["status"]
                as? String == "new")
        #expect(rows.contains { $0["status"] as? String == "gone" })
        // Same run at start and at end, by snapshot id.
        let snapshots = try Harness.luamem([
            "diff", "--db", db.path, "--base", "snapshot:1", "--head", "snapshot:2", "--fail-above",
            "1MB",
        ])
        #expect(snapshots.status == 0, "\(snapshots.stderr)")
        let failing = try Harness.luamem([
            "diff", "--db", db.path, "--base", "run:1", "--head", "run:2", "--fail-above", "1KiB",
        ])
        #expect(failing.status == 1)
        let byTime = try Harness.luamem([
            "diff", "--db", db.path, "--base", "run:2", "--head", "-0s", "--by", "file",
        ])
        #expect(byTime.status == 0, "\(byTime.stderr)")
        #expect(byTime.stdout.contains("head: run 2 (sites.lua) at "))
        let peak = try Harness.luamem([
            "diff", "--db", db.path, "--base", "run:2", "--head", "run:2", "--at", "peak",
        ])
        #expect(peak.stdout.contains("at peak"))
        for (arguments, message) in [
            (["--base", "run:9", "--head", "run:1"], "no run 9"),
            (["--base", "build:nope", "--head", "run:1"], "no run of build 'nope'"),
            (["--base", "snapshot:99", "--head", "run:1"], "no snapshot 99"),
            (["--base", "yesterday", "--head", "run:1"], "--base"),
            (["--base", "run:1", "--head", "run:2", "--fail-above", "lots"], "--fail-above"),
            (["--base", "run:1", "--head", "run:2", "--fail-above", "5"], "--fail-above"),
            (["--base", "run:1", "--head", "run:2", "--at", "sometime"], "--at"),
        ] {
            let output = try Harness.luamem(["diff", "--db", db.path] + arguments)
            #expect(output.status != 0 && output.status != 1, "\(arguments)")
            #expect(output.stderr.contains(message), "\(arguments): \(output.stderr)")
        }
    }

    @Test func leaksRanksASteadyLeakAboveAWarmUpCacheAndALoadFollowingSite() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track(
            "patterns.lua", db: db, options: ["--interval", "0.05"], arguments: ["2"])
        let suspects = try Harness.jsonRows(
            Harness.luamem(["leaks", "--db", db.path, "--format", "json"]).stdout)
        #expect(suspects.first?["line"] as? Int == 13, "\(suspects)")
        #expect(!suspects.contains { $0["line"] as? Int == 14 })
        #expect(!suspects.contains { $0["line"] as? Int == 16 })
        let all = try Harness.jsonRows(
            Harness.luamem(["leaks", "--db", db.path, "--all", "--format", "json", "--top", "100"])
                .stdout)
        let leak = try #require(all.firstIndex { $0["line"] as? Int == 13 })
        let cache = try #require(all.firstIndex { $0["line"] as? Int == 14 })
        let load = try #require(all.firstIndex { $0["line"] as? Int == 16 })
        #expect(leak < cache && leak < load)
        #expect(all[cache]["suspect"] as? String == "no")
        #expect(all[load]["suspect"] as? String == "no")
        let short = try Harness.luamem(["leaks", "--db", db.path, "--since", "1ms"])
        #expect(short.status != 0 && short.stderr.contains("at least 4"))
    }

    /// A short, quiet run (few completed GC cycles, so the figures after GC move in a few
    /// steps): leaks says so, falls back to the live bytes at the snapshots, and ranks the
    /// steady leak first, without the warm-up cache. (The load wave's freed entries stay live
    /// until a collection, so on a loaded machine it can follow the leak as a suspect.)
    @Test func aShortQuietRunStillRanksTheLeakFirst() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("quiet.db")
        try Harness.track(
            "patterns.lua", db: db, options: ["--interval", "0.1"], arguments: ["3", "2"])
        let output = try Harness.luamem(["leaks", "--db", db.path, "--format", "json"])
        // Too few cycles, or too few in the later half (a faster machine runs more ticks, so
        // more cycles, spaced further apart as the heap grows).
        #expect(output.stderr.contains(", too few for figures after GC"), "\(output.stderr)")
        let suspects = try Harness.jsonRows(output.stdout)
        #expect(suspects.first?["line"] as? Int == 13, "\(suspects)")
        #expect(!suspects.contains { $0["line"] as? Int == 14 })
    }

    /// Five GC cycles, but four early and one late, as a growing heap spaces them: figures after
    /// GC lag the live bytes by up to two cycles, so the warm-up cache's last step would come
    /// late and look like a leak. leaks says so and fits the live bytes: the leak alone is a
    /// suspect. report says the same.
    @Test func cyclesBunchedEarlyFallBackToLiveBytes() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("late.db")
        try Harness.trackLateCycles(db: db)
        let output = try Harness.luamem(["leaks", "--db", db.path, "--format", "json", "--all"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(
            output.stderr.contains(
                "of the 5 GC cycles in this window completed in its later half, too few for figures after GC"),
            "\(output.stderr)")
        let rows = try Harness.jsonRows(output.stdout)
        #expect(rows.first?["line"] as? Int == 11, "\(rows)")
        #expect(rows.first?["suspect"] as? String == "yes", "\(rows)")
        let cache = try #require(rows.first { $0["line"] as? Int == 12 })
        #expect(cache["suspect"] as? String == "no", "\(cache)")
        let page = directory.appendingPathComponent("late.html")
        let report = try Harness.luamem(["report", "--db", db.path, "-o", page.path])
        #expect(report.status == 0, "\(report.stderr)")
        let html = try String(contentsOf: page, encoding: .utf8)
        #expect(html.contains("GC cycles in this window completed in its later half, too few"))
    }

    @Test func historyShowsOneSiteOverTimeWithAChart() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("idle.lua", db: db, options: ["--interval", "0.05"], arguments: ["0.3"])
        let table = try Harness.luamem(["history", "--db", db.path, "idle.lua:4"])
        #expect(table.status == 0, "\(table.stderr)")
        #expect(table.stdout.contains("TIME (UTC)"))
        #expect(table.stdout.contains("▁") || table.stdout.contains("█"))
        let rows = try Harness.jsonRows(
            Harness.luamem([
                "history", "--db", db.path, "idle.lua:4", "--format", "json", "--top", "1000",
            ]).stdout)
        // One state: a row per snapshot, two that share a millisecond included (Series).
        let snapshots = try Harness.integer(db, "SELECT count(*) FROM snapshots")
        #expect(rows.count == Int(snapshots))
        #expect(
            rows.last?["live_bytes"] as? Int
                == Int(
                    try Harness.integer(
                        db,
                        "SELECT sum(live_bytes) FROM site_latest WHERE file LIKE '%idle.lua' AND line = 4"
                    )))
        let file = try Harness.luamem(["history", "--db", db.path, "idle.lua"])
        #expect(file.status == 0)
        let missing = try Harness.luamem(["history", "--db", db.path, "idle.lua:99"])
        #expect(missing.status != 0 && missing.stderr.contains("no allocation at idle.lua:99"))
    }

    @Test func runsAndSnapshotsListWhatTheFileHolds() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track(
            "idle.lua", db: db, options: ["--build", "b1", "--interval", "0.05"], arguments: ["0.2"]
        )
        try Harness.track("sites.lua", db: db, options: ["--build", "b2"])
        let runs = try Harness.jsonRows(
            Harness.luamem(["runs", "--db", db.path, "--format", "json"]).stdout)
        #expect(runs.map { $0["id"] as? Int } == [2, 1])
        #expect(runs[1]["build"] as? String == "b1")
        #expect((runs[1]["snapshots"] as? Int ?? 0) >= 3)
        #expect(
            (runs[0]["peak_live_bytes"] as? Int ?? 0) >= (runs[0]["final_live_bytes"] as? Int ?? 0))
        let only = try Harness.jsonRows(
            Harness.luamem(["runs", "--db", db.path, "--build", "b2", "--format", "json"]).stdout)
        #expect(only.count == 1)
        let snapshots = try Harness.jsonRows(
            Harness.luamem([
                "snapshots", "--db", db.path, "--build", "b1", "--format", "json", "--top", "100",
            ]).stdout)
        #expect(snapshots.first?["kind"] as? String == "start")
        #expect(snapshots.last?["kind"] as? String == "final")
        let csv = try Harness.luamem([
            "snapshots", "--db", db.path, "--run", "2", "--format", "csv",
        ])
        #expect(csv.stdout.hasPrefix("id,state,time,kind,live_bytes,gc_live_bytes"))
        let markdown = try Harness.luamem(["runs", "--db", db.path, "--format", "markdown"])
        #expect(markdown.stdout.hasPrefix("| RUN | BUILD | NAME |"))
        let conflict = try Harness.luamem([
            "snapshots", "--db", db.path, "--run", "1", "--build", "b1",
        ])
        #expect(conflict.status != 0 && conflict.stderr.contains("--run cannot be used with --build"))
    }

    @Test func coloursOnlyOnATerminalAndNeverWithNoColor() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        let command = "\(Harness.luamemPath) query --db \(db.path) --top 3"
        let terminal = try Harness.run(
            "/usr/bin/script", ["-qec", command, "/dev/null"], environment: ["NO_COLOR": ""])
        #expect(terminal.stdout.contains("\u{1B}[31m"))
        let noColor = try Harness.run(
            "/usr/bin/script", ["-qec", command, "/dev/null"], environment: ["NO_COLOR": "1"])
        #expect(!noColor.stdout.contains("\u{1B}["))
        let piped = try Harness.luamem(
            ["query", "--db", db.path, "--top", "3"], environment: ["NO_COLOR": ""])
        #expect(!piped.stdout.contains("\u{1B}["))
    }

    @Test func anOlderDatabaseIsUpgraded() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("old.db")
        let first = try String(
            contentsOf: Harness.repositoryRoot.appendingPathComponent(
                "Migrations/0001_initial.sql"), encoding: .utf8)
        let created = try Harness.run(
            "/usr/bin/sqlite3",
            [
                db.path,
                "PRAGMA application_id = \(0x4C4D_454D); \(first) PRAGMA user_version = 1;",
            ])
        #expect(created.status == 0, "\(created.stderr)")
        let runs = try Harness.luamem(["runs", "--db", db.path])
        #expect(runs.status == 0, "\(runs.stderr)")
        #expect(try Harness.integer(db, "PRAGMA user_version") == Int64(Store.latestVersion))
        try Harness.track("sites.lua", db: db)
        #expect(try Harness.integer(db, "SELECT count(*) FROM site_changes") > 0)
    }

    @Test func durationsAndTimesAreParsedOrRefused() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        for good in [
            "30s", "15m", "1h", "2d", "1h30m", "-1h", "2026-11-24T10:00:00Z", "2026-11-24 10:00",
            "2026-11-24",
        ] {
            let output = try Harness.luamem(["query", "--db", db.path, "--since", good])
            #expect(output.status == 0, "\(good): \(output.stderr)")
        }
        for bad in ["1x", "soon", "h", "2026-13-40", "10"] {
            let output = try Harness.luamem(["query", "--db", db.path, "--since", bad])
            #expect(output.status != 0, "\(bad)")
            #expect(output.stderr.contains("is not a time"), "\(bad): \(output.stderr)")
        }
    }
}

/// `luamem export`: folded stacks for flame graphs, and the per-site table.
@Suite struct ExportTests {
    @Test func foldedStacksSumToTheLiveTotal() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("depth.lua", db: db, options: ["--depth", "3"])
        let output = try Harness.luamem(["export", "--db", db.path])
        #expect(output.status == 0, "\(output.stderr)")
        let lines = output.stdout.split(separator: "\n")
        var total: Int64 = 0
        for line in lines {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "\(line)")
            total += Int64(parts[1]) ?? -1_000_000
        }
        #expect(
            total
                == (try Harness.integer(db, "SELECT live_bytes FROM snapshots WHERE kind = 'final'"))
        )
        let file = Harness.fixture("depth.lua")
        #expect(lines.contains { $0.hasPrefix("\(file):3;\(file):2;\(file):1 ") })
        let alloc = try Harness.luamem(["export", "--db", db.path, "--weight", "alloc"])
        #expect(alloc.stdout.split(separator: "\n").count >= lines.count)
        let json = try Harness.jsonRows(
            Harness.luamem(["export", "--db", db.path, "--format", "json"]).stdout)
        #expect(json.contains { $0["line"] as? Int == 1 && $0["type"] as? String == "table" })
        let csv = try Harness.luamem(["export", "--db", db.path, "--format", "csv"])
        #expect(csv.stdout.hasPrefix("stack,source,line,function,c_function,type,live_bytes"))
        // -o writes the same text into a file.
        let file2 = directory.appendingPathComponent("stacks.folded")
        #expect(try Harness.luamem(["export", "--db", db.path, "-o", file2.path]).status == 0)
        #expect(try String(contentsOf: file2, encoding: .utf8) == output.stdout)
    }

    /// `go tool pprof` (Debian's golang-go) reads the profile and names the planted lines with
    /// the bytes and counts luamem query reports for them.
    @Test func pprofProfilesAreReadByGoToolPprof() throws {
        let go = "/usr/bin/go"
        try #require(FileManager.default.fileExists(atPath: go), "install golang-go (scripts/install-deps.sh --tests)")
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("sites.lua", db: db)
        let profile = directory.appendingPathComponent("sites.pb.gz")
        let written = try Harness.luamem(["export", "--db", db.path, "--format", "pprof", "-o", profile.path])
        #expect(written.status == 0, "\(written.stderr)")
        let bytes = try Data(contentsOf: profile)
        #expect(bytes.starts(with: [0x1f, 0x8b]), "not gzipped")
        let query = try Harness.jsonRows(
            Harness.luamem(["query", "--db", db.path, "--format", "json", "--top", "100"]).stdout)
        func pprofTop(_ index: String) throws -> String {
            let output = try Harness.run(
                go,
                [
                    "tool", "pprof", "-top", "-lines", "-nodefraction=0", "-sample_index=\(index)",
                    "-unit=B", profile.path,
                ],
                environment: ["HOME": directory.path])
            #expect(output.status == 0, "\(output.stderr)")
            return output.stdout
        }
        /// The cumulative value pprof gives the line `file:line` (what was allocated there,
        /// in a C function it called included), without its unit.
        func cumulative(_ top: String, _ line: Int) -> Int? {
            top.split(separator: "\n").first { $0.hasSuffix("sites.lua:\(line)") }
                .map { $0.split(separator: " ") }.flatMap { $0.count > 3 ? $0[3] : nil }
                .flatMap { Int($0.trimmingCharacters(in: .letters)) }
        }
        let inuse = try pprofTop("inuse_space"), allocated = try pprofTop("alloc_space")
        let objects = try pprofTop("alloc_objects")
        #expect(inuse.contains("Type: inuse_space"))
        for line in [5, 18, 22] {
            let row = try #require(query.first { $0["line"] as? Int == line }, "line \(line)")
            #expect(cumulative(inuse, line) == row["gc_live_bytes"] as? Int, "line \(line): \(inuse)")
            #expect(cumulative(allocated, line) == row["alloc_bytes"] as? Int, "line \(line)")
            #expect(cumulative(objects, line) == row["alloc_count"] as? Int, "line \(line)")
        }
        // Functions by name: the line of keep_tables, the coroutine's anonymous function.
        #expect(inuse.contains("keep_tables \(Harness.fixture("sites.lua")):5"), "\(inuse)")
        #expect(inuse.contains("function@\(Harness.fixture("sites.lua")):20 "), "\(inuse)")

        // A sampled run: the estimates, and the sampling interval as the period.
        let sampled = directory.appendingPathComponent("sampled.db")
        try Harness.track("sites.lua", db: sampled, options: ["--sample", "1KiB"])
        let sampledProfile = directory.appendingPathComponent("sampled.pb.gz")
        #expect(
            try Harness.luamem([
                "export", "--db", sampled.path, "--format", "pprof", "-o", sampledProfile.path,
            ]).status == 0)
        let raw = try Harness.run(go, ["tool", "pprof", "-raw", sampledProfile.path],
            environment: ["HOME": directory.path])
        #expect(raw.stdout.contains("Period: 1024"), "\(raw.stdout.prefix(400))")
        #expect(raw.stdout.contains("PeriodType: space bytes"))
    }
}
