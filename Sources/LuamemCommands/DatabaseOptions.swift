import ArgumentParser
import Foundation

/// `--db`, shared by every command.
struct DatabaseOptions: ParsableArguments {
    @Option(name: .long, help: "The SQLite file (default: $LUAMEM_DB, else luamem.db).")
    var db: String?

    /// The path to use: --db, else $LUAMEM_DB, else luamem.db in the current directory.
    var path: String {
        if let db { return db }
        if let fromEnvironment = ProcessInfo.processInfo.environment["LUAMEM_DB"],
            !fromEnvironment.isEmpty
        {
            return fromEnvironment
        }
        return "luamem.db"
    }
}
