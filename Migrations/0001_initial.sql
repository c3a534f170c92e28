-- luamem schema, version 1. A migration that has shipped is never edited: change the schema
-- with a new file (0002_….sql) and a line in Sources/LuamemMigrations/Migrations.c.
-- Times are Unix epoch milliseconds. Byte and count columns are integers.

-- One process (or one `luamem run`) that tracked Lua states.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    build       TEXT,                 -- --build label, e.g. a git sha
    name        TEXT,                 -- --name of the program
    host        TEXT    NOT NULL,
    pid         INTEGER NOT NULL,
    command     TEXT    NOT NULL,     -- command line, arguments separated by spaces
    lua_version TEXT    NOT NULL,     -- e.g. "Lua 5.3.6"
    options     TEXT    NOT NULL,     -- tracker options as JSON: {"interval_ms":…,"depth":…}
    started_ms  INTEGER NOT NULL,
    ended_ms    INTEGER               -- NULL while running or when the process died
);

-- One tracked lua_State of a run.
CREATE TABLE states (
    id         INTEGER PRIMARY KEY,
    run_id     INTEGER NOT NULL REFERENCES runs(id),
    name       TEXT    NOT NULL,
    started_ms INTEGER NOT NULL,
    closed_ms  INTEGER
);
CREATE INDEX states_run ON states(run_id);

-- Object types as Lua reports them to its allocator; "other" is everything that is not an
-- object header: table parts, stacks, string buffers, upvalues, call frames.
CREATE TABLE object_types (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
INSERT INTO object_types (id, name) VALUES
    (0, 'other'), (1, 'string'), (2, 'table'), (3, 'function'),
    (4, 'userdata'), (5, 'thread'), (6, 'proto');

-- A Lua source line. `source` is the chunk name as Lua has it ("@path/file.lua", "=stdin", or
-- the code given to load()); `file` is how luamem prints it. `[host]` is the frame of
-- allocations made with no Lua function running.
CREATE TABLE frames (
    id           INTEGER PRIMARY KEY,
    source       TEXT    NOT NULL,
    file         TEXT    NOT NULL,
    line         INTEGER NOT NULL,
    line_defined INTEGER NOT NULL,    -- first line of the enclosing function (0: main chunk)
    function     TEXT                 -- name as Lua's debug info gives it, NULL when unknown
);
-- The same line of another build may sit in another function: the name is part of a frame.
CREATE UNIQUE INDEX frames_identity ON frames(source, line, line_defined, coalesce(function, ''));

-- An allocation site: a Lua call stack (innermost frame first) plus the C function, if any,
-- that was running when the allocation happened (e.g. "string.rep").
CREATE TABLE sites (
    id         INTEGER PRIMARY KEY,
    frame_id   INTEGER NOT NULL REFERENCES frames(id),  -- innermost frame
    stack      TEXT    NOT NULL,                        -- frame ids, innermost first, comma separated
    c_function TEXT    NOT NULL DEFAULT '',
    UNIQUE (stack, c_function)
);

-- One snapshot of one state: its totals at that moment. `gc_*` are the figures as of the most
-- recently completed garbage-collection cycle (live data without uncollected garbage).
CREATE TABLE snapshots (
    id            INTEGER PRIMARY KEY,
    run_id        INTEGER NOT NULL REFERENCES runs(id),
    state_id      INTEGER NOT NULL REFERENCES states(id),
    time_ms       INTEGER NOT NULL,
    kind          TEXT    NOT NULL,   -- 'start', 'interval', 'manual' or 'final'
    live_bytes    INTEGER NOT NULL,
    live_count    INTEGER NOT NULL,
    alloc_bytes   INTEGER NOT NULL,
    alloc_count   INTEGER NOT NULL,
    peak_bytes    INTEGER NOT NULL,
    gc_live_bytes INTEGER NOT NULL,
    gc_live_count INTEGER NOT NULL,
    gc_cycles     INTEGER NOT NULL
);
CREATE INDEX snapshots_state_time ON snapshots(state_id, time_ms);
CREATE INDEX snapshots_run_time ON snapshots(run_id, time_ms);

-- Figures of one (state, site, type) as of one snapshot. A row is written only when the figures
-- changed since the previous snapshot: the state at snapshot S is, per (state, site, type), the
-- row with the largest snapshot_id <= S (see the view site_stats_at_snapshot in README).
CREATE TABLE site_stats (
    state_id      INTEGER NOT NULL,
    site_id       INTEGER NOT NULL,
    type          INTEGER NOT NULL,
    snapshot_id   INTEGER NOT NULL,
    live_bytes    INTEGER NOT NULL,
    live_count    INTEGER NOT NULL,
    alloc_bytes   INTEGER NOT NULL,   -- bytes allocated since tracking started (frees excluded)
    alloc_count   INTEGER NOT NULL,
    peak_bytes    INTEGER NOT NULL,   -- highest live_bytes seen
    gc_live_bytes INTEGER NOT NULL,
    gc_live_count INTEGER NOT NULL,
    PRIMARY KEY (state_id, site_id, type, snapshot_id)
) WITHOUT ROWID;
CREATE INDEX site_stats_snapshot ON site_stats(snapshot_id);

-- How luamem prints a site: "file.lua:12" plus function and C function.
CREATE VIEW site_names AS
SELECT s.id AS site_id, f.file, f.line, f.function, s.c_function, s.stack,
       f.file || ':' || f.line AS location
FROM sites s JOIN frames f ON f.id = s.frame_id;

-- The most recent figures of every (state, site, type): what is live now, or at the end of a run.
CREATE VIEW site_latest AS
SELECT st.run_id, ss.state_id, st.name AS state, ss.site_id, n.file, n.line, n.function,
       n.c_function, t.name AS type, ss.snapshot_id AS changed_snapshot_id,
       ss.live_bytes, ss.live_count, ss.alloc_bytes, ss.alloc_count, ss.peak_bytes,
       ss.gc_live_bytes, ss.gc_live_count
FROM site_stats ss
JOIN (SELECT state_id, site_id, type, MAX(snapshot_id) AS snapshot_id
      FROM site_stats GROUP BY state_id, site_id, type) latest
  USING (state_id, site_id, type, snapshot_id)
JOIN states st ON st.id = ss.state_id
JOIN site_names n ON n.site_id = ss.site_id
JOIN object_types t ON t.id = ss.type;

-- Every snapshot with its state's totals, oldest first: memory over time.
CREATE VIEW snapshot_totals AS
SELECT sn.id AS snapshot_id, sn.run_id, sn.state_id, st.name AS state, sn.time_ms,
       datetime(sn.time_ms / 1000, 'unixepoch') AS time_utc, sn.kind,
       sn.live_bytes, sn.live_count, sn.alloc_bytes, sn.alloc_count, sn.peak_bytes,
       sn.gc_live_bytes, sn.gc_live_count, sn.gc_cycles
FROM snapshots sn JOIN states st ON st.id = sn.state_id;
