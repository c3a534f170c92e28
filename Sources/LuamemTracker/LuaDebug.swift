import LuaShim

/// The tracker's only calls into Lua: debug queries that neither allocate nor touch the stack,
/// so they are safe inside the allocator.
@usableFromInline
enum LuaDebug {
    /// lua_getstack: fills `debug` for the frame `level` levels below the top; false past the end.
    @inlinable @inline(__always)
    static func stackLevel(
        _ L: OpaquePointer, _ level: Int32, _ debug: UnsafeMutablePointer<lua_Debug>
    ) -> Bool {
        lua_getstack(L, level, debug) != 0
    }

    /// lua_getinfo "Sl": source, first line, kind of function and current line.
    @inlinable @inline(__always)
    static func sourceAndLine(_ L: OpaquePointer, _ debug: UnsafeMutablePointer<lua_Debug>) {
        lua_getinfo(L, "Sl", debug)
    }

    /// Whether the frame `debug` describes runs a C function ("what" is "C").
    @inlinable @inline(__always)
    static func isCFunction(_ debug: UnsafeMutablePointer<lua_Debug>) -> Bool {
        debug.pointee.what.pointee == 67  // "C"
    }

    /// lua_getinfo "n": the name the calling instruction used for the function, if any.
    static func functionName(_ L: OpaquePointer, _ debug: UnsafeMutablePointer<lua_Debug>)
        -> UnsafePointer<CChar>?
    {
        lua_getinfo(L, "n", debug)
        return debug.pointee.name
    }
}
