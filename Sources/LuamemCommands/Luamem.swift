import ArgumentParser
import Foundation
import LuamemAgent
import LuamemVersion

/// The `luamem` command line.
public struct Luamem: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "luamem",
        abstract: "Find the Lua code that grows memory.",
        discussion: """
            Run a Lua 5.3 script under the tracker with `luamem run`; every allocation is charged \
            to its source line and snapshots go to a SQLite file. Ask that file which lines grew \
            with `luamem query`, compare runs and builds with `luamem diff`, find steady growth \
            with `luamem leaks`. Exit status: 0 success, 1 a --fail-above threshold was crossed \
            (or the script failed, for run), 2 an error, 64 bad usage.
            """,
        version: versionLine,
        subcommands: [
            RunCommand.self, QueryCommand.self, DiffCommand.self, LeaksCommand.self,
            HistoryCommand.self, RunsCommand.self, SnapshotsCommand.self, ExportCommand.self,
            ReportCommand.self,
            PruneCommand.self, ShipCommand.self,
        ]
    )

    public init() {}

    /// `luamem --version`: the version and the commit the build comes from.
    static var versionLine: String {
        let commit = String(cString: luamem_commit())
        return "luamem \(String(cString: luamem_version())) ("
            + (commit.isEmpty ? "commit not recorded: built without LUAMEM_COMMIT" : "commit \(commit)")
            + ")"
    }

    /// Options that take a time, whose value may be a negative offset such as -1h.
    static let timeOptions: Set<String> = ["--since", "--until", "--base", "--head"]

    /// Parses and runs. Errors about the data (a missing run, a file that is not a luamem
    /// database) exit with status 2, so that 1 keeps meaning "threshold crossed".
    public static func main() {
        var arguments = Self.attachingNegativeTimes(Array(CommandLine.arguments.dropFirst()))
        if arguments.first == "run" {
            // The rest of the command line is lua5.3's, which ArgumentParser cannot read.
            guard Runner.asksForHelp(["luamem"] + arguments) else {
                RunCommand.start(CommandLine.arguments)
            }
            arguments = ["help", "run"]
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let error as CommandError {
            FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
            Foundation.exit(2)
        } catch {
            exit(withError: error)
        }
    }

    /// "--since -1h" → "--since=-1h": the parser would take "-1h" for an option. The arguments
    /// of `luamem run` after the script are the script's, so `run` is left alone.
    static func attachingNegativeTimes(_ arguments: [String]) -> [String] {
        guard arguments.first != "run" else { return arguments }
        var result: [String] = []
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if timeOptions.contains(argument), index + 1 < arguments.count,
                arguments[index + 1].hasPrefix("-"),
                TimeExpression.durationMs(arguments[index + 1]) != nil
            {
                result.append("\(argument)=\(arguments[index + 1])")
                index += 2
            } else {
                result.append(argument)
                index += 1
            }
        }
        return result
    }
}
