import CZlib
import Foundation
import LuamemStore
import SwiftProtobuf

/// A pprof profile (profile.proto, gzipped) of sites' figures: what `go tool pprof`, Pyroscope
/// and other pprof readers take.
struct PprofProfile {
    /// One (state, site, type) and its figures.
    struct Entry {
        var state: String
        var info: SiteInfo
        var type: String
        var figures: Figures
    }

    /// The sample types, in the order of each sample's values; the last is the default.
    static let sampleTypes = [
        ("alloc_objects", "count"), ("alloc_space", "bytes"), ("inuse_objects", "count"),
        ("inuse_space", "bytes"),
    ]

    private var profile = Perftools_Profiles_Profile()
    private var strings: [String: Int64] = [:]
    private var functions: [String: UInt64] = [:]
    private var locations: [String: UInt64] = [:]

    /// `entries` as samples: one per (state, site, type), leaf first. `afterGC`: in-use figures
    /// are the live bytes after GC (as of the last completed cycle), else at the snapshot.
    /// `period`: the sampling interval in bytes, 0 when every allocation was tracked.
    init(
        entries: [Entry], frames: [Int64: FrameInfo], afterGC: Bool, period: Int64,
        timeMs: Int64, durationMs: Int64, comments: [String]
    ) {
        profile.stringTable = [""]
        strings[""] = 0
        profile.sampleType = Self.sampleTypes.map { valueType($0.0, $0.1) }
        profile.defaultSampleType = string("inuse_space")
        profile.periodType = valueType("space", "bytes")
        profile.period = max(period, 1)
        profile.timeNanos = timeMs.multipliedReportingOverflow(by: 1_000_000).partialValue
        profile.durationNanos = max(0, durationMs).multipliedReportingOverflow(by: 1_000_000)
            .partialValue
        profile.comment = comments.map { string($0) }
        for entry in entries {
            let figures = entry.figures
            let values = [
                figures.allocCount, figures.allocBytes, figures.liveCount,
                afterGC ? figures.gcLiveBytes : figures.liveBytes,
            ].map { max(0, $0) }
            guard values.contains(where: { $0 > 0 }) else { continue }
            var sample = Perftools_Profiles_Sample()
            sample.locationID = locationIDs(entry.info, frames)
            sample.value = values
            sample.label = [label("type", entry.type), label("state", entry.state)]
            profile.sample.append(sample)
        }
    }

    /// The profile, serialized and gzipped.
    func data() throws -> Data {
        try Self.gzip(profile.serializedData())
    }

    private mutating func string(_ text: String) -> Int64 {
        if let index = strings[text] { return index }
        let index = Int64(profile.stringTable.count)
        profile.stringTable.append(text)
        strings[text] = index
        return index
    }

    private mutating func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType
    {
        var value = Perftools_Profiles_ValueType()
        value.type = string(type)
        value.unit = string(unit)
        return value
    }

    private mutating func label(_ key: String, _ text: String) -> Perftools_Profiles_Label {
        var label = Perftools_Profiles_Label()
        label.key = string(key)
        label.str = string(text)
        return label
    }

    /// A site's locations, leaf first: its C function when it has one, then its Lua frames from
    /// the innermost out.
    private mutating func locationIDs(_ info: SiteInfo, _ frames: [Int64: FrameInfo]) -> [UInt64] {
        var ids: [UInt64] = []
        if !info.cfunction.isEmpty {
            ids.append(location(function: info.cfunction, file: "[C]", lineDefined: 0, line: 0))
        }
        for id in info.frameIDs {
            guard let frame = frames[id] else { continue }
            if SiteKey.isLineless(frame.file) {
                // [host], script.lua (load): no function and no line to show.
                ids.append(location(function: frame.file, file: frame.file, lineDefined: 0, line: 0))
            } else {
                // pprof shortens names by dropping what is in <> or (), as in C++ templates.
                let name = frame.function ?? "function@\(frame.file):\(frame.lineDefined)"
                ids.append(
                    location(
                        function: name, file: frame.file, lineDefined: frame.lineDefined,
                        line: frame.line))
            }
        }
        return ids
    }

    /// One Function per Lua function (name, chunk name, line defined), one Location per line.
    private mutating func location(function name: String, file: String, lineDefined: Int64, line: Int64)
        -> UInt64
    {
        let functionKey = "\(name)\u{0}\(file)\u{0}\(lineDefined)"
        let functionID: UInt64
        if let known = functions[functionKey] {
            functionID = known
        } else {
            var function = Perftools_Profiles_Function()
            functionID = UInt64(profile.function.count + 1)
            function.id = functionID
            function.name = string(name)
            function.systemName = function.name
            function.filename = string(file)
            function.startLine = lineDefined
            profile.function.append(function)
            functions[functionKey] = functionID
        }
        let locationKey = "\(functionID):\(line)"
        if let known = locations[locationKey] { return known }
        var location = Perftools_Profiles_Location()
        location.id = UInt64(profile.location.count + 1)
        var entry = Perftools_Profiles_Line()
        entry.functionID = functionID
        entry.line = line
        location.line = [entry]
        profile.location.append(location)
        locations[locationKey] = location.id
        return location.id
    }

    /// `data` in gzip format (zlib's deflate with a gzip header), as pprof files are stored.
    static func gzip(_ data: Data) throws -> Data {
        var stream = z_stream()
        guard
            deflateInit2_(
                &stream, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK
        else { throw CommandError("cannot compress the profile: zlib failed to start") }
        defer { deflateEnd(&stream) }
        var input = [UInt8](data)
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 64)
        let status = input.withUnsafeMutableBufferPointer { source in
            output.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard status == Z_STREAM_END else {
            throw CommandError("cannot compress the profile: zlib status \(status)")
        }
        return Data(output.prefix(Int(stream.total_out)))
    }
}
