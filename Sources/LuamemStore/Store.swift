import CSQLite
import Glibc
import LuamemMigrations

/// A luamem database: opens it, recognises it, and brings its schema up to date with the
/// migrations embedded from Migrations/*.sql.
public final class Store {
    /// PRAGMA application_id of a luamem database ("LMEM").
    public static let applicationID: Int64 = 0x4C4D_454D

    public struct Migration: Sendable {
        public var version: Int
        public var name: String
        public var sql: String
    }

    /// The embedded migrations, in order.
    public static let migrations: [Migration] = {
        var count: Int32 = 0
        let list = luamem_migrations(&count)!
        return (0..<Int(count)).map {
            Migration(
                version: Int(list[$0].version), name: String(cString: list[$0].name),
                sql: String(cString: list[$0].sql))
        }
    }()

    public static var latestVersion: Int { migrations.last?.version ?? 0 }

    public let database: Database
    public var path: String { database.path }

    private init(database: Database) {
        self.database = database
    }

    /// How long a writer's statement waits for another connection's lock, unless told otherwise.
    public static let writerBusyTimeoutMs: Int32 = 1000

    /// Opens (creating it if needed) a database to write snapshots into, applying pending
    /// migrations. `busyTimeout` bounds how long a write waits for another writer.
    /// `maxBytes` caps the file's size (PRAGMA max_page_count); writes past it fail as a full
    /// disk would.
    public static func openForWriting(
        path: String, busyTimeout: Int32 = writerBusyTimeoutMs, maxBytes: Int64? = nil
    ) throws
        -> Store
    {
        let database = try Database(path: path, mode: .readWrite)
        database.setBusyTimeout(milliseconds: busyTimeout)
        try checkIdentity(database, allowEmpty: true)
        _ = try database.prepare("PRAGMA journal_mode = WAL").step()
        try database.execute("PRAGMA synchronous = NORMAL")
        // The writer lives in the host: its page cache is the host's memory. 512 KiB instead of
        // SQLite's 2 MiB; pages it drops are re-read from the OS's cache, on the flusher thread.
        try database.execute("PRAGMA cache_size = -512")
        try migrate(database)
        if let maxBytes {
            let pageSize = try database.scalar("PRAGMA page_size") ?? 4096
            _ = try database.prepare("PRAGMA max_page_count = \(max(1, maxBytes / pageSize))")
                .step()
        }
        return Store(database: database)
    }

    /// Opens an existing database for queries (or, `writable`, for maintenance such as prune).
    /// An older schema is upgraded first.
    public static func openForReading(path: String, writable: Bool = false) throws -> Store {
        if let problem = Database.pathProblem(path) {
            throw StoreError(code: SQLITE_CANTOPEN, message: "cannot open '\(path)': \(problem)")
        }
        guard access(path, F_OK) == 0 else {
            throw StoreError(
                code: SQLITE_CANTOPEN,
                message:
                    "no database at \(path) (run a program under `luamem run` first, or pass --db)")
        }
        var database = try Database(path: path, mode: writable ? .readWrite : .readOnly)
        database.setBusyTimeout(milliseconds: 5000)
        try checkIdentity(database, allowEmpty: false)
        if try version(of: database) < latestVersion {
            database = try Database(path: path, mode: .readWrite)
            database.setBusyTimeout(milliseconds: 5000)
            try migrate(database)
        }
        return Store(database: database)
    }

    private static func version(of database: Database) throws -> Int {
        Int(try database.scalar("PRAGMA user_version") ?? 0)
    }

    /// Refuses files that are not SQLite, belong to another program, or come from a newer luamem.
    private static func checkIdentity(_ database: Database, allowEmpty: Bool) throws {
        let path = database.path
        let application: Int64
        let tables: Int64
        let version: Int64
        do {
            // One statement, so one read transaction: another process creating the file at the
            // same moment is seen either before its first migration or after it.
            let statement = try database.prepare(
                "SELECT (SELECT application_id FROM pragma_application_id), "
                    + "(SELECT count(*) FROM sqlite_master), (SELECT user_version FROM pragma_user_version)")
            _ = try statement.step()
            (application, tables, version) = (statement.int64(0), statement.int64(1), statement.int64(2))
        } catch let error as StoreError where error.code & 0xff == SQLITE_NOTADB {
            throw StoreError(code: error.code, message: "\(path) is not a SQLite database")
        }
        // Empty: nothing in it at all. A file with a user_version but no tables belongs to a
        // program that has not created them yet, not to luamem.
        if application == 0 && tables == 0 && version == 0 {
            if allowEmpty { return }
            throw StoreError(
                code: SQLITE_NOTADB, message: "\(path) is empty, not a luamem database")
        }
        guard application == applicationID else {
            throw StoreError(
                code: SQLITE_NOTADB,
                message: "\(path) is a SQLite database but not a luamem database")
        }
        if version > latestVersion {
            throw StoreError(
                code: SQLITE_NOTADB,
                message: "\(path) has schema version \(version), newer than this luamem knows "
                    + "(\(latestVersion)); use a newer luamem")
        }
    }

    /// Applies each pending migration in its own transaction, recording its version.
    private static func migrate(_ database: Database) throws {
        for migration in migrations {
            try database.transaction {
                // Re-read inside the write lock: another process may have migrated meanwhile.
                guard try version(of: database) < migration.version else { return }
                if migration.version == 1 {
                    try database.execute("PRAGMA application_id = \(applicationID)")
                }
                try database.execute(migration.sql)
                try database.execute("PRAGMA user_version = \(migration.version)")
            }
        }
    }
}
