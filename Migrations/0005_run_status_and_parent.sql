-- How a run ended, which run started it, and when each snapshot's post-GC figures were taken.
--
-- exit_status: the process's exit status when it ended normally (os.exit, the script's end),
--   128 + the signal when luamem saw it die of SIGTERM or SIGHUP; NULL while running, when the
--   process died without a final snapshot, or when the status was not known (a host's exit).
-- parent_id: the run of the same file whose process started this one (through
--   $LUAMEM_PARENT_RUN, which luamem sets for the children of a tracked process); NULL for a
--   top-level run. `luamem runs` shows the tree; commands default to the latest top-level run.
ALTER TABLE runs ADD COLUMN exit_status INTEGER;
ALTER TABLE runs ADD COLUMN parent_id INTEGER;
-- gc_completed_ms: when the state's last completed GC cycle (whose survivors the post-GC
--   figures count) ended; NULL before the first one.
ALTER TABLE snapshots ADD COLUMN gc_completed_ms INTEGER;
