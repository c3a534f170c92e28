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

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions
    @OptionGroup var output: OutputOptions

    @OptionGroup var window: WindowOptions
    @OptionGroup var rows: RowOptions

    @Option(help: "End of the window (default: the latest snapshot).")
    var until: String?

    @OptionGroup var gate: GateOptions

    func validate() throws {
        if let until, TimeExpression(until) == nil {
            throw ValidationError("--until '\(until)' is not a time: use \(TimeExpression.help)")
        }
    }

    func run() throws {
        if ClickHouse.isURL(database.path) {
            return try fleetGrowth(ClickHouse.forReading(database.path))
        }
        let store = try openStore(database)
        let result = try growth(in: store)
        output.print(result.listing, heading: result.heading)
        try gate.check(
            total: result.totalGrowth, base: result.baseTotal, baseName: "the window's start",
            rows: result.rowGrowth)
    }

    struct Result {
        var heading: String
        var listing: Listing
        var totalGrowth: Int64
        var baseTotal: Int64
        var rowGrowth: [(label: String, growth: Int64)]
    }

    /// One group's figures.
    private struct Group {
        var info: SiteInfo
        var type: String
        var cfunctions: [String] = []
        var liveBytes: Int64 = 0, liveCount: Int64 = 0, gcLiveBytes: Int64 = 0
        var growth: Int64 = 0, allocBytes: Int64 = 0, allocCount: Int64 = 0

        /// How the row is printed (computed only for the rows that need it).
        func site(by grouping: Grouping) -> String {
            SiteKey.label(info, type: type, by: grouping)
        }
    }

    func growth(in store: Store) throws -> Result {
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let now = Clock.epochMs()
        let sinceMs = window.sinceMs(nowMs: now)
        let untilMs = until.flatMap(TimeExpression.init)?.epochMs(nowMs: now)
        if let sinceMs, let untilMs, sinceMs > untilMs {
            throw CommandError("--since is later than --until")
        }
        let heads = try store.headSnapshots(runID: run.id, untilMs: untilMs).filter {
            selected($0.stateID)
        }
        guard !heads.isEmpty else {
            throw CommandError(
                "run \(run.id) has no snapshot\(untilMs == nil ? "" : " before --until")")
        }
        let bases = try store.baseSnapshots(runID: run.id, sinceMs: sinceMs)
        let typeNames = try store.objectTypeNames()
        let typeList = (0..<8).map { typeNames[Int64($0)] ?? "?" }
        func typeName(_ type: Int64) -> String {
            type >= 0 && type < typeList.count ? typeList[Int(type)] : "?"
        }

        // Post-GC growth compares two points: it needs two cycles completed between them.
        let cycles: Int64 = try heads.map { head -> Int64 in
            let base = bases.first { $0.stateID == head.stateID && $0.id <= head.id }
            let before = try base.map { try store.gcCycles(snapshotID: $0.id) } ?? 0
            return try store.gcCycles(snapshotID: head.id) - before
        }.min() ?? 0
        let current = rows.usesCurrent(cyclesInWindow: cycles, needed: growthCyclesNeeded)
        // Groups live in an array and are updated in place: a query may see 50k sites. Options
        // are read once (each read through the property wrapper costs a metadata lookup).
        let by = rows.by
        var groupIndex: [SiteKey: Int] = [:]
        var groups: [Group] = []
        var baseTotal: Int64 = 0
        // Site names are read on a second connection while the figures are read.
        var infos: [Int64: SiteInfo] = [:]
        var states: [(base: [SiteFigures], head: [SiteFigures])] = []
        final class Results: @unchecked Sendable {
            var infos: [Int64: SiteInfo] = [:]
        }
        let names = Results()
        let path = store.path
        try inParallel(
            { names.infos = try Store.openForReading(path: path).siteInfo(ids: nil) },
            {
                for head in heads {
                    if let base = bases.first(where: {
                        $0.stateID == head.stateID && $0.id <= head.id
                    }) {
                        let entries = try store.figures(at: base)
                        states.append(
                            (entries, try store.figures(at: head, from: base, baseFigures: entries))
                        )
                    } else {
                        states.append(([], try store.figures(at: head)))
                    }
                }
            })
        infos = names.infos
        for (baseEntries, headEntries) in states {
            var baseFigures: [Int64: Figures] = [:]
            baseFigures.reserveCapacity(baseEntries.count)
            for entry in baseEntries {
                baseFigures[entry.siteID << 8 | entry.type] = entry.figures
            }
            groupIndex.reserveCapacity(groupIndex.count + headEntries.count)
            for entry in headEntries {
                guard let info = infos[entry.siteID] else { continue }
                let type = typeName(entry.type)
                let base = baseFigures[entry.siteID << 8 | entry.type] ?? Figures()
                let index: Int
                let key = SiteKey(info, type: type, by: by)
                if let known = groupIndex[key] {
                    index = known
                } else {
                    index = groups.count
                    groupIndex[key] = index
                    groups.append(Group(info: info, type: type))
                }
                if by != .type && !info.cfunction.isEmpty
                    && !groups[index].cfunctions.contains(info.cfunction)
                {
                    groups[index].cfunctions.append(info.cfunction)
                }
                let baseLive = current ? base.liveBytes : base.gcLiveBytes
                let figures = entry.figures
                // Figures are clamped when read, so one difference fits; sums saturate.
                groups.withUnsafeMutableBufferPointer { groups in
                    groups[index].growth = groups[index].growth.saturatingAdd(
                        (current ? figures.liveBytes : figures.gcLiveBytes) - baseLive)
                    groups[index].liveBytes = groups[index].liveBytes.saturatingAdd(figures.liveBytes)
                    groups[index].liveCount = groups[index].liveCount.saturatingAdd(figures.liveCount)
                    groups[index].gcLiveBytes = groups[index].gcLiveBytes.saturatingAdd(
                        figures.gcLiveBytes)
                    groups[index].allocBytes = groups[index].allocBytes.saturatingAdd(
                        figures.allocBytes - base.allocBytes)
                    groups[index].allocCount = groups[index].allocCount.saturatingAdd(
                        figures.allocCount - base.allocCount)
                }
                baseTotal = baseTotal.saturatingAdd(baseLive)
            }
        }

        // Only the top rows are listed: keep them in order while passing over every group.
        func ranks(_ a: Int, before b: Int) -> Bool {
            if groups[a].growth != groups[b].growth { return groups[a].growth > groups[b].growth }
            if groups[a].liveBytes != groups[b].liveBytes {
                return groups[a].liveBytes > groups[b].liveBytes
            }
            return groups[a].site(by: by) < groups[b].site(by: by)
        }
        var top: [Int] = []
        let wanted = max(0, output.top)
        if wanted * 64 >= groups.count {
            top = Array(groups.indices.sorted(by: ranks).prefix(wanted))
        } else {
            for index in groups.indices {
                if top.count == wanted, let last = top.last, !ranks(index, before: last) {
                    continue
                }
                let at = top.firstIndex { ranks(index, before: $0) } ?? top.count
                top.insert(index, at: at)
                if top.count > wanted { top.removeLast() }
            }
        }
        let ranked = top.map { groups[$0] }
        var listing = Listing(columns: [
            .init(key: "growth_bytes", title: "GROWTH", rightAligned: true),
            .init(key: "live_bytes", title: "LIVE", rightAligned: true),
            .init(key: "live_count", title: "COUNT", rightAligned: true),
            .init(key: "alloc_bytes", title: "ALLOC", rightAligned: true),
            .init(key: "site", title: rows.by == .type ? "TYPE" : "SITE", rightAligned: false),
            .init(
                key: "function", title: rows.by == .file || rows.by == .type ? "" : "FUNCTION",
                rightAligned: false),
            .init(
                key: "c_function", title: rows.by == .type ? "" : "C FUNCTION", rightAligned: false),
            .init(key: "source", title: "", rightAligned: false),
            .init(key: "line", title: "", rightAligned: false),
            .init(key: "type", title: "", rightAligned: false),
            .init(key: "gc_live_bytes", title: "", rightAligned: false),
            .init(key: "alloc_count", title: "", rightAligned: false),
        ])
        for group in ranked {
            let info = group.info
            let line: Int64? =
                switch rows.by {
                case .line: info.line
                case .function: info.lineDefined
                case .file, .type: nil
                }
            listing.rows.append([
                .bytes(group.growth, signed: true), .bytes(group.liveBytes, signed: false),
                .integer(group.liveCount), .bytes(group.allocBytes, signed: false),
                .text(group.site(by: by)),
                .text(rows.by == .file || rows.by == .type ? nil : SiteKey.functionName(info)),
                .text(group.cfunctions.isEmpty ? nil : group.cfunctions.joined(separator: ",")),
                .text(rows.by == .type ? nil : info.file), line.map(Cell.integer) ?? .text(nil),
                .text(rows.by == .type ? group.type : nil),
                .integer(group.gcLiveBytes), .integer(group.allocCount),
            ])
        }
        let first = bases.filter { selected($0.stateID) }.map(\.timeMs).min() ?? heads[0].timeMs
        let last = heads.map(\.timeMs).max() ?? heads[0].timeMs
        let heading =
            "\(try selection.describe(run, in: store)): \(formatTime(first)) → \(formatTime(last)) UTC, growth of "
            + (current ? "live bytes (uncollected garbage included)" : "live bytes after GC")
        return Result(
            heading: heading, listing: listing,
            totalGrowth: groups.reduce(0) { $0.saturatingAdd($1.growth) }, baseTotal: baseTotal,
            rowGrowth: groups.map { ($0.site(by: by), $0.growth) })
    }
}

/// "run 3 (server.lua, build abc)".
/// One line on stderr, "luamem: message", for what the reader of an answer should know.
func warn(_ message: String) {
    FileHandle.standardError.write(Data("luamem: \(message)\n".utf8))
}

func describe(_ run: RunRecord) -> String {
    let label = [run.name, run.build.map { "build \($0)" }].compactMap { $0 }
    return "run \(run.id)" + (label.isEmpty ? "" : " (\(label.joined(separator: ", ")))")
}

/// Opens a database for reading (or, `writable`, for maintenance); failures become one-line
/// errors.
func openStore(_ database: DatabaseOptions, writable: Bool = false) throws -> Store {
    if ClickHouse.isURL(database.path) {
        throw CommandError(
            "`luamem prune` does not read ClickHouse (a fleet store keeps what was shipped; drop "
                + "partitions or rows there in SQL): give a SQLite file")
    }
    do {
        return try Store.openForReading(path: database.path, writable: writable)
    } catch {
        throw CommandError("\(error)")
    }
}

/// Runs `first` on a second thread while `second` runs on this one, and rethrows the first
/// error. A job that reads the database uses its own connection.
func inParallel(_ first: @escaping () throws -> Void, _ second: () throws -> Void) throws {
    final class Outcome: @unchecked Sendable { var error: Error? }
    let outcome = Outcome()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread {
        do { try first() } catch { outcome.error = error }
        done.signal()
    }
    thread.stackSize = 8 << 20
    thread.start()
    var secondError: Error?
    do { try second() } catch { secondError = error }
    done.wait()
    if let error = outcome.error ?? secondError { throw error }
}

/// "2026-11-25 02:04:47" (UTC).
func formatTime(_ epochMs: Int64) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss"
    return formatter.string(from: Date(timeIntervalSince1970: Double(epochMs) / 1000))
}

/// `--fail-above`: bytes, or a percentage of the total at the start of the comparison.
/// `--fail-above`: a size with its unit, or a percentage of the base total.
struct Threshold: ExpressibleByArgument {
    enum Limit { case bytes(Int64), percent(Double) }
    var limit: Limit
    /// As given, for messages.
    var text: String

    init?(argument: String) {
        text = argument
        if argument.hasSuffix("%") {
            guard let percent = Double(argument.dropLast()), percent >= 0, percent.isFinite else {
                return nil
            }
            limit = .percent(percent)
        } else {
            // A bare number is ambiguous (5 would mean 5 bytes): a unit is required.
            guard argument.last?.isLetter == true, let bytes = ByteSize.parse(argument) else {
                return nil
            }
            limit = .bytes(bytes)
        }
    }

    /// The growth allowed, in bytes, against a base total of `base`.
    func allowed(base: Int64) -> Double {
        switch limit {
        case .bytes(let bytes): Double(bytes)
        case .percent(let percent): Double(max(base, 0)) * percent / 100
        }
    }

    /// What the allowed growth is, in words, for the gate's message.
    func describe(allowed: Double, base: Int64, baseName: String) -> String {
        switch limit {
        case .bytes: "\(Listing.formatBytes(Int64(allowed), signed: false))"
        case .percent:
            "\(Listing.formatBytes(Int64(allowed), signed: false)), \(text) of \(baseName)'s "
                + "\(Listing.formatBytes(base, signed: false))"
        }
    }
}
