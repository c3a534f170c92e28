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
        rowsBeforeRollups: Int64 = Series.rowsBeforeRollups, runSnapshots: [SnapshotSummary]? = nil
    ) throws {
        self = try Self.replay(
            store: store, run: run, fromMs: fromMs, by: [grouping], selected: selected,
            include: include, rowsBeforeRollups: rowsBeforeRollups, runSnapshots: runSnapshots)[0]
    }

    /// As init, once per grouping, from one reading of the rows (the report wants rows by
    /// line and by object type).
    static func replay(
        store: Store, run: RunRecord, fromMs: Int64?, by groupings: [Grouping],
        selected: (Int64) -> Bool, include: (SiteInfo) -> Bool = { _ in true },
        rowsBeforeRollups: Int64 = Series.rowsBeforeRollups, runSnapshots: [SnapshotSummary]? = nil
    ) throws -> [Series] {
        // `runSnapshots`: the run's snapshots when the caller has read them already.
        let snapshots = try (runSnapshots ?? store.snapshots(runID: run.id)).filter {
            selected($0.ref.stateID)
        }
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

        // Each (site, type) is numbered once, densely (one hash per row read, here); each
        // number is mapped to its row, or to none when `include` leaves the site out.
        var slotOf: [Int64: Int32] = [:]
        var slotSites: [Int64] = [], slotTypes: [Int64] = []
        func step(_ entry: SiteFigures) -> Step {
            let key = entry.siteID << 8 | entry.type
            let slot: Int32
            if let known = slotOf[key] {
                slot = known
            } else {
                slot = Int32(slotSites.count)
                slotOf[key] = slot
                slotSites.append(entry.siteID)
                slotTypes.append(entry.type)
            }
            return Step(slot: slot, afterGC: entry.figures.gcLiveBytes, live: entry.figures.liveBytes)
        }
        let bases = replays.map { $0.base.map(step) }
        let steps = replays.map { $0.rows.map { step($0.figures) } }
        let infos = try store.siteInfo(ids: Set(slotSites))
        return groupings.map { grouping in
            var series = Series(times: [], afterGC: [:], live: [:], labels: [:])
            series.fill(
                grouping: grouping, replays: replays, bases: bases, steps: steps,
                slotSites: slotSites, slotTypes: slotTypes, infos: infos, typeNames: typeNames,
                include: include)
            return series
        }
    }

    /// What a replay needs per state: its exact points, its figures at the first, the rows
    /// after it.
    struct Replay {
        var points: [SnapshotRef]
        var base: [SiteFigures]
        var rows: [(snapshotID: Int64, figures: SiteFigures)]
    }

    /// A row read: its (site, type) numbered densely, and its two figures.
    struct Step {
        var slot: Int32
        var afterGC: Int64
        var live: Int64
    }

    /// Rows by `grouping`, times, and the figures per row and time, from the states' replays.
    private mutating func fill(
        grouping: Grouping, replays: [Replay], bases: [[Step]], steps: [[Step]],
        slotSites: [Int64], slotTypes: [Int64], infos: [Int64: SiteInfo],
        typeNames: [Int64: String], include: (SiteInfo) -> Bool
    ) {
        var keys: [SiteKey] = []
        var rowOf: [SiteKey: Int] = [:]
        let rowOfSlot = slotSites.indices.map { slot -> Int in
            guard let info = infos[slotSites[slot]], include(info) else { return -1 }
            let typeName = typeNames[slotTypes[slot]] ?? "?"
            let key = SiteKey(info, type: typeName, by: grouping)
            if let existing = rowOf[key] { return existing }
            rowOf[key] = keys.count
            keys.append(key)
            labels[key] = (SiteKey.label(info, type: typeName, by: grouping), info)
            return keys.count - 1
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

        // Figures kept per row and time, row by row in one buffer each: after GC, at the snapshot.
        let width = times.count
        var columnsGC = [Int64](repeating: 0, count: keys.count * width)
        var columnsLive = [Int64](repeating: 0, count: keys.count * width)
        for (index, replay) in replays.enumerated() {
            // This state's running sums per row, and what each (site, type) last contributed.
            var valueGC = [Int64](repeating: 0, count: keys.count)
            var valueLive = [Int64](repeating: 0, count: keys.count)
            var givenGC = [Int64](repeating: 0, count: slotSites.count)
            var givenLive = [Int64](repeating: 0, count: slotSites.count)
            var isTouched = [Bool](repeating: false, count: keys.count)
            var touched: [Int] = []
            func apply(_ step: Step) {
                let slot = Int(step.slot), row = rowOfSlot[slot]
                guard row >= 0 else { return }
                valueGC[row] = valueGC[row].saturatingAdd(step.afterGC - givenGC[slot])
                valueLive[row] = valueLive[row].saturatingAdd(step.live - givenLive[slot])
                givenGC[slot] = step.afterGC
                givenLive[slot] = step.live
                if !isTouched[row] {
                    isTouched[row] = true
                    touched.append(row)
                }
            }
            let points = moments[index], rows = replay.rows, rowSteps = steps[index]
            var nextPoint = 0, nextRow = 0
            var started = false
            for (column, moment) in keptMoments.enumerated() {
                // Everything this state recorded up to its last exact point at or before `moment`.
                var limit: Int64?
                while nextPoint < points.count && points[nextPoint] <= moment {
                    limit = replay.points[nextPoint].id
                    nextPoint += 1
                }
                if let limit {
                    if !started {
                        bases[index].forEach(apply)
                        started = true
                    }
                    while nextRow < rows.count && rows[nextRow].snapshotID <= limit {
                        apply(rowSteps[nextRow])
                        nextRow += 1
                    }
                }
                guard started else { continue }
                for row in touched {
                    columnsGC[row * width + column] += valueGC[row]
                    columnsLive[row * width + column] += valueLive[row]
                }
            }
        }
        for (row, key) in keys.enumerated() {
            afterGC[key] = Array(columnsGC[row * width..<(row + 1) * width])
            live[key] = Array(columnsLive[row * width..<(row + 1) * width])
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
