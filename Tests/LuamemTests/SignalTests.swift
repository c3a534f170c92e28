import Foundation
import Testing

/// Signals and crashes: a process luamem runs a script in, or is loaded into, ends exactly as it
/// would without luamem (status, messages, core dumps), and `luamem run` keeps its final snapshot
/// where lua5.3 would have let the script clean up.
@Suite struct SignalTests {
    /// Runs `command` with its signals as a shell would start it and core dumps off.
    private func launch(_ command: [String], environment: [String: String] = [:]) throws -> Launched {
        let directory = try Harness.temporaryDirectory()
        let starter = try Harness.buildHost(Harness.fixture("default_signals.c"), in: directory)
        return try Harness.launch(starter, command, environment: environment)
    }

    /// Runs `command`, sends `signal` after a second, and waits for it to end.
    private func interrupt(_ command: [String], with signal: Int32) throws -> ProcessOutput {
        let launched = try launch(command)
        Thread.sleep(forTimeInterval: 1)
        launched.send(signal)
        return launched.finish()
    }

    private func trackedSpin(_ signal: Int32) throws -> (ProcessOutput, ProcessOutput, URL) {
        let db = try Harness.temporaryDirectory().appendingPathComponent("s.db")
        let plain = try interrupt(["/usr/bin/lua5.3", Harness.fixture("spin.lua")], with: signal)
        let tracked = try interrupt(
            [Harness.luamemPath, "run", "--db", db.path, "--interval", "0.1", Harness.fixture("spin.lua")],
            with: signal)
        return (plain, tracked, db)
    }

    private func finalSnapshots(_ db: URL) throws -> Int64 {
        try Harness.integer(
            db,
            "SELECT count(*) FROM snapshots s JOIN runs r ON r.id = s.run_id "
                + "WHERE s.kind = 'final' AND r.ended_ms IS NOT NULL")
    }

    @Test func sigquitEndsTheRunLikeLuaWithNoCrashReport() throws {
        let (plain, tracked, _) = try trackedSpin(SIGQUIT)
        #expect(plain.signaled && plain.status == SIGQUIT)
        #expect(tracked.signaled && tracked.status == SIGQUIT, "\(tracked)")
        #expect(tracked.stderr == plain.stderr, "\(tracked.stderr)")
    }

    @Test func sigintIsInterruptedLikeLuaAndWritesTheFinalSnapshot() throws {
        let (plain, tracked, db) = try trackedSpin(SIGINT)
        #expect(!plain.signaled && plain.status == 1)
        #expect(plain.stderr.hasPrefix("/usr/bin/lua5.3: ") && plain.stderr.contains("interrupted!"))
        #expect(!tracked.signaled && tracked.status == 1, "\(tracked)")
        let lines = tracked.stderr.split(separator: "\n")
        #expect(lines.first?.hasPrefix("luamem: ") == true, "\(tracked.stderr)")
        #expect(lines.first?.hasSuffix("interrupted!") == true, "\(tracked.stderr)")
        #expect(lines.dropFirst().first == "stack traceback:")
        #expect(try finalSnapshots(db) == 1)
    }

    @Test(arguments: [SIGTERM, SIGHUP])
    func terminationWritesTheFinalSnapshotThenDiesOfTheSignal(_ signal: Int32) throws {
        let (plain, tracked, db) = try trackedSpin(signal)
        #expect(plain.signaled && plain.status == signal)
        #expect(tracked.signaled && tracked.status == signal, "\(tracked)")
        #expect(tracked.stderr == "")
        #expect(try finalSnapshots(db) == 1)
        #expect(try Harness.integer(db, "SELECT count(*) FROM snapshots") >= 3)
    }

    /// Signals caught (SigCgt) and ignored (SigIgn), as bit masks of the standard signals (glibc
    /// keeps 32 and 33 for itself and sets them up when a second thread starts).
    private func signalMasks(_ output: ProcessOutput) throws -> (caught: UInt64, ignored: UInt64) {
        #expect(output.status == 0, "\(output.stderr)")
        func mask(_ name: String) throws -> UInt64 {
            let line = try #require(output.stdout.split(separator: "\n").first { $0.hasPrefix(name) })
            let hex = line.split(separator: "\t").last.map(String.init) ?? ""
            return try #require(UInt64(hex, radix: 16)) & 0x7fff_ffff
        }
        return (try mask("SigCgt:"), try mask("SigIgn:"))
    }

    @Test func luamemCatchesNoSignalOfItsOwnInAHost() throws {
        let modules = try Harness.temporaryDirectory()
        try FileManager.default.createSymbolicLink(
            atPath: modules.appendingPathComponent("luamem.so").path,
            withDestinationPath: EmbeddingTests.library)
        let script = Harness.fixture("signal_mask.lua")
        let plain = try signalMasks(launch(["/usr/bin/lua5.3", script]).finish())
        let auto = try signalMasks(
            launch(
                ["/usr/bin/lua5.3", "-l", "luamem.auto", script],
                environment: [
                    "LUA_CPATH": modules.path + "/?.so",
                    "LUAMEM_DB": modules.appendingPathComponent("a.db").path,
                ]
            ).finish())
        #expect(auto == plain)
        // luamem run catches SIGTERM and SIGHUP only, to write the final snapshot first.
        let run = try signalMasks(
            launch([Harness.luamemPath, "run", "--db", modules.appendingPathComponent("r.db").path, script])
                .finish())
        let termination: UInt64 = 1 << UInt64(SIGTERM - 1) | 1 << UInt64(SIGHUP - 1)
        #expect(run.caught == plain.caught | termination)
        #expect(run.ignored == plain.ignored)
    }

    @Test(arguments: [("abort", SIGABRT), ("segv", SIGSEGV)])
    func aCrashingHostPrintsOnlyItsOwnMessage(_ how: String, _ signal: Int32) throws {
        let directory = try Harness.temporaryDirectory()
        let host = try Harness.buildHost(Harness.fixture("crash_host.c"), in: directory)
        let output = try launch([host, directory.path + "/c.db", how]).finish()
        #expect(output.signaled && output.status == signal, "\(output)")
        #expect(output.stderr == "crash_host: crashing by \(how)\n")
    }

    @Test func luamemResumeAcceptsNullFrom() throws {
        let directory = try Harness.temporaryDirectory()
        let host = try Harness.buildHost(Harness.fixture("crash_host.c"), in: directory)
        let db = directory.appendingPathComponent("c.db")
        let output = try Harness.run(host, [db.path, "resume"])
        #expect(output.status == 0 && !output.signaled, "\(output)")
        #expect(output.stdout == "resumed\n")
        #expect(
            try Harness.integer(
                db,
                "SELECT sum(live_count) FROM site_latest WHERE type = 'table' "
                    + "AND file LIKE '[string \"local t = {}%'") == 51)
    }

    /// os.exit, coroutine.resume and coroutine.wrap are luamem's own copies when tracked; called
    /// wrongly they must say what the stock ones say, and a failed os.exit changes nothing.
    @Test func replacedFunctionsFailWithTheStockMessages() throws {
        let directory = try Harness.temporaryDirectory()
        let script = Harness.fixture("stock_errors.lua")
        let plain = try Harness.run("/usr/bin/lua5.3", [script])
        #expect(plain.status == 0, "\(plain.stderr)")
        let tracked = try Harness.luamem(
            ["run", "--db", directory.appendingPathComponent("r.db").path, script])
        #expect(tracked.status == 0, "\(tracked.stderr)")
        #expect(tracked.stdout == plain.stdout + "flush\ttrue\n")
        try FileManager.default.createSymbolicLink(
            atPath: directory.appendingPathComponent("luamem.so").path,
            withDestinationPath: EmbeddingTests.library)
        let auto = try Harness.run(
            "/usr/bin/lua5.3", ["-l", "luamem.auto", script],
            environment: [
                "LUA_CPATH": directory.path + "/?.so",
                "LUAMEM_DB": directory.appendingPathComponent("a.db").path,
            ])
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stdout == plain.stdout + "flush\ttrue\n")
    }
}
