-- The fleet store: what `luamem ship` copies from every host's SQLite file into ClickHouse.
-- {database} is replaced by the database of --to clickhouse://HOST:PORT/DATABASE. SQL that
-- Debian's ClickHouse (18.16) and current releases both run: MergeTree tables, no DateTime64.
--
-- Rows are keyed by the run's UUID (runs.uuid in the SQLite file), never by a file's own ids,
-- so run 1 of one host never meets run 1 of another. Tables are ReplacingMergeTree: a row
-- shipped twice (a ship killed between a snapshot's site rows and its snapshot row, then run
-- again) is the same row, and readers either use FINAL or take argMax over snapshot_id.

CREATE DATABASE IF NOT EXISTS {database};

-- One row per run; shipped again (a higher `version`) when the run ends.
CREATE TABLE IF NOT EXISTS {database}.runs (
    run_uuid    String,
    host        String,
    build       String,
    name        String,
    pid         Int64,
    command     String,
    lua_version String,
    options     String,
    started_ms  Int64,
    ended_ms    Int64,      -- 0 while running
    exit_status Int64,      -- -1 when not known
    version     UInt64      -- when this row was shipped (ms)
) ENGINE = ReplacingMergeTree(version) ORDER BY run_uuid;

-- One row per snapshot of a state: its totals. A snapshot's row is shipped after its site
-- rows, so a snapshot present here has all its site rows.
CREATE TABLE IF NOT EXISTS {database}.snapshots (
    run_uuid      String,
    snapshot_id   Int64,    -- the id in the host's file (ordered in time within a run)
    state_id      Int64,
    state         String,
    time_ms       Int64,
    kind          String,   -- start, interval, final
    live_bytes    Int64,
    live_count    Int64,
    alloc_bytes   Int64,
    alloc_count   Int64,
    gc_live_bytes Int64,
    gc_live_count Int64,
    gc_cycles     Int64
) ENGINE = ReplacingMergeTree ORDER BY (run_uuid, snapshot_id);

-- A site's figures at each snapshot where they changed (the file's site_stats rows): a
-- state's figures at snapshot S are, per site and type, the row with the greatest
-- snapshot_id <= S (argMax). A site is named by its frames, never by a file's ids.
CREATE TABLE IF NOT EXISTS {database}.site_stats (
    run_uuid      String,
    state_id      Int64,
    snapshot_id   Int64,
    time_ms       Int64,    -- the snapshot's time: a window's start is argMaxIf(…, time_ms <= T)
    file          String,   -- innermost frame's chunk name
    line          Int64,
    line_defined  Int64,
    function      String,
    c_function    String,
    stack         String,   -- file:line of every frame, innermost first, joined by ';'
    type          String,   -- object type: table, string, ...
    live_bytes    Int64,
    live_count    Int64,
    alloc_bytes   Int64,
    alloc_count   Int64,
    gc_live_bytes Int64
) ENGINE = ReplacingMergeTree
ORDER BY (run_uuid, state_id, file, line, function, c_function, stack, type, snapshot_id);
