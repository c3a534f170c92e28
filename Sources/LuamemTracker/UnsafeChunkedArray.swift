import Glibc
import LuaShim

/// Append-only storage in fixed-size chunks that never move, so that the flusher thread can read
/// every element below a count it loaded with acquire ordering while the Lua thread appends.
///
/// The tracker owns it: it is created and freed by the tracker, only the Lua thread appends, and
/// elements are trivial values (no ARC). Memory comes from malloc.
@usableFromInline
struct UnsafeChunkedArray<Element> {
    @usableFromInline static var chunkShift: Int { 8 }
    @usableFromInline static var chunkSize: Int { 1 << chunkShift }
    @usableFromInline static var maxChunks: Int { 1 << 18 }

    /// Chunk directory; calloc'ed so untouched entries cost no resident memory.
    @usableFromInline let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>
    /// Count visible to other threads.
    @usableFromInline let published: UnsafeMutablePointer<UInt32>
    /// Count on the owning thread, may run ahead of `published`.
    @usableFromInline var count: Int

    init() {
        let directory = calloc(Self.maxChunks, MemoryLayout<UnsafeMutablePointer<Element>?>.stride)!
        chunks = directory.bindMemory(
            to: UnsafeMutablePointer<Element>?.self, capacity: Self.maxChunks)
        published = UnsafeMutablePointer<UInt32>.allocate(capacity: 1)
        published.initialize(to: 0)
        count = 0
    }

    func deallocate() {
        for index in 0..<Self.maxChunks {
            guard let chunk = chunks[index] else { break }
            free(chunk)
        }
        free(chunks)
        published.deallocate()
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
    var view: ChunkedView<Element> { ChunkedView(chunks: chunks, published: published) }
}

/// A reader's handle on an `UnsafeChunkedArray`: only its immutable pointers, so reading never
/// touches the owner's mutable state.
public struct ChunkedView<Element> {
    let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Element>?>
    let published: UnsafeMutablePointer<UInt32>

    /// The number of elements that may be read, loaded with acquire ordering.
    func publishedCount() -> Int {
        Int(luamem_load_acquire_u32(published))
    }

    /// An element below `publishedCount()`.
    func element(_ index: Int) -> UnsafeMutablePointer<Element> {
        chunks[index >> UnsafeChunkedArray<Element>.chunkShift].unsafelyUnwrapped
            + (index & (UnsafeChunkedArray<Element>.chunkSize - 1))
    }
}
