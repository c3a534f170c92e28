import Glibc
import LuaShim

/// One Lua source line as the flusher reads it. The strings are interned by the tracker and live
/// as long as it does.
public struct FrameRecord {
    public var source: UnsafePointer<CChar>
    public var function: UnsafePointer<CChar>?
    public var line: Int32
    public var lineDefined: Int32
}

/// One allocation site as the flusher reads it: frame indexes innermost first, and the C
/// function (interned name) that was running, if any.
public struct SiteRecord {
    public var frames: UnsafeMutablePointer<UInt32>
    public var frameCount: Int32
    public var cfunction: UnsafePointer<CChar>?
}

/// Tracks every allocation of one lua_State: installed as its `lua_Alloc`, it charges each block
/// to the Lua line (or call stack) that allocated it, per object type, and frees back to that
/// site. A handle to storage allocated with malloc; `destroy()` releases it.
///
/// Each block carries an 8-byte header with its counter slot and the GC epoch it was allocated
/// in, so a free finds its site without a lookup. The Lua thread is the only writer; the
/// flusher reads published records and counters with relaxed atomics, never stopping the Lua
/// thread.
public struct Tracker {
    /// Touched by the Lua thread only: Swift treats `storage.pointee.method()` as an access to
    /// the whole storage, so other threads read through `shared` and `context` instead.
    @usableFromInline let storage: UnsafeMutablePointer<TrackerStorage>
    let shared: UnsafeMutablePointer<TrackerShared>
    /// The `ud` to give Lua together with `Tracker.allocator`.
    public let context: UnsafeMutablePointer<luamem_context>

    /// Deepest call stack a site may have (`--depth`).
    public static let maxDepth = 32

    /// Distinct sites a tracker keeps by default before folding new ones into `[other sites]`.
    public static let defaultMaxSites = 100_000

    /// The highest cap on distinct sites: site numbers are 32-bit, and the site cache is sized
    /// from the cap.
    public static let maxSitesLimit = 1 << 30

    /// Lowers or raises the cap on distinct sites (on the Lua thread, before the state runs code);
    /// clamped to 16...maxSitesLimit.
    public var maxSites: Int {
        get { storage.pointee.maxSites }
        nonmutating set {
            let clamped = min(max(16, newValue), Tracker.maxSitesLimit)
            storage.pointee.maxSites = clamped
            luamem_store_relaxed(shared.pointee.maxSites, Int64(clamped))
        }
    }

    /// The sampler's seed, recorded with a sampled run so that it can be repeated
    /// ($LUAMEM_SAMPLE_SEED).
    public var sampleSeed: UInt64 { storage.pointee.seed }

    /// Samples about one allocation per `bytes` allocated (0: record every allocation). Per-site
    /// figures become estimates; totals stay exact. Set before the state runs code.
    public var sampleInterval: Int {
        get { storage.pointee.sampleInterval }
        nonmutating set {
            storage.pointee.sampleInterval = max(0, newValue)
            storage.pointee.bytesUntilSample =
                newValue > 0 ? storage.pointee.nextSampleDistance() : 0
            luamem_store_relaxed(
                shared.pointee.unsampledSite,
                newValue > 0 ? Int64(storage.pointee.unsampledSite) : -1)
        }
    }

    /// The site whose slots hold unsampled blocks, -1 without sampling; the flusher does not
    /// write it.
    public var unsampledSite: Int64 { luamem_load_relaxed(shared.pointee.unsampledSite) }

    /// The cap on distinct sites, readable from any thread.
    public var maxSitesShared: Int64 { luamem_load_relaxed(shared.pointee.maxSites) }

    /// Cache misses that found the site cap reached and were folded into `[other sites]`.
    public var foldedAllocations: Int64 { luamem_load_relaxed(shared.pointee.folded) }

    /// Creates a tracker that records `depth` Lua frames per site (1...maxDepth); nil when out
    /// of memory.
    public init?(depth: Int) {
        precondition((1...Self.maxDepth).contains(depth), "depth must be in 1...\(Self.maxDepth)")
        guard let tracker = TrackerStorage(depth: depth) else { return nil }
        storage = UnsafeMutablePointer<TrackerStorage>.allocate(capacity: 1)
        storage.initialize(to: tracker)
        context = storage.pointee.context
        shared = UnsafeMutablePointer<TrackerShared>.allocate(capacity: 1)
        shared.initialize(to: TrackerShared(storage.pointee))
        context.pointee.tracker = UnsafeMutableRawPointer(storage)
        context.pointee.shared = UnsafeMutableRawPointer(shared)
        storage.pointee.createHostSite()
    }

    /// The tracker whose context this is.
    public init(context: UnsafeMutablePointer<luamem_context>) {
        self.context = context
        self.storage = context.pointee.tracker.assumingMemoryBound(to: TrackerStorage.self)
        self.shared = context.pointee.shared.assumingMemoryBound(to: TrackerShared.self)
    }

    /// The allocator; its `ud` must be this tracker's `context`.
    public static let allocator: lua_Alloc = { ud, block, osize, nsize in
        let context = ud.unsafelyUnwrapped.assumingMemoryBound(to: luamem_context.self)
        let storage = context.pointee.tracker.unsafelyUnwrapped
            .assumingMemoryBound(to: TrackerStorage.self)
        if let block, storage.pointee.attached, !storage.pointee.owns(block, size: osize) {
            let result = storage.pointee.foreign(block, oldSize: osize, newSize: nsize)
            if storage.pointee.mainThreadFreed { Tracker(context: context).closed() }
            return result
        }
        if nsize == 0 {
            if let block {
                storage.pointee.release(block, size: osize)
                if storage.pointee.mainThreadFreed { Tracker(context: context).closed() }
            }
            return nil
        }
        if let block {
            return storage.pointee.reallocate(block, oldSize: osize, newSize: nsize)
        }
        return storage.pointee.allocate(type: ObjectType(luaTag: osize), size: nsize)
    }

    /// Takes over the allocator of a state that already exists. Blocks allocated before are
    /// freed through the previous allocator and counted as untracked; reallocating one moves it
    /// into tracked memory. The state must not be running (call from its thread).
    public func attach(existing L: OpaquePointer, mainThread: OpaquePointer) {
        var previousUD: UnsafeMutableRawPointer?
        let previous = lua_getallocf(L, &previousUD)
        storage.pointee.previousAllocator = previous
        storage.pointee.previousUD = previousUD
        storage.pointee.attached = true
        luamem_store_relaxed(
            storage.pointee.untracked,
            Int64(lua_gc(L, LUA_GCCOUNT, 0)) * 1024 + Int64(lua_gc(L, LUA_GCCOUNTB, 0)))
        lua_setallocf(L, Tracker.allocator, context)
        attach(mainThread: mainThread, running: L)
    }

    /// Whether `lua_close` of the state frees the tracker (states tracked through the module or
    /// the C API; `luamem run` frees it itself).
    public var destroysOnClose: Bool {
        get { storage.pointee.destroyOnClose }
        nonmutating set { storage.pointee.destroyOnClose = newValue }
    }

    /// Stops looking up sites: allocations go on through the tracker (its blocks are still in
    /// use) but are charged to `[host]`. `resume()` looks them up again.
    public func pause() { storage.pointee.passive = true }
    public func resume() { storage.pointee.passive = false }
    public var isPaused: Bool { storage.pointee.passive }

    /// The flusher no longer reads this tracker: closing the state may free it, or, when the
    /// state has closed already (its final snapshot was left to the flusher thread), this frees it.
    public func flusherReleased() {
        if luamem_fetch_or(shared.pointee.released, Self.releasedByFlusher) & Self.closedState != 0 {
            destroy()
        }
    }

    /// The flusher reads this tracker again (tracking resumed after luamem.stop).
    public func flusherAcquired() {
        luamem_store_relaxed(shared.pointee.released, 0)
    }

    /// Bits of `TrackerShared.released`.
    static let releasedByFlusher: Int64 = 1
    static let closedState: Int64 = 2

    /// Bytes of blocks allocated before the tracker was attached that are still live.
    public var untrackedBytes: Int64 { luamem_load_relaxed(shared.pointee.untracked) }

    /// The state's main block was freed: lua_close is done with the tracker.
    func closed() {
        guard storage.pointee.destroyOnClose else { return }
        if luamem_fetch_or(shared.pointee.released, Self.closedState) & Self.releasedByFlusher != 0 {
            destroy()
        }
    }

    /// Completes set-up once the state exists: records its main thread and verifies, with probe
    /// objects, the parts of Lua's layout the tracker reads. Call before running any Lua code.
    public func attach(mainThread L: OpaquePointer, running: OpaquePointer? = nil) {
        context.pointee.main = L
        context.pointee.current = running ?? L
        // The probes' own allocations go to [host].
        storage.pointee.passive = true
        defer { storage.pointee.passive = false }
        // Every access goes through `storage` (not a mutating method of the storage): the probes
        // re-enter the allocator, which must see `probing` set.
        storage.pointee.cfunctionLayoutVerified = luamem_probe_layout(L) == 1
        storage.pointee.stackWalkVerified = luamem_probe_stack_walk(L) == 1
        storage.pointee.frameInfoVerified = luamem_probe_frame_info(L) == 1
        storage.pointee.probing = true
        var stringBytes: UnsafePointer<CChar>?
        var thread: OpaquePointer?
        let probed = luamem_probe_objects(L, &stringBytes, &thread) == 0
        storage.pointee.probing = false
        guard probed, let stringBytes, let thread, let probedString = storage.pointee.probedString,
            let probedThread = storage.pointee.probedThread
        else { return }
        let stringOffset = UnsafeRawPointer(stringBytes) - UnsafeRawPointer(probedString)
        let threadOffset = UnsafeRawPointer(thread) - UnsafeRawPointer(probedThread)
        if (0...64).contains(stringOffset) && (0...64).contains(threadOffset) {
            storage.pointee.stringBytesOffset = stringOffset
            storage.pointee.threadStateOffset = threadOffset
            storage.pointee.cacheEnabled = true
            storage.pointee.keysByPC =
                storage.pointee.frameInfoVerified && storage.pointee.stackWalkVerified
            // The cache is empty until now; entries of pcs are shorter.
            storage.pointee.cacheStride = TrackerStorage.cacheStride(
                depth: storage.pointee.depth, keysByPC: storage.pointee.keysByPC)
        }
    }

    /// Marks the state as closing: the GC sentinel is not planted again.
    public func beginClosing() {
        context.pointee.closing = 1
    }

    /// A garbage-collection cycle completed: the current live figures become the post-GC ones.
    public func gcCycleCompleted() {
        storage.pointee.gcCycleCompleted()
    }

    /// Charges what is allocated from now until `endLoading()` to a site named "`name` (load)":
    /// loading a script (its bytecode, `arg`) happens before any Lua frame exists.
    public func beginLoading(_ name: String) {
        storage.pointee.beginLoading(name)
    }

    public func endLoading() { storage.pointee.loadingSite = 0 }

    /// Names a C function for sites that allocate inside it ("string.rep").
    public func name(cfunction: lua_CFunction, _ name: UnsafePointer<CChar>) {
        storage.pointee.name(cfunction: cfunction, name)
    }

    /// Frees the tracker. Its state must be closed and no flusher may read it any more.
    public func destroy() {
        storage.pointee.deallocate()
        storage.deinitialize(count: 1)
        storage.deallocate()
        shared.pointee.released.deallocate()
        shared.pointee.maxSites.deallocate()
        shared.pointee.unsampledSite.deallocate()
        shared.deallocate()
    }
}

// MARK: - Reading from the flusher thread

extension Tracker {
    /// Frames, sites and counter slots visible to other threads, in this order of publication:
    /// a site's frames are published before it, a slot's site before the slot.
    public var publishedFrameCount: Int { shared.pointee.frames.publishedCount() }
    public var publishedSiteCount: Int { shared.pointee.sites.publishedCount() }
    public var publishedSlotCount: Int { shared.pointee.counters.publishedCount() }

    public func frame(_ index: Int) -> FrameRecord { shared.pointee.frames.element(index).pointee }

    /// Counter slots come in groups of this many (slot / slotGroupSize is the group).
    public static let slotGroupSize = 1 << TrackerStorage.groupShift

    /// Whether a counter slot of `group` may have changed since the last call for the group, or
    /// since the tracker began. Takes the mark: read the group's slots after calling it, and an
    /// update racing with the read marks the group again.
    public func takeChanged(group: Int) -> Bool {
        // Loaded after the slot count that made `group` readable: the array covers it.
        let marks = luamem_load_acquire_ptr(shared.pointee.changedGroups).unsafelyUnwrapped
        return luamem_take_changed(marks.assumingMemoryBound(to: UInt8.self) + group) != 0
    }
    public func site(_ index: Int) -> SiteRecord { shared.pointee.sites.element(index).pointee }

    /// Sampled slots count objects in 1/countScale units.
    @usableFromInline static let countScale: Int64 = 1024

    /// A copy of one slot's counters, read with relaxed atomics (counts in objects).
    public func counters(_ slot: Int) -> luamem_counters {
        var copy = Self.read(shared.pointee.counters.element(slot))
        if unsampledSite >= 0 && Int64(copy.site) != unsampledSite {
            func objects(_ scaled: Int64) -> Int64 {
                (scaled + Self.countScale / 2) / Self.countScale
            }
            copy.live_count = objects(copy.live_count)
            copy.alloc_count = objects(copy.alloc_count)
            copy.gc_live_count = objects(copy.gc_live_count)
        }
        return settledBeforeFirstCycle(copy)
    }

    /// The state's totals, read with relaxed atomics.
    public func totals() -> luamem_counters {
        settledBeforeFirstCycle(Self.read(shared.pointee.totals))
    }

    private static func read(_ counter: UnsafeMutablePointer<luamem_counters>) -> luamem_counters {
        var copy = luamem_counters()
        luamem_counters_read(counter, &copy)
        return copy
    }

    /// Post-GC figures exist once two cycles have completed (the first cycle cannot tell old
    /// blocks from new ones); until then the current figures stand in.
    private func settledBeforeFirstCycle(_ counters: luamem_counters) -> luamem_counters {
        guard gcCycles < 2 else { return counters }
        var settled = counters
        settled.gc_live_bytes = counters.live_bytes
        settled.gc_live_count = counters.live_count
        return settled
    }

    /// Snapshots of this state written so far; only the flusher writes it.
    public var snapshotsWritten: Int64 {
        get { luamem_load_relaxed(shared.pointee.snapshots) }
        nonmutating set { luamem_store_relaxed(shared.pointee.snapshots, newValue) }
    }

    /// Completed GC cycles seen by the sentinel.
    public var gcCycles: Int64 { luamem_load_relaxed(shared.pointee.gcCycles) }

    /// When the last GC cycle completed (Unix epoch ms), nil before the first.
    public var gcCompletedMs: Int64? {
        let ms = luamem_load_relaxed(shared.pointee.gcCompletedMs)
        return ms == 0 ? nil : ms
    }

    /// Whether C functions are identified by pointer (Lua's layout verified) or only as "[C]".
    public var identifiesCFunctions: Bool { storage.pointee.cfunctionLayoutVerified }

    /// Whether outer frames are found by following Lua's call links (its layout verified).
    public var walksStackDirectly: Bool { storage.pointee.stackWalkVerified }

    /// Whether frames are read straight from Lua's structures (its layout verified).
    public var readsFramesDirectly: Bool { storage.pointee.frameInfoVerified }
}

/// Raw identity of a frame as lua_getinfo reports it; the source pointer is valid while the
/// chunk is loaded, which the cache guarantees by dropping entries when that string is freed.
@usableFromInline
typealias RawFrame = luamem_raw_frame

extension luamem_raw_frame: @retroactive Equatable {
    @usableFromInline init(source: UnsafePointer<CChar>?, line: Int32, lineDefined: Int32) {
        self.init(source: source, line: line, line_defined: lineDefined)
    }

    @usableFromInline var lineDefined: Int32 { line_defined }

    @inlinable public static func == (a: luamem_raw_frame, b: luamem_raw_frame) -> Bool {
        a.source == b.source && a.line == b.line && a.line_defined == b.line_defined
    }
}

/// The parts of a tracker other threads read: immutable pointers to figures that are written
/// with relaxed atomics, and to records published with release ordering.
struct TrackerShared {
    let totals: UnsafeMutablePointer<luamem_counters>
    let gcCycles: UnsafeMutablePointer<Int64>
    let gcCompletedMs: UnsafeMutablePointer<Int64>
    @usableFromInline let snapshots: UnsafeMutablePointer<Int64>
    let untracked: UnsafeMutablePointer<Int64>
    /// `Tracker.releasedByFlusher` once the flusher no longer reads the tracker, and
    /// `Tracker.closedState` once its state has closed: set by two threads, and whichever sets
    /// its bit second frees the tracker.
    let released: UnsafeMutablePointer<Int64>
    let folded: UnsafeMutablePointer<Int64>
    let maxSites: UnsafeMutablePointer<Int64>
    let unsampledSite: UnsafeMutablePointer<Int64>
    let counters: ChunkedView<luamem_counters>
    let frames: ChunkedView<FrameRecord>
    let sites: ChunkedView<SiteRecord>
    /// The current array of changed marks (it grows: release/acquire).
    let changedGroups: UnsafeMutablePointer<UnsafeMutableRawPointer?>

    init(_ storage: TrackerStorage) {
        changedGroups = storage.changedGroupsShared
        totals = storage.totals
        gcCycles = storage.gcCycles
        gcCompletedMs = storage.gcCompletedMs
        snapshots = storage.snapshots
        untracked = storage.untracked
        folded = storage.foldedAllocations
        maxSites = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        maxSites.initialize(to: Int64(storage.maxSites))
        unsampledSite = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        unsampledSite.initialize(to: -1)
        released = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        released.initialize(to: 0)
        counters = storage.counters.view
        frames = storage.frames.view
        sites = storage.sites.view
    }
}

/// A site-cache entry: the raw key of a site as last seen, and the site it resolved to. Frames
/// 1..<count follow it in the same buffer (TrackerStorage.cacheStride): RawFrames, or with keys
/// of pcs, their pcs alone; so a lookup reads one stretch of memory, not a second allocation.
@usableFromInline
struct CacheEntry {
    @usableFromInline var first: RawFrame
    @usableFromInline var count: Int32
    @usableFromInline var site: UInt32
    @usableFromInline var cfunction: UnsafeRawPointer?
}

/// The tracker's state. Lives in malloc'd memory owned by a `Tracker` handle; all fields are
/// trivial so the allocator path performs no reference counting.
@usableFromInline
struct TrackerStorage {
    /// A block larger than the pool's comes from malloc with this many bytes in front: its
    /// slot and epoch, and padding that keeps the block 16-byte aligned.
    @usableFromInline static let largePrefix = 16
    /// Stands for "some C function" when Lua's layout could not be verified.
    @usableFromInline static let unknownCFunction = UnsafeRawPointer(bitPattern: 1)!

    @usableFromInline let context: UnsafeMutablePointer<luamem_context>
    @usableFromInline let depth: Int
    @usableFromInline let debug: UnsafeMutablePointer<lua_Debug>
    /// Scratch for the frames of the site being looked up; `levels` holds their stack levels.
    @usableFromInline let raw: UnsafeMutablePointer<RawFrame>
    @usableFromInline let levels: UnsafeMutablePointer<Int32>
    @usableFromInline let frameIDs: UnsafeMutablePointer<UInt32>
    @usableFromInline let totals: UnsafeMutablePointer<luamem_counters>
    @usableFromInline let gcCycles: UnsafeMutablePointer<Int64>
    /// Unix epoch milliseconds when the last GC cycle completed; 0 before the first.
    let gcCompletedMs: UnsafeMutablePointer<Int64>
    @usableFromInline let snapshots: UnsafeMutablePointer<Int64>

    @usableFromInline var pool = UnsafeBlockPool()
    /// Attached to a live state: blocks may be the previous allocator's (see `owns`).
    @usableFromInline var attached = false
    @usableFromInline var previousAllocator: lua_Alloc?
    @usableFromInline var previousUD: UnsafeMutableRawPointer?
    /// Large blocks of an attached tracker (hashed bijectively), so frees can tell them apart.
    @usableFromInline var largeBlocks = UnsafeHashIndex()
    @usableFromInline let untracked: UnsafeMutablePointer<Int64>
    @usableFromInline var passive = false
    @usableFromInline var mainThreadFreed = false
    @usableFromInline var destroyOnClose = false
    @usableFromInline var counters: UnsafeChunkedArray<luamem_counters>
    @usableFromInline var frames: UnsafeChunkedArray<FrameRecord>
    @usableFromInline var sites: UnsafeChunkedArray<SiteRecord>
    /// Slot + 1 of (site, type) at `site * ObjectType.slotStride + type`; 0 when none yet.
    @usableFromInline var typeSlots: UnsafeChunkedArray<UInt32>

    /// Interned strings by content; values index `strings`.
    @usableFromInline var stringIndex = UnsafeHashIndex()
    @usableFromInline var strings: UnsafeChunkedArray<UnsafePointer<CChar>>
    @usableFromInline var frameIndex = UnsafeHashIndex()
    @usableFromInline var siteIndex = UnsafeHashIndex()
    /// C function pointer (hashed bijectively) → index of its name in `strings`.
    @usableFromInline var cfunctionNames = UnsafeHashIndex()

    /// Raw key → site, so the common allocation pays for no string hashing.
    @usableFromInline var cache = UnsafeHashIndex(capacity: 64)
    /// Entries of `cacheStride` bytes: a CacheEntry, then room for depth - 1 outer frames.
    @usableFromInline var cacheEntries: UnsafeMutableRawPointer
    @usableFromInline var cacheStride: Int
    @usableFromInline var cacheCapacity = 64
    @usableFromInline var cacheCount = 0
    /// Source pointers used by cache keys (hashed bijectively); freeing one drops the cache.
    @usableFromInline var cachedSources = UnsafeHashIndex()
    @usableFromInline var cacheEnabled = false
    /// Cache keys are the frames' saved pcs, read from the frames alone, rather than their
    /// sources and lines, read from their prototypes and line tables (Lua's layout verified).
    /// Frees of prototypes, not of strings, then drop the cache.
    @usableFromInline var keysByPC = false
    /// Scratch for resolving a key: each frame's source and lines, and with keys of pcs, its
    /// prototype.
    @usableFromInline let named: UnsafeMutablePointer<RawFrame>
    @usableFromInline let protos: UnsafeMutablePointer<UnsafeRawPointer?>

    /// Where Lua keeps a string's bytes and a thread's lua_State inside their blocks (probed).
    @usableFromInline var stringBytesOffset = -1
    @usableFromInline var threadStateOffset = -1
    @usableFromInline var cfunctionLayoutVerified = false
    /// Whether outer frames are found by following CallInfo links (Lua's layout verified), in
    /// constant time per frame, rather than with lua_getstack from the top each time.
    @usableFromInline var stackWalkVerified = false
    /// Whether a frame's source and lines are read straight from Lua's structures (layout
    /// verified) rather than with lua_getinfo, which formats a short source name every time.
    @usableFromInline var frameInfoVerified = false
    @usableFromInline var probing = false
    @usableFromInline var probedString: UnsafeMutableRawPointer?
    @usableFromInline var probedThread: UnsafeMutableRawPointer?

    /// Completed GC cycles, modulo 2^32; a block's header records the epoch it was allocated in.
    @usableFromInline var epoch: UInt32 = 0
    /// Mean bytes between sampled allocations; 0 records every allocation.
    @usableFromInline var sampleInterval = 0
    @usableFromInline var bytesUntilSample = 0
    /// The sampler's seed: from the system when the tracker is created, so that processes and
    /// states do not all sample at the same offsets; $LUAMEM_SAMPLE_SEED fixes it.
    let seed = TrackerStorage.seed()
    /// The sampling generator's state (xorshift, never 0).
    @usableFromInline var random: UInt64 = 0
    /// Where unsampled blocks are counted (exactly, so frees balance); never written out.
    @usableFromInline var unsampledSite: UInt32 = 0
    /// Most distinct sites kept; new ones past it are folded into `overflowSite`.
    @usableFromInline var maxSites = Tracker.defaultMaxSites
    @usableFromInline var overflowSite: UInt32 = 0
    /// Allocations resolved to `overflowSite` because of the cap (shared with the flusher).
    @usableFromInline let foldedAllocations: UnsafeMutablePointer<Int64>
    @usableFromInline var hostFrame: UInt32 = 0
    @usableFromInline var hostSite: UInt32 = 0
    /// While a script is being loaded (no Lua frame exists yet), the site that names it, e.g.
    /// "app.lua (load)": its bytecode is the script's, not the host's. 0 otherwise.
    @usableFromInline var loadingSite: UInt32 = 0

    /// Counter slots are grouped by 64 (slot >> groupShift), so that neither the flusher nor a
    /// completed GC cycle has to visit every slot: per group, a changed mark that the flusher
    /// takes, and the cycle in which a slot of the group was last allocated to.
    @usableFromInline static let groupShift = 6
    static let maxGroups =
        (UnsafeChunkedArray<luamem_counters>.maxChunks * UnsafeChunkedArray<luamem_counters>.chunkSize)
        >> groupShift
    /// Both cover `groupCapacity` groups and grow with the slots (`reserveGroups`): sized for the
    /// most slots there can be, they took 5 MiB of address space per state. The marks are read
    /// by the flusher through `changedGroupsShared`; a marks array they outgrow is kept until the
    /// tracker is freed (`LinkedBlocks`).
    @usableFromInline var changedGroups: UnsafeMutablePointer<UInt8>
    @usableFromInline var groupCycles: UnsafeMutablePointer<UInt32>
    @usableFromInline var groupCapacity: Int
    let changedGroupsShared: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    static let initialGroups = 16
    /// Tags the current GC cycle in `groupCycles` (never 0, which marks "not this cycle").
    @usableFromInline var cycleTag: UInt32 = 1
    /// Groups allocated to in this cycle and in the previous one: a completed cycle settles these.
    @usableFromInline var groupsNow = GroupList()
    var groupsBefore = GroupList()
    /// A group list could not grow (out of memory): the next completed cycle settles every slot.
    @usableFromInline var settleEverySlot = false

    /// $LUAMEM_SAMPLE_SEED (a whole number) when set, for runs that must repeat; else random
    /// bytes from the system.
    static func seed() -> UInt64 {
        if let text = getenv("LUAMEM_SAMPLE_SEED"), let fixed = UInt64(String(cString: text)) {
            return fixed
        }
        return luamem_random_seed()
    }

    /// Bytes per cache entry: the entry, then depth - 1 outer frames (pcs, or RawFrames).
    static func cacheStride(depth: Int, keysByPC: Bool) -> Int {
        let outer = keysByPC ? MemoryLayout<UnsafeRawPointer?>.stride : MemoryLayout<RawFrame>.stride
        return MemoryLayout<CacheEntry>.stride + (depth - 1) * outer
    }

    /// Cache entry `index`.
    @inlinable @inline(__always)
    func cacheEntry(_ index: Int) -> UnsafeMutablePointer<CacheEntry> {
        (cacheEntries + (index &* cacheStride)).assumingMemoryBound(to: CacheEntry.self)
    }

    /// The outer frames that follow cache entry `index`.
    @inlinable @inline(__always)
    func cacheOuterFrames(_ index: Int) -> UnsafeMutableRawPointer {
        cacheEntries + (index &* cacheStride &+ MemoryLayout<CacheEntry>.stride)
    }

    /// nil when out of memory.
    init?(depth: Int) {
        let counters = UnsafeChunkedArray<luamem_counters>()
        let frames = UnsafeChunkedArray<FrameRecord>()
        let sites = UnsafeChunkedArray<SiteRecord>()
        let typeSlots = UnsafeChunkedArray<UInt32>()
        let strings = UnsafeChunkedArray<UnsafePointer<CChar>>()
        let cacheStride = Self.cacheStride(depth: depth, keysByPC: false)
        // malloc'd, as addCacheEntry grows it with realloc.
        let cacheEntries = malloc(64 * cacheStride)
        let marks = LinkedBlocks.allocate(bytes: Self.initialGroups, replacing: nil)
        let cycles = calloc(Self.initialGroups, MemoryLayout<UInt32>.stride)
        let sharedMarks = malloc(MemoryLayout<UnsafeMutableRawPointer?>.stride)
        guard let counters, let frames, let sites, let typeSlots, let strings, let cacheEntries,
            let marks, let cycles, let sharedMarks
        else {
            counters?.deallocate(); frames?.deallocate(); sites?.deallocate()
            typeSlots?.deallocate(); strings?.deallocate()
            free(cacheEntries); marks.map(LinkedBlocks.freeAll); free(cycles); free(sharedMarks)
            return nil
        }
        self.counters = counters
        self.frames = frames
        self.sites = sites
        self.typeSlots = typeSlots
        self.strings = strings
        self.cacheStride = cacheStride
        self.cacheEntries = cacheEntries
        changedGroups = marks.bindMemory(to: UInt8.self, capacity: Self.initialGroups)
        groupCycles = cycles.bindMemory(to: UInt32.self, capacity: Self.initialGroups)
        groupCapacity = Self.initialGroups
        changedGroupsShared = sharedMarks.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: 1)
        changedGroupsShared.initialize(to: UnsafeMutableRawPointer(changedGroups))
        self.depth = depth
        // Mixed, so that nearby seeds (1, 2, 3) start far apart; never 0, which xorshift would
        // never leave.
        let mixed = (seed ^ 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9
        random = mixed == 0 ? 0x9E37_79B9_7F4A_7C15 : mixed
        context = UnsafeMutablePointer<luamem_context>.allocate(capacity: 1)
        memset(context, 0, MemoryLayout<luamem_context>.size)
        debug = UnsafeMutablePointer<lua_Debug>.allocate(capacity: 1)
        memset(debug, 0, MemoryLayout<lua_Debug>.size)
        raw = UnsafeMutablePointer<RawFrame>.allocate(capacity: Tracker.maxDepth)
        named = UnsafeMutablePointer<RawFrame>.allocate(capacity: Tracker.maxDepth)
        protos = UnsafeMutablePointer<UnsafeRawPointer?>.allocate(capacity: Tracker.maxDepth)
        levels = UnsafeMutablePointer<Int32>.allocate(capacity: Tracker.maxDepth)
        frameIDs = UnsafeMutablePointer<UInt32>.allocate(capacity: Tracker.maxDepth)
        totals = UnsafeMutablePointer<luamem_counters>.allocate(capacity: 1)
        memset(totals, 0, MemoryLayout<luamem_counters>.size)
        gcCycles = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        gcCycles.initialize(to: 0)
        gcCompletedMs = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        gcCompletedMs.initialize(to: 0)
        snapshots = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        snapshots.initialize(to: 0)
        untracked = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        untracked.initialize(to: 0)
        foldedAllocations = UnsafeMutablePointer<Int64>.allocate(capacity: 1)
        foldedAllocations.initialize(to: 0)
    }

    /// Grows the group arrays to cover the group of `slot`; false when out of memory.
    @usableFromInline
    mutating func reserveGroups(for slot: Int) -> Bool {
        let group = slot >> Self.groupShift
        if group < groupCapacity { return true }
        guard group < Self.maxGroups else { return false }
        let grown = min(max(groupCapacity * 2, group + 1), Self.maxGroups)
        guard let cycles = realloc(groupCycles, grown * MemoryLayout<UInt32>.stride) else {
            return false
        }
        groupCycles = cycles.bindMemory(to: UInt32.self, capacity: grown)
        memset(groupCycles + groupCapacity, 0, (grown - groupCapacity) * MemoryLayout<UInt32>.stride)
        // Should the marks not grow, the tags' larger array is harmless: `groupCapacity` stays.
        guard
            let block = LinkedBlocks.allocate(
                bytes: grown, replacing: UnsafeMutableRawPointer(changedGroups))
        else { return false }
        let marks = block.bindMemory(to: UInt8.self, capacity: grown)
        luamem_copy_marks(marks, changedGroups, groupCapacity)
        changedGroups = marks
        groupCapacity = grown
        // Before the slot count that needs it is published (`counters.publish()`).
        luamem_store_release_ptr(changedGroupsShared, UnsafeMutableRawPointer(marks))
        return true
    }

    mutating func beginLoading(_ name: String) {
        guard
            let source = "=\(name) (load)".withCString({ intern($0) }),
            let frame = internFrame(source: source, line: 0, lineDefined: 0, function: nil)
        else { return }
        frameIDs[0] = frame
        loadingSite = internSite(frameCount: 1, cfunction: nil) ?? 0
    }

    mutating func createHostSite() {
        hostFrame = internFrame(
            source: intern(string: "=[host]"), line: 0, lineDefined: 0, function: nil)!
        frameIDs[0] = hostFrame
        hostSite = internSite(frameCount: 1, cfunction: nil)!
        _ = slot(site: hostSite, type: .other)  // slot 0 exists: the fallback when slots run out
        frameIDs[0] = internFrame(
            source: intern(string: "=[other sites]"), line: 0, lineDefined: 0, function: nil)!
        overflowSite = internSite(frameCount: 1, cfunction: nil)!
        frameIDs[0] = internFrame(
            source: intern(string: "=[unsampled]"), line: 0, lineDefined: 0, function: nil)!
        unsampledSite = internSite(frameCount: 1, cfunction: nil)!
    }

    mutating func deallocate() {
        clearCache()
        for index in 0..<strings.count {
            Glibc.free(UnsafeMutableRawPointer(mutating: strings.element(index).pointee))
        }
        for index in 0..<sites.count { free(sites.element(index).pointee.frames) }
        pool.deallocate()
        counters.deallocate(); frames.deallocate(); sites.deallocate(); typeSlots.deallocate()
        strings.deallocate(); stringIndex.deallocate(); frameIndex.deallocate()
        siteIndex.deallocate(); cfunctionNames.deallocate(); cache.deallocate()
        cachedSources.deallocate()
        free(cacheEntries); context.deallocate(); debug.deallocate(); raw.deallocate()
        named.deallocate(); protos.deallocate()
        levels.deallocate(); frameIDs.deallocate(); totals.deallocate()
        gcCycles.deallocate(); gcCompletedMs.deallocate(); snapshots.deallocate()
        untracked.deallocate()
        foldedAllocations.deallocate()
        largeBlocks.deallocate()
        LinkedBlocks.freeAll(UnsafeMutableRawPointer(changedGroups))
        free(changedGroupsShared); free(groupCycles)
        groupsNow.deallocate(); groupsBefore.deallocate()
    }

    // MARK: Allocator paths

    @inlinable @inline(__always)
    mutating func allocate(type: ObjectType, size: Int) -> UnsafeMutableRawPointer? {
        let charge = self.charge(type: type, size: size)
        guard let block = obtain(size) else { return nil }
        let metadata = self.metadata(of: block, size: size)
        metadata.storeBytes(of: charge.slot, as: UInt32.self)
        metadata.storeBytes(of: epoch, toByteOffset: 4, as: UInt32.self)
        if probing { noteProbe(block, type) }
        luamem_counters_allocated(counters.element(Int(charge.slot)), charge.bytes, charge.count)
        allocated(to: charge.slot)
        luamem_counters_allocated(totals, Int64(size), 1)
        return block
    }

    @inlinable @inline(__always)
    mutating func reallocate(
        _ block: UnsafeMutableRawPointer, oldSize: Int, newSize: Int
    ) -> UnsafeMutableRawPointer? {
        let oldMetadata = metadata(of: block, size: oldSize)
        let oldIndex = oldMetadata.load(as: UInt32.self)
        let oldSlot = counters.element(Int(oldIndex))
        let oldAge = epoch &- oldMetadata.load(fromByteOffset: 4, as: UInt32.self)
        let type = ObjectType(rawValue: oldSlot.pointee.type) ?? .other
        // The site is read before the block moves: Lua may be growing the very stack inspected.
        let charge = self.charge(type: type, size: newSize)
        guard let moved = resize(block, oldSize, newSize) else { return nil }
        let metadata = self.metadata(of: moved, size: newSize)
        metadata.storeBytes(of: charge.slot, as: UInt32.self)
        metadata.storeBytes(of: epoch, toByteOffset: 4, as: UInt32.self)
        let old = weight(of: oldSlot, size: oldSize)
        luamem_counters_freed(oldSlot, old.bytes, old.count, oldAge)
        changed(oldIndex)
        luamem_counters_allocated(counters.element(Int(charge.slot)), charge.bytes, charge.count)
        allocated(to: charge.slot)
        luamem_counters_freed(totals, Int64(oldSize), 1, oldAge)
        luamem_counters_allocated(totals, Int64(newSize), 1)
        return moved
    }

    @inlinable @inline(__always)
    mutating func release(_ block: UnsafeMutableRawPointer, size: Int) {
        let metadata = self.metadata(of: block, size: size)
        let index = metadata.load(as: UInt32.self)
        let slot = counters.element(Int(index))
        let age = epoch &- metadata.load(fromByteOffset: 4, as: UInt32.self)
        let charged = weight(of: slot, size: size)
        luamem_counters_freed(slot, charged.bytes, charged.count, age)
        changed(index)
        luamem_counters_freed(totals, Int64(size), 1, age)
        switch slot.pointee.type {
        case ObjectType.string.rawValue where cachedSources.count > 0 && !keysByPC:
            forgetSource(block + stringBytesOffset)
        case ObjectType.proto.rawValue where cachedSources.count > 0 && keysByPC:
            forgetSource(block)
        case ObjectType.thread.rawValue:
            threadFreed(block)
        default:
            break
        }
        relinquish(block, size)
    }

    // MARK: Sampling

    /// The slot a new block of `size` bytes is charged to, and what it adds there: its own size
    /// when every allocation is recorded; with sampling, unsampled blocks go to the unsampled
    /// slot of their type, and a sampled one stands for all the bytes since the previous sample.
    @inlinable @inline(__always)
    mutating func charge(type: ObjectType, size: Int) -> (slot: UInt32, bytes: Int64, count: Int64)
    {
        if sampleInterval == 0 { return (slot(site: currentSite(), type: type), Int64(size), 1) }
        bytesUntilSample &-= size
        if bytesUntilSample > 0 { return (slot(site: unsampledSite, type: type), Int64(size), 1) }
        bytesUntilSample = nextSampleDistance()
        let weight = Self.sampleWeight(size, interval: sampleInterval)
        return (slot(site: currentSite(), type: type), weight.bytes, weight.count)
    }

    /// What a block of this slot added when it was allocated (recomputed from its size).
    @inlinable @inline(__always)
    func weight(of slot: UnsafeMutablePointer<luamem_counters>, size: Int) -> (
        bytes: Int64, count: Int64
    ) {
        if sampleInterval == 0 { return (Int64(size), 1) }
        if slot.pointee.site == unsampledSite { return (Int64(size), 1) }
        return Self.sampleWeight(size, interval: sampleInterval)
    }

    /// A sampled block of `size` bytes stands for size / (1 - e^(-size/T)) bytes, as in tcmalloc
    /// and Go's heap profiler: summed over samples, this estimates each site's bytes without bias.
    /// Its object count, 1 / (1 - e^(-size/T)), is kept in 1/`countScale` units, so that rounding
    /// does not bias the counts of blocks near T in size.
    /// Static: a method call on `self` (a large struct behind a pointer) would copy it whole
    /// on every call from the allocator.
    @usableFromInline
    static func sampleWeight(_ size: Int, interval: Int) -> (bytes: Int64, count: Int64) {
        let probability = -expm1(-Double(size) / Double(interval))
        return (
            Int64((Double(size) / probability).rounded()),
            Int64((Double(Tracker.countScale) / probability).rounded())
        )
    }

    /// The next distance in bytes between samples: exponential with mean `sampleInterval`.
    @usableFromInline
    mutating func nextSampleDistance() -> Int {
        random ^= random >> 12
        random ^= random << 25
        random ^= random >> 27
        let uniform = Double((random &* 0x2545_F491_4F6C_DD1D) >> 11 + 1) / Double(1 << 53)
        return Int(-log(uniform) * Double(sampleInterval)) + 1
    }

    // MARK: Memory: small blocks from the pool, large ones from malloc

    /// Where a block's slot and epoch are kept: in its pool page's table, or in front of it.
    @inlinable @inline(__always)
    func metadata(of block: UnsafeMutableRawPointer, size: Int) -> UnsafeMutableRawPointer {
        size <= UnsafeBlockPool.maxPooled
            ? pool.metadata(block, size: size) : block - Self.largePrefix
    }

    /// A block for `size` bytes of Lua's: from the pool, or from malloc after the large prefix.
    @inlinable @inline(__always)
    mutating func obtain(_ size: Int) -> UnsafeMutableRawPointer? {
        if size <= UnsafeBlockPool.maxPooled { return pool.allocate(size) }
        // Room in largeBlocks first: a block it cannot list could not be told from a foreign one.
        if attached && !largeBlocks.reserve() { return nil }
        guard let start = malloc(size &+ Self.largePrefix) else { return nil }
        if attached { largeBlocks.insert(Self.key(start), 0) }
        return start + Self.largePrefix
    }

    @inlinable @inline(__always)
    mutating func relinquish(_ block: UnsafeMutableRawPointer, _ size: Int) {
        if size <= UnsafeBlockPool.maxPooled {
            pool.release(block, size: size)
        } else {
            let start = block - Self.largePrefix
            if attached { largeBlocks.remove(Self.key(start)) }
            Glibc.free(start)
        }
    }

    /// Whether a block Lua hands back is this tracker's (only asked when attached).
    @inlinable @inline(__always)
    func owns(_ block: UnsafeMutableRawPointer, size: Int) -> Bool {
        if size <= UnsafeBlockPool.maxPooled { return pool.owns(block) }
        return largeBlocks.find(Self.key(block - Self.largePrefix), { _ in true }) != nil
    }

    @inlinable @inline(__always)
    static func key(_ block: UnsafeMutableRawPointer) -> UInt64 {
        mixHash(0, UInt64(UInt(bitPattern: block)))
    }

    /// A block from before the tracker was attached: freed through the previous allocator, or
    /// moved into tracked memory when Lua resizes it.
    @usableFromInline @inline(never)
    mutating func foreign(
        _ block: UnsafeMutableRawPointer, oldSize: Int, newSize: Int
    ) -> UnsafeMutableRawPointer? {
        let previous = previousAllocator.unsafelyUnwrapped
        var moved: UnsafeMutableRawPointer?
        if newSize > 0 {
            guard let tracked = allocate(type: .other, size: newSize) else { return nil }
            tracked.copyMemory(from: block, byteCount: min(oldSize, newSize))
            moved = tracked
        } else {
            threadFreed(block)
            // A prototype from before: its code may be in cache keys.
            if keysByPC && cachedSources.count > 0 { forgetSource(block) }
        }
        _ = previous(previousUD, block, oldSize, 0)
        luamem_store_relaxed(untracked, luamem_load_relaxed(untracked) - Int64(oldSize))
        return moved
    }

    @inlinable @inline(__always)
    mutating func resize(
        _ block: UnsafeMutableRawPointer, _ oldSize: Int, _ newSize: Int
    ) -> UnsafeMutableRawPointer? {
        let maxPooled = UnsafeBlockPool.maxPooled
        if oldSize > maxPooled && newSize > maxPooled {
            if attached && !largeBlocks.reserve() { return nil }
            let start = block - Self.largePrefix
            guard let moved = realloc(start, newSize &+ Self.largePrefix) else { return nil }
            if attached && moved != start {
                largeBlocks.remove(Self.key(start))
                largeBlocks.insert(Self.key(moved), 0)
            }
            return moved + Self.largePrefix
        }
        if oldSize <= maxPooled && newSize <= maxPooled
            && UnsafeBlockPool.sizeClass(oldSize) == UnsafeBlockPool.sizeClass(newSize)
        {
            return block
        }
        guard let moved = obtain(newSize) else { return nil }
        moved.copyMemory(from: block, byteCount: min(oldSize, newSize))
        relinquish(block, oldSize)
        return moved
    }

    @usableFromInline
    mutating func noteProbe(_ block: UnsafeMutableRawPointer, _ type: ObjectType) {
        if type == .string { probedString = block }
        if type == .thread { probedThread = block }
    }

    /// A coroutine's memory is going away: it can no longer be the running thread or a resumer
    /// (this happens when lua_close runs while a coroutine is active, e.g. os.exit(0, true)).
    @usableFromInline
    mutating func threadFreed(_ block: UnsafeMutableRawPointer) {
        guard threadStateOffset >= 0 else { return }
        let thread = OpaquePointer(block + threadStateOffset)
        if thread == context.pointee.main {
            mainThreadFreed = true
        } else {
            luamem_context_forget_thread(context, thread)
        }
    }

    // MARK: Slots and GC cycles

    /// The counter slot of (site, type), created on first use.
    @inlinable @inline(__always)
    mutating func slot(site: UInt32, type: ObjectType) -> UInt32 {
        let entry = typeSlots.element(Int(site) &* ObjectType.slotStride &+ Int(type.rawValue))
        if entry.pointee != 0 { return entry.pointee &- 1 }
        return createSlot(entry, site: site, type: type)
    }

    @usableFromInline
    mutating func createSlot(
        _ entry: UnsafeMutablePointer<UInt32>, site: UInt32, type: ObjectType
    ) -> UInt32 {
        guard reserveGroups(for: counters.count), let index = counters.append() else { return 0 }
        let counter = counters.element(index)
        counter.pointee.site = site
        counter.pointee.type = type.rawValue
        counters.publish()
        entry.pointee = UInt32(index) + 1
        return UInt32(index)
    }

    /// A slot of this group was allocated to: the group is settled at the end of this cycle and
    /// of the next, and the flusher reads it.
    @inlinable @inline(__always)
    mutating func allocated(to slot: UInt32) {
        let group = Int(slot &>> UInt32(Self.groupShift))
        if groupCycles[group] != cycleTag { noteGroup(group) }
        luamem_mark_changed(changedGroups + group)
    }

    /// A block of this slot was freed: the flusher reads its group.
    @inlinable @inline(__always)
    func changed(_ slot: UInt32) {
        luamem_mark_changed(changedGroups + Int(slot &>> UInt32(Self.groupShift)))
    }

    @usableFromInline @inline(never)
    mutating func noteGroup(_ group: Int) {
        groupCycles[group] = cycleTag
        if !groupsNow.append(UInt32(group)) { settleEverySlot = true }
    }

    /// Publishes the post-GC figures of the slots that can have changed: settling a slot makes its
    /// post-GC figures its live ones less what was allocated in the cycle, so a slot allocated to
    /// in neither this cycle nor the previous one already has them (its young figures are 0, and
    /// every block it has is old), and settling it again would change nothing.
    mutating func gcCycleCompleted() {
        if settleEverySlot {
            settleEverySlot = false
            for group in 0..<((counters.count + Tracker.slotGroupSize - 1) >> Self.groupShift) {
                settle(group: group)
            }
        } else {
            for index in 0..<groupsNow.count { settle(group: groupsNow[index]) }
            for index in 0..<groupsBefore.count {
                let group = groupsBefore[index]
                // Groups on both lists were settled above: settling twice would count this
                // cycle's young blocks as old.
                if groupCycles[group] != cycleTag { settle(group: group) }
            }
        }
        swap(&groupsNow, &groupsBefore)
        groupsNow.count = 0
        cycleTag &+= 1
        if cycleTag == 0 {
            // After 2^32 cycles: tags start over, so old ones must not match the new.
            memset(groupCycles, 0, groupCapacity * MemoryLayout<UInt32>.stride)
            cycleTag = 1
        }
        luamem_counters_settle(totals)
        epoch &+= 1
        luamem_store_relaxed(gcCycles, luamem_load_relaxed(gcCycles) + 1)
        // Called from the sentinel's finalizer, never from the allocator: a clock read is fine.
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        luamem_store_relaxed(gcCompletedMs, Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000)
    }

    mutating func settle(group: Int) {
        let start = group << Self.groupShift
        for index in start..<min(start + Tracker.slotGroupSize, counters.count) {
            luamem_counters_settle(counters.element(index))
        }
        luamem_mark_changed(changedGroups + group)
    }

}

/// A growable list of slot groups, in malloc'd memory (no ARC on the allocator's path).
@usableFromInline
struct GroupList {
    @usableFromInline var groups: UnsafeMutablePointer<UInt32>?
    @usableFromInline var count = 0
    var capacity = 0

    /// False when it could not grow.
    @usableFromInline
    mutating func append(_ group: UInt32) -> Bool {
        if count == capacity {
            let bigger = max(64, capacity * 2)
            guard let grown = realloc(groups, bigger * MemoryLayout<UInt32>.stride) else {
                return false
            }
            groups = grown.bindMemory(to: UInt32.self, capacity: bigger)
            capacity = bigger
        }
        groups.unsafelyUnwrapped[count] = group
        count += 1
        return true
    }

    subscript(index: Int) -> Int { Int(groups.unsafelyUnwrapped[index]) }

    func deallocate() { free(groups) }
}
