import ArgumentParser
import Foundation
import LuamemStore

/// `luamem runs`: what runs the file holds.
struct RunsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List the runs in the database, newest first.",
        discussion: """
            PEAK is the highest total live bytes of a snapshot, FINAL the total at the last \
            snapshot (both summed over the run's Lua states); AFTER GC is FINAL without \
            garbage not yet collected. STATUS is running, exited with its status, killed by a \
            signal, or lost (the process died without its final snapshot). A run started by \
            another tracked run of the file shows its parent, and its name is indented under it.
            """
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var output: OutputOptions

    @Option(help: "Only runs of this build label.")
    var build: String?

    @Option(help: "Only runs with this name.")
    var name: String?

    @Option(help: "Only runs of this host label.")
    var host: String?

    /// "of build 'v2' named 'svc' on host 'a'", when some are given.
    private var criteria: String {
        [
            build.map { "of build '\($0)'" }, name.map { "named '\($0)'" },
            host.map { "on host '\($0)'" },
        ].compactMap { $0 }.joined(separator: " ")
    }

    func run() throws {
        if ClickHouse.isURL(database.path) {
            return try fleetRuns(ClickHouse.forReading(database.path))
        }
        let store = try openStore(database)
        var listing = Listing(columns: [
            .init(key: "id", title: "RUN", rightAligned: true),
            .init(key: "build", title: "BUILD", rightAligned: false),
            .init(key: "name", title: "NAME", rightAligned: false),
            .init(key: "status", title: "STATUS", rightAligned: false),
            .init(key: "parent_run", title: "PARENT", rightAligned: true),
            .init(key: "host", title: "HOST", rightAligned: false),
            .init(key: "started", title: "STARTED (UTC)", rightAligned: false),
            .init(key: "duration_ms", title: "DURATION", rightAligned: true),
            .init(key: "states", title: "STATES", rightAligned: true),
            .init(key: "snapshots", title: "SNAPSHOTS", rightAligned: true),
            .init(key: "peak_live_bytes", title: "PEAK", rightAligned: true),
            .init(key: "final_live_bytes", title: "FINAL", rightAligned: true),
            .init(key: "final_gc_live_bytes", title: "AFTER GC", rightAligned: true),
            .init(key: "pid", title: "", rightAligned: false),
            .init(key: "started_ms", title: "", rightAligned: false),
            .init(key: "ended_ms", title: "", rightAligned: false),
            .init(key: "command", title: "", rightAligned: false),
            .init(key: "uuid", title: "", rightAligned: false),
        ])
        let summaries = try store.runSummaries(build: build).filter {
            (name == nil || $0.run.name == name) && (host == nil || $0.run.host == host)
        }
        if summaries.isEmpty, !criteria.isEmpty {
            throw CommandError("no run \(criteria) in \(store.path)")
        }
        for summary in summaries.reversed().prefix(output.top) {
            let run = summary.run
            let end = run.endedMs ?? summary.lastSnapshotMs ?? run.startedMs
            // Children are indented under the tree's top in tables; scripts get the plain name.
            let name =
                run.parentID != nil && (output.format == .table || output.format == .markdown)
                ? run.name.map { "↳ " + $0 } : run.name
            listing.rows.append([
                .integer(run.id), .text(run.build), .text(name), .text(run.status),
                run.parentID.map(Cell.integer) ?? .text(nil), .text(run.host),
                .text(formatTime(run.startedMs)), .duration(end - run.startedMs),
                .integer(summary.states), .integer(summary.snapshots),
                .bytes(summary.peakLiveBytes, signed: false),
                .bytes(summary.finalLiveBytes, signed: false),
                .bytes(summary.finalGCLiveBytes, signed: false), .integer(run.pid),
                .integer(run.startedMs), run.endedMs.map(Cell.integer) ?? .text(nil),
                .text(run.command), .text(run.uuid),
            ])
        }
        output.print(listing)
    }

    /// The runs a ClickHouse fleet store holds (`luamem ship`), newest first: each with its
    /// host and UUID, its status, and its states' totals at their latest snapshots, summed.
    /// The server does the counting; only the rows shown come back.
    private func fleetRuns(_ server: ClickHouse) throws {
        let db = server.database
        let selected = SelectionOptions.runFilter(build: build, name: name, host: host)
        let answer = try server.execute(
            """
            SELECT run_uuid, host, build, name, pid, command, started_ms, ended_ms, exit_status,
                   states, snapshots, last_ms, final_live, final_gc
            FROM (SELECT * FROM \(db).runs FINAL\(selected))
            ANY LEFT JOIN (
                SELECT run_uuid, count() AS states, sum(n) AS snapshots, max(last) AS last_ms,
                       sum(live) AS final_live, sum(gc) AS final_gc
                FROM (SELECT run_uuid, state_id, count() AS n, max(time_ms) AS last,
                             argMax(live_bytes, snapshot_id) AS live,
                             argMax(gc_live_bytes, snapshot_id) AS gc
                      FROM \(db).snapshots FINAL GROUP BY run_uuid, state_id)
                GROUP BY run_uuid) USING run_uuid
            ORDER BY started_ms DESC, run_uuid LIMIT \(output.top)
            FORMAT TabSeparated
            """)
        var listing = Listing(columns: [
            .init(key: "uuid", title: "RUN", rightAligned: false),
            .init(key: "host", title: "HOST", rightAligned: false),
            .init(key: "build", title: "BUILD", rightAligned: false),
            .init(key: "name", title: "NAME", rightAligned: false),
            .init(key: "status", title: "STATUS", rightAligned: false),
            .init(key: "started", title: "STARTED (UTC)", rightAligned: false),
            .init(key: "duration_ms", title: "DURATION", rightAligned: true),
            .init(key: "states", title: "STATES", rightAligned: true),
            .init(key: "snapshots", title: "SNAPSHOTS", rightAligned: true),
            .init(key: "final_live_bytes", title: "FINAL", rightAligned: true),
            .init(key: "final_gc_live_bytes", title: "AFTER GC", rightAligned: true),
            .init(key: "pid", title: "", rightAligned: false),
            .init(key: "started_ms", title: "", rightAligned: false),
            .init(key: "ended_ms", title: "", rightAligned: false),
            .init(key: "command", title: "", rightAligned: false),
        ])
        for line in answer.split(separator: "\n") {
            let fields = ClickHouse.fields(line)
            guard fields.count == 14 else { continue }
            func number(_ index: Int) -> Int64 { Int64(fields[index]) ?? 0 }
            let endedMs = number(7) > 0 ? number(7) : nil
            let record = RunRecord(
                id: 0, build: fields[2].isEmpty ? nil : fields[2],
                name: fields[3].isEmpty ? nil : fields[3], host: fields[1], pid: number(4),
                command: fields[5], startedMs: number(6), endedMs: endedMs,
                exitStatus: number(8) >= 0 ? number(8) : nil, parentID: nil, uuid: fields[0])
            let end = endedMs ?? (number(11) > 0 ? number(11) : record.startedMs)
            listing.rows.append([
                .text(record.uuid), .text(record.host), .text(record.build), .text(record.name),
                .text(record.status), .text(formatTime(record.startedMs)),
                .duration(end - record.startedMs), .integer(number(9)), .integer(number(10)),
                .bytes(number(12), signed: false), .bytes(number(13), signed: false),
                .integer(record.pid), .integer(record.startedMs),
                endedMs.map(Cell.integer) ?? .text(nil), .text(record.command),
            ])
        }
        if listing.rows.isEmpty, !criteria.isEmpty {
            throw CommandError("no run \(criteria) in \(server.description)")
        }
        output.print(listing)
    }
}

/// `luamem snapshots`: the snapshots of one run.
struct SnapshotsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshots",
        abstract: "List the snapshots of a run with each state's totals.",
        discussion: "Newest last; --top keeps the latest ones."
    )

    @OptionGroup var database: DatabaseOptions
    @OptionGroup var selection: SelectionOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        if ClickHouse.isURL(database.path) {
            return try fleetSnapshots(ClickHouse.forReading(database.path))
        }
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let snapshots = try store.snapshots(runID: run.id).filter { selected($0.ref.stateID) }
        var listing = Listing(
            columns: Self.snapshotColumns + [.init(key: "run", title: "", rightAligned: false)])
        for snapshot in snapshots.suffix(output.top) {
            listing.rows.append([
                .integer(snapshot.ref.id), .text(snapshot.state),
                .text(formatTime(snapshot.ref.timeMs)),
                .text(snapshot.kind), .bytes(snapshot.totals.liveBytes, signed: false),
                .bytes(snapshot.totals.gcLiveBytes, signed: false),
                .integer(snapshot.totals.liveCount),
                .bytes(snapshot.totals.allocBytes, signed: false), .integer(snapshot.gcCycles),
                .integer(snapshot.ref.timeMs), .integer(run.id),
            ])
        }
        output.print(listing, heading: describe(run))
    }
}

extension SnapshotsCommand {
    /// A snapshot's columns, from its id on: a file's listing, and a fleet's after run and host.
    static let snapshotColumns: [Listing.Column] = [
        .init(key: "id", title: "SNAPSHOT", rightAligned: true),
        .init(key: "state", title: "STATE", rightAligned: false),
        .init(key: "time", title: "TIME (UTC)", rightAligned: false),
        .init(key: "kind", title: "KIND", rightAligned: false),
        .init(key: "live_bytes", title: "LIVE", rightAligned: true),
        .init(key: "gc_live_bytes", title: "AFTER GC", rightAligned: true),
        .init(key: "live_count", title: "COUNT", rightAligned: true),
        .init(key: "alloc_bytes", title: "ALLOCATED", rightAligned: true),
        .init(key: "gc_cycles", title: "GC CYCLES", rightAligned: true),
        .init(key: "time_ms", title: "", rightAligned: false),
    ]
}

extension RunRecord {
    /// running, exited (with its status), killed (by a signal luamem saw), or lost: the process
    /// died without its final snapshot. A run of another host that has not ended is unfinished.
    var status: String {
        if endedMs != nil {
            guard let code = exitStatus else { return "exited" }
            if code > 128 && code <= 128 + 64 { return "killed (\(signalName(Int32(code - 128))))" }
            return "exited \(code)"
        }
        guard host == thisHostName else { return "unfinished" }
        return kill(pid_t(truncatingIfNeeded: pid), 0) == 0 || errno == EPERM ? "running" : "lost"
    }
}

/// This machine's host name, as the agent records it.
let thisHostName: String = {
    var buffer = [CChar](repeating: 0, count: 256)
    gethostname(&buffer, buffer.count - 1)
    return String(cString: buffer)
}()

private func signalName(_ number: Int32) -> String {
    switch number {
    case SIGTERM: "SIGTERM"
    case SIGHUP: "SIGHUP"
    case SIGINT: "SIGINT"
    default: "signal \(number)"
    }
}
