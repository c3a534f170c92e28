import Glibc
import LuaShim
import LuamemStore
import LuamemTracker

/// Writes snapshots of every tracked state of this process into one SQLite file: every
/// `interval` on its own thread, and on demand. It reads trackers' published records and relaxed
/// counters without ever stopping a Lua thread. A database error never reaches the host: it is
/// reported once on stderr, counters keep accumulating, and the next flush tries again.
public final class Flusher {
    /// The process's flusher, which `luamem.flush()` and `luamem.stats()` talk to.
    public private(set) static var current: Flusher? {
        get { currentLock.withLock { currentFlusher } }
        set { currentLock.withLock { currentFlusher = newValue } }
    }
    private static let currentLock = Lock()
    nonisolated(unsafe) private static var currentFlusher: Flusher?

    public let path: String
    public let intervalMs: Int64
    /// Cap on the database's size, if any.
    public let maxDatabaseBytes: Int64?
    private let runInfo: RunInfo
    private let lock = Lock()
    private var writer: SnapshotWriter?
    private var runID: Int64?
    private var states: [TrackedState] = []
    private var thread: pthread_t?
    /// States begun while `lock` was held (a snapshot being written), waiting for their start
    /// snapshot: the flusher thread, or whoever takes `lock` next, writes it. `inboxLock` guards
    /// the inbox, `closings`, `members` and `stopping`, never for longer than a few stores; the
    /// flusher thread sleeps on its condition, so an arrival wakes it. Taken after `lock`, never
    /// before.
    private let inboxLock = Lock()
    private var inbox: [TrackedState] = []
    /// States closed while `lock` was held, with their figures as they closed: the flusher
    /// thread writes their final snapshots.
    private var closings: [Closing] = []
    /// The trackers recorded or in the inbox, by context, with what their thread and the flusher
    /// share: `isTracking` and `close` without `lock`.
    private var members: [UnsafeMutablePointer<luamem_context>: StateGuard] = [:]
    private var stopping = false
    private var lastError: String?
    /// Device and inode of the file the run was recorded in: another file at the path (deleted
    /// or replaced) gets the run recorded anew.
    private var recordedIn: FileIdentity?
    /// The -wal and -shm files as they were after the last flush. SQLite finds them by name: one
    /// deleted or replaced under an open connection leaves it with a log or lock table that
    /// another connection does not share.
    private var companions: [FileIdentity?]?
    private var completed = false

    /// Rows written and errors met, for tests and `luamem.stats()`.
    public private(set) var snapshotsWritten = 0

    /// What history is kept (the size cap, when there is one, included), applied by the
    /// flusher thread every `retentionEveryMs`.
    public let retention: RetentionPolicy
    private let retentionEveryMs: Int64
    /// Held while the policy is applied, on a connection of its own (`retentionStore`), without
    /// `lock`: the host's flushes do not wait for it, only for the short transactions it makes.
    private let retentionLock = Lock()
    private var retentionStore: Store?
    private var retainedMs: Int64 = 0
    private var retentionError: String?

    public init(
        path: String, run: RunInfo, interval: Double, maxDatabaseBytes: Int64? = nil,
        retention: RetentionPolicy = RetentionPolicy()
    ) {
        self.path = path
        self.maxDatabaseBytes = maxDatabaseBytes
        var retention = retention
        retention.maxBytes = maxDatabaseBytes
        self.retention = retention
        self.runInfo = run
        self.intervalMs = max(1, Int64((interval * 1000).rounded()))
        // Often enough to follow a short policy, rarely enough to cost nothing on a large file.
        self.retentionEveryMs = min(60_000, max(1000, 10 * intervalMs))
        Hooks.install()
        _ = Flusher.forkHandlers
        Flusher.current = self
    }

    /// Starts recording `tracker` as a state called `name`, with a start snapshot: written now
    /// when no snapshot is being written and no other process holds the file, else, from the
    /// figures of now, by the flusher thread as soon as it can. A state begun on the host's
    /// thread never waits for another state's snapshot: that one may take seconds (a state of
    /// many sites, a starved machine, another process holding the file).
    public func begin(_ tracker: Tracker, name: String) {
        var state = TrackedState(tracker: tracker, name: name, startedMs: Clock.epochMs())
        tracker.flusherAcquired()
        inboxLock.withLock { members[tracker.context] = state.guardian }
        if lock.tryLock() {
            // States begun earlier and still in the inbox are left to the flusher thread: their
            // start snapshots may have to wait for other writers.
            states.append(state)
            let started = writeGivingWayLocked(kind: .start, tracker)
            if !started { states.removeLast() }
            lock.unlock()
            if started { return }
        }
        // The start snapshot, when the flusher writes it, has the figures of now.
        state.frozen = FrozenFigures(tracker)
        inboxLock.withLock {
            inbox.append(state)
            inboxLock.broadcast()
        }
    }

    /// Whether `tracker` is being recorded.
    public func isTracking(_ tracker: Tracker) -> Bool {
        inboxLock.withLock { members[tracker.context] != nil }
    }

    /// Records the states begun since `lock` was last free, each with its start snapshot, in the
    /// order they were begun (`lock` held).
    private func admitLocked() {
        let arrived = inboxLock.withLock { () -> [TrackedState] in
            defer { inbox = [] }
            return inbox
        }
        for state in arrived {
            states.append(state)
            _ = flushLocked(kind: .start, only: state.tracker)
            states[states.count - 1].frozen?.release()
            states[states.count - 1].frozen = nil
        }
    }

    /// Stops recording `tracker`: writes its final snapshot, marks its state closed, and lets go
    /// of it (the tracker may be freed afterwards). Does nothing for a tracker not recorded.
    public func finish(_ tracker: Tracker) {
        lock.withLock { finishLocked(tracker) }
        tracker.flusherReleased()
    }

    /// The state of `tracker` is closing (lua_close, on its own thread, while it is still whole):
    /// its final snapshot, then the flusher lets go of the tracker. While another snapshot is
    /// being written, or another process holds the file, the host's thread does not wait: it
    /// copies the state's figures as they are (waiting at most for a read of this state's own),
    /// and the flusher thread writes the final snapshot from the copy as soon as it can, at the
    /// latest when the process exits. The tracker lives until then (Tracker.flusherReleased).
    public func close(_ tracker: Tracker) {
        guard let guardian = inboxLock.withLock({ members[tracker.context] }) else {
            tracker.flusherReleased()
            return
        }
        if lock.tryLock() {
            let finished = finishGivingWayLocked(tracker)
            lock.unlock()
            if finished {
                tracker.flusherReleased()
                return
            }
        }
        let figures = guardian.reading.withLock { () -> FrozenFigures? in
            let figures = FrozenFigures(tracker)
            if figures != nil { guardian.closed = true }
            return figures
        }
        guard let figures else {
            // No memory for the copy: wait, as before.
            finish(tracker)
            return
        }
        inboxLock.withLock {
            closings.append(Closing(tracker: tracker, figures: figures))
            inboxLock.broadcast()
        }
    }

    /// `finish` with `lock` held, without letting go of the tracker.
    private func finishLocked(_ tracker: Tracker) {
        admitLocked()
        guard let index = states.firstIndex(where: { $0.tracker.context == tracker.context })
        else { return }
        _ = flushLocked(
            kind: .final, only: states[index].tracker, patienceMs: Flusher.finalPatienceMs)
        endLocked(at: index)
    }

    /// `finishLocked` unless its final snapshot would wait: for another process holding the
    /// file, or for states begun meanwhile (the state may be one of them). False then, with
    /// nothing written.
    private func finishGivingWayLocked(_ tracker: Tracker) -> Bool {
        guard inboxLock.withLock({ inbox.isEmpty }),
            let index = states.firstIndex(where: { $0.tracker.context == tracker.context }),
            writeGivingWayLocked(kind: .final, tracker)
        else { return false }
        endLocked(at: index)
        return true
    }

    /// Stops recording `states[index]`, whose final snapshot was written (or given up): marks
    /// its state closed in the file (`lock` held).
    private func endLocked(at index: Int) {
        let state = states.remove(at: index)
        if let writer, let stateID = state.stateID {
            let closedMs = state.frozen?.timeMs ?? Clock.epochMs()
            try? retryingWhileBusy(patienceMs: Flusher.finalPatienceMs) {
                try writer.closeState(stateID, closedMs: closedMs)
            }
        }
        inboxLock.withLock { _ = members.removeValue(forKey: state.tracker.context) }
    }

    /// Admits the inbox, then writes the final snapshots of the states closed while `lock` was
    /// held, from their figures as they closed, and lets go of their trackers (`lock` held).
    private func closeDeferredLocked() {
        let closed = inboxLock.withLock { () -> [Closing] in
            defer { closings = [] }
            return closings
        }
        // A state closed was begun before: if it waits in the inbox, it is admitted now, taken
        // after the closings (its tracker must not be let go while the inbox holds it).
        admitLocked()
        for closing in closed {
            if let index = states.firstIndex(where: { $0.tracker.context == closing.tracker.context }) {
                states[index].frozen = closing.figures
                finishLocked(closing.tracker)
            }
            closing.figures.release()
            closing.tracker.flusherReleased()
        }
    }

    /// Opens the database now (it is otherwise opened at the first flush), so that a caller
    /// can report a path that cannot be written; waits for other writers as a final snapshot does.
    public func open() throws {
        try lock.withLock {
            try retryingWhileBusy(patienceMs: Flusher.finalPatienceMs) { _ = try openLocked() }
        }
    }

    /// Writes one snapshot of every tracked state now. Returns the error message on failure
    /// (already reported on stderr).
    @discardableResult
    public func flush(kind: SnapshotKind, only tracker: Tracker? = nil) -> String? {
        lock.withLock {
            admitLocked()
            return flushLocked(kind: kind, only: tracker)
        }
    }

    /// fork() while luamem runs (the pre-fork worker pattern): no luamem lock may be held and no
    /// luamem thread may be inside SQLite at the fork, and no SQLite connection may cross it
    /// (SQLite keeps each file's POSIX locks per process, and the child holds none of them). So
    /// the fork waits for a flush in progress and closes the writer's connection (the parent
    /// reopens it at its next flush); the child starts with no flusher, and a state it tracks
    /// gets a flusher and a run of its own. States the child inherited run on unrecorded.
    private static let forkHandlers: Void = {
        pthread_atfork(
            { Flusher.prepareFork() }, { Flusher.resumeAfterFork(inChild: false) },
            { Flusher.resumeAfterFork(inChild: true) })
    }()

    private static func prepareFork() {
        Embedding.flusherLock.lock()
        currentLock.lock()
        if let flusher = currentFlusher {
            flusher.lock.lock()
            flusher.retentionLock.lock()
            flusher.inboxLock.lock()
            flusher.writer = nil
            flusher.retentionStore = nil
        }
    }

    private static func resumeAfterFork(inChild: Bool) {
        currentFlusher?.inboxLock.unlock()
        currentFlusher?.retentionLock.unlock()
        currentFlusher?.lock.unlock()
        if inChild { currentFlusher = nil }
        currentLock.unlock()
        Embedding.flusherLock.unlock()
    }

    /// Stops `flusher` being the process's, if it still is.
    private static func clearCurrent(_ flusher: Flusher) {
        currentLock.withLock { if currentFlusher === flusher { currentFlusher = nil } }
    }

    /// Gives up a flusher that never started: it is no longer the process's.
    public func abandon() {
        Flusher.clearCurrent(self)
    }

    /// Starts the background thread that flushes every interval.
    public func start() {
        lock.withLock {
            guard thread == nil else { return }
            inboxLock.withLock { stopping = false }
            let context = Unmanaged.passRetained(self).toOpaque()
            var handle = pthread_t()
            let created = pthread_create(
                &handle, nil,
                { context in
                    let flusher = Unmanaged<Flusher>.fromOpaque(context!).takeRetainedValue()
                    flusher.loop()
                    return nil
                }, context)
            if created == 0 {
                thread = handle
            } else {
                Unmanaged<Flusher>.fromOpaque(context).release()
            }
        }
    }

    /// Stops the background thread and waits for it; no flush is in progress afterwards.
    public func stop() {
        inboxLock.withLock {
            stopping = true
            inboxLock.broadcast()
        }
        let running: pthread_t? = lock.withLock {
            defer { thread = nil }
            return thread
        }
        if let running { pthread_join(running, nil) }
    }

    /// The run's id in the file, once recorded.
    public var recordedRunID: Int64? { lock.withLock { runID } }

    /// Ends the run: stops the thread, writes the final snapshot of every state, marks the states
    /// closed and the run ended, with the process's exit status when known. The flusher is done
    /// afterwards; calling again does nothing.
    public func complete(exitStatus: Int64? = nil) {
        stop()
        lock.withLock {
            guard !completed else { return }
            completed = true
            closeDeferredLocked()
            // No checkpoint of its own: closing the connection below checkpoints the log and
            // deletes it when no other connection has the file open, and otherwise the others'
            // checkpoints (every second, and when they close) take it. Three fewer syncs.
            _ = flushLocked(
                kind: .final, patienceMs: Flusher.finalPatienceMs, checkpoint: false)
            let now = Clock.epochMs()
            if let writer {
                // As patient as the final snapshot: a run without its end looks killed.
                try? retryingWhileBusy(patienceMs: Flusher.finalPatienceMs) {
                    try writer.transaction {
                        for state in states {
                            if let id = state.stateID { try writer.closeState(id, closedMs: now) }
                        }
                        if let runID {
                            try writer.endRun(runID, endedMs: now, exitStatus: exitStatus)
                        }
                    }
                }
            }
            for state in states { state.tracker.flusherReleased() }
            states.removeAll()
            inboxLock.withLock { members = [:] }
            writer = nil
        }
        Flusher.clearCurrent(self)
    }

    private func loop() {
        luamem_become_flusher_thread()
        luamem_block_async_signals()
        var next = Clock.nowMs() + intervalMs
        while true {
            // Asleep until the interval is up, a state is begun or closed, or the flusher stops.
            let (stop, due) = inboxLock.withLock { () -> (Bool, Bool) in
                while !stopping && inbox.isEmpty && closings.isEmpty && Clock.nowMs() < next {
                    inboxLock.wait(untilMs: next)
                }
                return (stopping, Clock.nowMs() >= next)
            }
            if stop { return }
            lock.lock()
            closeDeferredLocked()
            if due {
                _ = flushLocked(kind: .interval)
                next += intervalMs
                if next <= Clock.nowMs() { next = Clock.nowMs() + intervalMs }
                if retentionDue() {
                    lock.unlock()
                    retain()
                    lock.lock()
                }
            }
            lock.unlock()
        }
    }

    /// Whether to apply the retention policy now (`lock` held): every `retentionEveryMs`, and as
    /// soon as the file passes its size target.
    private func retentionDue() -> Bool {
        guard !retention.isEmpty else { return false }
        if Clock.nowMs() - retainedMs >= retentionEveryMs { return true }
        // Three PRAGMAs per snapshot, only when there is a size to keep under.
        guard retention.maxBytes != nil, let used = try? writer?.store.usedBytes() else {
            return false
        }
        return retention.isOverSize(used)
    }

    /// Applies the retention policy (flusher thread, `lock` not held). A failure is reported
    /// once, and the next pass tries again.
    private func retain() {
        retentionLock.withLock {
            do {
                if retentionStore == nil {
                    retentionStore = try Store.openForWriting(path: path)
                }
                try retentionStore!.applyRetention(retention, nowMs: Clock.epochMs())
                retentionError = nil
            } catch {
                retentionStore = nil
                let message = "cannot apply the retention policy to \(path): \(error)"
                if message != retentionError { report(message) }
                retentionError = message
            }
        }
        retainedMs = Clock.nowMs()
    }

    // MARK: Writing (lock held)

    /// How long a final snapshot waits for other writers of the file (processes sharing it)
    /// before it is given up: it is the one snapshot that cannot be written later.
    static let finalPatienceMs: Int64 = 10_000

    /// Writes a snapshot; while another connection holds the file's lock, tries again for up to
    /// `patienceMs` before reporting.
    private func flushLocked(
        kind: SnapshotKind, only tracker: Tracker? = nil, patienceMs: Int64 = 0,
        checkpoint: Bool = true
    ) -> String? {
        var written = Set<Int>()
        do {
            try retryingWhileBusy(patienceMs: patienceMs) {
                try flushOnceLocked(kind: kind, only: tracker, written: &written)
            }
            wroteLocked(final: kind == .final, checkpoint: checkpoint)
            return nil
        } catch {
            // Reopen next time: the connection may be what broke (I/O error, file gone).
            writer = nil
            if kind == .final, (error as? StoreError)?.isBusy == true {
                // Other writers held the file past the final patience. Unlike an interval
                // snapshot, this one is not written later: said every time, and as lost.
                let message =
                    "cannot write the final snapshot to \(path): \(error); "
                    + "the figures since the last snapshot written are lost"
                report(message)
                return message
            }
            let message = "cannot write snapshot to \(path): \(error)"
            if message != lastError { report(message) }
            lastError = message
            return message
        }
    }

    /// After a snapshot was written: the checkpoint when one is due, and the file's state.
    private func wroteLocked(final: Bool, checkpoint: Bool = true) {
        if checkpoint { checkpointLocked(final: final) }
        companions = currentCompanions()
        if lastError != nil {
            report("snapshots are written to \(path) again")
            lastError = nil
        }
    }

    /// Writes `tracker`'s start or final snapshot unless another connection holds the file's
    /// write lock; false then, with nothing written or said. The host's thread that begins or
    /// closes a state does not wait for another process's transaction: the flusher thread
    /// writes the snapshot instead.
    private func writeGivingWayLocked(kind: SnapshotKind, _ tracker: Tracker) -> Bool {
        guard let database = writer?.store.database else {
            // Not open yet (or broken): opening waits for other writers as every write does.
            _ = flushLocked(kind: kind, only: tracker)
            return true
        }
        var written = Set<Int>()
        database.setBusyTimeout(milliseconds: 0)
        let failure: Error?
        do {
            try flushOnceLocked(kind: kind, only: tracker, written: &written)
            failure = nil
        } catch {
            failure = error
        }
        database.setBusyTimeout(milliseconds: Store.writerBusyTimeoutMs)
        switch failure {
        case nil:
            wroteLocked(final: kind == .final)
        case let error as StoreError where error.isBusy:
            return false
        default:
            // Said, and the connection reopened, as for any snapshot that failed.
            _ = flushLocked(kind: kind, only: tracker)
        }
        return true
    }

    /// Runs `body`, and again every 20 ms while another connection holds the file's lock, for
    /// up to `patienceMs`; then its error stands.
    private func retryingWhileBusy(patienceMs: Int64, _ body: () throws -> Void) throws {
        let deadline = Clock.nowMs() + patienceMs
        while true {
            do {
                return try body()
            } catch let error as StoreError where error.isBusy && Clock.nowMs() < deadline {
                usleep(20_000)
            }
        }
    }

    /// A C string's bytes, whatever they are.
    private static func bytes(_ string: UnsafePointer<CChar>) -> [UInt8] {
        Array(UnsafeRawBufferPointer(start: string, count: strlen(string)))
    }

    private func currentCompanions() -> [FileIdentity?] {
        [FileIdentity(path: path + "-wal"), FileIdentity(path: path + "-shm")]
    }

    /// Monotonic time of the last WAL checkpoint.
    private var checkpointedMs: Int64 = 0

    /// Every second at most, and after a final snapshot, what the WAL holds goes into the
    /// database file: if the WAL is lost (deleted, or the machine crashes before it is synced),
    /// all but the latest snapshots survive. SQLite's own checkpoint waits for ~4 MB of WAL.
    private func checkpointLocked(final: Bool) {
        let now = Clock.nowMs()
        guard final || now - checkpointedMs >= 1000, let writer else { return }
        writer.store.database.checkpointPassively()
        checkpointedMs = now
    }

    /// One attempt at a snapshot of every state not in `written`, each in its own transaction;
    /// the states written are added to `written`, so a retry writes none twice.
    private func flushOnceLocked(
        kind: SnapshotKind, only tracker: Tracker?, written: inout Set<Int>
    ) throws {
        let writer = try openLocked()
        let now = Clock.epochMs()
        for index in states.indices where !written.contains(index) {
            if let tracker, states[index].tracker.context != tracker.context { continue }
            try write(&states[index], writer: writer, kind: kind, timeMs: now)
            written.insert(index)
            if !states[index].reportedFolding && states[index].tracker.foldedAllocations > 0 {
                states[index].reportedFolding = true
                let tracker = states[index].tracker
                // Below the cap, sites were folded because the tracker's tables could not grow.
                let why =
                    Int64(tracker.publishedSiteCount) < tracker.maxSitesShared
                    ? "could not record new allocation sites for lack of memory"
                    : "has more than \(tracker.maxSitesShared) distinct allocation sites"
                report(
                    "state '\(states[index].name)' \(why); new ones are counted together as [other sites]")
            }
        }
    }

    private func report(_ message: String) {
        fputs("luamem: \(message)\n", stderr)
    }

    /// The writer, opening the database and recording the run when not done yet, or again in a
    /// new file when the one it was recorded in was deleted or replaced.
    private func openLocked() throws -> SnapshotWriter {
        if let writer {
            let sameFile = FileIdentity(path: path) == recordedIn
            let now = currentCompanions()
            let sameCompanions = companions.map { $0 == now } ?? true
            if sameFile && sameCompanions { return writer }
            if companions.map({ $0[1] == now[1] }) ?? true {
                // The -shm is the one this connection shares with the others, so its view of
                // the WAL is right: everything it wrote goes into the file it opened, and the
                // log it leaves is empty, so no file is ever read with another file's log.
                writer.store.database.checkpointAndTruncate()
            } else {
                // Its view of the WAL may be stale: leave the log to the connections that share
                // the -shm now at the path.
                writer.store.database.leaveWalOnClose()
            }
            if sameFile && !sameCompanions {
                report("the -wal or -shm file of \(path) was deleted or replaced: reopening it")
                // What this connection wrote since its last checkpoint may not be in the log the
                // others read: write every row of every state again.
                for index in states.indices { states[index].forgetRows() }
            }
            self.writer = nil
            companions = nil
        }
        let opened = try SnapshotWriter(
            store: Store.openForWriting(path: path, maxBytes: maxDatabaseBytes))
        // LUAMEM_ROLLUP_ROWS: site_stats rows per rollup at least (see Migrations/0004).
        if let text = getenv("LUAMEM_ROLLUP_ROWS"), let rows = Int64(String(cString: text)),
            rows > 0
        {
            opened.minimumRollupRows = rows
        }
        // Inode numbers are reused at once, so the run's own row tells whether this is the file
        // the run was recorded in.
        if let runID, try !opened.holds(runID: runID, runInfo) {
            report("\(path) was deleted or replaced: recording this run in the new file")
            self.runID = nil
            for index in states.indices { states[index].forgetDatabase() }
        }
        if runID == nil {
            runID = try opened.transaction {
                try opened.beginRun(runInfo, parentID: RunLineage.parentRunID(inFileAt: path))
            }
        }
        recordedIn = FileIdentity(path: path)
        writer = opened
        // The first checkpoint a second after opening, like every later one: a run shorter than
        // that syncs the file once, when it closes.
        checkpointedMs = Clock.nowMs()
        return opened
    }

    /// Writes one state's snapshot in one transaction; bookkeeping changes only on commit.
    private func write(
        _ state: inout TrackedState, writer: SnapshotWriter, kind: SnapshotKind, timeMs: Int64
    ) throws {
        guard let runID else { return }
        let tracker = state.tracker
        // Its thread waits for this read to end before it copies the figures of a state that
        // closes; once copied, only the final snapshot is written, from the copy.
        state.guardian.reading.lock()
        defer { state.guardian.reading.unlock() }
        let frozen = state.frozen
        if state.guardian.closed && frozen == nil { return }
        // Read in the reverse order of publication so every slot's site and every site's frames
        // are included.
        let slotCount = frozen?.slotCount ?? tracker.publishedSlotCount
        let siteCount = frozen?.siteCount ?? tracker.publishedSiteCount
        let frameCount = frozen?.frameCount ?? tracker.publishedFrameCount
        // Bookkeeping changes in place (copying it would cost O(sites) per flush); a failed
        // transaction puts it back as it was.
        let marks = (state.stateID, state.frameIDs.count, state.siteIDs.count, state.written.count)
        var replaced: [(slot: Int, digest: UInt64)] = []
        do {
            try writer.transaction {
                if state.stateID == nil {
                    state.stateID = try writer.addState(
                        runID: runID, name: state.name, startedMs: state.startedMs)
                }
                let stateID = state.stateID!
                for index in state.frameIDs.count..<frameCount {
                    let frame = tracker.frame(index)
                    state.frameIDs.append(
                        try writer.frameID(
                            source: Self.bytes(frame.source), line: Int64(frame.line),
                            lineDefined: Int64(frame.lineDefined),
                            function: frame.function.map(Self.bytes)))
                }
                for index in state.siteIDs.count..<siteCount {
                    let site = tracker.site(index)
                    let frames = (0..<Int(site.frameCount)).map {
                        state.frameIDs[Int(site.frames[$0])]
                    }
                    state.siteIDs.append(
                        try writer.siteID(
                            frameIDs: frames, cfunction: site.cfunction.map { String(cString: $0) })
                    )
                }
                let totals = frozen?.totals ?? tracker.totals()
                let snapshotID = try writer.insertSnapshot(
                    runID: runID, stateID: stateID, timeMs: frozen?.timeMs ?? timeMs, kind: kind,
                    totals: Figures(totals), gcCycles: frozen?.gcCycles ?? tracker.gcCycles,
                    gcCompletedMs: frozen.map { $0.gcCompletedMs } ?? tracker.gcCompletedMs)
                var rows: Int64 = 0
                let unsampled = tracker.unsampledSite
                if state.written.count < slotCount {
                    state.written.append(
                        contentsOf: repeatElement(
                            Figures().rowDigest, count: slotCount - state.written.count))
                }
                // Only groups of slots marked changed since the last snapshot are read (and
                // every slot after a failed write or a lost file), so a snapshot costs what
                // changed, not every slot there is. New slots' groups are marked too. The last
                // group, when slots past `slotCount` may still be created in it, is read whole
                // and its mark left: taking it could take the mark of a slot this snapshot
                // does not read.
                let groupSize = Tracker.slotGroupSize
                let fullGroups = slotCount / groupSize
                for group in 0..<((slotCount + groupSize - 1) / groupSize) {
                    guard group == fullGroups || frozen != nil || tracker.takeChanged(group: group)
                        || state.readsEverySlot
                    else { continue }
                    for slot in group * groupSize..<min(slotCount, (group + 1) * groupSize) {
                        let counters = frozen?.counters[slot] ?? tracker.counters(slot)
                        if Int64(counters.site) == unsampled { continue }
                        let figures = Figures(counters).siteRow
                        let digest = figures.rowDigest
                        if state.written[slot] == digest { continue }
                        if slot < marks.3 { replaced.append((slot, state.written[slot])) }
                        state.written[slot] = digest
                        try writer.insertStats(
                            stateID: stateID, siteID: state.siteIDs[Int(counters.site)],
                            type: Int64(counters.type), snapshotID: snapshotID, figures: figures)
                        rows += 1
                    }
                }
                try writer.finishSnapshot(stateID: stateID, snapshotID: snapshotID, rows: rows)
            }
        } catch {
            state.stateID = marks.0
            state.frameIDs.removeSubrange(marks.1...)
            state.siteIDs.removeSubrange(marks.2...)
            state.written.removeSubrange(marks.3...)
            for (slot, digest) in replaced { state.written[slot] = digest }
            // The changed marks taken for this snapshot are gone with it.
            state.readsEverySlot = true
            throw error
        }
        state.readsEverySlot = false
        tracker.snapshotsWritten += 1
        snapshotsWritten += 1
    }
}

/// What the flusher keeps per tracked state: database ids of what it has written, and a digest
/// of the figures last written per slot, so unchanged slots cost no row.
struct TrackedState {
    let tracker: Tracker
    let name: String
    let startedMs: Int64
    let guardian = StateGuard()
    /// Its figures as they were when it began or closed, for a start or final snapshot that the
    /// flusher thread writes later.
    var frozen: FrozenFigures?
    var stateID: Int64?
    var frameIDs: [Int64] = []
    var siteIDs: [Int64] = []
    /// Per slot, `Figures.rowDigest` of the row last written: 8 bytes a slot rather than the 56 of
    /// the figures (at depth 8 a program can have tens of thousands of slots).
    var written: [UInt64] = []
    /// The next snapshot compares every slot with `written`, not only the groups marked changed:
    /// at first, and after a snapshot that failed or rows that may be missing.
    var readsEverySlot = true
    var reportedFolding = false

    init(tracker: Tracker, name: String, startedMs: Int64) {
        self.tracker = tracker
        self.name = name
        self.startedMs = startedMs
    }

    /// The database this state was written to is gone: write everything again.
    mutating func forgetDatabase() {
        stateID = nil
        forgetRows()
    }

    /// Its rows may be missing from the file: look frames and sites up again (they are found by
    /// what they are) and write every (site, type) at the next snapshot.
    mutating func forgetRows() {
        frameIDs = []
        siteIDs = []
        written = []
        readsEverySlot = true
    }
}

/// What a state's own thread and the flusher share outside `lock`: the flusher holds `reading`
/// while it reads the state's figures; the state's thread, closing it, takes it to copy them and
/// to mark the state closed to any later read but its final snapshot's.
final class StateGuard {
    let reading = Lock()
    /// Set under `reading` once the figures were copied for the final snapshot.
    var closed = false
}

/// A state closed while `lock` was held, waiting for its final snapshot.
struct Closing {
    let tracker: Tracker
    let figures: FrozenFigures
}

/// A state's figures copied on its own thread as it began or closed (exact: that thread is their
/// only writer), in malloc'd memory, for a snapshot the flusher thread writes later: by then the
/// state has run on, or lua_close has freed everything and the counters with it.
struct FrozenFigures {
    let slotCount: Int
    let siteCount: Int
    let frameCount: Int
    let counters: UnsafeMutablePointer<luamem_counters>
    let totals: luamem_counters
    let gcCycles: Int64
    let gcCompletedMs: Int64?
    /// When they were copied (Unix epoch ms): the snapshot's time, and a closed state's end.
    let timeMs: Int64

    /// Nil when there is no memory for the copy.
    init?(_ tracker: Tracker) {
        frameCount = tracker.publishedFrameCount
        siteCount = tracker.publishedSiteCount
        slotCount = tracker.publishedSlotCount
        guard
            let memory = malloc(max(1, slotCount) * MemoryLayout<luamem_counters>.stride)
        else { return nil }
        counters = memory.bindMemory(to: luamem_counters.self, capacity: max(1, slotCount))
        for slot in 0..<slotCount { (counters + slot).initialize(to: tracker.counters(slot)) }
        totals = tracker.totals()
        gcCycles = tracker.gcCycles
        gcCompletedMs = tracker.gcCompletedMs
        timeMs = Clock.epochMs()
    }

    func release() { free(counters) }
}

/// Which file a path names (device and inode), nil when there is none.
struct FileIdentity: Equatable {
    var device: UInt64
    var inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }
}

extension Figures {
    /// A 64-bit digest of a site row's stored figures: two rows with different figures have the
    /// same digest with a probability of about 2^-64, so a changed row is written.
    var rowDigest: UInt64 {
        var hash = mixHash(0x6C75_616D_656D_2121, UInt64(bitPattern: liveBytes))
        hash = mixHash(hash, UInt64(bitPattern: liveCount))
        hash = mixHash(hash, UInt64(bitPattern: allocBytes))
        hash = mixHash(hash, UInt64(bitPattern: allocCount))
        return mixHash(hash, UInt64(bitPattern: gcLiveBytes))
    }

    init(_ counters: luamem_counters) {
        self.init(
            liveBytes: counters.live_bytes, liveCount: counters.live_count,
            allocBytes: counters.alloc_bytes, allocCount: counters.alloc_count,
            peakBytes: counters.peak_bytes, gcLiveBytes: counters.gc_live_bytes,
            gcLiveCount: counters.gc_live_count)
    }
}

/// Which run started which: a tracked process tells its children its run (and file) through
/// $LUAMEM_PARENT_RUN, so that a child recorded in the same file names its parent.
public enum RunLineage {
    static let variable = "LUAMEM_PARENT_RUN"

    /// Tells this process's future children that `runID` in the file at `path` started them.
    /// Call while the process has one thread running Lua (setenv is not thread-safe).
    public static func announce(runID: Int64, path: String) {
        setenv(variable, "\(runID):\(canonical(path))", 1)
    }

    /// The parent run announced to this process, when it was recorded in the file at `path`.
    static func parentRunID(inFileAt path: String) -> Int64? {
        guard let value = getenv(variable).map({ String(cString: $0) }),
            let colon = value.firstIndex(of: ":"), let id = Int64(value[..<colon]),
            String(value[value.index(after: colon)...]) == canonical(path)
        else { return nil }
        return id
    }

    private static func canonical(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
