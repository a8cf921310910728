-- Landing (SPEC §13): when and as which commit a task's result reached its target
-- branch, and two more reasons a task can be blocked: its result conflicts with the
-- target (`land_conflict`) or fails the land check (`land_check`), until its rework
-- attempt is dispatched.

-- SQLite cannot change a CHECK in place; a column constraint goes with its column, so
-- the column is renamed aside, re-added with the wider check, copied and dropped
-- (this keeps the table and every foreign key pointing at it as they are).
ALTER TABLE tasks RENAME COLUMN blocked_reason TO blocked_reason_0002;
ALTER TABLE tasks ADD COLUMN blocked_reason TEXT
    CHECK (blocked_reason IN ('question', 'base_conflict', 'land_conflict', 'land_check'));
UPDATE tasks SET blocked_reason = blocked_reason_0002;
ALTER TABLE tasks DROP COLUMN blocked_reason_0002;

ALTER TABLE tasks ADD COLUMN landed_at INTEGER;      -- Unix ms; NULL until it landed
ALTER TABLE tasks ADD COLUMN landed_commit TEXT;     -- the target commit that brought it in
