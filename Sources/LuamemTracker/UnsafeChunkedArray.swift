import Glibc
import LuaShim

/// Append-only storage in fixed-size chunks that never move, so that the flusher thread can read
/// every element below a count it loaded with acquire ordering while the Lua thread appends.
///
/// The chunk directory starts small and doubles as chunks are added, up to `maxChunks`: a state
/// with few sites reserves a few hundred bytes of it, not the 2 MiB that the largest directory
/// takes (which, for every array of every state, ran a host with 500 states out of address space
/// under `ulimit -v`). A directory that is replaced is kept until the array is freed, since
/// another thread may still be reading through it; together they take less than twice the last.
///
/// The tracker owns it: it is created and freed by the tracker, only the Lua thread appends, and
/// elements are trivial values (no ARC). Memory comes from malloc.
@usableFromInline
struct UnsafeChunkedArray<Element> {
    @usableFromInline static var chunkShift: Int { 8 }
    @usableFromInline static var chunkSize: Int { 1 << chunkShift }
    @usableFromInline static var maxChunks: Int { 1 << 18 }
    static var initialChunks: Int { 4 }

    /// The current chunk directory (the owner's copy of `shared.pointee`), from `LinkedBlocks`.
    @usableFromInline var chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>
    /// Entries in `chunks`.
    @usableFromInline var capacity: Int
    /// What other threads read: the current directory (release/acquire), and the count visible
    /// to them.
    let shared: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    @usableFromInline let published: UnsafeMutablePointer<UInt32>
    /// Count on the owning thread, may run ahead of `published`.
    @usableFromInline var count: Int

    /// nil when out of memory.
    init?() {
        guard let directory = Self.newDirectory(capacity: Self.initialChunks, replacing: nil),
            let words = malloc(2 * MemoryLayout<UInt64>.stride)
        else { return nil }
        chunks = directory
        capacity = Self.initialChunks
        shared = words.bindMemory(to: UnsafeMutableRawPointer?.self, capacity: 1)
        shared.initialize(to: UnsafeMutableRawPointer(directory))
        published = (words + MemoryLayout<UInt64>.stride).bindMemory(to: UInt32.self, capacity: 1)
        published.initialize(to: 0)
        count = 0
    }

    /// A zeroed directory of `capacity` entries that replaces `replacing`.
    private static func newDirectory(
        capacity: Int, replacing: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>?
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<Element>?>? {
        LinkedBlocks.allocate(
            bytes: capacity * MemoryLayout<UnsafeMutablePointer<Element>?>.stride,
            replacing: replacing.map(UnsafeMutableRawPointer.init)
        )?.bindMemory(to: UnsafeMutablePointer<Element>?.self, capacity: capacity)
    }

    func deallocate() {
        for index in 0..<capacity {
            guard let chunk = chunks[index] else { break }
            free(chunk)
        }
        LinkedBlocks.freeAll(UnsafeMutableRawPointer(chunks))
        free(shared)
    }

    @inlinable @inline(__always)
    func element(_ index: Int) -> UnsafeMutablePointer<Element> {
        chunks[index &>> Self.chunkShift].unsafelyUnwrapped + (index & (Self.chunkSize &- 1))
    }

    /// Reserves the next element (zero-filled) and returns its index; nil when full or out of
    /// memory. It is not visible to readers until `publish()`.
    @usableFromInline
    mutating func append() -> Int? {
        let chunkIndex = count >> Self.chunkShift
        guard chunkIndex < Self.maxChunks else { return nil }
        if chunkIndex >= capacity {
            let grown = min(capacity * 2, Self.maxChunks)
            guard let directory = Self.newDirectory(capacity: grown, replacing: chunks) else {
                return nil
            }
            directory.update(from: chunks, count: capacity)
            chunks = directory
            capacity = grown
            // Readers see the new directory no later than the count that needs it: `publish()`
            // stores with release ordering after this.
            luamem_store_release_ptr(shared, UnsafeMutableRawPointer(directory))
        }
        if chunks[chunkIndex] == nil {
            guard let chunk = calloc(Self.chunkSize, MemoryLayout<Element>.stride) else {
                return nil
            }
            chunks[chunkIndex] = chunk.bindMemory(to: Element.self, capacity: Self.chunkSize)
        }
        count += 1
        return count - 1
    }

    /// Makes every appended element visible to readers.
    @usableFromInline
    func publish() {
        luamem_store_release_u32(published, UInt32(count))
    }

    /// The number of elements a reader on another thread may read.
    func publishedCount() -> Int {
        Int(luamem_load_acquire_u32(published))
    }

    /// What another thread may hold to read published elements.
    var view: ChunkedView<Element> { ChunkedView(directory: shared, published: published) }
}

/// A reader's handle on an `UnsafeChunkedArray`: only its immutable pointers, so reading never
/// touches the owner's mutable state.
public struct ChunkedView<Element> {
    let directory: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    let published: UnsafeMutablePointer<UInt32>

    /// The number of elements that may be read, loaded with acquire ordering.
    func publishedCount() -> Int {
        Int(luamem_load_acquire_u32(published))
    }

    /// An element below a `publishedCount()` loaded before: the directory loaded after that
    /// count is at least as new as the one the count was published with.
    func element(_ index: Int) -> UnsafeMutablePointer<Element> {
        let chunks = luamem_load_acquire_ptr(directory).unsafelyUnwrapped
            .assumingMemoryBound(to: UnsafeMutablePointer<Element>?.self)
        return chunks[index >> UnsafeChunkedArray<Element>.chunkShift].unsafelyUnwrapped
            + (index & (UnsafeChunkedArray<Element>.chunkSize - 1))
    }
}

/// Arrays that grow while another thread may still read through the copy they replace (chunk
/// directories, change marks): each copy is zeroed malloc'd memory with a word in front that
/// links to the copy it replaced, and all of them are freed together with their owner.
enum LinkedBlocks {
    /// Bytes in front of each copy: the link, and padding that keeps the copy 16-byte aligned.
    static let header = 16

    /// `bytes` zeroed bytes that replace `replacing` (a copy from here, or nil); nil when out of
    /// memory.
    static func allocate(bytes: Int, replacing: UnsafeMutableRawPointer?)
        -> UnsafeMutableRawPointer?
    {
        guard let block = calloc(header + bytes, 1) else { return nil }
        block.storeBytes(of: replacing.map { $0 - header }, as: UnsafeMutableRawPointer?.self)
        return block + header
    }

    /// Frees `latest` and every copy it replaced.
    static func freeAll(_ latest: UnsafeMutableRawPointer) {
        var block: UnsafeMutableRawPointer? = latest - header
        while let current = block {
            block = current.load(as: UnsafeMutableRawPointer?.self)
            free(current)
        }
    }
}
