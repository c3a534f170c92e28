-- Sites by a number. A fleet question reads every row of the runs it covers; grouping those
-- rows by a site's names (file, function, stack: long strings) costs more than reading them.
-- site_stats gains `site_key`, a hash of the names that the server computes as rows arrive, and
-- `sites` maps each key back to its names (one row per site, however many runs and rows have
-- it): queries group rows by (run, state, site_key, type) and look the names up at the end.
-- Applied once, when site_stats has no site_key (a store made by the first fleet schema).

ALTER TABLE {database}.site_stats
    ADD COLUMN site_key UInt64 MATERIALIZED cityHash64(file, line, line_defined, function, c_function, stack);

CREATE TABLE IF NOT EXISTS {database}.sites (
    site_key     UInt64,
    file         String,
    line         Int64,
    line_defined Int64,
    function     String,
    c_function   String,
    stack        String
) ENGINE = ReplacingMergeTree ORDER BY site_key;

-- Every block of rows shipped adds its sites (a ReplacingMergeTree keeps one row per key).
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.sites_of_site_stats TO {database}.sites AS
SELECT DISTINCT cityHash64(file, line, line_defined, function, c_function, stack) AS site_key,
       file, line, line_defined, function, c_function, stack
FROM {database}.site_stats;

-- The sites of the rows already there.
INSERT INTO {database}.sites
SELECT DISTINCT cityHash64(file, line, line_defined, function, c_function, stack) AS site_key,
       file, line, line_defined, function, c_function, stack
FROM {database}.site_stats;
