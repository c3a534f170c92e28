-- luamem schema, version 4: storage that stays small and fast to read over days of snapshots.
--
-- 1. site_stats is stored in time order, keyed (state_id, snapshot_id, site_id, type). Rows are
--    appended, so pages stay full, and the rows of a span of snapshots are read in one range
--    scan. The separate index on snapshot_id is gone (the key starts with state_id and
--    snapshot_id). Rows no longer hold a per-site peak_bytes or gc_live_count: nothing read
--    them, and they made every row 15% larger. Snapshot totals keep both.
-- 2. site_rollups holds rows derived from site_stats that let a reader get the full state at a
--    snapshot without replaying the whole history:
--      level 1 (rollup) at snapshot R: for each (site, type) that changed since the previous
--        level 1 or level 2 snapshot of the state, its figures at R;
--      level 2 (checkpoint) at snapshot C: every (site, type) of the state with its figures at C.
--    The writer adds a rollup once enough site_stats rows have accumulated since the last one,
--    and makes it a checkpoint once the rollups since the last checkpoint are about as many
--    rows as the checkpoint itself. The state at snapshot S is, per (site, type), the latest of:
--    the checkpoint C (the latest at or before S), the rollups after C up to B (the latest
--    rollup or checkpoint at or before S), and the site_stats rows after B up to S.
--    site_stats alone still holds the whole history: site_rollups only saves reading it.

DROP VIEW site_latest;
DROP VIEW site_changes;

CREATE TABLE site_stats_v4 (
    state_id      INTEGER NOT NULL,
    snapshot_id   INTEGER NOT NULL,
    site_id       INTEGER NOT NULL,
    type          INTEGER NOT NULL,
    live_bytes    INTEGER NOT NULL,
    live_count    INTEGER NOT NULL,
    alloc_bytes   INTEGER NOT NULL,   -- bytes allocated since tracking started (frees excluded)
    alloc_count   INTEGER NOT NULL,
    gc_live_bytes INTEGER NOT NULL,   -- live bytes as of the last completed GC cycle
    PRIMARY KEY (state_id, snapshot_id, site_id, type)
) WITHOUT ROWID;
INSERT INTO site_stats_v4
SELECT state_id, snapshot_id, site_id, type, live_bytes, live_count, alloc_bytes, alloc_count,
       gc_live_bytes
FROM site_stats ORDER BY state_id, snapshot_id, site_id, type;
DROP TABLE site_stats;
ALTER TABLE site_stats_v4 RENAME TO site_stats;

CREATE TABLE site_rollups (
    state_id      INTEGER NOT NULL,
    level         INTEGER NOT NULL,   -- 1: rollup, 2: checkpoint
    snapshot_id   INTEGER NOT NULL,
    site_id       INTEGER NOT NULL,
    type          INTEGER NOT NULL,
    live_bytes    INTEGER NOT NULL,
    live_count    INTEGER NOT NULL,
    alloc_bytes   INTEGER NOT NULL,
    alloc_count   INTEGER NOT NULL,
    gc_live_bytes INTEGER NOT NULL,
    PRIMARY KEY (state_id, level, snapshot_id, site_id, type)
) WITHOUT ROWID;

-- As in version 1, without the per-site peak_bytes and gc_live_count.
CREATE VIEW site_latest AS
SELECT st.run_id, ss.state_id, st.name AS state, ss.site_id, n.file, n.line, n.function,
       n.c_function, t.name AS type, ss.snapshot_id AS changed_snapshot_id,
       ss.live_bytes, ss.live_count, ss.alloc_bytes, ss.alloc_count, ss.gc_live_bytes
FROM site_stats ss
JOIN (SELECT state_id, site_id, type, MAX(snapshot_id) AS snapshot_id
      FROM site_stats GROUP BY state_id, site_id, type) latest
  USING (state_id, site_id, type, snapshot_id)
JOIN states st ON st.id = ss.state_id
JOIN site_names n ON n.site_id = ss.site_id
JOIN object_types t ON t.id = ss.type;

-- Unchanged from version 2.
CREATE VIEW site_changes AS
SELECT ss.state_id, ss.site_id, n.location, n.function, t.name AS type, ss.snapshot_id,
       sn.time_ms, ss.live_bytes, ss.gc_live_bytes, ss.alloc_bytes,
       ss.live_bytes - coalesce(lag(ss.live_bytes) OVER key_order, 0) AS live_change,
       ss.gc_live_bytes - coalesce(lag(ss.gc_live_bytes) OVER key_order, 0) AS gc_live_change,
       ss.alloc_bytes - coalesce(lag(ss.alloc_bytes) OVER key_order, 0) AS alloc_change
FROM site_stats ss
JOIN snapshots sn ON sn.id = ss.snapshot_id
JOIN site_names n ON n.site_id = ss.site_id
JOIN object_types t ON t.id = ss.type
WINDOW key_order AS (PARTITION BY ss.state_id, ss.site_id, ss.type ORDER BY ss.snapshot_id);
