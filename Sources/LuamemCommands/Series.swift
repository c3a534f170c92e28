import LuamemStore

/// Rows over time: the change-only rows of a run replayed snapshot by snapshot, grouped into
/// rows (`SiteKey`) and summed over the selected Lua states at each snapshot time.
struct Series {
    /// Snapshot times, oldest first.
    var times: [Int64] = []
    /// Per row, its value at each time (post-GC live bytes, or live bytes with `current`).
    var values: [SiteKey: [Int64]] = [:]
    var labels: [SiteKey: (site: String, info: SiteInfo)] = [:]
    /// Live bytes (current) of each row at the last time.
    var lastLive: [SiteKey: Int64] = [:]

    /// Replays `run` from `fromMs` (the last snapshot at or before it is included) for the
    /// states `selected` accepts and the sites `include` accepts.
    init(
        store: Store, run: RunRecord, fromMs: Int64?, by grouping: Grouping, current: Bool,
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
        var perTime: [SiteKey: [Int64: Int64]] = [:]
        var infos: [Int64: SiteInfo] = [:]

        for stateID in Set(kept.map(\.ref.stateID)) {
            let stateSnapshots = snapshots.filter { $0.ref.stateID == stateID }
            guard let last = stateSnapshots.last else { continue }
            let changes = try store.changes(stateID: stateID, upTo: last.ref.id)
            let missing = Set(changes.map(\.figures.siteID)).subtracting(infos.keys)
            if !missing.isEmpty {
                infos.merge(try store.siteInfo(ids: missing)) { old, _ in old }
            }
            var state: [String: SiteFigures] = [:]
            var next = 0
            // Per row and time, this state's value; a later snapshot at the same time replaces it.
            var mine: [SiteKey: [Int64: Int64]] = [:]
            var mineLast: [SiteKey: Int64] = [:]
            for snapshot in stateSnapshots {
                while next < changes.count && changes[next].snapshotID <= snapshot.ref.id {
                    let figures = changes[next].figures
                    state["\(figures.siteID)/\(figures.type)"] = figures
                    next += 1
                }
                guard let index = timeIndex[snapshot.ref.timeMs] else { continue }
                var values: [SiteKey: Int64] = [:]
                var live: [SiteKey: Int64] = [:]
                for figures in state.values {
                    guard let info = infos[figures.siteID], include(info) else { continue }
                    let type = typeNames[figures.type] ?? "?"
                    let key = SiteKey(info, type: type, by: grouping)
                    values[key, default: 0] +=
                        current ? figures.figures.liveBytes : figures.figures.gcLiveBytes
                    live[key, default: 0] += figures.figures.liveBytes
                    if labels[key] == nil {
                        labels[key] = (SiteKey.label(info, type: type, by: grouping), info)
                    }
                }
                for (key, value) in values { mine[key, default: [:]][times[index]] = value }
                if index == times.count - 1 { mineLast = live }
            }
            for (key, byTime) in mine {
                for (time, value) in byTime {
                    perTime[key, default: [:]][time, default: 0] += value
                }
            }
            for (key, value) in mineLast { lastLive[key, default: 0] += value }
        }
        for (key, byTime) in perTime {
            values[key] = times.map { byTime[$0] ?? 0 }
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
