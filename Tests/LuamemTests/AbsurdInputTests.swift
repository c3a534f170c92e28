import Foundation
import Testing

/// Numbers past every sensible range, odd bytes in labels and paths that are not files: each is
/// a one-line error or clamped, in the CLI, in `luamem.start{}` and in `LUAMEM_*` variables;
/// nothing traps, nothing writes somewhere unexpected.
@Suite struct AbsurdInputTests {
    private static let huge = "99999999999999999999"

    /// A directory with a small real run in `a.db`.
    private func recorded() throws -> (URL, URL) {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("a.db")
        try Harness.track("sites.lua", db: db)
        return (directory, db)
    }

    /// No Swift runtime failure (exit 132, "Fatal error"), and any error is one line.
    private func expectClean(_ output: ProcessOutput, _ command: [String]) {
        #expect(!output.signaled && output.status != 132, "\(command): \(output.stderr)")
        #expect(!output.stderr.contains("Fatal error"), "\(command): \(output.stderr)")
        if output.status != 0 {
            #expect(output.stderr.hasPrefix("Error: "), "\(command): \(output.stderr)")
        }
    }

    @Test func hugeNumbersInRunOptionsAreOneLineErrors() throws {
        let (_, db) = try recorded()
        let script = Harness.fixture("sites.lua")
        for option in [
            ["--interval", "1e16"], ["--max-db-size", Self.huge], ["--sample", "9000000000G"],
            ["--max-sites", "4611686018427387904"], ["--sample", "2GiB"], ["--interval", "inf"],
        ] {
            let command = ["run", "--db", db.path] + option + [script]
            let output = try Harness.luamem(command)
            expectClean(output, command)
            #expect(output.status == 64, "\(command)")
            #expect(output.stderr.contains(option[0]), "\(command): \(output.stderr)")
        }
    }

    @Test func hugeTimesCountsAndThresholdsAreErrorsOrClamped() throws {
        let (_, db) = try recorded()
        let commands: [[String]] = [
            ["query", "--since", Self.huge + "d"], ["query", "--until", Self.huge + "d"],
            ["query", "--since", "-" + Self.huge + "s"], ["query", "--since", "9223372036854775807s"],
            ["diff", "--base", "run:1", "--head", "run:1", "--at", Self.huge + "d"],
            ["diff", "--base", "-99999999999999h", "--head", "run:1"],
            ["prune", "--older-than", Self.huge + "d"], ["leaks", "--since", Self.huge + "d"],
            ["history", "sites.lua", "--since", Self.huge + "d"],
            ["query", "--fail-above", "99999999999999999999999"],
            ["query", "--fail-above", "99999999999G"],
            ["query", "--fail-above", "99999999999999999999999%"],
            ["query", "--top", "4611686018427387904"], ["leaks", "--top", "9223372036854775807"],
            ["report", "--top", "4611686018427387904", "-o", db.path + ".html"],
            ["query", "--run", Self.huge], ["diff", "--base", "snapshot:9223372036854775807", "--head", "run:1"],
        ]
        for command in commands {
            let output = try Harness.luamem(command + ["--db", db.path])
            expectClean(output, command)
        }
        // A window longer than any history is the whole history.
        let all = try Harness.luamem(["query", "--db", db.path, "--since", Self.huge + "d"])
        let plain = try Harness.luamem(["query", "--db", db.path])
        #expect(all.status == 0 && all.stdout == plain.stdout)
    }

    @Test func pathsThatAreNotDatabaseFilesAreRefused() throws {
        let directory = try Harness.temporaryDirectory()
        let fifo = directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let script = Harness.fixture("sites.lua")
        for (path, problem) in [
            (fifo, "it is a FIFO"), (directory.path, "it is a directory"),
            ("/dev/null", "it is a device"), ("", "the path is empty"),
        ] {
            let run = try Harness.luamem(["run", "--db", path, script])
            #expect(run.status == 64 && run.stderr.contains(problem), "\(path): \(run.stderr)")
            let query = try Harness.luamem(["query", "--db", path])
            #expect(query.status == 2 && query.stderr.contains(problem), "\(path): \(query.stderr)")
            #expect(query.stderr.split(separator: "\n").count == 1)
        }
        // SQLite URIs and ":memory:" are plain file names: what is recorded persists there.
        for name in ["file:x.db?mode=memory", ":memory:"] {
            let run = try Harness.luamem(["run", "--db", name, script], in: directory)
            #expect(run.status == 0, "\(run.stderr)")
            let file = directory.appendingPathComponent(name)
            #expect(try Harness.integer(file, "SELECT count(*) FROM runs") == 1)
        }
    }

    @Test func reportWritesFilesThroughLinksAndRefusesOtherNodes() throws {
        let (directory, db) = try recorded()
        let stdout = try Harness.luamem(["report", "--db", db.path, "-o", "-"])
        #expect(stdout.status == 0 && stdout.stdout.hasPrefix("<!DOCTYPE html>"))
        let fifo = directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        for (path, kind) in [(fifo, "a FIFO"), (directory.path, "a directory"), ("/dev/full", "a device")] {
            let output = try Harness.luamem(["report", "--db", db.path, "-o", path])
            #expect(output.status == 2, "\(path)")
            #expect(output.stderr == "Error: cannot write \(path): it is \(kind); give a file path or - for standard output\n")
        }
        var info = stat()
        #expect(stat("/dev/full", &info) == 0 && info.st_mode & S_IFMT == S_IFCHR)
        let link = directory.appendingPathComponent("link.html").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "page.html")
        let linked = try Harness.luamem(["report", "--db", db.path, "-o", link])
        #expect(linked.status == 0, "\(linked.stderr)")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == "page.html")
        let page = try String(contentsOfFile: directory.appendingPathComponent("page.html").path, encoding: .utf8)
        #expect(page.hasPrefix("<!DOCTYPE html>"))
    }

    @Test func labelsMayHoldAnyCharacter() throws {
        let directory = try Harness.temporaryDirectory()
        let db = directory.appendingPathComponent("odd\u{1F}name.db")
        let output = try Harness.luamem([
            "run", "--db", db.path, "--build", "a\u{1F}b", "--name", "n\u{1F}", "--",
            Harness.fixture("sites.lua"),
        ])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(try Harness.rows(db, "SELECT build, name FROM runs") == [["a\u{1F}b", "n\u{1F}"]])
    }

    private func moduleDirectory() throws -> URL {
        let directory = try Harness.temporaryDirectory()
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("luamem.so").path,
            withDestinationPath: EmbeddingTests.library)
        return directory
    }

    @Test func badEnvironmentVariablesLeaveTheProgramRunningUntracked() throws {
        let modules = try moduleDirectory()
        let db = modules.appendingPathComponent("env.db")
        for (variable, value) in [
            ("LUAMEM_INTERVAL", "abc"), ("LUAMEM_INTERVAL", "1e99"), ("LUAMEM_SAMPLE", "lots"),
            ("LUAMEM_SAMPLE", "9000000000G"), ("LUAMEM_DEPTH", "99"), ("LUAMEM_DEPTH", "2x"),
        ] {
            let output = try Harness.run(
                "/usr/bin/lua5.3", ["-l", "luamem.auto", "-e", "print('ran')"],
                environment: ["LUA_CPATH": modules.path + "/?.so", "LUAMEM_DB": db.path, variable: value])
            #expect(output.status == 0 && output.stdout == "ran\n")
            #expect(
                output.stderr.hasPrefix("luamem: \(variable) must be")
                    && output.stderr.hasSuffix("got '\(value)'; not tracking\n"), "\(output.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: db.path))
        // Sizes are read as `luamem run --sample` reads them: 4KiB is 4096 bytes, not 4.
        let sized = try Harness.run(
            "/usr/bin/lua5.3", ["-l", "luamem.auto", "-e", "print('ran')"],
            environment: ["LUA_CPATH": modules.path + "/?.so", "LUAMEM_DB": db.path, "LUAMEM_SAMPLE": "4KiB"])
        #expect(sized.status == 0 && sized.stderr == "")
        #expect(try Harness.rows(db, "SELECT options FROM runs") == [[#"{"interval_ms":10000,"depth":1,"sample":4096}"#]])
    }

    /// Memory runs out (ulimit -v) while new lines allocate, so the tracker's own tables cannot
    /// grow: under `luamem run` and with the module attached to stock lua5.3, the program sees
    /// Lua's "not enough memory" errors and carries on, never a trap, and the final snapshot
    /// is written once memory is back.
    @Test func runningOutOfMemoryNeverKillsTheHost() throws {
        let modules = try moduleDirectory()
        let script = Harness.fixture("squeeze.lua")
        for attached in [false, true] {
            let db = modules.appendingPathComponent(attached ? "attached.db" : "run.db")
            let command =
                attached
                ? "exec /usr/bin/lua5.3 -l luamem.auto \(script)"
                : "exec \(Harness.luamemPath) run --db \(db.path) --interval 3600 \(script)"
            let output = try Harness.run(
                "/bin/sh", ["-c", "ulimit -v 700000; " + command],
                environment: [
                    "LUA_CPATH": modules.path + "/?.so", "LUAMEM_DB": db.path,
                    "LUAMEM_INTERVAL": "3600",
                ])
            #expect(output.status == 0, "attached \(attached): \(output.stderr)")
            let figures = try #require(
                output.stdout.firstMatch(of: #/filled (\d+), chunks (\d+), errors (\d+)/#),
                "\(output.stdout) \(output.stderr)")
            // Memory did run short, and some chunks still ran.
            #expect(Int(figures.2)! > 0 && Int(figures.3)! > 0, "\(output.stdout)")
            #expect(
                output.stderr.split(separator: "\n").allSatisfy { $0.hasPrefix("luamem: ") },
                "\(output.stderr)")
            #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots WHERE kind = 'final'") == 1)
        }
    }

    /// A host that runs one state per service, under an address-space limit: a tracked state
    /// reserves little more than its pool's pages (its tables once took 16 MiB of address space
    /// each, sized for the most sites there can be, and the 600 states below died of SIGILL), and
    /// past the limit `luamem_newstate` returns NULL with a message, never a trap.
    @Test func manyStatesUnderAnAddressSpaceLimitFitOrFailCleanly() throws {
        let directory = try Harness.temporaryDirectory()
        let host = try Harness.buildHost(
            Harness.repositoryRoot.appendingPathComponent("Benchmarks/host/many_states.c").path,
            in: directory)
        let fits = try Harness.run(
            "/bin/sh",
            ["-c", "ulimit -v 1500000; exec \(host) tracked 600 \(directory.path)/fits.db"])
        #expect(fits.status == 0 && fits.stdout.hasPrefix("tracked 600 states: RSS"), "\(fits.stderr)")
        #expect(fits.stderr == "")
        #expect(
            try Harness.integer(
                directory.appendingPathComponent("fits.db"),
                "SELECT count(*) FROM states WHERE closed_ms IS NOT NULL") == 600)
        let over = try Harness.run(
            "/bin/sh",
            ["-c", "ulimit -v 300000; exec \(host) tracked 2000 \(directory.path)/over.db"])
        #expect(!over.signaled && over.status == 1, "\(over)")
        #expect(over.stderr == "many_states: cannot create a Lua state: out of memory\n", "\(over.stderr)")
    }

    @Test func startRejectsUnknownOptionsAndHugeNumbers() throws {
        let modules = try moduleDirectory()
        let db = modules.appendingPathComponent("s.db").path
        let script = """
            local luamem = require "luamem"
            for _, options in ipairs {
                { db = "\(db)", intervall = 3 }, { db = "\(db)", [1] = 3 },
                { db = "\(db)", sample = 1e300 }, { db = "\(db)", interval = 1e300 },
                { db = "\(db)", depth = 1e300 }, { db = "\(db)", depth = 0/0 },
            } do print(select(2, pcall(luamem.start, options))) end
            print(luamem.start { db = "" })
            """
        let output = try Harness.run(
            "/usr/bin/lua5.3", ["-"], environment: ["LUA_CPATH": modules.path + "/?.so"], stdin: script)
        #expect(output.status == 0, "\(output.stderr)")
        let prefix = "bad argument #1 to 'luamem.start' "
        #expect(
            output.stdout.split(separator: "\n").map(String.init) == [
                prefix + "(unknown option 'intervall' (options: db, build, name, interval, depth, sample, "
                    + "keep, keep_full, max_db_size, host))",
                prefix + "(options are named; got a number key)",
                prefix + "(option 'sample' must be a number of bytes from 0 to 1GiB)",
                prefix + "(option 'interval' must be a positive number of seconds up to 1e9)",
                prefix + "(option 'depth' must be an integer from 1 to 32)",
                prefix + "(option 'depth' must be an integer from 1 to 32)",
                "nil\tcannot use '' as the database: the path is empty",
            ])
    }
}

/// Chunk names with any bytes: stored as they are, kept apart, printed safely in every format.
@Suite struct OddNameTests {
    private func recorded() throws -> URL {
        let db = try Harness.temporaryDirectory().appendingPathComponent("names.db")
        try Harness.track("odd_names.lua", db: db)
        return db
    }

    @Test func namesAreStoredAsTheirBytesAndStayDistinct() throws {
        let db = try recorded()
        let sources = try Harness.rows(db, "SELECT DISTINCT hex(source) FROM frames").map { $0[0]! }
        #expect(sources.contains("3D626164FF6E616D65"))  // "=bad\xFFname"
        #expect(sources.contains("3D626164FE6E616D65"))  // "=bad\xFEname"
        #expect(
            try Harness.rows(
                db,
                "SELECT live_count FROM site_latest WHERE type = 'table' AND file LIKE 'bad%' "
                    + "ORDER BY live_count") == [["14"], ["15"]])
    }

    @Test func everyFormatStaysWellFormed() throws {
        let db = try recorded()
        let arguments = ["query", "--db", db.path, "--top", "100"]
        let table = try Harness.luamem(arguments)
        #expect(table.status == 0, "\(table.stderr)")
        #expect(!table.stdout.contains("\u{1B}"))
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.contains { $0.contains("a\\nb:1") })
        #expect(lines.contains { $0.contains("\\x1B[31mred:1") })
        #expect(lines.contains { $0.contains("bad\\xFFname:1") })
        #expect(lines.contains { $0.contains("bad\\xFEname:1") })
        // The 1,200-character name keeps its end, within the cell limit.
        let long = try #require(lines.first { $0.contains("xxxend:1") })
        #expect(long.contains("...xxx") && !long.contains(String(repeating: "x", count: 100)))

        let json = try Harness.luamem(arguments + ["--format", "json"])
        let rows = try Harness.jsonRows(json.stdout)
        let sources = rows.compactMap { $0["source"] as? String }
        #expect(sources.contains("a\nb"))
        #expect(sources.contains("\u{1B}[31mred"))
        #expect(sources.contains(String(repeating: "x", count: 1200) + "end"))

        let markdown = try Harness.luamem(arguments + ["--format", "markdown"])
        let body = markdown.stdout.split(separator: "\n", omittingEmptySubsequences: false)
            .drop { !$0.hasPrefix("|") }.filter { !$0.isEmpty }
        #expect(body.count == rows.count + 2)
        #expect(body.allSatisfy { $0.hasPrefix("|") && $0.hasSuffix("|") })

        let folded = try Harness.luamem(["export", "--db", db.path])
        #expect(!folded.stdout.contains("\u{1B}"))
        for line in folded.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2 && Int64(parts[1]) != nil, "\(line)")
        }
        #expect(folded.stdout.contains("semi:colon_name:1"))
    }
}
