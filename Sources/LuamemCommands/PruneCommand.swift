import ArgumentParser
import LuamemAgent
import LuamemStore

/// `luamem prune`: keeps a long-running file bounded.
struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Remove runs and snapshots older than a given age, or thin them out.",
        discussion: """
            Runs that ended before the cutoff are removed whole. In runs still going (or that \
            ended later), snapshots before the cutoff are removed, after the oldest kept \
            snapshot of each state has been given the figures it depended on, so every kept \
            snapshot still reads back in full. Each state is one short transaction, so a program \
            writing to the file meanwhile is delayed at most that long. The file keeps its size \
            and reuses the freed pages; run `sqlite3 FILE VACUUM` when nothing writes to it to \
            shrink it. --thin-older-than keeps, of what is older, only the snapshots where \
            rollups were taken (one per few thousand changed rows): the others go, and their \
            rows are folded into the next kept snapshot, so history keeps its shape at a lower \
            resolution.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Remove what is older than this age, e.g. 30d or 12h.")
    var olderThan: String?

    @Option(help: "Keep only the rollup snapshots of what is older than this age, e.g. 1d.")
    var thinOlderThan: String?

    func validate() throws {
        guard olderThan != nil || thinOlderThan != nil else {
            throw ValidationError("give --older-than, --thin-older-than, or both")
        }
        for (name, value) in [("--older-than", olderThan), ("--thin-older-than", thinOlderThan)] {
            guard let value else { continue }
            guard !value.hasPrefix("-"), let age = TimeExpression.durationMs(value), age > 0 else {
                throw ValidationError(
                    "\(name) must be a duration such as 30d or 12h, got '\(value)'")
            }
        }
    }

    func run() throws {
        let store = try openStore(database, writable: true)
        let now = Clock.epochMs()
        if let olderThan {
            let cutoff = now - TimeExpression.durationMs(olderThan)!
            let result = try store.prune(olderThan: cutoff)
            print(
                "removed \(result.runs) run(s), \(result.snapshots) snapshot(s), \(result.rows) site row(s) "
                    + "older than \(formatTime(cutoff)) UTC")
        }
        if let thinOlderThan {
            let cutoff = now - TimeExpression.durationMs(thinOlderThan)!
            let result = try store.thin(olderThan: cutoff)
            print(
                "thinned out \(result.snapshots) snapshot(s), \(result.rows) site row(s) older than "
                    + "\(formatTime(cutoff)) UTC")
        }
    }
}
