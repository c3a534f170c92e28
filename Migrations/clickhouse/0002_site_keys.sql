-- Rows by numbers. A fleet question reads every row of the runs it covers; grouping those rows
-- by strings (a run's UUID, a site's names, its object type) costs more than reading them.
-- site_stats gains two numbers the server computes as rows arrive: `run_key`, a hash of the
-- run's UUID, and `site_key`, a hash of the site's names and the object type; `sites` maps each
-- site_key back to its names (one row per site and type, however many runs and rows have it).
-- Queries group rows by (run_key, state_id, site_key) and look names up at the end.
-- Applied once, when site_stats has no site_key (a store made by the first fleet schema).

ALTER TABLE {database}.site_stats ADD COLUMN run_key UInt64 MATERIALIZED cityHash64(run_uuid);

ALTER TABLE {database}.site_stats
    ADD COLUMN site_key UInt64 MATERIALIZED cityHash64(file, line, line_defined, function, c_function, stack, type);

CREATE TABLE IF NOT EXISTS {database}.sites (
    site_key     UInt64,
    file         String,
    line         Int64,
    line_defined Int64,
    function     String,
    c_function   String,
    stack        String,
    type         String
) ENGINE = ReplacingMergeTree ORDER BY site_key;

-- Every block of rows shipped adds its sites (a ReplacingMergeTree keeps one row per key).
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.sites_of_site_stats TO {database}.sites AS
SELECT DISTINCT cityHash64(file, line, line_defined, function, c_function, stack, type) AS site_key,
       file, line, line_defined, function, c_function, stack, type
FROM {database}.site_stats;

-- The sites of the rows already there.
INSERT INTO {database}.sites
SELECT DISTINCT cityHash64(file, line, line_defined, function, c_function, stack, type) AS site_key,
       file, line, line_defined, function, c_function, stack, type
FROM {database}.site_stats;
