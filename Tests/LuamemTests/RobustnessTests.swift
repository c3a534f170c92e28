import Foundation
import LuamemStore
import Synchronization
import Testing

/// Random input never gets past a clean error, and a real Lua code base runs unchanged.
@Suite struct RobustnessTests {
    /// splitmix64: a fixed seed gives the same cases on every run.
    struct Random {
        var state: UInt64
        mutating func next(_ bound: Int) -> Int {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return Int((z ^ (z >> 31)) % UInt64(bound))
        }
        mutating func pick<T>(_ values: [T]) -> T { values[next(values.count)] }
    }

    @Test func randomCommandLinesWorkOrFailCleanly() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("fuzz.db")
        try Harness.track("sites.lua", db: db, options: ["--build", "v"])
        try Harness.track("idle.lua", db: db, options: ["--interval", "0.05"], arguments: ["0.2"])
        let commands = [
            "query", "diff", "leaks", "history", "runs", "snapshots", "run", "bogus", "--help",
        ]
        let words = [
            "--db", db.path, db.path, "--top", "-1", "0", "5", "abc", "--since", "1h", "-2h",
            "yesterday",
            "--until", "--run", "1", "99", "--build", "v", "x", "--format", "json", "csv",
            "markdown",
            "xml", "--by", "type", "file", "function", "colour", "--base", "run:1", "build:v",
            "run:x",
            "--head", "snapshot:1", "snapshot:-3", "--fail-above", "5%", "lots", "1KiB", "--at",
            "peak",
            "30s", "--state", "main", "sites.lua", "--current", "--all", "--depth", "33",
            "--interval",
            "é", "", "sites.lua:5", "--max-sites", "--max-db-size", "-", "--", "=", "%", "1e400",
            "/nonexistent/x.db", directory.path, "--version",
        ]
        var random = Random(state: 20261125)
        for _ in 0..<150 {
            var arguments = [random.pick(commands)]
            for _ in 0..<random.next(6) { arguments.append(random.pick(words)) }
            if arguments[0] == "run" {
                arguments += [
                    "--db", directory.appendingPathComponent("run.db").path,
                    Harness.fixture("args.lua"),
                ]
            }
            let output = try Harness.luamem(arguments, in: directory)
            #expect(
                [0, 1, 2, 64].contains(output.status),
                "\(arguments): status \(output.status)\n\(output.stderr)")
            for crash in [
                "Fatal error", "Program crashed", "Backtrace", "Stack dump", "Segmentation",
            ] {
                #expect(!output.stderr.contains(crash), "\(arguments): \(output.stderr)")
            }
        }
    }

    @Test func randomModuleOptionsWorkOrFailCleanly() throws {
        let library = EmbeddingTests.library
        let directory = try Harness.temporaryDirectory()
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("luamem.so").path, withDestinationPath: library
        )
        for seed in 1...3 {
            let output = try Harness.run(
                "/usr/bin/lua5.3",
                [Harness.fixture("module_fuzz.lua"), directory.path, String(seed)],
                in: directory, environment: ["LUA_CPATH": directory.path + "/?.so"])
            #expect(output.status == 0, "seed \(seed): \(output.stderr)")
            #expect(output.stdout == "fuzz ok\ttrue\ttrue\ttrue\n", "seed \(seed)")
        }
    }

    @Test func luacheckGivesTheSameReportUnderTheTracker() throws {
        let luacheck = "/usr/bin/luacheck"
        try #require(
            FileManager.default.fileExists(atPath: luacheck),
            "install lua-check (scripts/install-deps.sh)")
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("luacheck.db")
        let environment = ["LUA_PATH": "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"]
        let arguments = [
            luacheck, "--no-color", "--codes", "--no-cache", "/usr/share/lua/5.1/luacheck",
        ]
        let plain = try Harness.run("/usr/bin/lua5.3", arguments, environment: environment)
        let tracked = try Harness.luamem(
            ["run", "--db", db.path] + arguments, environment: environment)
        #expect(plain.stdout.contains("in 54 files") || plain.stdout.contains(" files"))
        #expect(tracked.stdout == plain.stdout)
        #expect(tracked.status == plain.status)
        #expect(
            try Harness.integer(
                db, "SELECT count(DISTINCT file) FROM site_latest WHERE file LIKE '%luacheck/%'")
                >= 20)
    }

    /// Every integer column of a real database set to Int64's limits (and to text), one column
    /// at a time: every reading command shows the figures or refuses with one line, never traps.
    @Test func mutatedDatabasesNeverCrashTheReadingCommands() throws {
        let directory = try Harness.temporaryDirectory()
        let base = directory.appendingPathComponent("base.db")
        _ = try Harness.luamem([
            "run", "--db", base.path, "--interval", "0.05", Harness.fixture("steady.lua"), "0.3",
        ])
        try Harness.track("sites.lua", db: base, options: ["--build", "b2"])
        _ = try Harness.run("/usr/bin/sqlite3", [base.path, "PRAGMA wal_checkpoint(TRUNCATE)"])
        let columns = [
            "site_stats": ["live_bytes", "live_count", "alloc_bytes", "alloc_count", "gc_live_bytes", "type", "site_id"],
            "site_rollups": ["live_bytes", "gc_live_bytes", "level"],
            "snapshots": ["time_ms", "live_bytes", "peak_bytes", "gc_live_bytes", "gc_cycles", "site_rows"],
            "runs": ["started_ms", "ended_ms", "pid"],
            "states": ["started_ms", "closed_ms"],
            "frames": ["line", "line_defined"],
            "sites": ["frame_id"],
        ]
        let mutations = columns.sorted { $0.key < $1.key }.flatMap { table, names in
            names.flatMap { column in
                ["9223372036854775807", "-9223372036854775808", "'x'"].map {
                    // OR IGNORE: rows whose key would collide keep their value.
                    "UPDATE OR IGNORE \(table) SET \(column) = \($0)"
                }
            }
        }
        let commands: [[String]] = [
            ["query"], ["query", "--by", "type", "--fail-above", "5%"],
            ["diff", "--base", "run:1", "--head", "run:2"], ["leaks", "--all"],
            ["history", "sites.lua"], ["runs"], ["snapshots"], ["report", "-o", "-"],
            ["export", "--format", "json"],
        ]
        let failures = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: mutations.count) { index in
            let db = directory.appendingPathComponent("m\(index).db")
            do {
                try FileManager.default.copyItem(at: base, to: db)
                try Database(path: db.path, mode: .readWrite).execute(mutations[index])
                for command in commands {
                    let output = try Harness.luamem(command + ["--db", db.path])
                    let clean =
                        [0, 1, 2].contains(output.status) && !output.signaled
                        && (output.status == 0 || output.status == 1
                            || (output.stderr.hasPrefix("Error: ")
                                && output.stderr.split(separator: "\n").count == 1))
                    if !clean {
                        failures.withLock {
                            $0.append("\(mutations[index]); \(command): \(output.status) \(output.stderr)")
                        }
                    }
                }
            } catch {
                failures.withLock { $0.append("\(mutations[index]): \(error)") }
            }
        }
        #expect(failures.withLock { $0 } == [])
    }
}
