-- luamem schema, version 2: a view of how each (state, site, type) changed between the
-- snapshots that recorded it, for ad-hoc questions about growth.

-- One row per recorded change: the figures and their change since the previous recorded row of
-- the same (state, site, type) (a site's first row changes from zero).
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

-- Every snapshot with the change of its state's totals since the state's previous snapshot.
CREATE VIEW snapshot_changes AS
SELECT id AS snapshot_id, run_id, state_id, time_ms, kind, live_bytes, gc_live_bytes,
       live_bytes - coalesce(lag(live_bytes) OVER state_order, live_bytes) AS live_change,
       gc_live_bytes - coalesce(lag(gc_live_bytes) OVER state_order, gc_live_bytes) AS gc_live_change,
       alloc_bytes - coalesce(lag(alloc_bytes) OVER state_order, alloc_bytes) AS alloc_change
FROM snapshots
WINDOW state_order AS (PARTITION BY state_id ORDER BY id);
