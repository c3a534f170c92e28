/// The kind of object a block holds, as Lua tells its allocator through `osize` when it creates
/// an object; "other" covers everything that is not an object header (table parts, stacks,
/// string buffers, upvalues, call frames). Raw values are the `object_types` ids of the schema.
public enum ObjectType: UInt32, CaseIterable, Sendable {
    case other = 0, string, table, function, userdata, thread, proto

    /// Number of types, the stride of a site's row in the type-slot table.
    @usableFromInline static let slotStride = 8

    /// Maps Lua 5.3's type tag (LUA_TSTRING … LUA_TPROTO) passed as `osize` with a NULL block.
    @inlinable @inline(__always)
    init(luaTag: Int) {
        switch luaTag {
        case 4: self = .string
        case 5: self = .table
        case 6: self = .function
        case 7: self = .userdata
        case 8: self = .thread
        case 9: self = .proto
        default: self = .other
        }
    }

    public var name: String {
        switch self {
        case .other: "other"
        case .string: "string"
        case .table: "table"
        case .function: "function"
        case .userdata: "userdata"
        case .thread: "thread"
        case .proto: "proto"
        }
    }
}
