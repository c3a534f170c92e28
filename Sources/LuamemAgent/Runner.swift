import Glibc
import LuaShim
import LuamemStore
import LuamemTracker

/// `luamem run` without the CLI: the options, their checks, and the run itself. The `luamem-run`
/// executable (no Foundation, no ArgumentParser, about 13 MiB less RSS than `luamem`) and the
/// CLI's own `run` share it.
public enum Runner {
    public struct Options: Sendable {
        public var db: String
        public var interval: Double = 10
        public var build: String?
        public var name: String?
        /// The host label (`--host`); nil: $LUAMEM_HOST, else the machine's host name.
        public var host: String?
        public var depth = 1
        public var sample: Int64 = 0
        public var maxSites = Tracker.defaultMaxSites
        public var maxDbSize: Int64?
        /// What history the run keeps (`--keep`, `--keep-full`; `--max-db-size` is its size).
        public var retention = RetentionPolicy()
        /// Index in the command line where lua5.3's own command line starts (its options, the
        /// script, the script's arguments), right after luamem's options.
        public var firstLuaArgument: Int

        public init(db: String, firstLuaArgument: Int) {
            self.db = db
            self.firstLuaArgument = firstLuaArgument
        }
    }

    /// The environment variable through which `luamem run` hands its parsed options to
    /// `luamem-run`, which it executes with the same command line (the script's `arg` table
    /// shows the command line, so it must not change).
    public static let handOverVariable = "LUAMEM_RUN_OPTIONS"

    /// Whether a command line `luamem run …` asks for `luamem run`'s help: --help or -h among
    /// luamem's own options (the words after `run` up to the first that is not a --option, or
    /// up to --).
    public static func asksForHelp(_ commandLine: [String]) -> Bool {
        for word in commandLine.dropFirst(2) {
            if word == "--help" || word == "-h" { return true }
            if !word.hasPrefix("--") || word == "--" { return false }
        }
        return false
    }

    /// `luamem run`'s usage line, as its errors print it.
    public static let luamemRunUsage =
        "Usage: luamem run [--db <db>] [--interval <interval>] [--build <build>] [--name <name>] [--host <host>] "
        + "[--depth <depth>] [--sample <sample>] [--max-sites <max-sites>] "
        + "[--max-db-size <max-db-size>] [--keep <keep>] [--keep-full <keep-full>] "
        + "[lua5.3 options] [script [args...]]"

    /// A `luamem run` option error as luamem prints it (exit status 64).
    public static func luamemRunError(_ message: String) -> String {
        "Error: \(message)\n\(luamemRunUsage)\n  See 'luamem run --help' for more information.\n"
    }

    /// `options` as the value of `handOverVariable`: each field as its UTF-8 length, a colon and
    /// the text, so that labels and paths may hold any character.
    public static func handOver(_ options: Options) -> String {
        func optional(_ text: String?) -> String { text.map { "+" + $0 } ?? "-" }
        func optional(_ number: Int64?) -> String { number.map { String($0) } ?? "-" }
        let fields: [String] = [
            "4", String(options.firstLuaArgument), options.db, String(options.interval),
            optional(options.build), optional(options.name), String(options.depth),
            String(options.sample), String(options.maxSites), optional(options.maxDbSize),
            optional(options.retention.keepMs), optional(options.retention.keepFullMs),
            optional(options.host),
        ]
        return fields.map { "\($0.utf8.count):\($0)" }.joined()
    }

    /// The fields of a handed-over value, nil when it is malformed.
    private static func fields(_ text: String) -> [String]? {
        var rest = Substring(text).utf8[...]
        var fields: [String] = []
        while !rest.isEmpty {
            guard let colon = rest.firstIndex(of: UInt8(ascii: ":")),
                let count = Int(String(decoding: rest[..<colon], as: UTF8.self)), count >= 0
            else { return nil }
            let start = rest.index(after: colon)
            guard let end = rest.index(start, offsetBy: count, limitedBy: rest.endIndex) else {
                return nil
            }
            fields.append(String(decoding: rest[start..<end], as: UTF8.self))
            rest = rest[end...]
        }
        return fields
    }

    /// Options handed over by `luamem run`, nil when `text` is not such a value.
    public static func takeOver(_ text: String) -> Options? {
        guard let fields = fields(text), fields.count == 13, fields[0] == "4",
            let firstLuaArgument = Int(fields[1]),
            let interval = Double(fields[3]), let depth = Int(fields[6]),
            let sample = Int64(fields[7]), let maxSites = Int(fields[8])
        else { return nil }
        func optional(_ text: String) -> String? {
            text.hasPrefix("+") ? String(text.dropFirst()) : nil
        }
        var options = Options(db: fields[2], firstLuaArgument: firstLuaArgument)
        options.interval = interval
        options.build = optional(fields[4])
        options.name = optional(fields[5])
        options.depth = depth
        options.sample = sample
        options.maxSites = maxSites
        options.maxDbSize = Int64(fields[9])
        options.retention.keepMs = Int64(fields[10])
        options.retention.keepFullMs = Int64(fields[11])
        options.host = optional(fields[12])
        return problem(options) == nil ? options : nil
    }

    /// The milliseconds a duration option (`--keep`, `--keep-full`) stands for.
    public static func duration(_ option: String, _ value: String) throws(RunnerError) -> Int64 {
        guard let ms = DurationText.milliseconds(value), ms > 0 else {
            throw RunnerError("\(option) must be a duration such as 30d or 12h, got '\(value)'")
        }
        return ms
    }

    /// The bytes a size option (`--sample`, `--max-db-size`) stands for.
    public static func size(_ option: String, _ value: String, example: String) throws(RunnerError)
        -> Int64
    {
        guard let bytes = ByteSize.parse(value) else {
            throw RunnerError("\(option) must be a size such as \(example), got '\(value)'")
        }
        return bytes
    }

    /// The limits shared with the C side (LuaShim.h).
    public static let maxInterval: Double = LUAMEM_MAX_INTERVAL
    public static let maxSample = Int64(LUAMEM_MAX_SAMPLE)

    /// The message for options out of range, nil when they are fine.
    public static func problem(_ options: Options) -> String? {
        if !options.interval.isFinite || options.interval <= 0 || options.interval > maxInterval {
            return "--interval must be a positive number of seconds up to 1e9, got \(options.interval)"
        }
        if options.maxSites < 16 || options.maxSites > Tracker.maxSitesLimit {
            return "--max-sites must be from 16 to \(Tracker.maxSitesLimit), got \(options.maxSites)"
        }
        if let problem = Database.pathProblem(options.db) {
            return "--db cannot be '\(options.db)': \(problem)"
        }
        if options.sample < 0 || options.sample > maxSample {
            return "--sample must be from 0 to 1GiB, got \(options.sample) bytes"
        }
        if !(1...Tracker.maxDepth).contains(options.depth) {
            return "--depth must be between 1 and \(Tracker.maxDepth), got \(options.depth)"
        }
        return nil
    }

    /// Parses `luamem run` options from `commandLine[first...]`: `--name value` or
    /// `--name=value`. They end at the first word that does not start with `--`, or at `--`:
    /// from there on, the command line is lua5.3's (`-e`, `-l`, …, `--`, the script).
    public static func parse(_ commandLine: [String], from first: Int) -> Result<
        Options, RunnerError
    > {
        let fromEnvironment = getenv("LUAMEM_DB").map { String(cString: $0) } ?? ""
        var options = Options(
            db: fromEnvironment.isEmpty ? "luamem.db" : fromEnvironment, firstLuaArgument: -1)
        var index = first
        while index < commandLine.count {
            var word = commandLine[index]
            guard word.hasPrefix("--"), word != "--" else { break }
            var value: String?
            if let equals = word.firstIndex(of: "=") {
                value = String(word[word.index(after: equals)...])
                word = String(word[..<equals])
            } else if index + 1 < commandLine.count {
                index += 1
                value = commandLine[index]
            }
            guard let value else { return .failure(RunnerError("missing value for '\(word)'")) }
            func number<T: LosslessStringConvertible>(_: T.Type) throws(RunnerError) -> T {
                guard let number = T(value) else {
                    throw RunnerError("\(word) must be a number, got '\(value)'")
                }
                return number
            }
            do throws(RunnerError) {
                switch word {
                case "--db": options.db = value
                case "--build": options.build = value
                case "--name": options.name = value
                case "--host": options.host = value
                case "--interval": options.interval = try number(Double.self)
                case "--depth": options.depth = try number(Int.self)
                case "--max-sites": options.maxSites = try number(Int.self)
                case "--sample": options.sample = try size(word, value, example: "512KiB")
                case "--max-db-size": options.maxDbSize = try size(word, value, example: "64MB")
                case "--keep": options.retention.keepMs = try duration(word, value)
                case "--keep-full": options.retention.keepFullMs = try duration(word, value)
                default: throw RunnerError("unknown option '\(word)'")
                }
            } catch {
                return .failure(error)
            }
            index += 1
        }
        options.firstLuaArgument = index
        if let problem = problem(options) { return .failure(RunnerError(problem)) }
        return .success(options)
    }

    /// Runs lua5.3's command line, from `options.firstLuaArgument` of `commandLine`, as lua5.3
    /// would, tracked, and returns its exit status; a state that cannot be set up throws.
    public static func run(_ options: Options, commandLine: [String]) throws(RunnerError) -> Int32 {
        var badWord = 0
        guard
            let command = TrackedLuaState.LuaCommandLine(
                commandLine, first: options.firstLuaArgument, badWord: &badWord)
        else {
            TrackedLuaState.LuaCommandLine.usage(progname: "luamem", bad: commandLine[badWord])
            return 1
        }
        guard
            let state = TrackedLuaState(
                depth: options.depth, maxSites: options.maxSites,
                sampleInterval: Int(options.sample))
        else {
            throw RunnerError("cannot create a Lua state: out of memory")
        }
        do {
            try state.prepare(ignoringEnvironment: command.has(LUAMEM_LUA_NOENV))
        } catch {
            throw RunnerError("cannot prepare the Lua state: \(error)")
        }
        // A script that cannot be read or compiled fails like lua5.3 and leaves no run behind.
        guard
            let loaded = state.loadScript(
                progname: "luamem", arguments: commandLine, command: command)
        else {
            state.close()
            return 1
        }
        let scriptName =
            command.scriptName(in: commandLine)
            ?? (command.has(LUAMEM_LUA_LIBRARY | LUAMEM_LUA_VERSION) ? "(command line)" : "stdin")
        let seed = options.sample > 0 ? ",\"sample_seed\":\(state.tracker.sampleSeed)" : ""
        let runOptions =
            "{\"interval_ms\":\(Int64((options.interval * 1000).rounded())),"
            + "\"depth\":\(options.depth),\"sample\":\(options.sample)\(seed)}"
        let flusher = Flusher(
            path: options.db,
            run: RunInfo(
                build: options.build, name: options.name ?? scriptName,
                host: ProcessFacts.hostLabel(options.host), pid: Int64(getpid()),
                command: commandLine.joined(separator: " "), luaVersion: TrackedLuaState.luaRelease,
                options: runOptions, startedMs: Clock.epochMs()),
            interval: options.interval, maxDatabaseBytes: options.maxDbSize,
            retention: options.retention)
        flusher.begin(state.tracker, name: options.name ?? scriptName)
        if let runID = flusher.recordedRunID { RunLineage.announce(runID: runID, path: options.db) }
        flusher.start()
        // SIGTERM and SIGHUP: the final snapshot, then death by the same signal, as lua5.3 dies.
        _ = luamem_finish_on_termination {
            Flusher.current?.complete(exitStatus: 128 + Int64(luamem_termination_signal()))
        }
        // No full collection here: the script's chunk ran one before its final return, while
        // its locals were still reachable (Runner.c, end_with_a_collection).
        let status = loaded.run()
        flusher.complete(exitStatus: Int64(status))
        luamem_die_if_terminating()
        state.close()
        return status
    }
}

public struct RunnerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(_ message: String) { self.message = message }
}

/// Parses byte sizes: 1024, 512KiB, 1.5MB, 2G (powers of 1024).
public enum ByteSize {
    public static func parse(_ text: String) -> Int64? {
        let trimmed = text.drop { $0 == " " || $0 == "\t" }.reversed().drop {
            $0 == " " || $0 == "\t"
        }.reversed()
        let digits = trimmed.prefix { $0.isNumber || $0 == "." }
        guard !digits.isEmpty, let value = Double(String(digits)), value >= 0 else { return nil }
        let unit = String(trimmed.dropFirst(digits.count)).lowercased()
        let scale: Double
        switch unit {
        case "", "b": scale = 1
        case "k", "kb", "kib": scale = 1024
        case "m", "mb", "mib": scale = 1024 * 1024
        case "g", "gb", "gib": scale = 1024 * 1024 * 1024
        default: return nil
        }
        // Int64(exactly:) is nil past Int64's range, where Int64(_:) would trap.
        return Int64(exactly: (value * scale).rounded())
    }
}

/// Parses durations: 500ms, 30s, 15m, 1h, 2d, 1w, or pairs such as 1h30m.
public enum DurationText {
    /// Longer than any history (about 31,700 years): longer durations mean all of it, and no
    /// arithmetic on them can overflow.
    public static let maxMs: Double = 1e15

    /// The duration in milliseconds, clamped to `maxMs`; nil unless the whole text is
    /// number+unit pairs.
    public static func milliseconds(_ text: String) -> Int64? {
        var rest = Substring(text)
        guard !rest.isEmpty else { return nil }
        var total: Double = 0
        while !rest.isEmpty {
            let digits = rest.prefix { $0.isNumber || $0 == "." }
            guard !digits.isEmpty, let value = Double(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            let unit = rest.prefix { $0.isLetter }
            rest = rest.dropFirst(unit.count)
            let scale: Double
            switch unit {
            case "ms": scale = 1
            case "s": scale = 1000
            case "m": scale = 60_000
            case "h": scale = 3_600_000
            case "d": scale = 86_400_000
            case "w": scale = 7 * 86_400_000
            default: return nil
            }
            total += value * scale
        }
        return Int64(min(total, maxMs).rounded())
    }
}
