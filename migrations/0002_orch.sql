-- Orch: runs, tasks and their dependency DAG, and the attempts that carry a task into an
-- inbox thread. Times are Unix milliseconds (UTC). The inbox tables know nothing of these;
-- attempts point at threads, never the other way round.

CREATE TABLE runs (
    name       TEXT    PRIMARY KEY,
    title      TEXT    NOT NULL,
    status     TEXT    NOT NULL CHECK (status IN ('active', 'closed', 'cancelled')),
    base_ref   TEXT,
    kind       TEXT    NOT NULL DEFAULT 'plan' CHECK (kind IN ('plan', 'council')),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Small key/value settings of the leader, such as the current run.
CREATE TABLE orch_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE tasks (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- creation order breaks priority ties
    run             TEXT    NOT NULL REFERENCES runs (name),
    key             TEXT    NOT NULL,
    title           TEXT    NOT NULL,
    body            TEXT    NOT NULL DEFAULT '',
    kind            TEXT    NOT NULL CHECK (kind IN ('code', 'review', 'chore')),
    to_addr         TEXT    NOT NULL,                   -- 'worker-1' or '@workers'
    priority        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    base            TEXT,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'ready', 'dispatched', 'running',
                                                       'blocked', 'done', 'failed', 'cancelled')),
    blocked_reason  TEXT    CHECK (blocked_reason IN ('question', 'base_conflict')),
    blocked_detail  TEXT,                               -- JSON: the question, or the conflict
    attempts        INTEGER NOT NULL DEFAULT 0,         -- attempts made so far
    current_attempt INTEGER,                            -- the latest attempt's id
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (run, key)
);
-- `ready`: priority high first, then oldest.
CREATE INDEX tasks_by_status ON tasks (run, status, priority DESC, id);

-- `task` depends on `depends_on`, both keys of tasks in `run`.
CREATE TABLE deps (
    run        TEXT NOT NULL,
    task       TEXT NOT NULL,
    depends_on TEXT NOT NULL,
    PRIMARY KEY (run, task, depends_on),
    FOREIGN KEY (run, task) REFERENCES tasks (run, key),
    FOREIGN KEY (run, depends_on) REFERENCES tasks (run, key)
) WITHOUT ROWID;
CREATE INDEX deps_by_dependency ON deps (run, depends_on, task);

CREATE TABLE attempts (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    run           TEXT    NOT NULL,
    task          TEXT    NOT NULL,
    n             INTEGER NOT NULL,                    -- 1 for the task's first attempt
    agent         TEXT,                                -- the addressee, else the claimant
    to_addr       TEXT    NOT NULL,                    -- where its thread was sent
    status        TEXT    NOT NULL CHECK (status IN ('preparing', 'dispatched', 'running', 'blocked',
                                                     'succeeded', 'failed', 'lost', 'cancelled')),
    thread_id     INTEGER REFERENCES threads (id),
    worktree      TEXT,
    branch        TEXT,
    base_ref      TEXT,
    base_sha      TEXT,
    head_sha      TEXT,
    commits       INTEGER NOT NULL DEFAULT 0,
    started_at    INTEGER NOT NULL,
    ended_at      INTEGER,
    data          TEXT    NOT NULL DEFAULT '{}',
    fail_reason   TEXT,                                -- copied from the thread when it failed
    fail_retryable INTEGER,
    -- What reconcile last saw of the thread (orch reads threads only through the inbox
    -- API): a live attempt whose thread still matches needs no write, so reconcile stays
    -- cheap when nothing moved, and listing tasks needs no look at threads at all.
    seen_status   TEXT,
    seen_awaiting INTEGER,
    seen_claims   INTEGER,
    seen_updated_at TEXT,                              -- the thread's updated_at (RFC 3339)
    seen_updated_ms INTEGER,                           -- when reconcile saw it move
    UNIQUE (run, task, n),
    FOREIGN KEY (run, task) REFERENCES tasks (run, key)
);
CREATE INDEX attempts_live ON attempts (status, thread_id)
    WHERE status IN ('preparing', 'dispatched', 'running', 'blocked');
CREATE INDEX attempts_by_thread ON attempts (thread_id);
