import Glibc

/// An open-addressing hash index from a 64-bit hash to a 32-bit value, for the tracker's
/// interning tables. Callers keep the keys themselves and confirm a candidate with `matches`.
///
/// Used only by the Lua thread that owns the tracker; memory comes from malloc and is released
/// by `deallocate()`.
@usableFromInline
struct UnsafeHashIndex {
    @usableFromInline struct Entry {
        @usableFromInline var hash: UInt64
        @usableFromInline var value: UInt32  // value + 1; 0 marks an empty entry
    }

    @usableFromInline var entries: UnsafeMutablePointer<Entry>
    @usableFromInline var mask: Int
    @usableFromInline var count: Int

    init(capacity: Int = 16) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        // At creation, with the tracker: no Lua state depends on it yet.
        guard let entries = Self.allocateEntries(size) else { fatalError("out of memory") }
        self.entries = entries
        mask = size - 1
        count = 0
    }

    private static func allocateEntries(_ size: Int) -> UnsafeMutablePointer<Entry>? {
        calloc(size, MemoryLayout<Entry>.stride)?.bindMemory(to: Entry.self, capacity: size)
    }

    func deallocate() {
        free(entries)
    }

    /// The value stored under `hash` for which `matches` is true.
    @inlinable @inline(__always)
    func find(_ hash: UInt64, _ matches: (UInt32) -> Bool) -> UInt32? {
        var index = Int(truncatingIfNeeded: hash) & mask
        while true {
            let entry = entries[index]
            if entry.value == 0 { return nil }
            if entry.hash == hash && matches(entry.value &- 1) { return entry.value &- 1 }
            index = (index &+ 1) & mask
        }
    }

    /// Inserts; false, and nothing inserted, when the index needs more memory than there is
    /// (it runs inside the host's allocator: out of memory is an answer, never a trap).
    @usableFromInline @discardableResult
    mutating func insert(_ hash: UInt64, _ value: UInt32) -> Bool {
        guard reserve() else { return false }
        var index = Int(truncatingIfNeeded: hash) & mask
        while entries[index].value != 0 { index = (index + 1) & mask }
        entries[index] = Entry(hash: hash, value: value + 1)
        count += 1
        return true
    }

    /// Whether one more entry fits: grows at half full; when it cannot, entries still go in up
    /// to 7/8 full (probe runs get longer, lookups still end at an empty entry).
    @usableFromInline
    mutating func reserve() -> Bool {
        guard (count + 1) * 2 > mask + 1 else { return true }
        return grow() || (count + 1) * 8 <= (mask + 1) * 7
    }

    /// Removes the entry stored under `hash` (for keys hashed bijectively, so the hash is the
    /// key), shifting later entries of its probe run back.
    @usableFromInline
    mutating func remove(_ hash: UInt64) {
        var index = Int(truncatingIfNeeded: hash) & mask
        while entries[index].value != 0 && entries[index].hash != hash {
            index = (index + 1) & mask
        }
        guard entries[index].value != 0 else { return }
        var hole = index
        var next = (index + 1) & mask
        while entries[next].value != 0 {
            let home = Int(truncatingIfNeeded: entries[next].hash) & mask
            // Move the entry into the hole unless its home lies cyclically in (hole, next].
            let stays = hole <= next ? (hole < home && home <= next) : (hole < home || home <= next)
            if !stays {
                entries[hole] = entries[next]
                hole = next
            }
            next = (next + 1) & mask
        }
        entries[hole] = Entry(hash: 0, value: 0)
        count -= 1
    }

    mutating func removeAll() {
        memset(entries, 0, (mask + 1) * MemoryLayout<Entry>.stride)
        count = 0
    }

    private mutating func grow() -> Bool {
        let old = entries, oldSize = mask + 1
        let size = oldSize * 2
        guard let bigger = Self.allocateEntries(size) else { return false }
        entries = bigger
        mask = size - 1
        for index in 0..<oldSize where old[index].value != 0 {
            var slot = Int(truncatingIfNeeded: old[index].hash) & mask
            while entries[slot].value != 0 { slot = (slot + 1) & mask }
            entries[slot] = old[index]
        }
        free(old)
        return true
    }
}

/// Mixes 64-bit words into a hash (a multiply-xorshift finalizer, as in splitmix64).
@inlinable @inline(__always)
public func mixHash(_ seed: UInt64, _ word: UInt64) -> UInt64 {
    var x = (seed ^ word) &* 0x9E37_79B9_7F4A_7C15
    x ^= x &>> 31
    x = x &* 0xBF58_476D_1CE4_E5B9
    return x ^ (x &>> 29)
}

/// Hash of a NUL-terminated string's bytes (FNV-1a), for interning by content.
func hashCString(_ text: UnsafePointer<CChar>) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    var p = text
    while p.pointee != 0 {
        hash = (hash ^ UInt64(UInt8(bitPattern: p.pointee))) &* 0x100_0000_01b3
        p += 1
    }
    return hash
}
