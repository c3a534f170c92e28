import ArgumentParser
import Foundation
import LuamemAgent
import LuamemStore

/// `luamem query`: sites ranked by growth of live bytes over a window.
struct QueryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "query",
        abstract: "Rank allocation sites by growth of live memory.",
        discussion: """
            Compares the latest snapshot (at or before --until) with the last snapshot at or \
            before the start of the window (--since; the run's first snapshot when the window \
            starts earlier or --since is not given). Growth uses the live bytes as of the last \
            completed garbage-collection cycle, so garbage not yet collected does not look like \
            growth; --current uses the live bytes at the snapshot instead. LIVE and COUNT are \
            the live bytes and objects at the latest snapshot, ALLOC the bytes allocated during \
            the window. Times: \(TimeExpression.help).
            """
    )

    enum Grouping: String, ExpressibleByArgument, CaseIterable {
        case line, function, file, type
    }

    @OptionGroup var database: DatabaseOptions

    @Option(help: "Start of the window, e.g. 1h (default: the whole run).")
    var since: String?

    @Option(help: "End of the window (default: the latest snapshot).")
    var until: String?

    @Option(name: .customLong("run"), help: "The run to look at (default: the latest).")
    var runID: Int64?

    @Option(help: "Only the Lua state with this name (default: all states of the run).")
    var state: String?

    @Option(help: "How many rows to print.")
    var top: Int = 20

    @Option(help: "Group sites by line, function, file or type.")
    var by: Grouping = .line

    @Option(help: "Output format: table, json or csv.")
    var format: OutputFormat = .table

    @Flag(help: "Rank by live bytes at the snapshots, uncollected garbage included.")
    var current = false

    func validate() throws {
        guard top > 0 else { throw ValidationError("--top must be at least 1, got \(top)") }
        for (name, value) in [("--since", since), ("--until", until)] {
            if let value, TimeExpression(value) == nil {
                throw ValidationError("\(name) '\(value)' is not a time: use \(TimeExpression.help)")
            }
        }
        if let runID, runID <= 0 {
            throw ValidationError("--run must be a positive run id, got \(runID)")
        }
    }

    func run() throws {
        let store: Store
        do {
            store = try Store.openForReading(path: database.path)
        } catch {
            throw CommandError("\(error)")
        }
        let result = try growth(in: store)
        if format == .table {
            print(result.heading)
        }
        print(result.listing.render(format), terminator: "")
    }

    struct Result {
        var heading: String
        var listing: Listing
    }

    /// One row before grouping.
    private struct Row {
        var info: SiteInfo
        var type: String
        var head: Figures
        var base: Figures
    }

    func growth(in store: Store) throws -> Result {
        guard let runID = try self.runID ?? store.latestRunID() else {
            throw CommandError("\(store.path) has no runs yet")
        }
        guard let runRecord = try store.run(id: runID) else {
            throw CommandError("no run \(runID) in \(store.path) (see the runs table)")
        }
        let now = Clock.epochMs()
        let sinceMs = since.flatMap(TimeExpression.init)?.epochMs(nowMs: now)
        let untilMs = until.flatMap(TimeExpression.init)?.epochMs(nowMs: now)
        if let sinceMs, let untilMs, sinceMs > untilMs {
            throw CommandError("--since is later than --until")
        }
        var heads = try store.headSnapshots(runID: runID, untilMs: untilMs)
        if let state {
            let ids = try store.stateIDs(runID: runID, name: state)
            guard !ids.isEmpty else { throw CommandError("run \(runID) has no Lua state named '\(state)'") }
            heads = heads.filter { ids.contains($0.stateID) }
        }
        guard !heads.isEmpty else {
            throw CommandError("run \(runID) has no snapshot\(untilMs == nil ? "" : " before --until")")
        }
        let bases = try store.baseSnapshots(runID: runID, sinceMs: sinceMs)
        let typeNames = try store.objectTypeNames()

        var rows: [Row] = []
        for head in heads {
            let base = bases.first { $0.stateID == head.stateID && $0.id <= head.id }
            var baseFigures: [String: Figures] = [:]
            if let base {
                for entry in try store.figures(at: base) {
                    baseFigures["\(entry.siteID)/\(entry.type)"] = entry.figures
                }
            }
            let headFigures = try store.figures(at: head)
            let infos = try store.siteInfo(ids: Set(headFigures.map(\.siteID)))
            for entry in headFigures {
                guard let info = infos[entry.siteID] else { continue }
                rows.append(Row(
                    info: info, type: typeNames[entry.type] ?? "?", head: entry.figures,
                    base: baseFigures["\(entry.siteID)/\(entry.type)"] ?? Figures()))
            }
        }

        let listing = group(rows)
        let first = bases.map(\.timeMs).min() ?? heads[0].timeMs
        let last = heads.map(\.timeMs).max() ?? heads[0].timeMs
        let label = [runRecord.name, runRecord.build.map { "build \($0)" }].compactMap { $0 }
        let heading = "run \(runID)" + (label.isEmpty ? "" : " (\(label.joined(separator: ", ")))")
            + ": \(Self.formatTime(first)) → \(Self.formatTime(last)) UTC, growth of "
            + (current ? "live bytes (uncollected garbage included)" : "live bytes after GC")
        return Result(heading: heading, listing: listing)
    }

    /// Groups rows by the chosen key, ranks them by growth, and keeps the top ones.
    private func group(_ rows: [Row]) -> Listing {
        struct Group {
            var file: String?
            var line: Int64?
            var function: String?
            var type: String?
            var definedAt: Int64?
            var cfunctions: [String] = []
            var liveBytes: Int64 = 0, liveCount: Int64 = 0, gcLiveBytes: Int64 = 0
            var growth: Int64 = 0, allocBytes: Int64 = 0, allocCount: Int64 = 0
        }
        var groups: [String: Group] = [:]
        var order: [String] = []
        for row in rows {
            let info = row.info
            let key: String
            var fresh = Group()
            switch by {
            case .line, .function:
                let line = by == .line ? info.line : info.lineDefined
                key = "\(info.file)\u{0}\(line)"
                fresh.file = info.file
                fresh.line = line
                fresh.function = info.function
                fresh.definedAt = info.file == "[host]" ? nil : info.lineDefined
            case .file:
                key = info.file
                fresh.file = info.file
            case .type:
                key = row.type
                fresh.type = row.type
            }
            if groups[key] == nil {
                groups[key] = fresh
                order.append(key)
            }
            var group = groups[key]!
            if by == .line || by == .function {
                if group.function == nil { group.function = info.function }
            }
            if by != .type && !info.cfunction.isEmpty && !group.cfunctions.contains(info.cfunction) {
                group.cfunctions.append(info.cfunction)
            }
            let headLive = current ? row.head.liveBytes : row.head.gcLiveBytes
            let baseLive = current ? row.base.liveBytes : row.base.gcLiveBytes
            group.growth += headLive - baseLive
            group.liveBytes += row.head.liveBytes
            group.liveCount += row.head.liveCount
            group.gcLiveBytes += row.head.gcLiveBytes
            group.allocBytes += row.head.allocBytes - row.base.allocBytes
            group.allocCount += row.head.allocCount - row.base.allocCount
            groups[key] = group
        }
        let ranked = order.compactMap { groups[$0] }.sorted {
            if $0.growth != $1.growth { return $0.growth > $1.growth }
            if $0.liveBytes != $1.liveBytes { return $0.liveBytes > $1.liveBytes }
            return ($0.file ?? $0.type ?? "", $0.line ?? 0) < ($1.file ?? $1.type ?? "", $1.line ?? 0)
        }.prefix(top)

        var listing = Listing(columns: [
            .init(key: "growth_bytes", title: "GROWTH", rightAligned: true),
            .init(key: "live_bytes", title: "LIVE", rightAligned: true),
            .init(key: "live_count", title: "COUNT", rightAligned: true),
            .init(key: "alloc_bytes", title: "ALLOC", rightAligned: true),
            .init(key: "site", title: by == .type ? "TYPE" : "SITE", rightAligned: false),
            .init(key: "function", title: "FUNCTION", rightAligned: false),
            .init(key: "c_function", title: "C FUNCTION", rightAligned: false),
            .init(key: "source", title: "", rightAligned: false),
            .init(key: "line", title: "", rightAligned: false),
            .init(key: "type", title: "", rightAligned: false),
            .init(key: "gc_live_bytes", title: "", rightAligned: false),
            .init(key: "alloc_count", title: "", rightAligned: false),
        ])
        for group in ranked {
            let site: String
            switch by {
            case .line, .function:
                site = group.file == "[host]" ? "[host]" : "\(group.file ?? "?"):\(group.line ?? 0)"
            case .file: site = group.file ?? "?"
            case .type: site = group.type ?? "?"
            }
            let function = group.function
                ?? group.definedAt.map { "function <\(group.file ?? "?"):\($0)>" }
            listing.rows.append([
                .bytes(group.growth, signed: true), .bytes(group.liveBytes, signed: false),
                .integer(group.liveCount), .bytes(group.allocBytes, signed: false),
                .text(site), .text(function),
                .text(group.cfunctions.isEmpty ? nil : group.cfunctions.joined(separator: ",")),
                .text(group.file), group.line.map(Cell.integer) ?? .text(nil), .text(group.type),
                .integer(group.gcLiveBytes), .integer(group.allocCount),
            ])
        }
        if format == .table {
            // People read the first seven columns; the others repeat them for scripts.
            listing.columns.removeLast(5)
            listing.rows = listing.rows.map { Array($0.prefix(7)) }
        }
        return listing
    }

    static func formatTime(_ epochMs: Int64) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return formatter.string(from: Date(timeIntervalSince1970: Double(epochMs) / 1000))
    }
}
