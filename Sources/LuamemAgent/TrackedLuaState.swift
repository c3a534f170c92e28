import Glibc
import LuaShim
import LuamemTracker

/// A lua_State created with luamem's tracking allocator, from its very first allocation, so the
/// tracked live total equals Lua's own count. Every Lua call the agent makes is in this file.
public final class TrackedLuaState {
    public let tracker: Tracker
    public let L: OpaquePointer
    private var closed = false

    /// Creates the state; nil when Lua cannot allocate it.
    public init?(depth: Int, maxSites: Int = Tracker.defaultMaxSites, sampleInterval: Int = 0) {
        Hooks.install()
        guard let tracker = Tracker(depth: depth) else { return nil }
        tracker.maxSites = maxSites
        tracker.sampleInterval = sampleInterval
        luamem_name_own_functions(tracker.context)
        guard let L = lua_newstate(Tracker.allocator, tracker.context) else {
            tracker.destroy()
            return nil
        }
        self.tracker = tracker
        self.L = L
        tracker.attach(mainThread: L)
    }

    /// Opens the standard libraries and installs luamem's coroutine wrappers, GC sentinel and
    /// `luamem` module; `ignoringEnvironment` is lua.c's -E. Throws the Lua error message.
    public func prepare(ignoringEnvironment: Bool = false) throws(LuaError) {
        var error = [CChar](repeating: 0, count: 512)
        if luamem_prepare_state(L, ignoringEnvironment ? 1 : 0, &error, error.count) != 0 {
            throw LuaError(message: String(cString: error))
        }
    }

    /// lua.c's command line from `arguments[first...]`: its options and where the script is
    /// (`arguments.count` when there is none). nil, with the bad word's index, when an option is
    /// wrong.
    public struct LuaCommandLine {
        public var first: Int
        public var options: Int32
        public var script: Int

        public init?(_ arguments: [String], first: Int, badWord: inout Int) {
            let argv = CArguments(arguments)
            var script: Int32 = 0
            let options = luamem_lua_options(argv.pointers, Int32(first), &script)
            guard options != LUAMEM_LUA_ERROR else {
                badWord = Int(script)
                return nil
            }
            self.first = first
            self.options = options
            self.script = Int(script)
        }

        public func has(_ option: Int32) -> Bool { options & option != 0 }

        /// The script's file name as runs and sites name it ("stdin" for "-"), nil when the
        /// command line has no script.
        public func scriptName(in arguments: [String]) -> String? {
            guard script < arguments.count else { return nil }
            let path = arguments[script]
            return path == "-" ? "stdin" : String(path.split(separator: "/").last ?? Substring(path))
        }

        /// Prints lua.c's usage message for the bad word.
        public static func usage(progname: String, bad: String) {
            luamem_lua_usage(progname, bad)
        }
    }

    /// Builds `arg` as lua.c does and, when the script is all there is to run, loads it (so that
    /// a script that cannot be read or compiled fails before anything else happens); nil after
    /// printing "progname: message" when it cannot be.
    public func loadScript(progname: String, arguments: [String], command: LuaCommandLine)
        -> LoadedScript?
    {
        let argv = CArguments(arguments)
        let load =
            command.script < arguments.count
            && !command.has(LUAMEM_LUA_LIBRARY | LUAMEM_LUA_VERSION | LUAMEM_LUA_INTERACTIVE)
        if load, let name = command.scriptName(in: arguments) { tracker.beginLoading(name) }
        defer { tracker.endLoading() }
        guard
            luamem_load_script(
                L, progname, argv.count, argv.pointers, Int32(command.first),
                Int32(command.script), command.options, load ? 1 : 0) == 0
        else {
            return nil
        }
        return LoadedScript(state: self, argv: argv, command: command)
    }

    /// A command line prepared by `loadScript`, waiting on the Lua stack to be run.
    public struct LoadedScript {
        let state: TrackedLuaState
        let argv: CArguments
        let command: LuaCommandLine

        /// Runs the rest of lua.c's command line; returns the exit status (errors printed like
        /// lua.c).
        public func run() -> Int32 {
            luamem_run_script(
                state.L, argv.count, argv.pointers, Int32(command.first), Int32(command.script),
                command.options)
        }
    }

    /// Lua's own count of bytes in use (collectgarbage("count") * 1024).
    public var luaCountBytes: Int64 {
        Int64(lua_gc(L, LUA_GCCOUNT, 0)) * 1024 + Int64(lua_gc(L, LUA_GCCOUNTB, 0))
    }

    /// Closes the state and frees the tracker. Untrack it from the flusher first.
    public func close() {
        guard !closed else { return }
        closed = true
        tracker.beginClosing()
        lua_close(L)
        tracker.destroy()
    }

    /// The Lua version string, e.g. "Lua 5.3.6".
    public static var luaRelease: String { "Lua 5.3.\(LUA_VERSION_RELEASE)" }
}

/// A C argv that lives as long as this object.
final class CArguments {
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int32

    init(_ arguments: [String]) {
        count = Int32(arguments.count)
        pointers = .allocate(capacity: arguments.count + 1)
        for (index, argument) in arguments.enumerated() { pointers[index] = strdup(argument) }
        pointers[arguments.count] = nil
    }

    deinit {
        for index in 0..<Int(count) { free(pointers[index]) }
        pointers.deallocate()
    }
}

/// An error raised by Lua code, with its message.
public struct LuaError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
