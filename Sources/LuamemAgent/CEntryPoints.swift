import Glibc
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

/// `lua5.3 -l luamem.auto`: the numeric options from $LUAMEM_INTERVAL (seconds), $LUAMEM_DEPTH
/// and $LUAMEM_SAMPLE (a size, as `luamem run --sample` takes it), checked as `luamem run`
/// checks its options, and the check of $LUAMEM_KEEP, $LUAMEM_KEEP_FULL (durations) and
/// $LUAMEM_MAX_DB_SIZE (a size), which the C side passes on as text. Unset or empty variables
/// leave the defaults. 0, or -1 and `message`.
@_cdecl("luamem_agent_environment_options")
public func luamemAgentEnvironmentOptions(
    _ interval: UnsafeMutablePointer<Double>, _ depth: UnsafeMutablePointer<Int32>,
    _ sample: UnsafeMutablePointer<Double>, _ message: UnsafeMutablePointer<CChar>, _ size: Int
) -> Int32 {
    func variable(_ name: String) -> String? {
        guard let value = getenv(name), value.pointee != 0 else { return nil }
        return String(cString: value)
    }
    do throws(RunnerError) {
        if let text = variable("LUAMEM_INTERVAL") {
            guard let seconds = Double(text), seconds > 0, seconds <= Runner.maxInterval else {
                throw RunnerError(
                    "LUAMEM_INTERVAL must be a positive number of seconds up to 1e9, got '\(text)'")
            }
            interval.pointee = seconds
        }
        if let text = variable("LUAMEM_DEPTH") {
            guard let frames = Int32(text), (1...Int32(Tracker.maxDepth)).contains(frames) else {
                throw RunnerError(
                    "LUAMEM_DEPTH must be a whole number from 1 to \(Tracker.maxDepth), got '\(text)'")
            }
            depth.pointee = frames
        }
        if let text = variable("LUAMEM_SAMPLE") {
            let bytes = try Runner.size("LUAMEM_SAMPLE", text, example: "512KiB")
            guard bytes <= Runner.maxSample else {
                throw RunnerError("LUAMEM_SAMPLE must be at most 1GiB, got '\(text)'")
            }
            sample.pointee = Double(bytes)
        }
        if let text = variable("LUAMEM_KEEP") { _ = try Runner.duration("LUAMEM_KEEP", text) }
        if let text = variable("LUAMEM_KEEP_FULL") {
            _ = try Runner.duration("LUAMEM_KEEP_FULL", text)
        }
        if let text = variable("LUAMEM_MAX_DB_SIZE") {
            _ = try Runner.size("LUAMEM_MAX_DB_SIZE", text, example: "512MB")
        }
    } catch {
        Hooks.copy(error.message, into: message, size: size)
        return -1
    }
    return 0
}
