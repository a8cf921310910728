//! The one seam for the database: opening `<common>/orch/state.db` with the pragmas we rely
//! on, embedded migrations, the immediate-transaction helper every write goes through, and
//! the change detector blocking waits sleep on (`doorbell`).

use crate::error::{Code, Error, Result};
use doorbell::Bell;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use std::cell::OnceCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Prepared statements a connection keeps (see [`Store::configure`]).
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// Embedded migrations, applied in order; `PRAGMA user_version` is the index of the last.
const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_inbox.sql",
        include_str!("../../migrations/0001_inbox.sql"),
    ),
    (
        "0002_orch.sql",
        include_str!("../../migrations/0002_orch.sql"),
    ),
    (
        "0003_launch.sql",
        include_str!("../../migrations/0003_launch.sql"),
    ),
    (
        "0004_spool.sql",
        include_str!("../../migrations/0004_spool.sql"),
    ),
    (
        "0005_land.sql",
        include_str!("../../migrations/0005_land.sql"),
    ),
    (
        "0006_scale.sql",
        include_str!("../../migrations/0006_scale.sql"),
    ),
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long the WAL may grow before the next writer checkpoints it and starts it over;
/// also the size a restarted WAL is truncated back to (`journal_size_limit`).
const WAL_LIMIT_BYTES: u64 = 512 * 1024;

/// The least time between two checkpoints of a long WAL (see `keep_wal_short`).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// How long a writer waits for the write lock before giving up with `busy`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// The pause between two tries at a lock another connection holds.
const BUSY_PAUSE: Duration = Duration::from_millis(1);

/// Waits for a lock held by another connection: a short fixed pause, up to
/// `BUSY_TIMEOUT` in all. SQLite's own handler backs off to 100 ms pauses, so with many
/// workers queueing for the write lock it sat free while they slept: 16 workers doing
/// claim + done reached 0.39x of what the disk allows. The pauses only happen while a
/// writer holds the lock, which is a few milliseconds per commit.
fn busy_wait(attempt: i32) -> bool {
    let limit = BUSY_TIMEOUT.as_micros() / BUSY_PAUSE.as_micros();
    if u128::try_from(attempt).unwrap_or(u128::MAX) >= limit {
        return false;
    }
    std::thread::sleep(BUSY_PAUSE);
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: an acknowledged write survives a power cut.
    #[default]
    Full,
    /// `synchronous=NORMAL`: faster; the last writes may roll back after a power cut.
    Normal,
}

impl Durability {
    pub fn parse(text: &str) -> Result<Durability> {
        match text {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => Err(
                Error::invalid_input(format!("orch.durability is {other:?}"))
                    .hint("set it to full or normal: git config orch.durability full"),
            ),
        }
    }
}

/// Applies one spooled record (see [`spool`]) inside the transaction that takes it in.
/// The store knows nothing of what a record means; the layer that spooled it does.
pub type SpoolHandler = fn(&Connection, &serde_json::Value) -> Result<()>;

pub struct Store {
    conn: Connection,
    state_dir: PathBuf,
    spool_handler: Option<SpoolHandler>,
    /// Armed by the first wait; `None` inside when notifications are unavailable.
    bell: OnceCell<Option<Bell>>,
}

impl Store {
    pub fn db_path(state_dir: &Path) -> PathBuf {
        state_dir.join("state.db")
    }

    /// Creates the state (directories, database, schema); a no-op when it is all there.
    /// Returns whether anything was created or migrated.
    pub fn init(state_dir: &Path, durability: Durability) -> Result<(Store, bool)> {
        for dir in [
            state_dir.to_path_buf(),
            state_dir.join("artifacts"),
            state_dir.join("logs"),
        ] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let path = Self::db_path(state_dir);
        let existed = path.exists();
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // An empty file is adopted (nothing is in it to lose); content that is not ours is
        // never turned into a fresh database.
        if let Schema::Foreign(reason) = schema_of(&conn, &path)? {
            return Err(invalid_state(&path, &reason));
        }
        let mut store = Store {
            conn,
            state_dir: state_dir.to_path_buf(),
            spool_handler: None,
            bell: OnceCell::new(),
        };
        store.configure(durability)?;
        let migrated = store.migrate()?;
        Ok((store, migrated || !existed))
    }

    /// Opens existing state; `not_initialized` when there is none (or only an empty
    /// file), `invalid_state` when the file is not a git-orch database. Only `init`
    /// creates state: a file without our schema is never migrated into a fresh one.
    pub fn open(state_dir: &Path, durability: Durability) -> Result<Store> {
        let path = Self::db_path(state_dir);
        if !path.exists() {
            return Err(not_initialized(
                "git-orch is not initialized in this repository",
            ));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        match schema_of(&conn, &path)? {
            Schema::Ours => {}
            Schema::Empty => {
                return Err(not_initialized(
                    "git-orch is not initialized in this repository (state.db is empty)",
                )
                .detail("path", crate::paths::lossy(&path)))
            }
            Schema::Foreign(reason) => return Err(invalid_state(&path, &reason)),
        }
        let mut store = Store {
            conn,
            state_dir: state_dir.to_path_buf(),
            spool_handler: None,
            bell: OnceCell::new(),
        };
        store.configure(durability)?;
        store.migrate()?;
        Ok(store)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// How long a write waits for the lock before `busy` (default 15 s). The hooks use a
    /// short one: a commit must never wait on us.
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> Result<()> {
        Ok(self.conn.busy_timeout(timeout)?)
    }

    /// From now on every write first takes in the spooled records, with `handler`.
    pub fn take_spool_with(&mut self, handler: SpoolHandler) {
        self.spool_handler = Some(handler);
    }

    /// Takes in what is spooled now (a directory read when nothing is); returns how many
    /// records were applied. Every write does this first; reconcile calls it even when it
    /// has nothing else to write.
    pub fn take_in_spool(&mut self) -> Result<usize> {
        let applied = match self.spool_handler {
            Some(handler) => spool::take_in(&mut self.conn, &self.state_dir, handler)?,
            None => 0,
        };
        if applied > 0 {
            doorbell::ring(&self.state_dir);
        }
        Ok(applied)
    }

    fn configure(&mut self, durability: Durability) -> Result<()> {
        self.conn.busy_handler(Some(busy_wait))?;
        // rusqlite keeps 16 by default; one dispatch runs about 60 different statements,
        // so a long-lived connection (drive's loop and workers) prepared most of them
        // again every time, least recently used first.
        self.conn
            .set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        self.conn.execute_batch(&format!(
            "PRAGMA foreign_keys = ON; PRAGMA synchronous = {sync}; \
             PRAGMA journal_size_limit = {WAL_LIMIT_BYTES};"
        ))?;
        // Every command is a short process: a checkpoint and WAL deletion at each close
        // would cost every next writer a WAL re-creation and several fsyncs. The WAL is
        // checkpointed by SQLite's automatic checkpoints instead, and kept.
        self.conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
        Ok(())
    }

    fn user_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    /// Applies pending migrations under a file lock, each in its own transaction.
    fn migrate(&mut self) -> Result<bool> {
        let version = self.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(schema_too_new(version));
        }
        if version == SCHEMA_VERSION {
            return Ok(false);
        }
        let lock_path = self.state_dir.join("migrate.lock");
        let lock = File::create(&lock_path)
            .map_err(|e| Error::io(format!("creating {}", lock_path.display()), e))?;
        lock.lock()
            .map_err(|e| Error::io(format!("locking {}", lock_path.display()), e))?;
        // WAL is a property of the file: set once, before any schema exists.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::internal(format!(
                "could not switch the database to WAL (got {mode})"
            )));
        }
        let mut applied = false;
        for (index, (name, sql)) in MIGRATIONS.iter().enumerate() {
            let target = index as i64 + 1;
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Re-read inside the write lock: another process may have migrated meanwhile.
            let current: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
            if current > SCHEMA_VERSION {
                return Err(schema_too_new(current));
            }
            if current >= target {
                continue;
            }
            tx.execute_batch(sql)
                .map_err(|e| Error::internal(format!("migration {name} failed: {e}")))?;
            tx.execute_batch(&format!("PRAGMA user_version = {target}"))?;
            tx.commit()?;
            applied = true;
        }
        drop(lock);
        Ok(applied)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken up front, so a
    /// writer never deadlocks on a lock upgrade. Rolls back on error.
    /// Records spooled while the lock was busy are taken in first, in their own
    /// transaction, so a refused command cannot hold them back.
    pub fn write<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.keep_wal_short();
        self.take_in_spool()?;
        let before = self.conn.total_changes();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        // Only a commit that changed a row moves `data_version`; ringing for the others
        // would only wake waiters for nothing.
        if self.conn.total_changes() != before {
            doorbell::ring(&self.state_dir);
        }
        Ok(value)
    }

    /// Every process's first connection rebuilds SQLite's WAL index by reading and
    /// checksumming every WAL frame since the log last started over, and that rebuild
    /// also forgets which frames were already checkpointed, so with short processes the
    /// log never starts over by itself: it grew to `journal_size_limit` and every
    /// command, readers included, paid for reading all of it (16.7M instructions for a
    /// `fetch --peek` beside a 14 MB WAL, against 3.4M beside a small one). So a writer
    /// that finds the WAL past `WAL_LIMIT_BYTES` checkpoints first (PASSIVE: it never
    /// waits for readers), and its own transaction then starts the log over. A restarted
    /// WAL is cut back to that size, so its length is the measure of frames since.
    ///
    /// Under concurrent writers the log cannot start over (that needs a moment with no
    /// reader in it), so it stayed long and every writer checkpointed the few frames
    /// committed since the last one: two more `fsync`s per commit (16 workers doing
    /// claim + done: 553 WAL and 175 database syncs for 320 commits, and a 13 MB WAL).
    /// In WAL mode only a checkpoint writes the database file, so its mtime is when the
    /// last one ran: a writer checkpoints only when that is `CHECKPOINT_EVERY` ago.
    fn keep_wal_short(&self) {
        let wal = self.state_dir.join("state.db-wal");
        let checkpointed_lately = || {
            std::fs::metadata(Self::db_path(&self.state_dir))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|ago| ago < CHECKPOINT_EVERY)
        };
        if std::fs::metadata(&wal).is_ok_and(|m| m.len() > WAL_LIMIT_BYTES)
            && !checkpointed_lately()
        {
            // Best effort: a checkpoint that cannot run now is retried by the next writer.
            let _ = self
                .conn
                .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        }
    }

    /// Runs `f` in a read transaction: one consistent snapshot for several queries.
    pub fn read<T>(&mut self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.finish()?;
        Ok(value)
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Changes whenever another connection commits (SQLite's `PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64> {
        let mut stmt = self.conn.prepare_cached("PRAGMA data_version")?;
        Ok(stmt.query_row([], |row| row.get(0))?)
    }

    /// Blocks until another process commits or `deadline` passes; returns whether a commit
    /// happened. Sleeps on the doorbell (no wake-ups while nothing commits); where
    /// notifications are unavailable, polls `PRAGMA data_version` (a read of shared memory
    /// in WAL mode) with a short backoff capped at 20 ms.
    ///
    /// `since_version` may have been read before the first call armed the watch: the
    /// version is re-read after arming, so a commit in between is still seen.
    pub fn wait_for_commit(&self, since_version: i64, deadline: Option<Instant>) -> Result<bool> {
        let bell = self
            .bell
            .get_or_init(|| Bell::watch(&self.state_dir))
            .as_ref()
            .filter(|bell| bell.arm());
        // Disarmed on every way out: the waiter that woke is about to answer and exit,
        // and its exit must not wait on the kernel tearing down a live watch.
        let committed = self.sleep_for_commit(bell, since_version, deadline);
        if let Some(bell) = bell {
            bell.disarm();
        }
        committed
    }

    fn sleep_for_commit(
        &self,
        bell: Option<&Bell>,
        since_version: i64,
        deadline: Option<Instant>,
    ) -> Result<bool> {
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(bell) = bell {
                bell.drain();
            }
            if self.data_version()? != since_version {
                return Ok(true);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(false);
            }
            if bell.is_some_and(|bell| bell.sleep(deadline)) {
                continue;
            }
            let mut sleep = pause;
            if let Some(deadline) = deadline {
                sleep = sleep.min(deadline.saturating_duration_since(Instant::now()));
            }
            std::thread::sleep(sleep);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}

/// What `state.db` holds, judged without writing to it.
enum Schema {
    /// Our tables, at some schema version (migrations handle which).
    Ours,
    /// A zero-byte file, or a database with nothing in it.
    Empty,
    /// Content that is not a git-orch database, and why we think so.
    Foreign(String),
}

// Our first migration creates `threads` and `events` and sets user_version: a database
// with both is ours. A file SQLite cannot read at all (random bytes, a truncated header)
// is foreign too, never an error that could read as "try init".
fn schema_of(conn: &Connection, path: &Path) -> Result<Schema> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?
        .len();
    if size == 0 {
        return Ok(Schema::Empty);
    }
    let probe = || -> rusqlite::Result<(i64, i64, i64)> {
        // One snapshot for both reads: a concurrent first `init` commits the schema and
        // its user_version together, and two autocommit reads could straddle that commit
        // (version 0, yet tables) and call our own fresh database foreign.
        let snapshot = conn.unchecked_transaction()?;
        let version = snapshot.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let (tables, ours) = conn.query_row(
            "SELECT count(*), count(*) FILTER (WHERE type = 'table' AND name IN ('threads', 'events'))
             FROM sqlite_master",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        drop(snapshot);
        Ok((version, tables, ours))
    };
    match probe() {
        Ok((version, _, 2)) if version >= 1 => Ok(Schema::Ours),
        Ok((0, 0, _)) => Ok(Schema::Empty),
        Ok((version, tables, _)) => Ok(Schema::Foreign(format!(
            "a SQLite database without the git-orch schema (user_version {version}, {tables} schema objects)"
        ))),
        Err(err) => match err.sqlite_error_code() {
            Some(rusqlite::ffi::ErrorCode::DatabaseBusy | rusqlite::ffi::ErrorCode::DatabaseLocked) => {
                Err(err.into())
            }
            _ => Ok(Schema::Foreign(format!("not a readable SQLite database ({err})"))),
        },
    }
}

fn not_initialized(message: &str) -> Error {
    Error::new(Code::NotInitialized, message)
        .hint("run `git orch init` (or `git inbox init`) once in this repository")
}

fn invalid_state(path: &Path, reason: &str) -> Error {
    Error::new(
        Code::InvalidState,
        format!("{} is not a git-orch database: {reason}", path.display()),
    )
    .hint("nothing was changed; move the file aside (or restore it from a backup), then run `git orch init`")
    .detail("path", crate::paths::lossy(path))
    .detail("reason", reason)
}

fn schema_too_new(version: i64) -> Error {
    Error::new(
        Code::SchemaTooNew,
        format!("the state database has schema version {version}; this binary knows up to {SCHEMA_VERSION}"),
    )
    .hint("install a newer git-orch (cargo install --path .)")
    .detail("schema_version", version)
    .detail("supported", SCHEMA_VERSION)
}

pub mod doorbell;
pub mod events;
pub mod lockfile;
pub mod spool;
#[cfg(test)]
mod tests;
