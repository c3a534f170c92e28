import Glibc

/// The small blocks of one Lua state: 64 KiB pages, each of one 16-byte size class, with every
/// block's 8 bytes of metadata (its counter slot and epoch) in a table at the start of its page,
/// in reverse order: block i's entry is the i-th 8 bytes before the first block.
///
/// Why not malloc for everything: once the flusher thread exists, glibc's malloc takes its
/// multi-threaded path (atomics, arena locks) on every call, which measured 16% slower on
/// binary-trees; a state is used by one thread at a time, so its pool needs no lock.
///
/// Why the metadata sits apart from the blocks: a header in front of each block puts 8 bytes of
/// the tracker's between Lua's objects, and so fewer objects per cache line. In a plain host
/// (Benchmarks/host/alloc_host.c) this layout ran luacheck 3.5% faster than the same pool with
/// headers, and faster than glibc; the metadata of blocks handed out together shares lines too.
///
/// The tracker owns the pool and frees the pages when it is destroyed; freed blocks are kept for
/// reuse by the same state, not returned to the system.
@usableFromInline
struct UnsafeBlockPool {
    /// Blocks up to this size come from the pool; larger ones from malloc.
    @usableFromInline static var maxPooled: Int { 512 }
    @usableFromInline static var classShift: Int { 4 }
    @usableFromInline static let slabSize = 64 * 1024
    @usableFromInline static var classes: Int { (maxPooled >> classShift) + 1 }
    /// A page's first 16 bytes are reserved (the first page of a region links the regions);
    /// the metadata table follows.
    @usableFromInline static var tableOffset: Int { 16 }

    /// Free-list heads by class (size >> 4); a free block's first word links to the next.
    @usableFromInline let freeLists: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// By class: where the next fresh block of the class's current page is, and its page's end.
    @usableFromInline let bumps: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline let bumpEnds: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    /// By class: the offset of a page's first block, and 2^32 / the class's size (rounded up),
    /// which turns a block's offset into its index with a multiply.
    @usableFromInline let firstBlock: UnsafeMutablePointer<UInt32>
    @usableFromInline let reciprocal: UnsafeMutablePointer<UInt32>
    /// Regions of pages, linked through their first word, for `deallocate()`.
    var slabs: UnsafeMutableRawPointer?
    var nextSlab: UnsafeMutableRawPointer?
    var regionEnd: UnsafeMutableRawPointer?
    static let regionSize = 16 * slabSize
    /// Page base addresses (hashed bijectively): pages are aligned to their size, so whether a
    /// block is the pool's is one lookup of its address rounded down.
    @usableFromInline var slabIndex = UnsafeHashIndex()

    init() {
        freeLists = .allocate(capacity: Self.classes)
        freeLists.initialize(repeating: nil, count: Self.classes)
        bumps = .allocate(capacity: Self.classes)
        bumps.initialize(repeating: nil, count: Self.classes)
        bumpEnds = .allocate(capacity: Self.classes)
        bumpEnds.initialize(repeating: nil, count: Self.classes)
        firstBlock = .allocate(capacity: Self.classes)
        reciprocal = .allocate(capacity: Self.classes)
        firstBlock[0] = 0
        reciprocal[0] = 0
        for sizeClass in 1..<Self.classes {
            let size = sizeClass << Self.classShift
            firstBlock[sizeClass] = UInt32(Self.tableOffset + Self.blocksPerPage(size) * 8 + 15) & ~15
            reciprocal[sizeClass] = UInt32(((1 << 32) + size - 1) / size)
        }
    }

    /// How many blocks of `size` bytes a page holds, with 8 bytes of metadata each.
    static func blocksPerPage(_ size: Int) -> Int {
        var blocks = (slabSize - tableOffset) / (size + 8)
        // The table's end is rounded up to 16 bytes: give a block back if that leaves too little.
        while (tableOffset + blocks * 8 + 15) & ~15 + blocks * size > slabSize { blocks -= 1 }
        return blocks
    }

    func deallocate() {
        var slab = slabs
        while let current = slab {
            slab = current.load(as: UnsafeMutableRawPointer?.self)
            free(current)
        }
        freeLists.deallocate()
        bumps.deallocate()
        bumpEnds.deallocate()
        firstBlock.deallocate()
        reciprocal.deallocate()
        slabIndex.deallocate()
    }

    /// Whether `block` lies in one of this pool's pages.
    @inlinable
    func owns(_ block: UnsafeMutableRawPointer) -> Bool {
        let base = UInt(bitPattern: block) & ~UInt(Self.slabSize - 1)
        return slabIndex.find(mixHash(0, UInt64(base)), { _ in true }) != nil
    }

    /// The class of a block of `size` bytes (1...maxPooled).
    @inlinable @inline(__always)
    static func sizeClass(_ size: Int) -> Int {
        (size &+ 15) &>> classShift
    }

    /// Where the metadata of `block`, of `size` bytes, is kept: 8 bytes in its page's table,
    /// which runs backwards from the first block. Block 0's entry sits just before block 0, so
    /// the first blocks of a class and their entries share one 4 KiB page of memory: a state with
    /// a few blocks in each of twenty classes touches twenty pages, not forty.
    @inlinable @inline(__always)
    func metadata(_ block: UnsafeMutableRawPointer, size: Int) -> UnsafeMutableRawPointer {
        let sizeClass = Self.sizeClass(size)
        let address = UInt(bitPattern: block)
        let first = address & ~UInt(Self.slabSize - 1) &+ UInt(firstBlock[sizeClass])
        let offset = UInt64(address &- first)
        let index = UInt(truncatingIfNeeded: (offset &* UInt64(reciprocal[sizeClass])) &>> 32)
        return UnsafeMutableRawPointer(bitPattern: first &- 8 &- index &* 8).unsafelyUnwrapped
    }

    /// A block of at least `size` bytes (1...maxPooled), 16-byte aligned.
    @inlinable @inline(__always)
    mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let sizeClass = Self.sizeClass(size)
        if let head = freeLists[sizeClass] {
            freeLists[sizeClass] = head.load(as: UnsafeMutableRawPointer?.self)
            return head
        }
        let rounded = sizeClass &<< Self.classShift
        if let bump = bumps[sizeClass], let bumpEnd = bumpEnds[sizeClass], bumpEnd - bump >= rounded {
            bumps[sizeClass] = bump + rounded
            return bump
        }
        return allocateFromNewSlab(sizeClass)
    }

    @inlinable @inline(__always)
    mutating func release(_ block: UnsafeMutableRawPointer, size: Int) {
        let sizeClass = Self.sizeClass(size)
        block.storeBytes(of: freeLists[sizeClass], as: UnsafeMutableRawPointer?.self)
        freeLists[sizeClass] = block
    }

    @usableFromInline
    mutating func allocateFromNewSlab(_ sizeClass: Int) -> UnsafeMutableRawPointer? {
        // Pages come 16 at a time from one aligned region: an aligned allocation of a single
        // page costs glibc up to another page of padding.
        if nextSlab == nil || nextSlab == regionEnd {
            var memory: UnsafeMutableRawPointer?
            guard posix_memalign(&memory, Self.slabSize, Self.regionSize) == 0, let region = memory
            else { return nil }
            region.storeBytes(of: slabs, as: UnsafeMutableRawPointer?.self)
            slabs = region
            nextSlab = region
            regionEnd = region + Self.regionSize
        }
        guard let slab = nextSlab,
            slabIndex.insert(mixHash(0, UInt64(UInt(bitPattern: slab))), 0)
        else { return nil }
        nextSlab = slab + Self.slabSize
        let rounded = sizeClass << Self.classShift
        let first = slab + Int(firstBlock[sizeClass])
        bumps[sizeClass] = first + rounded
        bumpEnds[sizeClass] = first + Self.blocksPerPage(rounded) * rounded
        return first
    }
}
