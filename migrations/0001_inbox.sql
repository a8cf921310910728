-- The inbox: threads, messages, claims, cursors, subscriptions, artifacts, events.
-- Times are Unix milliseconds (UTC). Ids are AUTOINCREMENT so they are never reused and
-- strictly increase, which read cursors and `watch --since` rely on.

CREATE TABLE threads (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    subject          TEXT    NOT NULL,
    kind             TEXT    NOT NULL CHECK (kind IN ('message', 'task')),
    from_agent       TEXT    NOT NULL,
    to_addr          TEXT    NOT NULL,          -- 'worker-1' or '@workers'
    status           TEXT    NOT NULL CHECK (status IN ('open', 'claimed', 'done', 'failed', 'cancelled')),
    claimed_by       TEXT,
    lease_expires_at INTEGER,
    lease_ms         INTEGER,                   -- the lease length a bare renew extends by
    claim_epoch      INTEGER NOT NULL DEFAULT 0, -- bumped on every new claim: the fence
    claim_count      INTEGER NOT NULL DEFAULT 0,
    expire_count     INTEGER NOT NULL DEFAULT 0,
    awaiting_reply   INTEGER NOT NULL DEFAULT 0,
    asked_by         TEXT,
    data             TEXT    NOT NULL DEFAULT '{}',
    result           TEXT,
    fail_reason      TEXT,
    fail_retryable   INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    -- A claimed thread always has a holder and a lease; a closed one keeps who held it last.
    CHECK (status <> 'claimed' OR (claimed_by IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (status = 'claimed' OR lease_expires_at IS NULL)
);
CREATE INDEX threads_by_status_to ON threads (status, to_addr, id);
CREATE INDEX threads_by_from ON threads (from_agent, id);
CREATE INDEX threads_by_lease ON threads (lease_expires_at) WHERE status = 'claimed';

-- Everyone who ever held a claim on a thread, and how their last claim ended.
CREATE TABLE holders (
    thread_id INTEGER NOT NULL REFERENCES threads (id),
    agent     TEXT    NOT NULL,
    epoch     INTEGER NOT NULL,
    ended_by  TEXT CHECK (ended_by IN ('release', 'expire', 'done', 'fail', 'cancel')),
    PRIMARY KEY (thread_id, agent)
) WITHOUT ROWID;
CREATE INDEX holders_by_agent ON holders (agent, thread_id);

CREATE TABLE messages (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    thread_id  INTEGER NOT NULL REFERENCES threads (id),
    author     TEXT    NOT NULL,
    kind       TEXT    NOT NULL CHECK (kind IN ('send', 'update', 'ask', 'reply', 'claim', 'renew',
                                                'release', 'expire', 'progress', 'done', 'fail', 'cancel')),
    body       TEXT    NOT NULL DEFAULT '',
    data       TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX messages_by_thread ON messages (thread_id, id);

CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id INTEGER NOT NULL REFERENCES messages (id),
    name       TEXT    NOT NULL,
    sha256     TEXT    NOT NULL CHECK (length(sha256) = 64),
    size       INTEGER NOT NULL
);
CREATE INDEX artifacts_by_message ON artifacts (message_id);

CREATE TABLE subscriptions (
    agent TEXT NOT NULL,
    queue TEXT NOT NULL,
    PRIMARY KEY (agent, queue)
) WITHOUT ROWID;

CREATE TABLE cursors (
    agent           TEXT PRIMARY KEY,
    last_message_id INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    thread_id   INTEGER,
    run         TEXT,
    task        TEXT,
    attempt     INTEGER,
    from_status TEXT,
    to_status   TEXT,
    actor       TEXT,
    data        TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_by_thread ON events (thread_id, id) WHERE thread_id IS NOT NULL;
CREATE INDEX events_by_run ON events (run, id) WHERE run IS NOT NULL;
