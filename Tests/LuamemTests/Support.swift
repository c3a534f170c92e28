import Foundation
import LuamemStore
import Testing

/// What a finished process printed and returned.
struct ProcessOutput {
    /// The exit status, or the signal number when `signaled`.
    var status: Int32
    var stdout: String
    var stderr: String
    /// The process was ended by signal `status`.
    var signaled = false
}

/// Runs built binaries and fixtures for the end-to-end tests.
enum Harness {
    /// The directory holding the built `luamem` (next to the test bundle).
    static let productsDirectory: URL = {
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return executable.deletingLastPathComponent()
    }()

    static var luamemPath: String { productsDirectory.appendingPathComponent("luamem").path }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures")

    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static func fixture(_ name: String) -> String {
        fixtures.appendingPathComponent(name).path
    }

    /// A fresh empty directory.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("luamem-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Starts `executable` with `arguments`; stdin is empty unless given. Both output pipes are
    /// drained while it runs, so a chatty process never blocks on a full pipe.
    static func launch(
        _ executable: String, _ arguments: [String], in directory: URL? = nil,
        environment: [String: String] = [:], stdin: String? = nil
    ) throws -> Launched {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        env["LUAMEM_DB"] = nil
        env["LUA_INIT"] = nil
        env["LUA_INIT_5_3"] = nil
        env["NO_COLOR"] = "1"
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let input = Pipe()
        process.standardInput = input
        let launched = Launched(process)
        try process.run()
        launched.startReading()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        return launched
    }

    /// Runs `executable` with `arguments` to the end; stdin is empty unless given.
    static func run(
        _ executable: String, _ arguments: [String], in directory: URL? = nil,
        environment: [String: String] = [:], stdin: String? = nil
    ) throws -> ProcessOutput {
        try launch(executable, arguments, in: directory, environment: environment, stdin: stdin)
            .finish()
    }

    static func luamem(
        _ arguments: [String], in directory: URL? = nil, environment: [String: String] = [:],
        stdin: String? = nil
    ) throws -> ProcessOutput {
        let output = try run(
            luamemPath, arguments, in: directory, environment: environment, stdin: stdin)
        if arguments.first == "run", let index = arguments.firstIndex(of: "--db"),
            index + 1 < arguments.count
        {
            let db = URL(fileURLWithPath: arguments[index + 1], relativeTo: directory)
            try expectPostGCWithinLive(db)
        }
        return output
    }

    /// The invariant of every database the suite writes with `luamem run`: for every (state,
    /// site, type) at every snapshot, and for every snapshot's totals, the post-GC figures never
    /// exceed the live ones.
    static func expectPostGCWithinLive(_ db: URL) throws {
        var info = stat()
        guard stat(db.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG, info.st_size > 0,
            (try? integer(db, "SELECT count(*) FROM sqlite_master WHERE name = 'site_stats'")) == 1
        else { return }
        for (table, figures) in [
            ("site_stats", "gc_live_bytes > live_bytes"),
            ("site_rollups", "gc_live_bytes > live_bytes"),
            ("snapshots", "gc_live_bytes > live_bytes OR gc_live_count > live_count"),
        ] {
            let broken = try integer(db, "SELECT count(*) FROM \(table) WHERE \(figures)")
            #expect(broken == 0, "\(db.path): \(broken) rows of \(table) with \(figures)")
        }
    }

    /// Starts `luamem` with `arguments` without waiting for it.
    static func launchLuamem(_ arguments: [String]) throws -> Launched {
        try launch(luamemPath, arguments)
    }

    /// Runs a fixture under `luamem run` into `db` and expects success.
    @discardableResult
    static func track(
        _ fixtureName: String, db: URL, options: [String] = [], arguments: [String] = []
    ) throws -> ProcessOutput {
        let output = try luamem(
            ["run", "--db", db.path] + options + [fixture(fixtureName)] + arguments)
        #expect(output.status == 0, "luamem run \(fixtureName) failed: \(output.stderr)")
        return output
    }

    /// Removes a database file the way SQLite requires: with its -wal and -shm files.
    static func removeDatabase(_ db: URL) {
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: db.path + suffix)
        }
    }

    /// Runs late_cycles.lua (`--interval 0.1`, 2 s) into `db` until its timeline is the one it
    /// stages, at most three times: the fourth of its five collections before the middle of
    /// the window (its first to its last snapshot before the final one), the fifth after it. The
    /// script places them by the wall clock; a machine that stops it for most of a second moves
    /// them, and the scenario with them. Expects the staged timeline by the third run.
    static func trackLateCycles(db: URL, options: [String] = []) throws {
        var timelines: [String] = []
        for _ in 1...3 {
            removeDatabase(db)
            try track(
                "late_cycles.lua", db: db, options: ["--interval", "0.1"] + options,
                arguments: ["2"])
            let snapshots = try rows(
                db,
                "SELECT kind, time_ms FROM snapshots WHERE kind != 'final' ORDER BY time_ms, id")
            let times = snapshots.compactMap { $0[1].flatMap { Int64($0) } }
            let collections = snapshots.filter { $0[0] == "manual" }.compactMap {
                $0[1].flatMap { Int64($0) }
            }
            guard let first = times.first, let last = times.last, collections.count == 6 else {
                Issue.record("late_cycles.lua: \(snapshots)")
                return
            }
            let middle = first + (last - first) / 2
            if collections[3] <= middle && collections[4] > middle { return }
            timelines.append(
                "collections at \(collections.map { $0 - first }) ms, middle \(middle - first) ms")
        }
        Issue.record("late_cycles.lua never kept its timeline: \(timelines)")
    }

    /// Compiles a C host against luamem.h and the built libluamem-embed.so; returns its path.
    static func buildHost(_ source: String, in directory: URL) throws -> String {
        let host = directory.appendingPathComponent(
            URL(fileURLWithPath: source).deletingPathExtension().lastPathComponent
        ).path
        let products = productsDirectory.path
        let build = try run(
            "/usr/bin/cc",
            [
                "-Wall", "-Werror", "-I/usr/include/lua5.3", "-I",
                repositoryRoot.appendingPathComponent("Sources/Luamem/include").path,
                source, "-o", host, "-L", products, "-lluamem-embed", "-llua5.3", "-lpthread",
                "-Wl,-rpath,\(products)",
            ])
        try #require(build.status == 0, "cc \(source): \(build.stderr)")
        return host
    }

    /// Rows of a query against a database file, each as text columns.
    static func rows(_ db: URL, _ sql: String) throws -> [[String?]] {
        let database = try Database(path: db.path, mode: .readOnly)
        let statement = try database.prepare(sql)
        return try statement.rows().map { row in
            row.map { value in
                switch value {
                case .integer(let number): String(number)
                case .text(let text): text
                case .bytes(let bytes): Value.decoding(bytes)
                case .null: nil
                }
            }
        }
    }

    static func integer(_ db: URL, _ sql: String) throws -> Int64 {
        try Database(path: db.path, mode: .readOnly).scalar(sql) ?? 0
    }

    /// Parses `luamem query --format json` output.
    static func jsonRows(_ text: String) throws -> [[String: Any]] {
        let object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        return try #require(object as? [[String: Any]])
    }
}

/// A process started by `Harness.launch`, its output collected while it runs.
final class Launched: @unchecked Sendable {
    let process: Process
    private let output = Pipe(), errors = Pipe()
    private var outputData = Data(), errorData = Data()
    private let group = DispatchGroup()

    init(_ process: Process) {
        self.process = process
        process.standardOutput = output
        process.standardError = errors
    }

    func startReading() {
        for (pipe, store) in [
            (output, { (data: Data) in self.outputData = data }),
            (errors, { (data: Data) in self.errorData = data }),
        ] {
            group.enter()
            DispatchQueue.global().async {
                store(pipe.fileHandleForReading.readDataToEndOfFile())
                self.group.leave()
            }
        }
    }

    var isRunning: Bool { process.isRunning }

    /// Sends `signal` to the process.
    func send(_ signal: Int32) {
        kill(process.processIdentifier, signal)
    }

    /// Waits for the process to end and returns what it printed.
    func finish() -> ProcessOutput {
        group.wait()
        process.waitUntilExit()
        return ProcessOutput(
            status: process.terminationStatus, stdout: String(decoding: outputData, as: UTF8.self),
            stderr: String(decoding: errorData, as: UTF8.self),
            signaled: process.terminationReason == .uncaughtSignal)
    }
}
