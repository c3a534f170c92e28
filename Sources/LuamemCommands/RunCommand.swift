import ArgumentParser
import Foundation
import LuamemAgent
import LuamemStore
import LuamemTracker

/// `luamem run`: a Lua script under the tracker, like `lua5.3 script.lua args…`.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a Lua 5.3 script with every allocation tracked.",
        discussion: """
            The script runs as under lua5.3: same `arg` table and `...`, standard libraries, \
            LUA_INIT, exit status, and error message with traceback on stderr. Snapshots are \
            written when tracking starts, every --interval seconds, and once more when the \
            script ends or calls os.exit. Options \
            go before the script; everything after it is the script's.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Seconds between snapshots; fractions allowed.")
    var interval: Double = 10

    @Option(help: "Build label stored with the run, e.g. a git commit.")
    var build: String?

    @Option(help: "Name of the program or service (default: the script's file name).")
    var name: String?

    @Option(help: "Lua frames recorded per allocation site (1 to \(Tracker.maxDepth)).")
    var depth: Int = 1

    @Option(
        help:
            "Sample about one allocation per this many bytes (e.g. 512KiB) instead of recording every one: per-site figures become estimates, totals stay exact, the tracker costs less."
    )
    var sample: String?

    @Option(
        help:
            "Most distinct allocation sites kept; allocations at new sites past it are counted together as [other sites] (a message says so once)."
    )
    var maxSites: Int = Tracker.defaultMaxSites

    @Option(
        help:
            "Largest size the database may grow to, e.g. 512MB; past it, snapshots are not written (a message says so once) and tracking goes on."
    )
    var maxDbSize: String?

    @Argument(help: "The Lua script; \"-\" reads standard input.")
    var script: String

    @Argument(parsing: .captureForPassthrough, help: "Arguments for the script.")
    var arguments: [String] = []

    func validate() throws {
        guard interval.isFinite, interval > 0 else {
            throw ValidationError(
                "--interval must be a positive number of seconds, got \(interval)")
        }
        if let maxDbSize, ByteSize.parse(maxDbSize) == nil {
            throw ValidationError("--max-db-size must be a size such as 64MB, got '\(maxDbSize)'")
        }
        if let sample, ByteSize.parse(sample) == nil {
            throw ValidationError("--sample must be a size such as 512KiB, got '\(sample)'")
        }
        guard maxSites >= 16 else {
            throw ValidationError("--max-sites must be at least 16, got \(maxSites)")
        }
        guard (1...Tracker.maxDepth).contains(depth) else {
            throw ValidationError("--depth must be between 1 and \(Tracker.maxDepth), got \(depth)")
        }
    }

    func run() throws {
        let sampleBytes = sample.flatMap(ByteSize.parse) ?? 0
        guard
            let state = TrackedLuaState(
                depth: depth, maxSites: maxSites, sampleInterval: Int(sampleBytes))
        else {
            throw ValidationError("cannot create a Lua state: out of memory")
        }
        do {
            try state.prepare()
        } catch {
            throw ValidationError("cannot prepare the Lua state: \(error)")
        }

        let commandLine = CommandLine.arguments
        let scriptIndex = commandLine.count - arguments.count - 1
        // A script that cannot be read or compiled fails like lua5.3 and leaves no run behind.
        guard
            let loaded = state.loadScript(
                progname: "luamem", arguments: commandLine, script: scriptIndex)
        else {
            state.close()
            throw ExitCode.failure
        }
        let flusher = Flusher(
            path: database.path, run: runInfo(commandLine), interval: interval,
            maxDatabaseBytes: maxDbSize.flatMap(ByteSize.parse))
        flusher.track(state.tracker, name: name ?? scriptName)
        flusher.flush(kind: .start)
        flusher.start()

        let status = loaded.run()

        flusher.complete()
        state.close()
        if status != 0 { throw ExitCode(status) }
    }

    private var scriptName: String {
        script == "-" ? "stdin" : URL(fileURLWithPath: script).lastPathComponent
    }

    private func runInfo(_ commandLine: [String]) -> RunInfo {
        let sampleBytes = sample.flatMap(ByteSize.parse) ?? 0
        let options =
            "{\"interval_ms\":\(Int64((interval * 1000).rounded())),\"depth\":\(depth),"
            + "\"sample\":\(sampleBytes)}"
        return RunInfo(
            build: build, name: name ?? scriptName, host: ProcessInfo.processInfo.hostName,
            pid: Int64(ProcessInfo.processInfo.processIdentifier),
            command: commandLine.joined(separator: " "), luaVersion: TrackedLuaState.luaRelease,
            options: options, startedMs: Clock.epochMs())
    }
}
