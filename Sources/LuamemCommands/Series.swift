import LuamemStore

/// Rows over time: a run's figures replayed snapshot by snapshot from the start of a window,
/// grouped into rows (`SiteKey`) and summed over the selected Lua states at each time. One replay
/// gives both figures: live bytes after GC, and live bytes at the snapshot.
///
/// Long windows stay cheap: when a state wrote many rows in the window, whole spans are read
/// from its rollups (exact at each rollup), and the times kept are thinned evenly so that rows ×
/// times stays under `cellBudget`.
struct Series {
    /// Snapshot times, oldest first.
    var times: [Int64] = []
    /// Per row, its live bytes after GC at each time.
    var afterGC: [SiteKey: [Int64]] = [:]
    /// Per row, its live bytes at each snapshot (uncollected garbage included).
    var live: [SiteKey: [Int64]] = [:]
    var labels: [SiteKey: (site: String, info: SiteInfo)] = [:]

    /// Most values kept per measure (rows × times), about 32 MiB each.
    static let cellBudget = 4_000_000
    /// Fewest times kept, whatever the number of rows.
    static let minimumTimes = 100
    /// A state whose window holds more site_stats rows than this is replayed from rollups.
    static let rowsBeforeRollups: Int64 = 200_000

    init(
        times: [Int64], afterGC: [SiteKey: [Int64]], live: [SiteKey: [Int64]],
        labels: [SiteKey: (site: String, info: SiteInfo)]
    ) {
        self.times = times
        self.afterGC = afterGC
        self.live = live
        self.labels = labels
    }

    /// `live` when `current`, else `afterGC`.
    func values(current: Bool) -> [SiteKey: [Int64]] { current ? live : afterGC }

    /// Replays `run` from `fromMs` (the last snapshot at or before it is included) for the
    /// states `selected` accepts and the sites `include` accepts. A state without a snapshot at
    /// some time counts with its latest figures before it.
    init(
        store: Store, run: RunRecord, fromMs: Int64?, by grouping: Grouping,
        selected: (Int64) -> Bool, include: (SiteInfo) -> Bool = { _ in true },
        rowsBeforeRollups: Int64 = Series.rowsBeforeRollups
    ) throws {
        let snapshots = try store.snapshots(runID: run.id).filter { selected($0.ref.stateID) }
        let typeNames = try store.objectTypeNames()
        let firstTime = fromMs.map { from in
            snapshots.last { $0.ref.timeMs <= from }?.ref.timeMs ?? snapshots.first?.ref.timeMs
                ?? from
        }
        let kept = snapshots.filter { firstTime == nil || $0.ref.timeMs >= firstTime! }
        var stateSnapshots: [Int64: [SnapshotRef]] = [:]
        for snapshot in kept {
            stateSnapshots[snapshot.ref.stateID, default: []].append(snapshot.ref)
        }

        // Per state: its figures at its first snapshot in the window, the rows after it, and
        // the snapshots at which its replayed figures are exact.
        struct Replay {
            var points: [SnapshotRef]
            var base: [SiteFigures]
            var rows: [(snapshotID: Int64, figures: SiteFigures)]
        }
        var replays: [Replay] = []
        for stateID in stateSnapshots.keys.sorted() {
            let refs = stateSnapshots[stateID]!
            let first = refs.first!, last = refs.last!
            let many =
                try store.rowCount(stateID: stateID, after: first.id, through: last.id)
                > rowsBeforeRollups
            let changes = try store.changes(
                stateID: stateID, after: first.id, through: last.id, rollups: many)
            replays.append(
                Replay(
                    points: changes.points.map { exact in refs.filter { exact.contains($0.id) } }
                        ?? refs,
                    base: try store.figures(at: first), rows: changes.rows))
        }

        // Rows are numbered once; each (site, type) is mapped to its row once.
        var keys: [SiteKey] = []
        var rowOf: [SiteKey: Int] = [:]
        var rowOfSlot: [Int64: Int?] = [:]
        var infos: [Int64: SiteInfo] = [:]
        let siteIDs = Set(replays.flatMap { $0.base.map(\.siteID) + $0.rows.map(\.figures.siteID) })
        infos = try store.siteInfo(ids: siteIDs)
        func row(site: Int64, type: Int64) -> Int? {
            let slot = site << 8 | type
            if let known = rowOfSlot[slot] { return known }
            var found: Int?
            if let info = infos[site], include(info) {
                let typeName = typeNames[type] ?? "?"
                let key = SiteKey(info, type: typeName, by: grouping)
                if let existing = rowOf[key] {
                    found = existing
                } else {
                    found = keys.count
                    rowOf[key] = keys.count
                    keys.append(key)
                    labels[key] = (SiteKey.label(info, type: typeName, by: grouping), info)
                }
            }
            rowOfSlot[slot] = found
            return found
        }
        for replay in replays {
            for entry in replay.base { _ = row(site: entry.siteID, type: entry.type) }
            for entry in replay.rows {
                _ = row(site: entry.figures.siteID, type: entry.figures.type)
            }
        }

        // The times: every exact point, thinned evenly (first and last kept) to the budget.
        // States' points at one millisecond share a time; a state's own snapshots taken within
        // one millisecond (a short run's start and final) stay apart, as its nth at that time.
        let moments = replays.map { Self.moments($0.points) }
        let allMoments = Array(Set(moments.joined())).sorted()
        let limit = max(Self.minimumTimes, Self.cellBudget / max(1, keys.count))
        let keptMoments =
            allMoments.count > limit
            ? Array(
                Set((0..<limit).map { allMoments[$0 * (allMoments.count - 1) / (limit - 1)] })
            ).sorted()
            : allMoments
        times = keptMoments.map(\.time)

        // Figures kept per row and time: [0] after GC, [1] at the snapshot.
        var columns = [[[Int64]]](
            repeating: [[Int64]](
                repeating: [Int64](repeating: 0, count: times.count), count: keys.count),
            count: 2)
        for (replay, points) in zip(replays, moments) {
            // This state's running sums per row, and what each (site, type) last contributed.
            var value = [[Int64]](repeating: [Int64](repeating: 0, count: keys.count), count: 2)
            var touched = Set<Int>()
            var contributed: [Int64: (Int64, Int64)] = [:]
            func apply(_ entry: SiteFigures) {
                guard let row = row(site: entry.siteID, type: entry.type) else { return }
                let slot = entry.siteID << 8 | entry.type
                let before = contributed[slot] ?? (0, 0)
                let now = (entry.figures.gcLiveBytes, entry.figures.liveBytes)
                value[0][row] = value[0][row].saturatingAdd(now.0 - before.0)
                value[1][row] = value[1][row].saturatingAdd(now.1 - before.1)
                contributed[slot] = now
                touched.insert(row)
            }
            var nextPoint = 0, nextRow = 0
            var started = false
            for (index, moment) in keptMoments.enumerated() {
                // Everything this state recorded up to its last exact point at or before `moment`.
                var limit: Int64?
                while nextPoint < points.count && points[nextPoint] <= moment {
                    limit = replay.points[nextPoint].id
                    nextPoint += 1
                }
                if let limit {
                    if !started {
                        replay.base.forEach(apply)
                        started = true
                    }
                    while nextRow < replay.rows.count && replay.rows[nextRow].snapshotID <= limit {
                        apply(replay.rows[nextRow].figures)
                        nextRow += 1
                    }
                }
                guard started else { continue }
                for row in touched {
                    columns[0][row][index] += value[0][row]
                    columns[1][row][index] += value[1][row]
                }
            }
        }
        for (index, key) in keys.enumerated() {
            afterGC[key] = columns[0][index]
            live[key] = columns[1][index]
        }
    }

    /// A point in a replay: a snapshot's time, and which of its state's snapshots at that
    /// millisecond it is.
    struct Moment: Hashable, Comparable {
        var time: Int64
        var nth: Int
        static func < (a: Moment, b: Moment) -> Bool { (a.time, a.nth) < (b.time, b.nth) }
    }

    /// `points` (oldest first) as moments.
    static func moments(_ points: [SnapshotRef]) -> [Moment] {
        var result: [Moment] = []
        result.reserveCapacity(points.count)
        for point in points {
            let nth = result.last.map { $0.time == point.timeMs ? $0.nth + 1 : 0 } ?? 0
            result.append(Moment(time: point.timeMs, nth: nth))
        }
        return result
    }
}

/// How steadily a row grew: least-squares slope, fit, and how much of the growth came late.
struct Trend {
    /// Bytes per second.
    var slope: Double
    /// R² of the linear fit, 0 to 1.
    var fit: Double
    /// Share of the growth in the second half of the window (a cache that warms up and stays
    /// flat has almost none).
    var late: Double
    var growth: Int64
    /// How many times the value went up from one time to the next: a leak grows again and
    /// again, a one-off step (a site that started allocating once) only once.
    var rises: Int

    init?(times: [Int64], values: [Int64]) {
        guard times.count >= 3, let first = times.first, let last = times.last, last > first else {
            return nil
        }
        let xs = times.map { Double($0 - first) / 1000 }
        let ys = values.map(Double.init)
        let n = Double(xs.count)
        let meanX = xs.reduce(0, +) / n, meanY = ys.reduce(0, +) / n
        var sxy = 0.0, sxx = 0.0, syy = 0.0
        for (x, y) in zip(xs, ys) {
            sxy += (x - meanX) * (y - meanY)
            sxx += (x - meanX) * (x - meanX)
            syy += (y - meanY) * (y - meanY)
        }
        guard sxx > 0 else { return nil }
        slope = sxy / sxx
        fit = syy > 0 ? (sxy * sxy) / (sxx * syy) : 0
        growth = values.last! - values.first!
        rises = zip(values, values.dropFirst()).filter { $0 < $1 }.count
        let middle = Double(last - first) / 2000
        let midIndex = xs.lastIndex { $0 <= middle } ?? 0
        let early = ys[midIndex] - ys[0], later = ys[ys.count - 1] - ys[midIndex]
        late = early + later > 0 ? max(0, min(1, later / (early + later))) : 0
    }

    /// Steady growth ranks first: fast, well fitted, and still growing in the second half.
    var score: Double { slope * fit * min(1, 2 * late) }

    /// Whether this looks like a leak rather than a warm-up or load-following pattern.
    var isSuspect: Bool {
        growth > 0 && slope > 0 && fit >= 0.6 && late >= 0.25 && rises >= 3
    }
}
