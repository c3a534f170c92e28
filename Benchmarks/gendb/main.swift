// luamem-gendb: writes a long synthetic history into a luamem database through the same
// SnapshotWriter the flusher uses (same rows, same rollups and checkpoints), so that storage
// size and query speed can be measured at scale without waiting days.
//
//   luamem-gendb --db big.db [--hours 168] [--interval 10] [--sites 50000] [--changing 1000]
//                [--runs 2] [--seed 1] [--rollup-rows 4096] [--host gendb] [--build build]
//
// The history ends now and is split into --runs runs of equal length (builds "build-1", …), one
// Lua state each. Every site is a distinct line of one of 500 files and allocates one object
// type. Each snapshot, --changing sites allocate and free (the active set drifts: 1% of it is
// replaced by other sites per snapshot), 20 sites leak a little every snapshot, and every other
// site keeps its figures (it costs no row). With --changing 0 nothing changes after the first
// snapshot, which shows what an idle program costs.
import Glibc
import LuamemStore

struct Options {
    var db = ""
    var hours = 168.0
    var interval = 10.0
    var sites = 50_000
    var changing = 1_000
    var runs = 1
    var seed: UInt64 = 1
    var rollupRows: Int64?
    var host = "gendb"
    var build = "build"
}

func fail(_ message: String) -> Never {
    fputs("luamem-gendb: \(message)\n", stderr)
    exit(2)
}

func parse() -> Options {
    var options = Options()
    var arguments = CommandLine.arguments.dropFirst()
    while let name = arguments.popFirst() {
        guard let value = arguments.popFirst() else { fail("\(name) needs a value") }
        func number<T: LosslessStringConvertible>(_: T.Type) -> T {
            guard let parsed = T(value) else { fail("\(name): '\(value)' is not a number") }
            return parsed
        }
        switch name {
        case "--db": options.db = value
        case "--hours": options.hours = number(Double.self)
        case "--interval": options.interval = number(Double.self)
        case "--sites": options.sites = number(Int.self)
        case "--changing": options.changing = number(Int.self)
        case "--runs": options.runs = number(Int.self)
        case "--seed": options.seed = number(UInt64.self)
        case "--rollup-rows": options.rollupRows = number(Int64.self)
        case "--host": options.host = value
        case "--build": options.build = value
        default: fail("unknown option \(name)")
        }
    }
    if options.db.isEmpty { fail("--db PATH is required") }
    if options.sites < 1 || options.changing < 0 || options.changing > options.sites
        || options.runs < 1 || options.hours <= 0 || options.interval <= 0
    {
        fail(
            "need --sites >= 1, 0 <= --changing <= --sites, --runs >= 1, --hours > 0, --interval > 0"
        )
    }
    return options
}

/// xorshift64*: fast, reproducible.
struct Random {
    var state: UInt64
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func within(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(next() % UInt64(range.upperBound - range.lowerBound + 1))
    }
}

let options = parse()
var random = Random(state: options.seed | 1)
let store: Store
do {
    store = try Store.openForWriting(path: options.db, busyTimeout: 5000)
} catch {
    fail("\(error)")
}
let writer = try SnapshotWriter(store: store)
if let rows = options.rollupRows { writer.minimumRollupRows = max(1, rows) }
var now = timespec()
clock_gettime(CLOCK_REALTIME, &now)
let endMs = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
let intervalMs = Int64(options.interval * 1000)
let total = Int(options.hours * 3_600_000 / Double(intervalMs))
let perRun = max(1, total / options.runs)
let leaky = Set((0..<min(20, options.sites)).map { $0 * (options.sites / min(20, options.sites)) })
var written: Int64 = 0

for run in 0..<options.runs {
    let firstSnapshot = run * perRun
    let count = run == options.runs - 1 ? total - firstSnapshot : perRun
    let startMs = endMs - Int64(total - firstSnapshot) * intervalMs
    let (runID, stateID, siteIDs) = try writer.transaction {
        let runID = try writer.beginRun(
            RunInfo(
                build: "\(options.build)-\(run + 1)", name: "gendb", host: options.host,
                pid: Int64(getpid()),
                command: "luamem-gendb", luaVersion: "Lua 5.3.6",
                options: "{\"interval_ms\":\(intervalMs),\"depth\":1}", startedMs: startMs))
        let stateID = try writer.addState(runID: runID, name: "main", startedMs: startMs)
        var siteIDs: [Int64] = []
        siteIDs.reserveCapacity(options.sites)
        for site in 0..<options.sites {
            let file = "@server/module\(site % 500).lua"
            let line = Int64(site / 500 + 1)
            let frame = try writer.frameID(
                source: file, line: line, lineDefined: line - line % 20,
                function: "handler\(line / 20)")
            siteIDs.append(try writer.siteID(frameIDs: [frame], cfunction: nil))
        }
        return (runID, stateID, siteIDs)
    }
    // Every site starts with some live memory, as a program's loaded modules do.
    var figures = (0..<options.sites).map { _ -> Figures in
        let live = random.within(64...65_536)
        let objects = max(1, live / 64)
        return Figures(
            liveBytes: live, liveCount: objects, allocBytes: live, allocCount: objects,
            peakBytes: live, gcLiveBytes: live, gcLiveCount: objects)
    }
    let usual = figures.map(\.liveBytes)
    var active = Array(0..<options.changing).map { $0 * (options.sites / max(1, options.changing)) }
    var totals = Figures()
    for index in 0..<count {
        let timeMs = startMs + Int64(index + 1) * intervalMs
        var changed: [Int] = []
        if index == 0 {
            changed = Array(0..<options.sites)
        } else if options.changing > 0 {
            for _ in 0..<max(1, options.changing / 100) {
                active[random.below(active.count)] = random.below(options.sites)
            }
            changed = Array(Set(active).union(leaky)).sorted()
            for site in changed {
                var f = figures[site]
                // A leaking site keeps a little of what it allocates; any other site's live
                // memory moves around its usual level.
                let allocated = random.within(64...8192)
                let freed =
                    leaky.contains(site)
                    ? allocated - random.within(0...256)
                    : min(
                        f.liveBytes + allocated,
                        max(0, f.liveBytes + allocated - usual[site] - random.within(-2048...2048)))
                f.allocBytes += allocated
                f.allocCount += max(1, allocated / 48)
                f.liveBytes += allocated - freed
                f.liveCount = max(0, f.liveBytes / 48)
                f.peakBytes = max(f.peakBytes, f.liveBytes)
                f.gcLiveBytes = max(0, f.liveBytes - random.within(0...1024))
                f.gcLiveCount = f.gcLiveBytes / 48
                figures[site] = f
            }
        }
        try writer.transaction {
            totals = figures.reduce(into: Figures()) {
                $0.liveBytes += $1.liveBytes
                $0.liveCount += $1.liveCount
                $0.allocBytes += $1.allocBytes
                $0.allocCount += $1.allocCount
                $0.gcLiveBytes += $1.gcLiveBytes
                $0.gcLiveCount += $1.gcLiveCount
            }
            totals.peakBytes = max(totals.peakBytes, totals.liveBytes)
            let snapshotID = try writer.insertSnapshot(
                runID: runID, stateID: stateID, timeMs: timeMs,
                kind: index == 0 ? .start : index == count - 1 ? .final : .interval,
                totals: totals, gcCycles: Int64(index))
            for site in changed {
                try writer.insertStats(
                    stateID: stateID, siteID: siteIDs[site], type: Int64(1 + site % 3),
                    snapshotID: snapshotID, figures: figures[site])
            }
            try writer.finishSnapshot(
                stateID: stateID, snapshotID: snapshotID, rows: Int64(changed.count))
        }
        written += Int64(changed.count)
        if index % 8640 == 8639 {
            fputs("luamem-gendb: run \(run + 1): \(index + 1) of \(count) snapshots\n", stderr)
        }
    }
    try writer.transaction {
        try writer.endRun(runID, endedMs: startMs + Int64(count) * intervalMs)
        try writer.closeState(stateID, closedMs: startMs + Int64(count) * intervalMs)
    }
}
print("snapshots \(total) site_stats_rows \(written)")
