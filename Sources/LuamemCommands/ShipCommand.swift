import ArgumentParser
import Foundation
import LuamemStore

/// `luamem ship`: copies what SQLite files hold, and a ClickHouse server does not, into it.
struct ShipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ship",
        abstract: "Copy runs and snapshots from SQLite files into ClickHouse, for fleet questions.",
        discussion: """
            Copies each run (identified by its UUID, with its host label), its snapshots and \
            the site rows they wrote, that the server does not hold yet, into the database of \
            --to clickhouse://HOST:PORT/DATABASE (the HTTP port, 8123 by default), creating \
            the database and its tables when missing (Migrations/clickhouse). Shipping twice \
            adds nothing; a ship stopped half-way is taken up where it stopped. The files are \
            only read, so programs keep writing them meanwhile. --db may be given several \
            times, and a folder ships every *.db file in it. With --follow, luamem ships again \
            every --interval seconds, and when the server cannot be reached it says so once \
            and tries again.
            """
    )

    @Option(
        name: .customLong("db"),
        help: "A luamem SQLite file, or a folder of them (*.db); repeat for more.")
    var sources: [String] = []

    @Option(help: "Where to: clickhouse://HOST:PORT/DATABASE.")
    var to: String

    @Flag(help: "Keep shipping new snapshots as they arrive.")
    var follow = false

    @Option(help: "Seconds between passes with --follow.")
    var interval: Double = 2

    @Option(help: .hidden)
    var batchSnapshots = 200

    mutating func validate() throws {
        if sources.isEmpty {
            sources = [ProcessInfo.processInfo.environment["LUAMEM_DB"].flatMap { $0.isEmpty ? nil : $0 } ?? "luamem.db"]
        }
        guard interval > 0, interval <= 86400 else {
            throw ValidationError("--interval must be from 0 to 86400 seconds, got \(interval)")
        }
        guard batchSnapshots >= 1 else { throw ValidationError("--batch-snapshots must be at least 1") }
        batchSnapshots = min(batchSnapshots, 100_000)
    }

    func run() throws {
        let server = try ClickHouse(url: to)
        var reported: String?
        var schemaReady = false
        while true {
            do {
                if !schemaReady {
                    try server.createSchema()
                    schemaReady = true
                }
                var shipped = Shipped()
                for file in try files() {
                    try ship(file, to: server, counting: &shipped)
                }
                if !follow || shipped.snapshots > 0 || reported != nil {
                    print(
                        "shipped \(shipped.runs) run(s), \(shipped.snapshots) snapshot(s), "
                            + "\(shipped.rows) site row(s) to \(server.description)")
                }
                reported = nil
            } catch where follow {
                // Waiting for the server (or a file) to come back: said once per outage (its
                // messages change as a server goes down and comes up), tried again.
                let message = "\(error)"
                if reported == nil { warn("\(message); trying again") }
                reported = message
                schemaReady = false
            }
            guard follow else { return }
            usleep(useconds_t(min(interval, 86400) * 1_000_000))
        }
    }

    struct Shipped {
        var runs = 0, snapshots = 0, rows = 0
    }

    /// The files to ship: each --db, a folder's *.db files in name order.
    private func files() throws -> [String] {
        var result: [String] = []
        for source in sources {
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: source, isDirectory: &isFolder), isFolder.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: source)
                    .filter { $0.hasSuffix(".db") }.sorted()
                result += names.map { (source as NSString).appendingPathComponent($0) }
            } else {
                result.append(source)
            }
        }
        return result
    }

    /// Ships what `path` holds and the server does not.
    private func ship(_ path: String, to server: ClickHouse, counting shipped: inout Shipped) throws {
        let store = try Store.openForReading(path: path)
        let typeNames = try store.objectTypeNames()
        let frames = try store.frames()
        var sites: [Int64: SiteInfo]?
        // A site's columns (file … stack), escaped once: most of a row's text, and the same
        // for every snapshot that changes the site.
        var siteColumns: [Int64: String] = [:]
        for run in try store.runs() {
            let uuid = run.uuid ?? Self.derivedUUID(run)
            let quoted = ClickHouse.literal(uuid)
            let snapshots = try store.snapshots(runID: run.id)
            // Where the server stands for this run: the last snapshot of each state it holds.
            var held: [Int64: Int64] = [:]
            for line in try server.execute(
                "SELECT state_id, max(snapshot_id) FROM \(server.database).snapshots "
                    + "WHERE run_uuid = \(quoted) GROUP BY state_id FORMAT TabSeparated"
            ).split(separator: "\n") {
                let parts = ClickHouse.fields(line)
                if parts.count == 2, let state = Int64(parts[0]), let last = Int64(parts[1]) {
                    held[state] = last
                }
            }
            let runRow = try server.execute(
                "SELECT ended_ms, exit_status FROM \(server.database).runs FINAL "
                    + "WHERE run_uuid = \(quoted) FORMAT TabSeparated"
            ).trimmingCharacters(in: .whitespacesAndNewlines)
            let ended = "\(run.endedMs ?? 0)\t\(run.exitStatus ?? -1)"
            if runRow != ended {
                let facts = try store.runFacts(id: run.id)
                let fields: [String] = [
                    uuid, run.host, run.build ?? "", run.name ?? "", String(run.pid), run.command,
                    facts.luaVersion, facts.options, String(run.startedMs),
                    String(run.endedMs ?? 0), String(run.exitStatus ?? -1),
                    String(Int64(Date().timeIntervalSince1970 * 1000)),
                ]
                try server.execute(
                    "INSERT INTO \(server.database).runs FORMAT TabSeparated",
                    rows: Array((fields.map(ClickHouse.field).joined(separator: "\t") + "\n").utf8))
                shipped.runs += 1
            }
            let pending = snapshots.filter { $0.ref.id > (held[$0.ref.stateID] ?? 0) }
            guard !pending.isEmpty else { continue }
            if sites == nil { sites = try store.siteInfo(ids: nil) }
            let stateNames = Dictionary(
                try Set(snapshots.map(\.ref.stateID)).map { ($0, try store.stateName(id: $0)) },
                uniquingKeysWith: { first, _ in first })
            var started = Set(held.keys)
            var index = 0
            while index < pending.count {
                let batch = pending[index..<min(index + batchSnapshots, pending.count)]
                index += batch.count
                var rows = ""
                var count = 0
                // The rows the batch's snapshots wrote, one range read per state.
                var changed: [Int64: [Int64: [SiteFigures]]] = [:]
                for (state, members) in Dictionary(grouping: batch, by: \.ref.stateID) {
                    let ids = members.map(\.ref.id)
                    changed[state] = try store.changedRows(
                        stateID: state, after: ids.min()! - 1, through: ids.max()!)
                }
                for snapshot in batch {
                    // A state's first snapshot on the server carries its whole state (the file
                    // may have been pruned before it); later ones the rows that changed.
                    let entries =
                        started.contains(snapshot.ref.stateID)
                        ? changed[snapshot.ref.stateID]?[snapshot.ref.id] ?? []
                        : try store.figures(at: snapshot.ref)
                    started.insert(snapshot.ref.stateID)
                    let snapshotColumns =
                        "\(ClickHouse.field(uuid))\t\(snapshot.ref.stateID)\t\(snapshot.ref.id)\t\(snapshot.ref.timeMs)\t"
                    for entry in entries {
                        let columns: String
                        if let known = siteColumns[entry.siteID] {
                            columns = known
                        } else {
                            guard let info = sites?[entry.siteID] else { continue }
                            let stack = info.frameIDs
                                .map { id in frames[id].map { "\($0.file):\($0.line)" } ?? "?" }
                                .joined(separator: ";")
                            columns = [
                                info.file, String(info.line), String(info.lineDefined),
                                info.function ?? "", info.cfunction, stack,
                            ].map(ClickHouse.field).joined(separator: "\t")
                            siteColumns[entry.siteID] = columns
                        }
                        let figures = entry.figures
                        rows += snapshotColumns
                        rows += columns
                        rows += "\t"
                        rows += ClickHouse.field(typeNames[entry.type] ?? "?")
                        rows += "\t\(figures.liveBytes)\t\(figures.liveCount)\t\(figures.allocBytes)"
                        rows += "\t\(figures.allocCount)\t\(figures.gcLiveBytes)\n"
                        count += 1
                    }
                }
                if count > 0 {
                    try server.execute(
                        "INSERT INTO \(server.database).site_stats FORMAT TabSeparated",
                        rows: Array(rows.utf8))
                }
                // The snapshots' own rows last: a snapshot on the server has all its site rows.
                let marks = batch.map { snapshot -> String in
                    let totals = snapshot.totals
                    let fields: [String] = [
                        uuid, String(snapshot.ref.id), String(snapshot.ref.stateID),
                        stateNames[snapshot.ref.stateID] ?? "?", String(snapshot.ref.timeMs),
                        snapshot.kind, String(totals.liveBytes), String(totals.liveCount),
                        String(totals.allocBytes), String(totals.allocCount),
                        String(totals.gcLiveBytes), String(totals.gcLiveCount),
                        String(snapshot.gcCycles),
                    ]
                    return fields.map(ClickHouse.field).joined(separator: "\t") + "\n"
                }.joined()
                try server.execute(
                    "INSERT INTO \(server.database).snapshots FORMAT TabSeparated",
                    rows: Array(marks.utf8))
                shipped.snapshots += batch.count
                shipped.rows += count
            }
        }
    }

    /// A stable identity for a run recorded before runs had UUIDs: a hash of what made it
    /// unique on its host.
    static func derivedUUID(_ run: RunRecord) -> String {
        func fnv(_ seed: UInt64) -> UInt64 {
            var hash = seed
            for byte in "\(run.host)\u{0}\(run.pid)\u{0}\(run.startedMs)\u{0}\(run.command)".utf8 {
                hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
            }
            return hash
        }
        let halves = [fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4)]
        return RunInfo.uuidText(
            halves.flatMap { half in (0..<8).reversed().map { UInt8(truncatingIfNeeded: half >> ($0 * 8)) } })
    }
}
