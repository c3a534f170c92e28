import Glibc

/// Size-class free lists for the small blocks of one Lua state, carved from 64 KiB slabs.
///
/// Why not malloc for everything: once the flusher thread exists, glibc's malloc takes its
/// multi-threaded path (atomics, arena locks) on every call, which measured 16% slower on
/// binary-trees; a state is used by one thread at a time, so its pool needs no lock. Size classes
/// of 16 bytes also absorb the 8-byte header: a 56-byte table takes 64 bytes, as it does in glibc.
///
/// The tracker owns the pool and frees the slabs when it is destroyed; freed blocks are kept for
/// reuse by the same state, not returned to the system.
@usableFromInline
struct UnsafeBlockPool {
    /// Blocks up to this size (header included) come from the pool; larger ones from malloc.
    @usableFromInline static var maxPooled: Int { 512 }
    @usableFromInline static var classShift: Int { 4 }
    @usableFromInline static let slabSize = 64 * 1024

    /// Free-list heads by class (size >> 4); a free block's first word links to the next.
    @usableFromInline let freeLists: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline var bump: UnsafeMutableRawPointer?
    @usableFromInline var bumpEnd: UnsafeMutableRawPointer?
    /// Regions of slabs, linked through their first word, for `deallocate()`.
    var slabs: UnsafeMutableRawPointer?
    var nextSlab: UnsafeMutableRawPointer?
    var regionEnd: UnsafeMutableRawPointer?
    static let regionSize = 16 * slabSize
    /// Slab base addresses (hashed bijectively): slabs are aligned to their size, so whether a
    /// block is the pool's is one lookup of its address rounded down.
    @usableFromInline var slabIndex = UnsafeHashIndex()

    init() {
        let classes = (Self.maxPooled >> Self.classShift) + 1
        freeLists = .allocate(capacity: classes)
        freeLists.initialize(repeating: nil, count: classes)
    }

    func deallocate() {
        var slab = slabs
        while let current = slab {
            slab = current.load(as: UnsafeMutableRawPointer?.self)
            free(current)
        }
        freeLists.deallocate()
        slabIndex.deallocate()
    }

    /// Whether `block` lies in one of this pool's slabs.
    @inlinable
    func owns(_ block: UnsafeMutableRawPointer) -> Bool {
        let base = UInt(bitPattern: block) & ~UInt(Self.slabSize - 1)
        return slabIndex.find(mixHash(0, UInt64(base)), { _ in true }) != nil
    }

    /// The class of a block of `size` bytes (header included), if pooled.
    @inlinable @inline(__always)
    static func sizeClass(_ size: Int) -> Int {
        (size &+ 15) &>> classShift
    }

    /// A block of at least `size` bytes (size <= maxPooled), 16-byte aligned.
    @inlinable @inline(__always)
    mutating func allocate(_ size: Int) -> UnsafeMutableRawPointer? {
        let sizeClass = Self.sizeClass(size)
        if let head = freeLists[sizeClass] {
            freeLists[sizeClass] = head.load(as: UnsafeMutableRawPointer?.self)
            return head
        }
        let rounded = sizeClass &<< Self.classShift
        if let bump, let bumpEnd, bumpEnd - bump >= rounded {
            self.bump = bump + rounded
            return bump
        }
        return allocateFromNewSlab(rounded)
    }

    @inlinable @inline(__always)
    mutating func release(_ block: UnsafeMutableRawPointer, size: Int) {
        let sizeClass = Self.sizeClass(size)
        block.storeBytes(of: freeLists[sizeClass], as: UnsafeMutableRawPointer?.self)
        freeLists[sizeClass] = block
    }

    @usableFromInline
    mutating func allocateFromNewSlab(_ rounded: Int) -> UnsafeMutableRawPointer? {
        // Slabs come 16 at a time from one aligned region: an aligned allocation of a single
        // slab costs glibc up to another slab of padding.
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
        let first = slab + 16
        bump = first + rounded
        bumpEnd = slab + Self.slabSize
        return first
    }
}
