import ArgumentParser
import LuamemAgent
import LuamemStore

/// `luamem prune`: keeps a long-running file bounded.
struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove runs and snapshots older than a given age.",
        discussion: """
            Runs that ended before the cutoff are removed whole. In runs still going (or that \
            ended later), snapshots before the cutoff are removed, after the oldest kept \
            snapshot of each state has been given the figures it depended on, so every kept \
            snapshot still reads back in full. Each state is one short transaction, so a program \
            writing to the file meanwhile is delayed at most that long. The file keeps its size \
            and reuses the freed pages; run `sqlite3 FILE VACUUM` when nothing writes to it to \
            shrink it.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Age to keep, e.g. 30d or 12h.")
    var olderThan: String

    func validate() throws {
        guard !olderThan.hasPrefix("-"), let age = TimeExpression.durationMs(olderThan), age > 0
        else {
            throw ValidationError(
                "--older-than must be a duration such as 30d or 12h, got '\(olderThan)'")
        }
    }

    func run() throws {
        let store = try openStore(database, writable: true)
        let cutoff = Clock.epochMs() - TimeExpression.durationMs(olderThan)!
        let result = try store.prune(olderThan: cutoff)
        print(
            "removed \(result.runs) run(s), \(result.snapshots) snapshot(s), \(result.rows) site row(s) "
                + "older than \(formatTime(cutoff)) UTC")
    }
}
