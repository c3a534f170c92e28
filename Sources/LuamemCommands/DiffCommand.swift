import ArgumentParser
import Foundation
import LuamemAgent
import LuamemStore

/// What `--base` and `--head` name.
enum Reference: ExpressibleByArgument, CustomStringConvertible {
    case run(Int64)
    /// A run by its UUID, or the start of it.
    case runUUID(String)
    case build(String)
    case snapshot(Int64)
    case time(String)

    init?(argument: String) {
        if argument.hasPrefix("run:"), let id = Int64(argument.dropFirst(4)), id > 0 {
            self = .run(id)
        } else if argument.hasPrefix("run:"), argument.count >= 4 + 4,
            argument.dropFirst(4).allSatisfy({ $0.isHexDigit || $0 == "-" })
        {
            self = .runUUID(argument.dropFirst(4).lowercased())
        } else if argument.hasPrefix("build:"), argument.count > 6 {
            self = .build(String(argument.dropFirst(6)))
        } else if argument.hasPrefix("snapshot:"), let id = Int64(argument.dropFirst(9)), id > 0 {
            self = .snapshot(id)
        } else if TimeExpression(argument) != nil {
            self = .time(argument)
        } else {
            return nil
        }
    }

    var description: String {
        switch self {
        case .run(let id): "run \(id)"
        case .runUUID(let uuid): "run \(uuid)"
        case .build(let label): "build \(label)"
        case .snapshot(let id): "snapshot \(id)"
        case .time(let text): text
        }
    }

    static let help =
        "run:ID (or run:UUID), build:LABEL, snapshot:ID, or a time (\(TimeExpression.help))"
}

/// Which moment of a run a reference compares.
enum Moment: ExpressibleByArgument {
    case end, peak
    case elapsed(Int64)

    init?(argument: String) {
        switch argument {
        case "end": self = .end
        case "peak": self = .peak
        default:
            guard let milliseconds = TimeExpression.durationMs(argument), !argument.hasPrefix("-")
            else {
                return nil
            }
            self = .elapsed(milliseconds)
        }
    }
}

/// The figures a reference stands for, grouped into rows.
struct Side {
    var description: String
    var values: [SiteKey: Int64] = [:]
    var labels: [SiteKey: (site: String, info: SiteInfo)] = [:]
    var total: Int64 = 0
    /// Some state had completed fewer than two GC cycles at its snapshot: its figures after GC
    /// are its live bytes there (the tracker's own fallback), uncollected garbage included.
    var beforeTwoCycles = false
}

/// `luamem diff`: two moments side by side, site by site.
struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Compare live memory per site between two runs, builds, snapshots or times.",
        discussion: """
            REF is \(Reference.help). A run is compared at its end (--at). A build label that \
            several runs share stands for the median of those runs, site by site. Sites are \
            matched across builds by file, function and distance from the function's first \
            line, so edits elsewhere that move a line do not break the match; sites found on \
            one side only are shown as new or gone. Figures are live bytes after GC \
            (--current: at the snapshot). Rows are sorted by the size of the change.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "What to compare against (\(Reference.help)).")
    var base: Reference

    @Option(help: "What to compare (same forms as --base).")
    var head: Reference

    @Option(help: "Which moment of a run: end, peak, or an elapsed time such as 30m.")
    var at: Moment = .end

    @OptionGroup var rows: RowOptions

    @Option(help: "Only the Lua states with this name.")
    var state: String?

    @OptionGroup var gate: GateOptions

    func run() throws {
        let baseSide: Side, headSide: Side
        if ClickHouse.isURL(database.path) {
            let comparison = FleetComparison(
                server: try ClickHouse.forReading(database.path), at: at, by: rows.by,
                current: rows.current, state: state)
            baseSide = try comparison.resolve(base)
            headSide = try comparison.resolve(head)
        } else {
            let comparison = try Comparison(
                store: openStore(database), at: at, by: rows.by, current: rows.current, state: state)
            baseSide = try comparison.resolve(base)
            headSide = try comparison.resolve(head)
        }
        let changes = Comparison.changes(baseSide, headSide)
        for side in [baseSide, headSide] where side.beforeTwoCycles {
            warn(
                "\(side.description): fewer than two GC cycles had completed, too few for figures "
                    + "after GC: the live bytes at the snapshot stand in, uncollected garbage included")
        }
        var listing = Listing(columns: [
            .init(key: "base_bytes", title: "BASE", rightAligned: true),
            .init(key: "head_bytes", title: "HEAD", rightAligned: true),
            .init(key: "change_bytes", title: "CHANGE", rightAligned: true),
            .init(key: "change_fraction", title: "%", rightAligned: true),
            .init(key: "status", title: "NOTE", rightAligned: false),
            .init(key: "site", title: rows.by == .type ? "TYPE" : "SITE", rightAligned: false),
            .init(
                key: "function", title: rows.by == .file || rows.by == .type ? "" : "FUNCTION",
                rightAligned: false),
            .init(key: "source", title: "", rightAligned: false),
            .init(key: "line", title: "", rightAligned: false),
        ])
        let forScripts = output.format == .json || output.format == .csv
        for row in changes.prefix(output.top) {
            let label = headSide.labels[row.key] ?? baseSide.labels[row.key]!
            let fraction: Double? =
                (row.base ?? 0) > 0 ? Double(row.change) / Double(row.base!) : nil
            listing.rows.append([
                .bytes(row.base ?? 0, signed: false), .bytes(row.head ?? 0, signed: false),
                .bytes(row.change, signed: true), .percent(fraction),
                // Scripts get the status of every row.
                .text(forScripts ? row.status : row.note),
                .text(label.site),
                .text(
                    rows.by == .file || rows.by == .type ? nil : SiteKey.functionName(label.info)),
                .text(rows.by == .type ? nil : label.info.file),
                rows.by == .line ? .integer(label.info.line) : .text(nil),
            ])
        }
        let change = headSide.total - baseSide.total
        let fraction =
            baseSide.total > 0
            ? String(format: ", %+.1f%%", Double(change) / Double(baseSide.total) * 100) : ""
        let heading =
            "base: \(baseSide.description)\nhead: \(headSide.description)\n"
            + "total \(rows.current ? "live" : "live after GC"): \(Listing.formatBytes(baseSide.total)) → "
            + "\(Listing.formatBytes(headSide.total)) (\(Listing.formatBytes(change, signed: true))\(fraction))"
        output.print(listing, heading: heading)
        try gate.check(
            total: change, base: baseSide.total, baseName: "the base",
            rows: changes.map { row in
                ((headSide.labels[row.key] ?? baseSide.labels[row.key])?.site ?? "?", row.change)
            })
    }
}

/// Resolves diff references into sides and compares them: shared by `diff` and `report`.
struct Comparison {
    var store: Store
    var at: Moment
    var by: Grouping
    var current: Bool
    var state: String?
    var typeNames: [Int64: String]

    init(store: Store, at: Moment, by: Grouping, current: Bool, state: String?) throws {
        self.store = store
        self.at = at
        self.by = by
        self.current = current
        self.state = state
        typeNames = try store.objectTypeNames()
    }

    /// One row of a comparison.
    struct Change {
        var key: SiteKey
        var base: Int64?
        var head: Int64?
        /// Saturating: the sides' sums may sit at Int64's limits in an altered file.
        var change: Int64 {
            let (difference, overflow) = (head ?? 0).subtractingReportingOverflow(base ?? 0)
            return overflow ? ((head ?? 0) > (base ?? 0) ? .max : .min) : difference
        }
        var status: String {
            base == nil ? "new" : (head == nil ? "gone" : (change == 0 ? "same" : "changed"))
        }
        /// What people are shown: only "new" and "gone" are worth a word.
        var note: String? { base == nil || head == nil ? status : nil }
    }

    /// Rows present on either side, largest change first.
    static func changes(_ base: Side, _ head: Side) -> [Change] {
        Set(base.values.keys).union(head.values.keys)
            .map { Change(key: $0, base: base.values[$0], head: head.values[$0]) }
            .filter { $0.change != 0 || ($0.base ?? 0) != 0 }
            .sorted {
                if $0.change.magnitude != $1.change.magnitude {
                    return $0.change.magnitude > $1.change.magnitude
                }
                let (first, second) = ($0.head ?? $0.base ?? 0, $1.head ?? $1.base ?? 0)
                if first != second { return first > second }
                // Ties in a fixed order: a dictionary's order changes from one process to the next.
                return $0.key.order < $1.key.order
            }
    }

    func resolve(_ reference: Reference) throws -> Side {
        switch reference {
        case .run(let id):
            guard let run = try store.run(id: id) else {
                throw CommandError("no run \(id) in \(store.path)")
            }
            return try side(of: run)
        case .runUUID(let prefix):
            let matches = try store.runs().filter { $0.uuid?.hasPrefix(prefix) == true }
            guard let run = matches.first else {
                throw CommandError("no run \(prefix) in \(store.path)")
            }
            guard matches.count == 1 else {
                throw CommandError(
                    "run:\(prefix) names several runs in \(store.path): give more of the UUID")
            }
            return try side(of: run)
        case .build(let label):
            let runs = try store.runs(build: label)
            guard !runs.isEmpty else {
                throw CommandError("no run of build '\(label)' in \(store.path)")
            }
            let sides = try runs.map { try side(of: $0) }
            return median(
                of: sides,
                description:
                    "build \(label) (median of \(runs.count) run\(runs.count == 1 ? "" : "s"): "
                    + runs.map { String($0.id) }.joined(separator: ", ") + ")")
        case .snapshot(let id):
            guard let snapshot = try store.snapshot(id: id) else {
                throw CommandError("no snapshot \(id) in \(store.path)")
            }
            var result = Side(description: "snapshot \(id) (\(formatTime(snapshot.timeMs)) UTC)")
            try add(snapshot, to: &result)
            return result
        case .time(let text):
            let timeMs = TimeExpression(text)!.epochMs(nowMs: Clock.epochMs())
            guard let run = try store.run(atMs: timeMs) else {
                throw CommandError("no run had started by \(formatTime(timeMs)) UTC")
            }
            let heads = try store.headSnapshots(runID: run.id, untilMs: timeMs)
            var result = Side(description: "\(describe(run)) at \(formatTime(timeMs)) UTC")
            for snapshot in try filtered(heads, runID: run.id) {
                try add(snapshot, to: &result)
            }
            return result
        }
    }

    private func filtered(_ snapshots: [SnapshotRef], runID: Int64) throws -> [SnapshotRef] {
        guard let state else { return snapshots }
        let ids = try store.stateIDs(runID: runID, name: state)
        guard !ids.isEmpty else {
            throw CommandError("run \(runID) has no Lua state named '\(state)'")
        }
        return snapshots.filter { ids.contains($0.stateID) }
    }

    /// A run at the chosen moment, its states added together.
    private func side(of run: RunRecord) throws -> Side {
        let all = try store.snapshots(runID: run.id)
        let chosen: [SnapshotRef]
        let moment: String
        switch at {
        case .end:
            chosen = try store.headSnapshots(runID: run.id, untilMs: nil)
            moment = "end"
        case .elapsed(let milliseconds):
            chosen = try store.headSnapshots(runID: run.id, untilMs: run.startedMs + milliseconds)
            moment = "\(Listing.formatDuration(milliseconds)) in"
        case .peak:
            // The snapshot time at which the run's states together held the most.
            var latest: [Int64: SnapshotSummary] = [:]
            var best: (total: Int64, time: Int64)?
            for snapshot in all {
                latest[snapshot.ref.stateID] = snapshot
                let total = latest.values.map {
                    current ? $0.totals.liveBytes : $0.totals.gcLiveBytes
                }.reduce(0, +)
                if best == nil || total > best!.total { best = (total, snapshot.ref.timeMs) }
            }
            chosen = try store.headSnapshots(runID: run.id, untilMs: best?.time ?? run.startedMs)
            moment = "peak"
        }
        var result = Side(description: "\(describe(run)) at \(moment)")
        for snapshot in try filtered(chosen, runID: run.id) {
            try add(snapshot, to: &result)
        }
        return result
    }

    private func add(_ snapshot: SnapshotRef, to side: inout Side) throws {
        if !current, try store.gcCycles(snapshotID: snapshot.id) < 2 { side.beforeTwoCycles = true }
        for (info, entry) in try store.namedFigures(at: snapshot) {
            let type = typeNames[entry.type] ?? "?"
            let key = SiteKey(info, type: type, by: by, acrossBuilds: true)
            let value = current ? entry.figures.liveBytes : entry.figures.gcLiveBytes
            side.values[key] = (side.values[key] ?? 0).saturatingAdd(value)
            side.total = side.total.saturatingAdd(value)
            if side.labels[key] == nil {
                side.labels[key] = (SiteKey.label(info, type: type, by: by), info)
            }
        }
    }

    /// Per row, the median over runs (a run without the row counts as 0).
    private func median(of sides: [Side], description: String) -> Side {
        var result = Side(description: description)
        let keys = Set(sides.flatMap(\.values.keys))
        for key in keys {
            result.values[key] = Self.median(sides.map { $0.values[key] ?? 0 })
            result.labels[key] = sides.lazy.compactMap { $0.labels[key] }.first
        }
        result.total = Self.median(sides.map(\.total))
        result.beforeTwoCycles = sides.contains { $0.beforeTwoCycles }
        return result
    }

    static func median(_ values: [Int64]) -> Int64 {
        let sorted = values.sorted()
        guard !sorted.isEmpty else { return 0 }
        let middle = sorted.count / 2
        // Halves first: the two middle values may be near Int64's limits.
        let (low, high) = (sorted[middle - 1], sorted[middle])
        return sorted.count % 2 == 1
            ? sorted[middle] : low / 2 + high / 2 + (low % 2 + high % 2) / 2
    }
}
