import CSQLite
import Glibc

/// A failed SQLite call: the result code, SQLite's message, and the SQL that failed.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var code: Int32
    public var message: String
    public var sql: String?

    public init(code: Int32, message: String, sql: String? = nil) {
        self.code = code
        self.message = message
        self.sql = sql
    }

    public var description: String { message }

    /// Another connection holds a lock the statement needs (SQLITE_BUSY or SQLITE_LOCKED).
    public var isBusy: Bool { code & 0xff == SQLITE_BUSY || code & 0xff == SQLITE_LOCKED }
}

/// One SQLite connection. Every sqlite3_* call of luamem goes through this file.
public final class Database {
    let handle: OpaquePointer
    public let path: String

    public enum Mode: Sendable { case readOnly, readWrite }

    /// Opens `path`; read-write mode creates the file when missing. A path is only ever a
    /// file's path: never a URI (`file:…`), `:memory:` or a temporary database (""), and never
    /// a FIFO, device or directory.
    public init(path: String, mode: Mode) throws {
        if let problem = Database.pathProblem(path) {
            throw StoreError(code: SQLITE_CANTOPEN, message: "cannot open '\(path)': \(problem)")
        }
        var db: OpaquePointer?
        let flags: Int32 =
            switch mode {
            case .readOnly: SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
            case .readWrite: SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
            }
        // "./" keeps SQLite from reading a relative path as a URI or as ":memory:".
        let code = sqlite3_open_v2(path.hasPrefix("/") ? path : "./" + path, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw StoreError(code: code, message: "cannot open \(path): \(message)")
        }
        handle = db
        self.path = path
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        for statement in scalarStatements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(handle)
    }

    /// Why `path` cannot hold a database, nil when it can (missing files can be created).
    public static func pathProblem(_ path: String) -> String? {
        if path.isEmpty { return "the path is empty" }
        return otherThanFile(path).map { "it is \($0), not a database file" }
    }

    /// What is at `path` when it is there and not a regular file once links are followed ("a
    /// directory", "a FIFO", "a device", "a socket"); nil for a regular file or nothing at all.
    public static func otherThanFile(_ path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "a directory"
        case S_IFIFO: return "a FIFO"
        case S_IFCHR, S_IFBLK: return "a device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }

    /// Runs one or more statements that return no rows.
    public func execute(_ sql: String) throws {
        var message: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &message)
        if code != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
            sqlite3_free(message)
            throw StoreError(code: code, message: text, sql: sql)
        }
    }

    public func prepare(_ sql: String) throws -> Statement {
        try Statement(database: self, sql: sql)
    }

    /// The first column of the first row, or nil when there is no row or it is NULL. Each
    /// query is prepared once per connection (the flusher asks the same few at every snapshot),
    /// and reset after its row is read, so it holds no read transaction open.
    public func scalar(_ sql: String, _ bindings: [Value] = []) throws -> Int64? {
        let handle: OpaquePointer
        if let prepared = scalarStatements[sql] {
            handle = prepared
        } else {
            var statement: OpaquePointer?
            let code = sqlite3_prepare_v2(self.handle, sql, -1, &statement, nil)
            guard code == SQLITE_OK, let statement else { throw error(code, sql: sql) }
            scalarStatements[sql] = statement
            handle = statement
        }
        defer { sqlite3_reset(handle) }
        try Statement.bind(handle, bindings, database: self, sql: sql)
        switch sqlite3_step(handle) {
        case SQLITE_ROW:
            guard sqlite3_column_type(handle, 0) != SQLITE_NULL else { return nil }
            return Statement.clamped(sqlite3_column_int64(handle, 0))
        case SQLITE_DONE: return nil
        case let code: throw error(code, sql: sql)
        }
    }

    /// `scalar`'s prepared statements, by their SQL; finalized when the connection closes.
    private var scalarStatements: [String: OpaquePointer] = [:]

    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows the last INSERT, UPDATE or DELETE changed.
    public var changes: Int64 { sqlite3_changes64(handle) }

    /// Copies what the WAL holds into the database file, as far as readers allow, without
    /// waiting for any of them (a passive checkpoint). Errors are left to the next one.
    public func checkpointPassively() {
        sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
    }

    /// Copies the whole WAL into the database file and empties it, when no reader prevents it.
    public func checkpointAndTruncate() {
        sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_TRUNCATE, nil, nil)
    }

    /// Closing will leave the WAL as it is: no checkpoint, no deletion.
    public func leaveWalOnClose() {
        _ = luamem_sqlite_no_checkpoint_on_close(handle)
    }

    /// How long a statement waits for another connection's lock before failing with SQLITE_BUSY.
    public func setBusyTimeout(milliseconds: Int32) {
        sqlite3_busy_timeout(handle, milliseconds)
    }

    /// Runs `body` in a transaction (BEGIN IMMEDIATE: the write lock is taken up front), rolling
    /// back when it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    func error(_ code: Int32, sql: String?) -> StoreError {
        StoreError(code: code, message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }
}

/// A value bound to a statement parameter.
public enum Value: Sendable {
    case integer(Int64)
    case text(String)
    /// Text given as bytes, stored as they are even when they are not UTF-8 (Lua's chunk and
    /// field names can hold any byte; a String would replace those, merging distinct names).
    case bytes([UInt8])
    case null
}

extension Value {
    /// `bytes` as text: UTF-8 as it is, every byte that is not part of valid UTF-8 as `\xNN`.
    public static func decoding<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String {
        if let valid = String(validating: bytes, as: UTF8.self) { return valid }
        let digits = Array("0123456789ABCDEF")
        var result = ""
        var rest = bytes[...]
        while let first = rest.first {
            // The scalar at the start when it is valid, else its first byte, escaped.
            var iterator = rest.makeIterator()
            var decoder = UTF8()
            if case .scalarValue(let scalar) = decoder.decode(&iterator) {
                result.unicodeScalars.append(scalar)
                rest = rest.dropFirst(UTF8.width(scalar))
            } else {
                result += "\\x\(digits[Int(first >> 4)])\(digits[Int(first & 15)])"
                rest = rest.dropFirst()
            }
        }
        return result
    }
}

/// A prepared statement; finalized when released.
public final class Statement {
    let database: Database
    let handle: OpaquePointer
    let sql: String

    init(database: Database, sql: String) throws {
        var statement: OpaquePointer?
        let code = sqlite3_prepare_v2(database.handle, sql, -1, &statement, nil)
        guard code == SQLITE_OK, let statement else {
            throw database.error(code, sql: sql)
        }
        self.database = database
        self.handle = statement
        self.sql = sql
    }

    deinit {
        sqlite3_finalize(handle)
    }

    public func bind(_ values: [Value]) throws {
        try Statement.bind(handle, values, database: database, sql: sql)
    }

    /// Resets `handle` and binds `values` to it, from the first parameter on.
    static func bind(_ handle: OpaquePointer, _ values: [Value], database: Database, sql: String)
        throws
    {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            let code: Int32 =
                switch value {
                case .integer(let number): sqlite3_bind_int64(handle, index, number)
                case .text(let text):
                    sqlite3_bind_text(handle, index, text, -1, luamem_sqlite_transient())
                case .bytes(let bytes):
                    // An empty array may have no storage: bind one NUL byte as zero bytes.
                    (bytes.isEmpty ? [0] : bytes).withUnsafeBufferPointer {
                        $0.withMemoryRebound(to: CChar.self) {
                            sqlite3_bind_text(
                                handle, index, $0.baseAddress, Int32(clamping: bytes.count),
                                luamem_sqlite_transient())
                        }
                    }
                case .null: sqlite3_bind_null(handle, index)
                }
            guard code == SQLITE_OK else { throw database.error(code, sql: sql) }
        }
    }

    /// Binds integers without building an array of `Value`s (the flusher's per-row path).
    public func bind(integers values: Int64...) throws {
        sqlite3_reset(handle)
        for (offset, value) in values.enumerated() {
            let code = sqlite3_bind_int64(handle, Int32(offset + 1), value)
            guard code == SQLITE_OK else { throw database.error(code, sql: sql) }
        }
    }

    /// Advances to the next row; false when done.
    @discardableResult
    public func step() throws -> Bool {
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default:
            let error = database.error(code, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    /// Binds, runs to completion, and resets.
    public func run(_ values: [Value] = []) throws {
        try bind(values)
        while try step() {}
        sqlite3_reset(handle)
    }

    /// An integer column, clamped to ±2^52 (4 PiB as bytes, 142,000 years as milliseconds): no
    /// real figure, id or time comes near it, and a file altered to hold Int64's limits then
    /// cannot overflow a difference or a short sum (`saturatingAdd` covers long ones).
    public func int64(_ column: Int32) -> Int64 {
        Statement.clamped(sqlite3_column_int64(handle, column))
    }

    static func clamped(_ value: Int64) -> Int64 {
        min(max(value, -integerLimit), integerLimit)
    }

    public static let integerLimit: Int64 = 1 << 52

    public func isNull(_ column: Int32) -> Bool {
        sqlite3_column_type(handle, column) == SQLITE_NULL
    }

    /// A text column; bytes that are not UTF-8 read as `\xNN`, so that names stored as bytes
    /// stay distinct and printable.
    public func text(_ column: Int32) -> String? {
        guard let bytes = sqlite3_column_text(handle, column) else { return nil }
        let count = Int(sqlite3_column_bytes(handle, column))
        let buffer = UnsafeBufferPointer(start: bytes, count: count)
        // Fast path: String(decoding:) replaces invalid UTF-8 with U+FFFD (EF BF BD), so a
        // result of the same length without an EF byte is the bytes as they are. Anything else
        // (invalid bytes, or a real U+FFFD) takes Value.decoding, which escapes what is not UTF-8.
        let text = String(decoding: buffer, as: UTF8.self)
        if text.utf8.count == count && !text.utf8.contains(0xEF) { return text }
        return Value.decoding(buffer)
    }

    public var columnCount: Int32 { sqlite3_column_count(handle) }

    public func columnName(_ column: Int32) -> String {
        String(cString: sqlite3_column_name(handle, column))
    }

    /// The first column of every row, as integers (rows where it is not one are skipped).
    public func integers(_ values: [Value] = []) throws -> [Int64] {
        try rows(values).compactMap { if case .integer(let number) = $0[0] { number } else { nil } }
    }

    /// Every row, each as its columns in order (integers, text or NULL).
    public func rows(_ values: [Value] = []) throws -> [[Value]] {
        try bind(values)
        var result: [[Value]] = []
        while try step() {
            var row: [Value] = []
            for column in 0..<columnCount {
                switch sqlite3_column_type(handle, column) {
                case SQLITE_NULL: row.append(.null)
                case SQLITE_INTEGER: row.append(.integer(int64(column)))
                default: row.append(.text(text(column) ?? ""))
                }
            }
            result.append(row)
        }
        return result
    }
}

extension Int64 {
    /// `self + other`, stopping at Int64's limits instead of trapping: sums of figures read from
    /// a file, however many and however large, never end the process.
    @inlinable public func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
