-- Records a process left in `<common>/orch/spool/` because the write lock was busy (a
-- hook never waits on us). Each is taken in once: its key is written in the transaction
-- that applies it, so a file deleted late (a crash after the commit) is only removed.
CREATE TABLE spool_taken (
    key      TEXT    PRIMARY KEY,
    taken_at INTEGER NOT NULL
) WITHOUT ROWID;
