-- Launched agents (SPEC §11): one row per attempt whose agent git-orch starts itself,
-- written in the same transaction as the attempt row, filled in by its supervisor.
-- Times are Unix milliseconds (UTC).

CREATE TABLE launches (
    attempt_id     INTEGER PRIMARY KEY REFERENCES attempts (id) ON DELETE CASCADE,
    profile        TEXT    NOT NULL,
    agent          TEXT    NOT NULL,                 -- '<profile>-<attempt id>'
    log            TEXT    NOT NULL,                 -- <common>/orch/logs/<run>/<task>-<n>.log
    supervisor_pid INTEGER,
    pid            INTEGER,                          -- the agent; also its process group
    started_at     INTEGER,                          -- when the agent process started
    exit_code      INTEGER,
    signal         INTEGER,
    ended_at       INTEGER,                          -- when the agent was seen gone
    stalled        INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL
);
CREATE INDEX launches_live ON launches (attempt_id) WHERE ended_at IS NULL;

-- A task may name the profile its launched attempts use (`task add --agent-profile`).
ALTER TABLE tasks ADD COLUMN profile TEXT;
