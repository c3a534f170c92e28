import ArgumentParser
import Foundation
import LuamemStore

/// `--format` and `--top`, shared by every listing.
struct OutputOptions: ParsableArguments {
    @Option(help: "Output format: table, json, csv or markdown.")
    var format: OutputFormat = .table

    @Option(help: "How many rows to print.")
    var top: Int = 20

    mutating func validate() throws {
        guard top > 0 else { throw ValidationError("--top must be at least 1, got \(top)") }
        top = min(top, OutputOptions.maxTop)
    }

    /// More rows than any file holds; larger values are clamped to it, so no count overflows.
    static let maxTop = 1 << 31

    /// Colours only for a table on a terminal, and never with NO_COLOR set.
    var colored: Bool {
        format == .table && isatty(STDOUT_FILENO) == 1
            && (ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
    }

    func print(_ listing: Listing, heading: String? = nil) {
        if let heading = heading.map({ Listing.printable($0, keepingNewlines: true) }),
            format == .table || format == .markdown
        {
            // Markdown: one hard-broken line per heading line, then a blank line.
            Swift.print(
                format == .markdown
                    ? heading.split(separator: "\n").joined(separator: "  \n") + "\n" : heading)
        }
        Swift.print(listing.render(format, colored: colored), terminator: "")
    }
}

/// `--run`, `--build` and `--state`: which run and which Lua states to look at.
struct SelectionOptions: ParsableArguments {
    @Option(name: .customLong("run"), help: "The run to look at (default: the latest).")
    var runID: Int64?

    @Option(
        help:
            "The latest run of this build label (instead of --run); in a fleet store, every run of it.")
    var build: String?

    @Option(help: "Only runs with this name (luamem run --name; by default the script's name).")
    var name: String?

    @Option(help: "Only runs of this host label (luamem run --host; by default the host name).")
    var host: String?

    @Option(help: "Only the Lua state with this name (default: all states of the run).")
    var state: String?

    func validate() throws {
        if let runID, runID <= 0 {
            throw ValidationError("--run must be a positive run id, got \(runID)")
        }
        if runID != nil && (build != nil || name != nil || host != nil) {
            throw ValidationError("--run cannot be used with --build, --name or --host")
        }
    }

    /// "of build 'v2' named 'svc' on host 'a'": the runs --build, --name and --host select.
    var criteria: String {
        [
            build.map { "of build '\($0)'" }, name.map { "named '\($0)'" },
            host.map { "on host '\($0)'" },
        ].compactMap { $0 }.joined(separator: " ")
    }

    /// The selected run.
    func run(in store: Store) throws -> RunRecord {
        if build != nil || name != nil || host != nil {
            let matching = try store.runs(build: build).filter {
                (name == nil || $0.name == name) && (host == nil || $0.host == host)
            }
            guard let run = matching.last else {
                throw CommandError("no run \(criteria) in \(store.path)")
            }
            warnIfLost(run)
            return run
        }
        guard let id = try runID ?? store.latestRunID() else {
            throw CommandError("\(store.path) has no runs yet")
        }
        guard let run = try store.run(id: id) else {
            throw CommandError("no run \(id) in \(store.path) (see `luamem runs`)")
        }
        warnIfLost(run)
        return run
    }

    /// The run and the Lua states the figures cover, for headings: "run 3 (host), state svc-2"
    /// with --state, "run 3 (host), states svc-1, svc-2, svc-3" for a run of several states.
    func describe(_ run: RunRecord, in store: Store) throws -> String {
        if let state { return "\(LuamemCommands.describe(run)), state \(state)" }
        let names = try store.stateNames(runID: run.id)
        guard names.count > 1 else { return LuamemCommands.describe(run) }
        let shown = names.prefix(5).joined(separator: ", ")
        let more = names.count > 5 ? " and \(names.count - 5) more" : ""
        return "\(LuamemCommands.describe(run)), states \(shown)\(more)"
    }

    /// A run whose process died without its final snapshot: its figures stop at its last
    /// snapshot, which the reader should know.
    func warnIfLost(_ run: RunRecord) {
        guard run.status == "lost" else { return }
        warn(
            "\(LuamemCommands.describe(run)) ended without its final snapshot (its process died): "
                + "its figures stop at its last snapshot")
    }

    /// Whether a state id is selected; throws when --state names no state of the run.
    func stateFilter(_ store: Store, runID: Int64) throws -> (Int64) -> Bool {
        guard let state else { return { _ in true } }
        let ids = try store.stateIDs(runID: runID, name: state)
        guard !ids.isEmpty else {
            throw CommandError("run \(runID) has no Lua state named '\(state)'")
        }
        return { ids.contains($0) }
    }
}

/// `--since`: the start of the window a command looks at.
struct WindowOptions: ParsableArguments {
    @Option(help: "Start of the window, e.g. 1h (default: the whole run).")
    var since: String?

    func validate() throws {
        if let since, TimeExpression(since) == nil {
            throw ValidationError("--since '\(since)' is not a time: use \(TimeExpression.help)")
        }
    }

    /// The start in Unix milliseconds, nil for the whole run.
    func sinceMs(nowMs: Int64) -> Int64? {
        since.flatMap(TimeExpression.init)?.epochMs(nowMs: nowMs)
    }
}

/// `--by` and `--current`: what a row is and which live figure it shows.
struct RowOptions: ParsableArguments {
    @Option(help: "Group sites by line, function, file or type.")
    var by: Grouping = .line

    @Flag(
        help:
            "Use live bytes at the snapshots, uncollected garbage included, instead of live bytes after GC."
    )
    var current = false
}

/// A run's snapshots of the selected states from `fromMs` on (all of them without a start).
/// `runSnapshots`: the run's snapshots when the caller has read them already.
func windowSnapshots(
    _ store: Store, run: RunRecord, selected: (Int64) -> Bool, fromMs: Int64?,
    runSnapshots: [SnapshotSummary]? = nil
) throws -> [SnapshotSummary] {
    try (runSnapshots ?? store.snapshots(runID: run.id)).filter {
        selected($0.ref.stateID) && (fromMs == nil || $0.ref.timeMs >= fromMs!)
    }
}

/// Completed GC cycles a window needs for growth after GC: two points, each after a cycle.
let growthCyclesNeeded: Int64 = 2

/// The GC cycles completed over a window: for each state, between its first and its last
/// snapshot in `snapshots`; the fewest of any state.
func completedCycles(_ snapshots: [SnapshotSummary]) -> Int64 {
    Dictionary(grouping: snapshots, by: \.ref.stateID).values.map {
        ($0.map(\.gcCycles).max() ?? 0) - ($0.map(\.gcCycles).min() ?? 0)
    }.min() ?? 0
}

/// The GC cycles a fit through a window's snapshots can use, leaving out final snapshots (a
/// run's final snapshot follows two full collections of its own, which make its figures after
/// GC exact but add no step between the snapshots before it); the fewest of any state.
///
/// A fit through figures after GC needs them to step often, and late in the window too: a
/// block counts after the cycle that follows the one it was allocated in, so the figures lag
/// the live bytes by up to two cycles. A heap that keeps growing (a short run, a warm-up)
/// spaces its cycles further and further apart, and with five cycles the last step can come
/// half a window late: a cache filled early then seems to grow late, like a leak. So half the
/// cycles needed must fall in the window's later half.
struct FitCycles: Equatable {
    /// Completed over the window.
    var completed: Int64
    /// Completed in the later half of the window's time.
    var late: Int64

    init(completed: Int64, late: Int64) {
        self.completed = completed
        self.late = late
    }

    init(_ snapshots: [SnapshotSummary]) {
        let states = Dictionary(
            grouping: snapshots.filter { $0.kind != "final" }, by: \.ref.stateID
        ).values.map { state -> FitCycles in
            let sorted = state.sorted { $0.ref.timeMs < $1.ref.timeMs }
            guard let first = sorted.first, let last = sorted.last else {
                return FitCycles(completed: 0, late: 0)
            }
            let middle = first.ref.timeMs + (last.ref.timeMs - first.ref.timeMs) / 2
            let atMiddle = sorted.last { $0.ref.timeMs <= middle }?.gcCycles ?? first.gcCycles
            return FitCycles(
                completed: last.gcCycles - first.gcCycles, late: last.gcCycles - atMiddle)
        }
        completed = states.map(\.completed).min() ?? 0
        late = states.map(\.late).min() ?? 0
    }

    /// Enough for a leak fit through figures after GC (LeaksCommand.cyclesNeeded, half of
    /// them late).
    var suffice: Bool {
        completed >= LeaksCommand.cyclesNeeded && 2 * late >= LeaksCommand.cyclesNeeded
    }

    /// Why the live bytes stand in, when they do: "only 3 GC cycles completed in this window"
    /// or "only 1 of the 6 GC cycles in this window completed in its later half".
    var shortfall: String? {
        if suffice { return nil }
        if completed < LeaksCommand.cyclesNeeded {
            return onlyCompleted(completed)
        }
        return "only \(late) of the \(completed) GC cycles in this window completed in its later half"
    }

    /// Says on stderr why the live bytes stand in for figures after GC, when they do; returns
    /// whether they do.
    func warnIfShort() -> Bool {
        guard let shortfall else { return false }
        warnFallback(shortfall)
        return true
    }
}

/// Says on stderr that the live bytes stand in for figures after GC: the window holds `cycles`
/// completed GC cycles, too few.
func warnTooFewCycles(_ cycles: Int64) {
    warnFallback(onlyCompleted(cycles))
}

/// "only 3 GC cycles completed in this window".
func onlyCompleted(_ cycles: Int64) -> String {
    "only \(cycles) GC cycle\(cycles == 1 ? "" : "s") completed in this window"
}

/// Says on stderr that the live bytes stand in for figures after GC, and why (`shortfall`).
func warnFallback(_ shortfall: String) {
    warn(
        "\(shortfall), too few for figures after GC: the live bytes at the snapshots stand in, "
            + "uncollected garbage included (as with --current)")
}

extension RowOptions {
    /// Whether to count the live bytes at the snapshots: asked for (--current), or the window
    /// holds fewer than `needed` completed GC cycles, too few for figures after GC to say much
    /// (a short or quiet run), which one line on stderr then says.
    func usesCurrent(cyclesInWindow cycles: Int64, needed: Int64) -> Bool {
        if current { return true }
        guard cycles < needed else { return false }
        warnTooFewCycles(cycles)
        return true
    }

    /// As usesCurrent(cyclesInWindow:needed:), for a leak fit: whether `cycles` fall short.
    func usesCurrent(fitCycles cycles: FitCycles) -> Bool {
        current || cycles.warnIfShort()
    }
}

/// `--fail-above`: turns growth into exit status 1, for CI jobs.
struct GateOptions: ParsableArguments {
    @Option(
        help:
            "Exit with status 1 when the total or any row grows by more than this: a size with its unit (512KiB, 2MB, 100B) or a percentage of the base total (5%). A bare number is refused."
    )
    var failAbove: Threshold?

    /// Rows listed when a gate fails, largest first.
    static let shownRows = 10

    /// When the total or a row grew beyond the threshold: says on stderr which, by how much,
    /// against what base (`baseName`, whose total is `base`), and throws exit status 1.
    func check(
        total: Int64, base: Int64, baseName: String, rows: [(label: String, growth: Int64)]
    ) throws {
        guard let failAbove else { return }
        let allowed = failAbove.allowed(base: base)
        let crossed = rows.filter { Double($0.growth) > allowed }.sorted { $0.growth > $1.growth }
        let totalCrossed = Double(total) > allowed
        guard totalCrossed || !crossed.isEmpty else { return }
        var lines = ["growth above --fail-above \(failAbove.text) (\(failAbove.describe(allowed: allowed, base: base, baseName: baseName))):"]
        func over(_ growth: Int64) -> String {
            "\(Listing.formatBytes(growth, signed: true)), \(Listing.formatBytes(growth - Int64(allowed.rounded(.down)), signed: false)) over"
        }
        if totalCrossed { lines.append("  total: \(over(total))") }
        for row in crossed.prefix(Self.shownRows) {
            lines.append("  \(Listing.printable(row.label)): \(over(row.growth))")
        }
        if crossed.count > Self.shownRows {
            lines.append("  and \(crossed.count - Self.shownRows) more rows")
        }
        warn(lines.joined(separator: "\n"))
        throw ExitCode(1)
    }
}

/// How sites are grouped into rows.
enum Grouping: String, ExpressibleByArgument, CaseIterable {
    case line, function, file, type
}

/// The row a site belongs to. Across builds (`diff`), a line is identified by its file, function
/// and distance from the function's first line, so edits elsewhere that move it still match.
struct SiteKey: Hashable {
    var file: String?
    var function: String?
    var line: Int64?
    var type: String?

    init(_ info: SiteInfo, type: String, by grouping: Grouping, acrossBuilds: Bool = false) {
        switch grouping {
        case .line:
            file = info.file
            line = acrossBuilds ? info.line - info.lineDefined : info.line
            function = acrossBuilds ? info.function : nil
        case .function:
            file = info.file
            function = info.function
            line = acrossBuilds ? nil : info.lineDefined
        case .file:
            file = info.file
        case .type:
            self.type = type
        }
    }

    /// A total order on keys, for ties.
    var order: String {
        "\(file ?? "")\u{0}\(line ?? 0)\u{0}\(function ?? "")\u{0}\(type ?? "")"
    }

    /// Sites that are no line of code: `[host]` (what the host allocates) and a script being
    /// loaded (`app.lua (load)`, its bytecode).
    static func isLineless(_ file: String) -> Bool {
        file == "[host]" || file.hasSuffix(" (load)")
    }

    /// How the row is printed, from one of its sites.
    static func label(_ info: SiteInfo, type: String, by grouping: Grouping) -> String {
        switch grouping {
        case .line: isLineless(info.file) ? info.file : "\(info.file):\(info.line)"
        case .function: isLineless(info.file) ? info.file : "\(info.file):\(info.lineDefined)"
        case .file: info.file
        case .type: type
        }
    }

    /// The function name as printed: Lua's name, or where an anonymous function is defined.
    static func functionName(_ info: SiteInfo) -> String? {
        if let function = info.function { return function }
        return isLineless(info.file) ? nil : "function <\(info.file):\(info.lineDefined)>"
    }
}
