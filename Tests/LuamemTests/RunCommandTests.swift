import Foundation
import Testing

/// `luamem run` behaves like `lua5.3 script.lua args…` and writes start, interval and final
/// snapshots.
@Suite struct RunCommandTests {
    @Test func scriptSeesTheSameArgumentsAndLibrariesAsUnderLua() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let script = Harness.fixture("args.lua")
        let tracked = try Harness.track("args.lua", db: db, arguments: ["one", "--two", "3"])
        let plain = try Harness.run("/usr/bin/lua5.3", [script, "one", "--two", "3"])
        #expect(plain.status == 0)
        #expect(tracked.stdout == plain.stdout)
        #expect(tracked.stdout.hasPrefix("3\t\(script)\tone\t--two\t3\tone\t--two\t3"))
    }

    /// The script runs in luamem-run: no Foundation in its process, no hand-over variable left.
    @Test func scriptsRunInTheLeanExecutable() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let tracked = try Harness.track("maps.lua", db: db, options: ["--name", "lean"])
        #expect(tracked.stdout == "false\tnil\n", "\(tracked.stdout)")
        #expect(try Harness.rows(db, "SELECT name FROM runs") == [["lean"]])
        // Run directly, it takes the same options.
        let runner = Harness.productsDirectory.appendingPathComponent("luamem-run").path
        let direct = try Harness.run(
            runner,
            [
                "--db", db.path, "--interval=0.05", "--name", "direct", "--sample", "1KiB",
                Harness.fixture("args.lua"), "one", "--two",
            ], environment: ["LUAMEM_SAMPLE_SEED": "11"])
        #expect(direct.status == 0, "\(direct.stderr)")
        #expect(direct.stdout.hasPrefix("2\t\(Harness.fixture("args.lua"))\tone\t--two"))
        #expect(
            try Harness.rows(db, "SELECT name, options FROM runs WHERE id = 2")
                == [["direct", "{\"interval_ms\":50,\"depth\":1,\"sample\":1024,\"sample_seed\":11}"]])
        for (arguments, message) in [
            (["--depth", "0", "x.lua"], "--depth must be between 1 and"),
            (["--colour", "red", "x.lua"], "unknown option '--colour'"),
        ] {
            let bad = try Harness.run(runner, arguments)
            #expect(bad.status == 64 && bad.stderr.hasPrefix("Error: \(message)"), "\(bad.stderr)")
        }
    }

    @Test func runtimeErrorPrintsTheSameTracebackAndStatusAsLua() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let script = Harness.fixture("fails.lua")
        let tracked = try Harness.luamem(["run", "--db", db.path, script])
        let plain = try Harness.run("/usr/bin/lua5.3", [script])
        #expect(tracked.status == 1)
        #expect(plain.status == 1)
        #expect(tracked.stderr.hasPrefix("luamem: "))
        #expect(withoutProgramName(tracked.stderr) == withoutProgramName(plain.stderr))
        #expect(tracked.stderr.contains("stack traceback:"))
        // The run is still recorded, with its final snapshot.
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 1)
    }

    @Test func missingScriptOrSyntaxErrorFailsLikeLuaAndWritesNothing() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let missing = try Harness.luamem(["run", "--db", db.path, "no-such-script.lua"])
        #expect(missing.status == 1)
        #expect(
            missing.stderr == "luamem: cannot open no-such-script.lua: No such file or directory\n")

        let broken = directory.appendingPathComponent("broken.lua")
        try "local x = = 1\n".write(to: broken, atomically: true, encoding: .utf8)
        let tracked = try Harness.luamem(["run", "--db", db.path, broken.path])
        let plain = try Harness.run("/usr/bin/lua5.3", [broken.path])
        #expect(tracked.status == 1)
        #expect(withoutProgramName(tracked.stderr) == withoutProgramName(plain.stderr))
        #expect(!FileManager.default.fileExists(atPath: db.path))
    }

    @Test func osExitKeepsItsStatusAndWritesTheFinalSnapshot() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let output = try Harness.luamem(["run", "--db", db.path, Harness.fixture("exits.lua")])
        #expect(output.status == 3)
        let kinds = try Harness.rows(db, "SELECT kind FROM snapshots ORDER BY id").map { $0[0] }
        #expect(kinds == ["start", "final"])
        let kept = try Harness.integer(
            db,
            """
            SELECT live_count FROM site_latest WHERE file LIKE '%exits.lua' AND line = 2 AND type = 'table'
            """)
        #expect(kept == 25)
        #expect(
            try Harness.integer(db, "SELECT count(*) FROM runs WHERE ended_ms IS NOT NULL") == 1)
    }

    @Test func readsTheScriptFromStandardInput() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let output = try Harness.luamem(
            ["run", "--db", db.path, "-", "x"],
            stdin: "stdin_kept = { 1, 2 }\nprint('from stdin', ...)\n")
        #expect(output.status == 0)
        #expect(output.stdout == "from stdin\tx\n")
        #expect(
            try Harness.integer(db, "SELECT count(*) FROM frames WHERE file = 'stdin' AND line = 1")
                == 1)
    }

    @Test func writesSnapshotsAtStartEveryIntervalAndAtTheEnd() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        try Harness.track("idle.lua", db: db, options: ["--interval", "0.1"], arguments: ["0.6"])
        let kinds = try Harness.rows(db, "SELECT kind FROM snapshots ORDER BY id").map {
            $0[0] ?? ""
        }
        #expect(kinds.first == "start")
        #expect(kinds.last == "final")
        #expect(kinds.filter { $0 == "interval" }.count >= 3)
        let times = try Harness.rows(db, "SELECT time_ms FROM snapshots ORDER BY id").map {
            Int64($0[0]!)!
        }
        #expect(times == times.sorted())
    }

    /// The flusher is one thread named luamem-flusher, SCHED_BATCH (3) at the nice value of the
    /// program's own thread: at a lower priority, a program that flushes, starts or closes a
    /// state while the flusher writes waited for a thread that a busy machine hardly ran.
    @Test func theFlusherIsOneBatchThreadAtTheProgramsNiceValue() throws {
        let directory = try Harness.temporaryDirectory()
        for nice in ["0", "7"] {
            let db = directory.appendingPathComponent("threads\(nice).db")
            let output = try Harness.run(
                "/usr/bin/nice",
                ["-n", nice, Harness.luamemPath, "run", "--db", db.path, Harness.fixture("threads.lua")])
            #expect(output.status == 0, "\(output.stderr)")
            let threads = output.stdout.split(separator: "\n").map {
                $0.split(separator: "\t").map(String.init)
            }
            let own = try #require(threads.first)
            #expect(own.count == 3 && own[1] == nice && own[2] == "0", "\(threads)")
            let flushers = threads.filter { $0.first == "luamem-flusher" }
            #expect(flushers.count == 1, "\(threads)")
            #expect(flushers.first == ["luamem-flusher", nice, "3"], "\(threads)")
        }
    }

    /// The host label, set each way (--host, LUAMEM_HOST, `host` in start{}, LUAMEM_HOST for
    /// luamem.auto), else the machine's host name; every run gets a UUID of its own.
    @Test func hostLabelsAndRunIdentities() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("hosts.db")
        let modules = try Harness.temporaryDirectory()
        try FileManager.default.createSymbolicLink(
            atPath: modules.appendingPathComponent("luamem.so").path,
            withDestinationPath: EmbeddingTests.library)
        let lua = ["LUA_CPATH": modules.path + "/?.so"]
        #expect(try Harness.luamem(["run", "--db", db.path, "--host", "web-1", "-e", "x = 1"]).status == 0)
        #expect(
            try Harness.luamem(["run", "--db", db.path, "-e", "x = 1"], environment: ["LUAMEM_HOST": "web-2"])
                .status == 0)
        let started = try Harness.run(
            "/usr/bin/lua5.3",
            ["-e", "local m = require 'luamem' assert(m.start{ db = '\(db.path)', host = 'web-3' }) m.stop()"],
            environment: lua)
        #expect(started.status == 0, "\(started.stderr)")
        let auto = try Harness.run(
            "/usr/bin/lua5.3", ["-l", "luamem.auto", "-e", "x = 1"],
            environment: lua.merging(["LUAMEM_DB": db.path, "LUAMEM_HOST": "web-4"]) { $1 })
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(try Harness.luamem(["run", "--db", db.path, "-e", "x = 1"]).status == 0)
        var name = [CChar](repeating: 0, count: 256)
        gethostname(&name, 255)
        let runs = try Harness.jsonRows(
            Harness.luamem(["runs", "--db", db.path, "--format", "json"]).stdout)
        #expect(
            runs.reversed().map { $0["host"] as? String }
                == ["web-1", "web-2", "web-3", "web-4", String(cString: name)])
        let uuids = runs.compactMap { $0["uuid"] as? String }
        #expect(Set(uuids).count == 5)
        let pattern = try Regex("^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        #expect(uuids.allSatisfy { $0.wholeMatch(of: pattern) != nil }, "\(uuids)")
    }

    @Test func usesLuamemDBFromTheEnvironmentAndRecordsTheRun() throws {
        let directory = try Harness.temporaryDirectory()
        let output = try Harness.luamem(
            [
                "run", "--build", "abc123", "--name", "gate", "--depth", "2",
                Harness.fixture("depth.lua"),
            ],
            in: directory, environment: ["LUAMEM_DB": "from-env.db"])
        #expect(output.status == 0, "\(output.stderr)")
        let db = directory.appendingPathComponent("from-env.db")
        let run = try Harness.rows(
            db, "SELECT build, name, lua_version, options, pid, host FROM runs")
        #expect(run.count == 1)
        #expect(run[0][0] == "abc123")
        #expect(run[0][1] == "gate")
        #expect(run[0][2] == "Lua 5.3.6")
        #expect(run[0][3] == "{\"interval_ms\":10000,\"depth\":2,\"sample\":0}")
        #expect(
            try Harness.integer(
                db, "SELECT count(*) FROM states WHERE name = 'gate' AND closed_ms IS NOT NULL")
                == 1)
    }

    @Test func rejectsBadOptionsWithOneLine() throws {
        for (arguments, message) in [
            (["--depth", "0"], "--depth must be between 1 and 32"),
            (["--depth", "33"], "--depth must be between 1 and 32"),
            (["--interval", "0"], "--interval must be a positive number"),
            (["--interval=-1"], "--interval must be a positive number"),
        ] {
            let output = try Harness.luamem(["run"] + arguments + [Harness.fixture("args.lua")])
            #expect(output.status != 0)
            #expect(output.stderr.contains(message), "\(arguments): \(output.stderr)")
            #expect(!output.stderr.contains("Fatal error"))
        }
    }

    /// stderr without the leading "program: ", which is the only intended difference from lua5.3.
    private func withoutProgramName(_ text: String) -> Substring {
        guard let range = text.range(of: ": ") else { return Substring(text) }
        return text[range.upperBound...]
    }

    /// `luamem run [luamem options] [lua5.3 options] script [args]`: lua5.3's own options mean
    /// what they mean to lua5.3, and the `arg[-n]` prefix re-runs a tracked interpreter.
    @Test func luaOptionsWorkAsInLuaAndTheArgPrefixRerunsTrackedLua() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("m.db")
        let script = Harness.fixture("args.lua")
        let lua = ["-e", "x = 1", "-l", "string", "-e", "print('e', x, string ~= nil)", script, "a", "--b"]
        let plain = try Harness.run("/usr/bin/lua5.3", lua)
        let tracked = try Harness.luamem(["run", "--db", db.path] + lua)
        #expect(plain.status == 0 && tracked.status == 0, "\(tracked.stderr)")
        #expect(tracked.stdout == plain.stdout)
        #expect(tracked.stdout.hasPrefix("e\t1\ttrue\n"))

        let rerun = Harness.fixture("rerun.lua")
        let plainRerun = try Harness.run("/usr/bin/lua5.3", [rerun])
        let trackedRerun = try Harness.luamem(["run", "--db", db.path, "--build", "r", rerun])
        #expect(plainRerun.stdout == "child\t42\t1\nparent\ttrue\texit\t0\n")
        #expect(trackedRerun.stdout == plainRerun.stdout, "\(trackedRerun.stderr)")
        #expect(
            try Harness.rows(db, "SELECT name FROM runs WHERE build = 'r' ORDER BY id")
                == [["rerun.lua"], ["rerun.lua"]])

        // Standard input, -v, -E, and the usage message for a bad option.
        let fromStdin = try Harness.luamem(["run", "--db", db.path], stdin: "print('in', ...)")
        #expect(fromStdin.status == 0 && fromStdin.stdout == "in\n")
        let dash = try Harness.luamem(["run", "--db", db.path, "-", "1", "2"], stdin: "print(...)")
        #expect(dash.stdout == "1\t2\n")
        let version = try Harness.luamem(["run", "--db", db.path, "-v"])
        #expect(version.stdout == (try Harness.run("/usr/bin/lua5.3", ["-v"])).stdout)
        let noEnvironment = try Harness.luamem(
            ["run", "--db", db.path, "-E", "-e", "print(package.path:find('/nowhere') == nil)"],
            environment: ["LUA_PATH": "/nowhere/?.lua", "LUA_INIT": "print('init')"])
        #expect(noEnvironment.stdout == "true\n")
        for bad in [["-x"], ["-e"], ["-l", "-e"], ["--x", "s.lua"]] {
            let plainBad = try Harness.run("/usr/bin/lua5.3", bad)
            let trackedBad = try Harness.luamem(["run", "--db", db.path] + bad)
            if bad[0] == "--x" {
                // A word of luamem's own options' shape is one of luamem's.
                #expect(trackedBad.status == 64 && trackedBad.stderr.hasPrefix("Error: unknown option '--x'"))
                continue
            }
            #expect(trackedBad.status == plainBad.status, "\(bad)")
            #expect(
                trackedBad.stderr
                    == plainBad.stderr.replacingOccurrences(of: "/usr/bin/lua5.3", with: "luamem"), "\(bad)")
        }
    }
}

/// `luamem runs` tells a running run, a finished one and one whose process died apart, and
/// which run started which; the other commands warn when they read a lost run.
@Suite struct RunStatusTests {
    private func statuses(_ db: URL) throws -> [Int: (status: String, parent: Int?)] {
        let rows = try Harness.jsonRows(
            Harness.luamem(["runs", "--db", db.path, "--format", "json", "--top", "100"]).stdout)
        var result: [Int: (String, Int?)] = [:]
        for row in rows {
            result[row["id"] as! Int] = (row["status"] as! String, row["parent_run"] as? Int)
        }
        return result
    }

    @Test func runsShowRunningExitedKilledAndLost() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("status.db")
        _ = try Harness.luamem(["run", "--db", db.path, Harness.fixture("sites.lua")])  // 1
        _ = try Harness.luamem(["run", "--db", db.path, Harness.fixture("fails.lua")])  // 2
        let starter = try Harness.buildHost(Harness.fixture("default_signals.c"), in: directory)
        for signal in [SIGTERM, SIGKILL] {  // 3, 4
            let spin = try Harness.launch(
                starter, [Harness.luamemPath, "run", "--db", db.path, Harness.fixture("spin.lua")])
            Thread.sleep(forTimeInterval: 1)
            spin.send(signal)
            _ = spin.finish()
        }
        let running = try Harness.launch(
            starter, [Harness.luamemPath, "run", "--db", db.path, Harness.fixture("spin.lua"), "3"])
        Thread.sleep(forTimeInterval: 1)
        let seen = try statuses(db)
        _ = running.finish()
        #expect(seen[1]?.status == "exited 0")
        #expect(seen[2]?.status == "exited 1")
        #expect(seen[3]?.status == "killed (SIGTERM)")
        #expect(seen[4]?.status == "lost")
        #expect(seen[5]?.status == "running")
        #expect(try statuses(db)[5]?.status == "exited 0")
        let table = try Harness.luamem(["runs", "--db", db.path])
        #expect(table.stdout.contains("killed (SIGTERM)") && table.stdout.contains("lost"))
        let lost = try Harness.luamem(["query", "--db", db.path, "--run", "4"])
        #expect(lost.status == 0)
        #expect(
            lost.stderr.hasPrefix(
                "luamem: run 4 (spin.lua) ended without its final snapshot (its process died): "
                    + "its figures stop at its last snapshot\n"), "\(lost.stderr)")
    }

    @Test func childRunsNameTheirParentAndTheLatestTopLevelRunIsTheDefault() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("tree.db")
        let output = try Harness.luamem(["run", "--db", db.path, Harness.fixture("rerun.lua")])
        #expect(output.status == 0, "\(output.stderr)")
        let seen = try statuses(db)
        #expect(seen.count == 2)
        #expect(seen[1]?.parent == nil && seen[2]?.parent == 1)
        let query = try Harness.luamem(["query", "--db", db.path])
        #expect(query.stdout.hasPrefix("run 1 (rerun.lua): "), "\(query.stdout)")
        let table = try Harness.luamem(["runs", "--db", db.path])
        #expect(table.stdout.contains("↳ rerun.lua"))
    }
}

extension RunStatusTests {
    /// The script's own bytecode is loaded before any Lua frame exists: it is charged to a site
    /// that names the script, not to [host].
    @Test func loadingTheScriptIsChargedToTheScript() throws {
        let db = try Harness.temporaryDirectory().appendingPathComponent("load.db")
        try Harness.track("sites.lua", db: db)
        #expect(
            try Harness.integer(
                db, "SELECT sum(live_bytes) FROM site_latest WHERE file = 'sites.lua (load)' AND type = 'proto'")
                > 0)
        #expect(
            try Harness.integer(
                db,
                "SELECT coalesce(sum(live_bytes), 0) FROM site_latest WHERE file = '[host]' AND type = 'proto'")
                == 0)
        let query = try Harness.luamem(["query", "--db", db.path, "--top", "100"])
        #expect(query.stdout.split(separator: "\n").contains { $0.contains(" sites.lua (load)") })
    }
}
