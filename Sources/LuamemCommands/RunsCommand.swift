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

    func run() throws {
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
        let summaries = try store.runSummaries(build: build)
        if summaries.isEmpty, let build {
            throw CommandError("no run of build '\(build)' in \(store.path)")
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
        let store = try openStore(database)
        let run = try selection.run(in: store)
        let selected = try selection.stateFilter(store, runID: run.id)
        let snapshots = try store.snapshots(runID: run.id).filter { selected($0.ref.stateID) }
        var listing = Listing(columns: [
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
            .init(key: "run", title: "", rightAligned: false),
        ])
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
