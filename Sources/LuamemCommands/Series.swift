import LuamemStore

/// Rows over time: the change-only rows of a run replayed snapshot by snapshot, grouped into
/// rows (`SiteKey`) and summed over the selected Lua states at each snapshot time. One replay
/// gives both figures: live bytes after GC, and live bytes at the snapshot.
struct Series {
    /// Snapshot times, oldest first.
    var times: [Int64] = []
    /// Per row, its live bytes after GC at each time.
    var afterGC: [SiteKey: [Int64]] = [:]
    /// Per row, its live bytes at each snapshot (uncollected garbage included).
    var live: [SiteKey: [Int64]] = [:]
    var labels: [SiteKey: (site: String, info: SiteInfo)] = [:]

    /// `live` when `current`, else `afterGC`.
    func values(current: Bool) -> [SiteKey: [Int64]] { current ? live : afterGC }

    /// Replays `run` from `fromMs` (the last snapshot at or before it is included) for the
    /// states `selected` accepts and the sites `include` accepts. A state without a snapshot at
    /// some time counts with its latest figures before it.
    init(
        store: Store, run: RunRecord, fromMs: Int64?, by grouping: Grouping,
        selected: (Int64) -> Bool, include: (SiteInfo) -> Bool = { _ in true }
    ) throws {
        let snapshots = try store.snapshots(runID: run.id).filter { selected($0.ref.stateID) }
        let typeNames = try store.objectTypeNames()
        let firstTime = fromMs.map { from in
            snapshots.last { $0.ref.timeMs <= from }?.ref.timeMs ?? snapshots.first?.ref.timeMs
                ?? from
        }
        let kept = snapshots.filter { firstTime == nil || $0.ref.timeMs >= firstTime! }
        times = Array(Set(kept.map(\.ref.timeMs))).sorted()
        let timeIndex = Dictionary(uniqueKeysWithValues: times.enumerated().map { ($1, $0) })
        // Figures kept per row and time: [0] after GC, [1] at the snapshot.
        let measures = 0..<2
        func measured(_ figures: Figures) -> [Int64] { [figures.gcLiveBytes, figures.liveBytes] }

        // Rows are numbered once; each (site, type) is mapped to its row once.
        var keys: [SiteKey] = []
        var rowOf: [SiteKey: Int] = [:]
        var rowOfSlot: [Int64: Int?] = [:]
        var infos: [Int64: SiteInfo] = [:]
        var columns: [[[Int64]]] = [[], []]  // measure, row, time
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
                    for measure in measures {
                        columns[measure].append([Int64](repeating: 0, count: times.count))
                    }
                }
            }
            rowOfSlot[slot] = found
            return found
        }

        for stateID in Set(kept.map(\.ref.stateID)) {
            let stateSnapshots = snapshots.filter { $0.ref.stateID == stateID }
            guard let last = stateSnapshots.last else { continue }
            let changes = try store.changes(stateID: stateID, upTo: last.ref.id)
            let missing = Set(changes.map(\.figures.siteID)).subtracting(infos.keys)
            if !missing.isEmpty {
                infos.merge(try store.siteInfo(ids: missing)) { old, _ in old }
            }
            // This state's running sums per measure and row, and what each (site, type) last
            // contributed.
            var value: [[Int64]] = [[], []]
            var contributed: [Int64: [Int64]] = [:]
            var next = 0
            var filledUpTo = 0  // times before this index hold this state's figures already
            var lastWritten: [[Int64]]?
            func fill(upTo end: Int) {
                guard end > filledUpTo else { return }
                for measure in measures {
                    for row in value[measure].indices where value[measure][row] != 0 {
                        for time in filledUpTo..<end {
                            columns[measure][row][time] += value[measure][row]
                        }
                    }
                }
                filledUpTo = end
            }
            for snapshot in stateSnapshots {
                let index = timeIndex[snapshot.ref.timeMs]
                // Times before this snapshot carry the state's previous figures.
                if let index { fill(upTo: index) }
                while next < changes.count && changes[next].snapshotID <= snapshot.ref.id {
                    let figures = changes[next].figures
                    next += 1
                    guard let row = row(site: figures.siteID, type: figures.type) else {
                        continue
                    }
                    let slot = figures.siteID << 8 | figures.type
                    let now = measured(figures.figures)
                    let before = contributed[slot] ?? [0, 0]
                    for measure in measures {
                        while value[measure].count <= row { value[measure].append(0) }
                        value[measure][row] += now[measure] - before[measure]
                    }
                    contributed[slot] = now
                }
                guard let index else { continue }
                for measure in measures {
                    // A later snapshot of this state at the same time replaces the earlier one.
                    if filledUpTo == index + 1, let previous = lastWritten {
                        for row in previous[measure].indices {
                            columns[measure][row][index] -= previous[measure][row]
                        }
                    }
                    for row in value[measure].indices {
                        columns[measure][row][index] += value[measure][row]
                    }
                }
                lastWritten = value
                filledUpTo = index + 1
            }
            fill(upTo: times.count)
        }
        for (index, key) in keys.enumerated() {
            afterGC[key] = columns[0][index]
            live[key] = columns[1][index]
        }
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
        let middle = Double(last - first) / 2000
        let midIndex = xs.lastIndex { $0 <= middle } ?? 0
        let early = ys[midIndex] - ys[0], later = ys[ys.count - 1] - ys[midIndex]
        late = early + later > 0 ? max(0, min(1, later / (early + later))) : 0
    }

    /// Steady growth ranks first: fast, well fitted, and still growing in the second half.
    var score: Double { slope * fit * min(1, 2 * late) }

    /// Whether this looks like a leak rather than a warm-up or load-following pattern.
    var isSuspect: Bool { growth > 0 && slope > 0 && fit >= 0.6 && late >= 0.25 }
}
