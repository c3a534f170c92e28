import Glibc
import LuaShim
import LuamemTracker

/// Connects the C side (resume wrappers, GC sentinel, the `luamem` Lua module) to the tracker
/// and the flusher. C calls these from Lua C functions; they never call back into Lua, so no Lua
/// error can cross a Swift frame.
enum Hooks {
    private static let installed: Void = {
        var hooks = luamem_hooks()
        hooks.alloc = Tracker.allocator
        hooks.gc_cycle_completed = { context in
            Tracker(context: context!).gcCycleCompleted()
        }
        hooks.totals = { context, out in
            let tracker = Tracker(context: context!)
            let totals = tracker.totals()
            var result = luamem_totals()
            result.live_bytes = totals.live_bytes
            result.live_count = totals.live_count
            result.alloc_bytes = totals.alloc_bytes
            result.alloc_count = totals.alloc_count
            result.peak_bytes = totals.peak_bytes
            result.gc_live_bytes = totals.gc_live_bytes
            result.gc_live_count = totals.gc_live_count
            result.gc_cycles = tracker.gcCycles
            result.sites = Int64(tracker.publishedSiteCount)
            result.snapshots = tracker.snapshotsWritten
            result.untracked_bytes = tracker.untrackedBytes
            result.tracking = tracker.isPaused ? 0 : 1
            out!.pointee = result
        }
        hooks.flush = { context, error, size in
            guard let flusher = Flusher.current, flusher.isTracking(Tracker(context: context!))
            else {
                copy("luamem is not tracking this Lua state", into: error!, size: size)
                return -1
            }
            guard let message = flusher.flush(kind: .manual) else { return 0 }
            copy(message, into: error!, size: size)
            return -1
        }
        hooks.name_cfunction = { context, function, name in
            Tracker(context: context!).name(cfunction: function!, name!)
        }
        hooks.exiting = { _, status in
            Flusher.current?.complete(exitStatus: Int64(status & 0xFF))
        }
        hooks.start = { L, options, error, size in
            guard let message = Embedding.start(L!, options!.pointee) else { return 0 }
            copy(message, into: error!, size: size)
            return -1
        }
        hooks.stop = { context, error, size in
            guard let message = Embedding.stop(Tracker(context: context!)) else { return 0 }
            copy(message, into: error!, size: size)
            return -1
        }
        hooks.closing = { context in
            let tracker = Tracker(context: context!)
            if let flusher = Flusher.current {
                flusher.close(tracker)
            } else {
                tracker.flusherReleased()
            }
        }
        hooks.check_options = { options, error, size in
            let names = ("option 'keep'", "option 'keep_full'", "option 'max_db_size'")
            guard case .failure(let failure) = Embedding.storage(options!.pointee, names: names)
            else { return 0 }
            copy(failure.message, into: error!, size: size)
            return -1
        }
        luamem_set_hooks(&hooks)
    }()

    /// Copies `message` into a C buffer of `size` bytes, truncated and NUL-terminated.
    static func copy(_ message: String, into buffer: UnsafeMutablePointer<CChar>, size: Int) {
        guard size > 0 else { return }
        var written = 0
        for byte in message.utf8 where written < size - 1 {
            buffer[written] = CChar(bitPattern: byte)
            written += 1
        }
        buffer[written] = 0
    }

    /// Installs the hooks once per process.
    static func install() {
        _ = installed
    }
}
