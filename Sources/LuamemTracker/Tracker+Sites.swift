import Glibc
import LuaShim

/// Finding the site of the allocation happening now, and interning sites, frames and strings.
extension TrackerStorage {
    /// The site of the allocation happening now: the innermost Lua frame of the running thread
    /// (and up to `depth` frames), or of its resumer while a coroutine has no frame yet; inside a
    /// C function, the calling Lua line plus that function; `[host]` with no Lua frame at all.
    @inlinable @inline(__always)
    mutating func currentSite() -> UInt32 {
        if loadingSite != 0 { return loadingSite }
        guard !passive, var thread = context.pointee.current else { return hostSite }
        var resumer = context.pointee.resumer_count
        while !LuaDebug.stackLevel(thread, 0, debug) {
            guard resumer > 0 else { return hostSite }
            resumer -= 1
            thread = luamem_context_resumer(context, resumer)
        }
        var level: Int32 = 0
        var cfunction: UnsafeRawPointer?
        var count = 1
        if !keyLuaFrame(thread) {
            cfunction =
                cfunctionLayoutVerified
                ? unsafeBitCast(luamem_running_cfunction(debug), to: UnsafeRawPointer?.self)
                : Self.unknownCFunction
            count = outermostLuaFrame(thread, &level) ? 1 : 0
        }
        let hash: UInt64
        if keysByPC {
            // One multiply per frame, during the walk; the levels are taken on a miss.
            var folded = luamem_fold_pc(
                UInt64(UInt(bitPattern: cfunction)),
                count == 1 ? UInt64(UInt(bitPattern: raw[0].source)) : 0)
            if count == 1 {
                levels[0] = level
                if depth > 1 { count = Int(luamem_collect_pcs(debug, Int32(depth), raw, &folded)) }
            }
            hash = mixHash(folded, UInt64(count))
        } else {
            if count == 1 {
                levels[0] = level
                if depth > 1 { count = collectOuterFrames(thread, from: level) }
            }
            hash = rawHash(count, cfunction)
        }
        if cacheEnabled,
            let entry = cache.find(hash, { cacheEntryMatches(Int($0), count, cfunction) })
        {
            return cacheEntry(Int(entry)).pointee.site
        }
        return resolveSite(thread, count, cfunction, hash)
    }

    /// Whether the frame `debug` was set to is a Lua function's; if it is, raw[0] is its key: its
    /// saved pc when `keysByPC` (read from the frame alone), else its source and lines.
    @inlinable @inline(__always)
    func keyLuaFrame(_ thread: OpaquePointer) -> Bool {
        if keysByPC {
            guard let pc = luamem_frame_pc(debug) else { return false }
            raw[0] = RawFrame(
                source: pc.assumingMemoryBound(to: CChar.self), line: 0, lineDefined: 0)
            return true
        }
        frameInfo(thread)
        if LuaDebug.isCFunction(debug) { return false }
        raw[0] = RawFrame(
            source: debug.pointee.source, line: debug.pointee.currentline,
            lineDefined: debug.pointee.linedefined)
        return true
    }

    /// Fills `debug`'s source, lines and kind of function for the frame it was set to.
    @inlinable @inline(__always)
    func frameInfo(_ thread: OpaquePointer) {
        if frameInfoVerified {
            luamem_frame_info(debug)
        } else {
            LuaDebug.sourceAndLine(thread, debug)
        }
    }

    /// Moves `debug` from `level` to the level above; false when there is none.
    @inlinable @inline(__always)
    func nextLevel(_ thread: OpaquePointer, _ level: inout Int32) -> Bool {
        level += 1
        return stackWalkVerified
            ? luamem_next_level(debug) != 0 : LuaDebug.stackLevel(thread, level, debug)
    }

    /// Walks up from a C frame to the first Lua frame, keyed in raw[0]; false when there is none.
    /// (Mutating, like the other out-of-line methods the allocator calls: calling a
    /// non-mutating one copies the whole storage first.)
    @usableFromInline
    mutating func outermostLuaFrame(_ thread: OpaquePointer, _ level: inout Int32) -> Bool {
        repeat {
            guard nextLevel(thread, &level) else { return false }
        } while !keyLuaFrame(thread)
        return true
    }

    /// Fills raw[1...] and levels[1...] with the Lua frames above raw[0], skipping C frames;
    /// returns the count. `debug` still describes the frame at level `first`. (With keys of pcs
    /// the allocation path walks with luamem_collect_pcs; this walk is then for a miss's levels.)
    @usableFromInline
    mutating func collectOuterFrames(_ thread: OpaquePointer, from first: Int32) -> Int {
        if stackWalkVerified && frameInfoVerified {
            return Int(
                luamem_collect_frames(debug, first, Int32(depth), raw, levels, keysByPC ? 1 : 0))
        }
        var count = 1
        var level = first
        while count < depth {
            guard nextLevel(thread, &level) else { break }
            frameInfo(thread)
            if LuaDebug.isCFunction(debug) { continue }
            raw[count] = RawFrame(
                source: debug.pointee.source, line: debug.pointee.currentline,
                lineDefined: debug.pointee.linedefined)
            levels[count] = level
            count += 1
        }
        return count
    }

    @inlinable @inline(__always)
    func rawHash(_ count: Int, _ cfunction: UnsafeRawPointer?) -> UInt64 {
        var hash = mixHash(UInt64(count), UInt64(UInt(bitPattern: cfunction)))
        for index in 0..<count {
            let frame = raw[index]
            hash = mixHash(hash, UInt64(UInt(bitPattern: frame.source)))
            hash = mixHash(
                hash,
                UInt64(UInt32(bitPattern: frame.line)) << 32
                    | UInt64(UInt32(bitPattern: frame.lineDefined)))
        }
        return hash
    }

    @inlinable @inline(__always)
    func cacheEntryMatches(_ index: Int, _ count: Int, _ cfunction: UnsafeRawPointer?) -> Bool {
        let entry = cacheEntry(index).pointee
        guard Int(entry.count) == count, entry.cfunction == cfunction else { return false }
        guard count > 0 else { return true }
        guard entry.first == raw[0] else { return false }
        guard count > 1 else { return true }
        let outer = cacheOuterFrames(index)
        if keysByPC {
            let pcs = outer.assumingMemoryBound(to: UnsafePointer<CChar>?.self)
            for index in 1..<count where pcs[index - 1] != raw[index].source { return false }
        } else {
            let frames = outer.assumingMemoryBound(to: RawFrame.self)
            for index in 1..<count where frames[index - 1] != raw[index] { return false }
        }
        return true
    }

    // MARK: Slow path: a raw key seen for the first time

    @usableFromInline @inline(never)
    mutating func resolveSite(
        _ thread: OpaquePointer, _ count: Int, _ cfunction: UnsafeRawPointer?, _ hash: UInt64
    ) -> UInt32 {
        let name = cfunction.map { cfunctionName($0, thread) }
        // luamem's own C functions (the GC sentinel, script loading) are charged to [host]
        // rather than to whichever Lua line happened to be running.
        let ownFunction = name.map { strncmp($0, "luamem.", 7) == 0 } ?? false
        let frameCount = ownFunction ? 0 : count
        if keysByPC && count > 1 {
            // luamem_collect_pcs kept no stack levels; walk again (the stack has not moved).
            _ = LuaDebug.stackLevel(thread, levels[0], debug)
            _ = collectOuterFrames(thread, from: levels[0])
        }
        // A key of pcs names instructions: the frames' sources and lines are read now, once.
        for index in 0..<count {
            if keysByPC {
                _ = LuaDebug.stackLevel(thread, levels[index], debug)
                frameInfo(thread)
                named[index] = RawFrame(
                    source: debug.pointee.source, line: debug.pointee.currentline,
                    lineDefined: debug.pointee.linedefined)
                protos[index] = luamem_frame_proto(debug)
            } else {
                named[index] = raw[index]
            }
        }
        // At the cap, only sites that exist already are found; anything new is folded into
        // [other sites], so the tracker's memory stays bounded.
        let create = sites.count < maxSites
        var site = overflowSite
        resolving: do {
            for index in 0..<frameCount {
                let frame = named[index]
                var function: UnsafePointer<CChar>?
                if frame.lineDefined == 0 {
                    function = intern(string: "main chunk")
                } else if LuaDebug.stackLevel(thread, levels[index], debug),
                    let name = LuaDebug.functionName(thread, debug)
                {
                    guard let interned = intern(name, create: create) else { break resolving }
                    function = interned
                }
                guard
                    let source = frame.source.map({ intern($0, create: create) })
                        ?? intern(string: "=?"),
                    let frameID = internFrame(
                        source: source, line: frame.line, lineDefined: frame.lineDefined,
                        function: function, create: create)
                else { break resolving }
                frameIDs[index] = frameID
            }
            if frameCount == 0 { frameIDs[0] = hostFrame }
            guard
                let found = internSite(
                    frameCount: max(frameCount, 1), cfunction: name, create: create)
            else { break resolving }
            site = found
        }
        if site == overflowSite {
            luamem_store_relaxed(foldedAllocations, luamem_load_relaxed(foldedAllocations) + 1)
        }
        if cacheEnabled {
            if cacheCount >= 4 * maxSites { clearCache() }
            addCacheEntry(hash, count, cfunction, site)
        }
        return site
    }

    /// The name of a C function: from package.loaded when it is there, else as the calling
    /// instruction names it (`lua_getinfo` "n" of the innermost frame), else "?".
    mutating func cfunctionName(_ cfunction: UnsafeRawPointer, _ thread: OpaquePointer)
        -> UnsafePointer<CChar>
    {
        if cfunction == Self.unknownCFunction { return intern(string: "[C]") }
        let key = mixHash(0, UInt64(UInt(bitPattern: cfunction)))
        if let index = cfunctionNames.find(key, { _ in true }) {
            return strings.element(Int(index)).pointee
        }
        var name = intern(string: "?")
        if LuaDebug.stackLevel(thread, 0, debug), let called = LuaDebug.functionName(thread, debug),
            let interned = intern(called, create: sites.count < maxSites)
        {
            name = interned
        }
        cfunctionNames.insert(key, indexOfInterned(name))
        return name
    }

    mutating func name(cfunction: lua_CFunction, _ name: UnsafePointer<CChar>) {
        let key = mixHash(
            0, UInt64(UInt(bitPattern: unsafeBitCast(cfunction, to: UnsafeRawPointer.self))))
        guard cfunctionNames.find(key, { _ in true }) == nil else { return }
        guard let interned = intern(name) else { return }
        cfunctionNames.insert(key, indexOfInterned(interned))
    }

    // MARK: Site cache

    mutating func addCacheEntry(
        _ hash: UInt64, _ count: Int, _ cfunction: UnsafeRawPointer?, _ site: UInt32
    ) {
        // Out of memory anywhere below, the key is simply not cached: it is looked up again.
        if cacheCount == cacheCapacity {
            guard let bigger = realloc(cacheEntries, cacheCapacity * 2 * cacheStride) else { return }
            cacheEntries = bigger
            cacheCapacity *= 2
        }
        // The sources (or prototypes) a key points into are listed first: an entry whose source
        // could not be listed would outlive it.
        for index in 0..<count {
            guard
                let source = keysByPC
                    ? protos[index] : UnsafeRawPointer(raw[index].source)
            else { continue }
            let key = mixHash(0, UInt64(UInt(bitPattern: source)))
            if cachedSources.find(key, { _ in true }) == nil && !cachedSources.insert(key, 0) {
                return
            }
        }
        guard cache.reserve() else { return }
        // Frames 1..<count follow the entry: with keys of pcs, only the pcs (their lines are 0).
        let outer = cacheOuterFrames(cacheCount)
        if keysByPC {
            let pcs = outer.bindMemory(to: UnsafePointer<CChar>?.self, capacity: max(count - 1, 0))
            for index in 1..<max(count, 1) { pcs[index - 1] = raw[index].source }
        } else if count > 1 {
            outer.bindMemory(to: RawFrame.self, capacity: count - 1)
                .initialize(from: raw + 1, count: count - 1)
        }
        let first = count > 0 ? raw[0] : RawFrame(source: nil, line: 0, lineDefined: 0)
        cacheEntry(cacheCount).initialize(
            to: CacheEntry(first: first, count: Int32(count), site: site, cfunction: cfunction))
        cache.insert(hash, UInt32(cacheCount))
        cacheCount += 1
    }

    /// A string (or, with keys of pcs, a prototype) is being freed; if a cache key points into it,
    /// that address may soon hold another chunk's name or code, so the cache is dropped.
    @usableFromInline
    mutating func forgetSource(_ bytes: UnsafeMutableRawPointer) {
        let key = mixHash(0, UInt64(UInt(bitPattern: bytes)))
        if cachedSources.find(key, { _ in true }) != nil { clearCache() }
    }

    mutating func clearCache() {
        cacheCount = 0
        cache.removeAll()
        cachedSources.removeAll()
    }

    // MARK: Interning

    /// The interned copy of a NUL-terminated string; the same text gives the same pointer. With
    /// `create` false, nil unless it is interned already.
    mutating func intern(_ text: UnsafePointer<CChar>, create: Bool = true) -> UnsafePointer<CChar>?
    {
        let hash = hashCString(text)
        if let index = stringIndex.find(
            hash, { strcmp(strings.element(Int($0)).pointee, text) == 0 })
        {
            return strings.element(Int(index)).pointee
        }
        guard create, stringIndex.reserve(), let copy = strdup(text) else { return nil }
        guard let index = strings.append() else {
            free(copy)
            return nil
        }
        strings.element(index).pointee = UnsafePointer(copy)
        strings.publish()
        stringIndex.insert(hash, UInt32(index))
        return UnsafePointer(copy)
    }

    /// Interns a fixed string of luamem's own (always created: there are few).
    mutating func intern(string: StaticString) -> UnsafePointer<CChar> {
        string.utf8Start.withMemoryRebound(to: CChar.self, capacity: string.utf8CodeUnitCount + 1) {
            intern($0)!
        }
    }

    func indexOfInterned(_ interned: UnsafePointer<CChar>) -> UInt32 {
        stringIndex.find(hashCString(interned), { strings.element(Int($0)).pointee == interned })
            ?? 0
    }

    mutating func internFrame(
        source: UnsafePointer<CChar>, line: Int32, lineDefined: Int32,
        function: UnsafePointer<CChar>?, create: Bool = true
    ) -> UInt32? {
        let hash = mixHash(
            UInt64(UInt(bitPattern: source)),
            UInt64(UInt32(bitPattern: line)) << 32 | UInt64(UInt32(bitPattern: lineDefined)))
        let found = frameIndex.find(hash) {
            let frame = frames.element(Int($0)).pointee
            return frame.source == source && frame.line == line && frame.lineDefined == lineDefined
        }
        if let found { return found }
        guard create, frameIndex.reserve(), let index = frames.append() else { return nil }
        frames.element(index).pointee = FrameRecord(
            source: source, function: function, line: line, lineDefined: lineDefined)
        frames.publish()
        frameIndex.insert(hash, UInt32(index))
        return UInt32(index)
    }

    /// The site of frameIDs[0..<frameCount] and `cfunction` (an interned name), created on first
    /// use unless `create` is false.
    mutating func internSite(frameCount: Int, cfunction: UnsafePointer<CChar>?, create: Bool = true)
        -> UInt32?
    {
        var hash = mixHash(UInt64(frameCount), UInt64(UInt(bitPattern: cfunction)))
        for index in 0..<frameCount { hash = mixHash(hash, UInt64(frameIDs[index])) }
        let found = siteIndex.find(hash) {
            let site = sites.element(Int($0)).pointee
            guard Int(site.frameCount) == frameCount, site.cfunction == cfunction else {
                return false
            }
            return memcmp(site.frames, frameIDs, frameCount * MemoryLayout<UInt32>.stride) == 0
        }
        if let found { return found }
        guard create, siteIndex.reserve(),
            let copy = malloc(frameCount * MemoryLayout<UInt32>.stride)?.bindMemory(
                to: UInt32.self, capacity: frameCount)
        else { return nil }
        let index = sites.count
        // typeSlots is addressed by site: entries left by a site that failed below go unused.
        for _ in 0..<ObjectType.slotStride {
            guard typeSlots.append() != nil else {
                free(copy)
                return nil
            }
        }
        guard sites.append() != nil else {
            free(copy)
            return nil
        }
        copy.initialize(from: frameIDs, count: frameCount)
        sites.element(index).pointee = SiteRecord(
            frames: copy, frameCount: Int32(frameCount), cfunction: cfunction)
        sites.publish()
        siteIndex.insert(hash, UInt32(index))
        return UInt32(index)
    }
}
