import LuaShim
import LuamemTracker

// The Swift side of the C API in Sources/Luamem (luamem.h): plain C symbols the C target calls.

@_cdecl("luamem_agent_install")
public func luamemAgentInstall() {
    Hooks.install()
}

@_cdecl("luamem_agent_newstate")
public func luamemAgentNewState(
    _ options: UnsafePointer<luamem_start_options>, _ error: UnsafeMutablePointer<CChar>,
    _ size: Int
) -> OpaquePointer? {
    switch Embedding.newState(options.pointee) {
    case .success(let L): return L
    case .failure(let failure):
        Hooks.copy(failure.message, into: error, size: size)
        return nil
    }
}

@_cdecl("luamem_agent_attach")
public func luamemAgentAttach(
    _ L: OpaquePointer, _ options: UnsafePointer<luamem_start_options>,
    _ error: UnsafeMutablePointer<CChar>, _ size: Int
) -> Int32 {
    guard let message = Embedding.start(L, options.pointee) else { return 0 }
    Hooks.copy(message, into: error, size: size)
    return -1
}

@_cdecl("luamem_agent_detach")
public func luamemAgentDetach(
    _ L: OpaquePointer, _ error: UnsafeMutablePointer<CChar>, _ size: Int
) -> Int32 {
    guard let context = luamem_context_of(L) else {
        Hooks.copy("luamem is not tracking this Lua state", into: error, size: size)
        return -1
    }
    guard let message = Embedding.stop(Tracker(context: context)) else { return 0 }
    Hooks.copy(message, into: error, size: size)
    return -1
}

@_cdecl("luamem_agent_flush")
public func luamemAgentFlush(_ error: UnsafeMutablePointer<CChar>, _ size: Int) -> Int32 {
    guard let flusher = Flusher.current else {
        Hooks.copy("luamem is not tracking any Lua state", into: error, size: size)
        return -1
    }
    guard let message = flusher.flush(kind: .manual) else { return 0 }
    Hooks.copy(message, into: error, size: size)
    return -1
}
