-- A run's identity beyond this file: a random UUID (version 4) recorded when the run starts, so
-- that run 1 of one host's file never meets run 1 of another's when histories are put together
-- (a fleet's files shipped into one store). NULL for runs recorded before this version.
-- host: the run's host label, the machine's host name unless set (--host, LUAMEM_HOST, `host`
-- in luamem.start{}, `.host` in the C API); a fleet's simulated hosts on one machine differ.
ALTER TABLE runs ADD COLUMN uuid TEXT;
CREATE UNIQUE INDEX runs_uuid ON runs(uuid);
