import ArgumentParser

/// The `luamem` command line.
public struct Luamem: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "luamem",
        abstract: "Find the Lua code that grows memory.",
        discussion: """
            Run a Lua 5.3 script under the tracker with `luamem run`; every allocation is charged \
            to its source line and snapshots go to a SQLite file. Ask that file which lines grew \
            with `luamem query`.
            """,
        version: "0.1.0",
        subcommands: [RunCommand.self, QueryCommand.self]
    )

    public init() {}
}
