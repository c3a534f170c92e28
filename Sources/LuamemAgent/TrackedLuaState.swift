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
        let tracker = Tracker(depth: depth)
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
    /// `luamem` module. Throws the Lua error message.
    public func prepare() throws(LuaError) {
        var error = [CChar](repeating: 0, count: 512)
        if luamem_prepare_state(L, &error, error.count) != 0 {
            throw LuaError(message: String(cString: error))
        }
    }

    /// Loads a script like lua.c (`arguments[script]` is the script, "-" for stdin) and builds
    /// `arg`; nil after printing "progname: message" when it cannot be read or compiled.
    public func loadScript(progname: String, arguments: [String], script: Int) -> LoadedScript? {
        let argv = CArguments(arguments)
        guard luamem_load_script(L, progname, argv.count, argv.pointers, Int32(script)) == 0 else {
            return nil
        }
        return LoadedScript(state: self, argv: argv, script: script)
    }

    /// A script loaded by `loadScript`, waiting on the Lua stack to be run.
    public struct LoadedScript {
        let state: TrackedLuaState
        let argv: CArguments
        let script: Int

        /// Runs LUA_INIT and the script; returns the exit status (errors printed like lua.c).
        public func run() -> Int32 {
            luamem_run_script(state.L, argv.count, argv.pointers, Int32(script))
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
