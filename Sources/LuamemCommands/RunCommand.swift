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
        do {
            if let maxDbSize { _ = try Runner.size("--max-db-size", maxDbSize, example: "64MB") }
            if let sample { _ = try Runner.size("--sample", sample, example: "512KiB") }
        } catch {
            throw ValidationError(error.message)
        }
        if let problem = Runner.problem(options(scriptIndex: 0)) {
            throw ValidationError(problem)
        }
    }

    private func options(scriptIndex: Int) -> Runner.Options {
        var options = Runner.Options(db: database.path, scriptIndex: scriptIndex)
        options.interval = interval
        options.build = build
        options.name = name
        options.depth = depth
        options.sample = sample.flatMap(ByteSize.parse) ?? 0
        options.maxSites = maxSites
        options.maxDbSize = maxDbSize.flatMap(ByteSize.parse)
        return options
    }

    func run() throws {
        let commandLine = CommandLine.arguments
        let options = options(scriptIndex: commandLine.count - arguments.count - 1)
        // The script runs in luamem-run, next to this executable when it is there: the same run
        // without Foundation and ArgumentParser in the process, about 13 MiB less RSS.
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let lean = executable.deletingLastPathComponent().appendingPathComponent("luamem-run").path
        if access(lean, X_OK) == 0 {
            setenv(Runner.handOverVariable, Runner.handOver(options), 1)
            var argv = commandLine.map { strdup($0) }
            argv.append(nil)
            execv(lean, argv)
            // Not reached unless exec failed: run here instead.
            unsetenv(Runner.handOverVariable)
        }
        let status: Int32
        do {
            status = try Runner.run(options, commandLine: commandLine)
        } catch {
            throw ValidationError(error.message)
        }
        if status != 0 { throw ExitCode(status) }
    }
}
