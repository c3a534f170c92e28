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
            script ends or calls os.exit. luamem's options come first, then lua5.3's own \
            command line, read as lua5.3 reads it: so the `arg[-n]` prefix a script sees \
            re-runs a tracked interpreter.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Seconds between snapshots; fractions allowed.")
    var interval: Double = 10

    @Option(help: "Build label stored with the run, e.g. a git commit.")
    var build: String?

    @Option(help: "Name of the program or service (default: the script's file name).")
    var name: String?

    @Option(
        help:
            "Host label stored with the run (default: $LUAMEM_HOST, else the machine's host name).")
    var host: String?

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
            "Largest size the database may grow to, e.g. 512MB: the oldest history is removed to keep it under three quarters of this, so recording goes on."
    )
    var maxDbSize: String?

    @Option(help: "Remove history older than this, e.g. 30d, while the program runs.")
    var keep: String?

    @Option(
        help:
            "Thin history older than this to its rollup snapshots (one per few thousand changed rows), e.g. 1d."
    )
    var keepFull: String?

    @Argument(
        parsing: .captureForPassthrough,
        help: """
            lua5.3's own command line: its options (-e stat, -l name, -i, -v, -E, --, -), the \
            script ("-" reads standard input) and the script's arguments.
            """)
    var command: [String] = []

    /// `luamem run` is parsed by Runner.parse, the parser luamem-run uses, not by ArgumentParser:
    /// lua5.3's options (-e, -l, …) follow luamem's and must reach the script's interpreter as
    /// lua5.3 would read them. The declarations above give `luamem run --help`.
    func run() throws {
        Self.start(CommandLine.arguments)
    }

    /// Runs `luamem run` from the whole command line and exits with the script's status.
    static func start(_ commandLine: [String]) -> Never {
        let options: Runner.Options
        switch Runner.parse(commandLine, from: 2) {
        case .success(let parsed): options = parsed
        case .failure(let error):
            FileHandle.standardError.write(Data(Runner.luamemRunError(error.message).utf8))
            Foundation.exit(64)
        }
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
        do {
            Foundation.exit(try Runner.run(options, commandLine: commandLine))
        } catch {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        }
    }
}
