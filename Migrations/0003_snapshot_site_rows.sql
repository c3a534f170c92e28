-- luamem schema, version 3: each snapshot records how many site_stats rows it wrote, so anyone
-- can check that a snapshot is complete (count(site_stats) for it equals site_rows). NULL for
-- snapshots written before this version.
ALTER TABLE snapshots ADD COLUMN site_rows INTEGER;
