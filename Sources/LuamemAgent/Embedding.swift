import Glibc
import LuaShim
import LuamemStore
import LuamemTracker

/// Tracking Lua states that a host (or the stock lua5.3 with `require "luamem"`) created: one
/// flusher and one database for the whole process, one tracker per state.
enum Embedding {
    /// Tracks `L`: attaches a tracker to it, or resumes the tracker `luamem.stop()` left idle.
    /// Returns an error message, or nil.
    static func start(_ L: OpaquePointer, _ options: luamem_start_options) -> String? {
        let idle = luamem_context_of(L).map { Tracker(context: $0) }
        if let idle, !idle.isPaused { return "luamem is already tracking this Lua state" }
        let flusher: Flusher
        switch processFlusher(options) {
        case .success(let found): flusher = found
        case .failure(let error): return error.message
        }
        let name = options.name.map { String(cString: $0) } ?? defaultStateName()
        if let idle {
            guard !flusher.isTracking(idle) else { return "luamem is already tracking this Lua state" }
            idle.resume()
            flusher.begin(idle, name: name)
            return nil
        }
        guard let tracker = Tracker(depth: Int(options.depth)) else {
            return "cannot track the Lua state: out of memory"
        }
        luamem_name_own_functions(tracker.context)
        tracker.sampleInterval = Int(options.sample)
        tracker.destroysOnClose = true
        tracker.attach(existing: L, mainThread: luamem_main_thread(L) ?? L)
        var error = [CChar](repeating: 0, count: 512)
        if luamem_instrument_state(L, &error, error.count) != 0 {
            // The allocator stays installed (Lua holds its blocks) but records nothing.
            tracker.pause()
            return "cannot instrument the Lua state: \(String(cString: error))"
        }
        flusher.begin(tracker, name: name)
        return nil
    }

    /// Stops tracking: the state's final snapshot, then the tracker idles (its blocks are still
    /// in use, so the allocator stays installed). Returns an error message, or nil.
    static func stop(_ tracker: Tracker) -> String? {
        guard !tracker.isPaused, let flusher = Flusher.current, flusher.isTracking(tracker) else {
            return "luamem is not tracking this Lua state"
        }
        flusher.finish(tracker)
        tracker.pause()
        return nil
    }

    /// A new state tracked from its first allocation, with the standard libraries open.
    static func newState(_ options: luamem_start_options) -> Result<OpaquePointer, EmbeddingError> {
        let flusher: Flusher
        switch processFlusher(options) {
        case .success(let found): flusher = found
        case .failure(let error): return .failure(error)
        }
        guard let tracker = Tracker(depth: Int(options.depth)) else {
            return .failure(EmbeddingError(message: "cannot create a Lua state: out of memory"))
        }
        luamem_name_own_functions(tracker.context)
        tracker.sampleInterval = Int(options.sample)
        guard let L = lua_newstate(Tracker.allocator, tracker.context) else {
            tracker.destroy()
            return .failure(EmbeddingError(message: "cannot create a Lua state: out of memory"))
        }
        tracker.attach(mainThread: L)
        var error = [CChar](repeating: 0, count: 512)
        guard luamem_prepare_state(L, 0, &error, error.count) == 0 else {
            lua_close(L)
            tracker.destroy()
            return .failure(EmbeddingError(message: String(cString: error)))
        }
        tracker.destroysOnClose = true
        flusher.begin(tracker, name: options.name.map { String(cString: $0) } ?? defaultStateName())
        return .success(L)
    }

    /// Held while the process's flusher is looked up or created (and across fork).
    static let flusherLock = Lock()

    /// The process's flusher, created (and its database opened) by the first state.
    private static func processFlusher(_ options: luamem_start_options) -> Result<
        Flusher, EmbeddingError
    > {
        flusherLock.withLock {
            let path = String(cString: options.db)
            if let problem = Database.pathProblem(path) {
                return .failure(EmbeddingError(message: "cannot use '\(path)' as the database: \(problem)"))
            }
            if let current = Flusher.current {
                guard current.path == path else {
                    return .failure(
                        EmbeddingError(
                            message:
                                "luamem already writes this process's snapshots to \(current.path)")
                    )
                }
                return .success(current)
            }
            let interval = options.interval
            let run = RunInfo(
                build: options.build.map { String(cString: $0) },
                name: options.name.map { String(cString: $0) } ?? ProcessFacts.programName,
                host: ProcessFacts.hostLabel(options.host.map { String(cString: $0) }),
                pid: Int64(getpid()), command: ProcessFacts.commandLine,
                luaVersion: "Lua 5.3.\(LUA_VERSION_RELEASE)",
                options:
                    "{\"interval_ms\":\(Int64((interval * 1000).rounded())),\"depth\":\(options.depth),"
                    + "\"sample\":\(Int64(options.sample))}",
                startedMs: Clock.epochMs())
            let retention: RetentionPolicy, maxBytes: Int64?
            switch storage(options) {
            case .success(let found): (retention, maxBytes) = found
            case .failure(let error): return .failure(error)
            }
            let flusher = Flusher(
                path: path, run: run, interval: interval, maxDatabaseBytes: maxBytes,
                retention: retention)
            do {
                try flusher.open()
            } catch {
                flusher.abandon()
                return .failure(EmbeddingError(message: "cannot open \(path): \(error)"))
            }
            if let runID = flusher.recordedRunID { RunLineage.announce(runID: runID, path: path) }
            flusher.start()
            registerExitHandlerOnce()
            return .success(flusher)
        }
    }

    /// The retention policy and size cap the options give as text (keep, keep_full,
    /// max_db_size), parsed as `luamem run` parses --keep, --keep-full and --max-db-size.
    static func storage(
        _ options: luamem_start_options,
        names: (keep: String, keepFull: String, maxDbSize: String) = ("keep", "keep_full", "max_db_size")
    ) -> Result<(RetentionPolicy, Int64?), EmbeddingError> {
        func text(_ pointer: UnsafePointer<CChar>?) -> String? {
            guard let pointer, pointer.pointee != 0 else { return nil }
            return String(cString: pointer)
        }
        do throws(RunnerError) {
            var policy = RetentionPolicy()
            policy.keepMs = try text(options.keep).map { value throws(RunnerError) in
                try Runner.duration(names.keep, value)
            }
            policy.keepFullMs = try text(options.keep_full).map { value throws(RunnerError) in
                try Runner.duration(names.keepFull, value)
            }
            let maxBytes = try text(options.max_db_size).map { value throws(RunnerError) in
                try Runner.size(names.maxDbSize, value, example: "512MB")
            }
            return .success((policy, maxBytes))
        } catch {
            return .failure(EmbeddingError(message: error.message))
        }
    }

    nonisolated(unsafe) private static var stateCount = 0

    private static func defaultStateName() -> String {
        flusherLock.withLock {
            stateCount += 1
            return stateCount == 1 ? "main" : "state \(stateCount)"
        }
    }

    private static let exitHandler: Void = {
        atexit { Flusher.current?.complete() }
    }()

    /// `exit()` (os.exit, or the host returning from main) writes every state's final snapshot.
    private static func registerExitHandlerOnce() {
        _ = exitHandler
    }
}

struct EmbeddingError: Error {
    var message: String
}

/// Facts about this process for the `runs` row, read without Foundation.
public enum ProcessFacts {
    /// The run's host label: the one given, else $LUAMEM_HOST, else the machine's host name.
    public static func hostLabel(_ given: String?) -> String {
        if let given, !given.isEmpty { return given }
        if let variable = getenv("LUAMEM_HOST"), variable.pointee != 0 {
            return String(cString: variable)
        }
        return hostName
    }

    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(cString: buffer)
    }

    /// The command line from /proc/self/cmdline, arguments separated by spaces.
    static var commandLine: String {
        arguments.joined(separator: " ")
    }

    static var programName: String {
        guard let first = arguments.first else { return "lua" }
        return String(first.split(separator: "/").last ?? Substring(first))
    }

    private static var arguments: [String] {
        guard let file = fopen("/proc/self/cmdline", "r") else { return [] }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count <= 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes.split(separator: 0, omittingEmptySubsequences: false)
            .filter { !$0.isEmpty }.map { String(decoding: $0, as: UTF8.self) }
    }
}
