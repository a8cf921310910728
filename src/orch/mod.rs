//! Orch: the leader's scheduler (SPEC §6). Runs hold a DAG of tasks; a task is carried
//! out by attempts, each of which is one inbox thread of kind `task`.
//!
//! Orch sits above the inbox: it reads threads and writes messages through the inbox's
//! transaction-level functions, and the inbox never learns what a run or a task is. The
//! mapping from threads back to attempts and tasks is [`reconcile`], which every command
//! that shows or changes state runs first, cheaply.
//!
//! Like the inbox, functions that change state take the open transaction (`&Connection`
//! inside [`Store::write`]); the multi-step pipelines (dispatch, waits) drive the store
//! themselves so that no transaction is held across git work or waiting.

pub mod cleanup;
pub mod dispatch;
pub mod reconcile;
pub mod repair;
pub mod runs;
pub mod tasks;
pub mod waits;
pub mod worktrees;

use crate::error::{Code, Error, Result};
use crate::inbox::{self, Failure};
use crate::repo::Repo;
use crate::store::events::{self, Event, NewEvent};
use crate::store::Store;
use crate::time::rfc3339;
use rusqlite::{Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::Value;

pub use dispatch::{NoWorkspaces, Step, Workspace, Workspaces};
pub use worktrees::GitWorkspaces;

/// Task statuses in the order tables and counts show them.
pub const TASK_STATUSES: [&str; 8] = [
    "pending",
    "ready",
    "dispatched",
    "running",
    "blocked",
    "done",
    "failed",
    "cancelled",
];

/// Attempt statuses of an attempt that is not over yet (SQL list form).
pub(crate) const LIVE_ATTEMPT_SQL: &str = "('preparing', 'dispatched', 'running', 'blocked')";

pub fn is_live_attempt(status: &str) -> bool {
    matches!(status, "preparing" | "dispatched" | "running" | "blocked")
}

/// Task statuses in which a task has an attempt in flight.
pub fn is_active_task(status: &str) -> bool {
    matches!(status, "dispatched" | "running" | "blocked")
}

/// Task statuses that no reconcile changes any more.
pub fn is_final_task(status: &str) -> bool {
    matches!(status, "done" | "failed" | "cancelled")
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub name: String,
    pub title: String,
    pub status: String,
    pub base_ref: Option<String>,
    pub kind: String,
    pub created_at: String,
    pub counts: Counts,
}

/// Tasks of a run by status; every status is always present.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Counts {
    pub pending: i64,
    pub ready: i64,
    pub dispatched: i64,
    pub running: i64,
    pub blocked: i64,
    pub done: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub total: i64,
}

impl Counts {
    pub fn add(&mut self, status: &str, n: i64) {
        let slot = match status {
            "pending" => &mut self.pending,
            "ready" => &mut self.ready,
            "dispatched" => &mut self.dispatched,
            "running" => &mut self.running,
            "blocked" => &mut self.blocked,
            "done" => &mut self.done,
            "failed" => &mut self.failed,
            "cancelled" => &mut self.cancelled,
            _ => return,
        };
        *slot += n;
        self.total += n;
    }

    pub fn get(&self, status: &str) -> i64 {
        match status {
            "pending" => self.pending,
            "ready" => self.ready,
            "dispatched" => self.dispatched,
            "running" => self.running,
            "blocked" => self.blocked,
            "done" => self.done,
            "failed" => self.failed,
            "cancelled" => self.cancelled,
            _ => 0,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub run: String,
    pub key: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub status: String,
    pub to: String,
    pub after: Vec<String>,
    pub priority: i64,
    pub max_attempts: i64,
    pub attempts: i64,
    pub current_attempt: Option<Attempt>,
    pub blocked_reason: Option<String>,
    /// The open question (`question`, `message`, `thread`, `asked_by`, `asked_at`) or the
    /// conflict behind `blocked_reason`; null when not blocked.
    pub blocked_detail: Value,
    pub base: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The latest change to the task or to its current attempt's thread.
    pub last_activity_at: String,
    /// `last_activity_at` in Unix milliseconds, for ages shown to people.
    #[serde(skip)]
    pub last_activity_ms: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Attempt {
    pub id: i64,
    pub run: String,
    pub task: String,
    pub n: i64,
    pub agent: Option<String>,
    /// Where its thread was sent: an agent or `@queue`.
    pub to: String,
    pub status: String,
    pub thread: Option<i64>,
    pub worktree: Option<String>,
    pub branch: Option<String>,
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    pub head_sha: Option<String>,
    pub commits: i64,
    pub started_at: String,
    pub ended_at: Option<String>,
    /// Why its thread failed, when it did.
    pub failure: Option<Failure>,
    /// `refs/orch/bases/<run>/<task>-<n>`: the merge of several dependencies it started from.
    pub bases_ref: Option<String>,
    /// Where `cleanup --force` saved uncommitted work before removing the worktree.
    pub rescue_ref: Option<String>,
    /// When `cleanup` removed its worktree (the path is kept for the record).
    pub worktree_removed_at: Option<String>,
    /// When `cleanup --prune-branches` deleted its branch.
    pub branch_deleted_at: Option<String>,
}

/// Attempt columns in the order [`attempt_from_row`] reads them (the last two are the
/// thread's `updated_at` as reconcile last saw it).
pub(crate) const ATTEMPT_COLUMNS: &str = "a.id, a.run, a.task, a.n, a.agent, a.to_addr, a.status, a.thread_id, \
     a.worktree, a.branch, a.base_ref, a.base_sha, a.head_sha, a.commits, a.started_at, a.ended_at, \
     a.fail_reason, a.fail_retryable, a.seen_updated_at, a.seen_updated_ms, \
     json_extract(a.data, '$.bases_ref'), json_extract(a.data, '$.rescue_ref'), \
     json_extract(a.data, '$.worktree_removed_at'), json_extract(a.data, '$.branch_deleted_at')";

/// Reads an attempt starting at column `at`; `None` when the (left-joined) id is null.
/// Also returns when its thread last changed, as far as reconcile has seen.
pub(crate) fn attempt_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Option<Attempt>> {
    Ok(attempt_and_activity(row, at)?.map(|(a, _)| a))
}

/// When reconcile last saw an attempt's thread move: RFC 3339 and Unix milliseconds.
pub(crate) type Activity = Option<(String, i64)>;

pub(crate) fn attempt_and_activity(
    row: &Row<'_>,
    at: usize,
) -> rusqlite::Result<Option<(Attempt, Activity)>> {
    let Some(id) = row.get::<_, Option<i64>>(at)? else {
        return Ok(None);
    };
    let fail_reason: Option<String> = row.get(at + 16)?;
    let retryable: Option<bool> = row.get(at + 17)?;
    let attempt = Attempt {
        id,
        run: row.get(at + 1)?,
        task: row.get(at + 2)?,
        n: row.get(at + 3)?,
        agent: row.get(at + 4)?,
        to: row.get(at + 5)?,
        status: row.get(at + 6)?,
        thread: row.get(at + 7)?,
        worktree: row.get(at + 8)?,
        branch: row.get(at + 9)?,
        base_ref: row.get(at + 10)?,
        base_sha: row.get(at + 11)?,
        head_sha: row.get(at + 12)?,
        commits: row.get(at + 13)?,
        started_at: rfc3339(row.get(at + 14)?),
        ended_at: row.get::<_, Option<i64>>(at + 15)?.map(rfc3339),
        failure: fail_reason.map(|reason| Failure {
            reason,
            retryable: retryable.unwrap_or(false),
        }),
        bases_ref: row.get(at + 20)?,
        rescue_ref: row.get(at + 21)?,
        worktree_removed_at: row.get::<_, Option<i64>>(at + 22)?.map(rfc3339),
        branch_deleted_at: row.get::<_, Option<i64>>(at + 23)?.map(rfc3339),
    };
    let seen: Option<String> = row.get(at + 18)?;
    let seen_ms: Option<i64> = row.get(at + 19)?;
    Ok(Some((attempt, seen.zip(seen_ms))))
}

pub fn get_attempt(conn: &Connection, id: i64) -> Result<Attempt> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.id = ?1"
    ))?;
    stmt.query_row([id], |r| attempt_from_row(r, 0))
        .optional()?
        .flatten()
        .ok_or_else(|| Error::not_found(format!("attempt {id} does not exist")))
}

/// The events one command appended, in order: what `reconcile` reports as its changes.
#[derive(Debug, Default)]
pub struct Changes {
    pub events: Vec<Event>,
}

/// Who and when: the leader acting, and the transaction's clock.
pub(crate) struct Act<'a> {
    pub now: i64,
    pub leader: &'a str,
}

impl Changes {
    /// Appends an orch event (actor: the leader) and keeps it.
    pub(crate) fn emit(
        &mut self,
        conn: &Connection,
        act: &Act<'_>,
        event: NewEvent<'_>,
    ) -> Result<()> {
        let event = NewEvent {
            actor: Some(act.leader),
            ..event
        };
        let id = events::append(conn, act.now, &event)?;
        self.events.push(Event {
            id,
            at: rfc3339(act.now),
            kind: event.kind.to_owned(),
            thread: event.thread,
            run: event.run.map(str::to_owned),
            task: event.task.map(str::to_owned),
            attempt: event.attempt,
            from: event.from.map(str::to_owned),
            to: event.to.map(str::to_owned),
            actor: event.actor.map(str::to_owned),
            data: event
                .data
                .unwrap_or_else(|| Value::Object(Default::default())),
        });
        Ok(())
    }
}

/// The facade the CLI uses: the store and the settings, one short transaction per step,
/// and the repository when there is one (then reconcile also reads attempt branches and
/// worktrees, and repairs dispatches that died half-way).
pub struct Orch<'s> {
    pub store: &'s mut Store,
    pub cfg: inbox::Config,
    pub repo: Option<&'s Repo>,
}

impl<'s> Orch<'s> {
    pub fn new(store: &'s mut Store, cfg: inbox::Config) -> Self {
        Orch {
            store,
            cfg,
            repo: None,
        }
    }

    /// The same, reading the repository too.
    pub fn with_repo(store: &'s mut Store, cfg: inbox::Config, repo: &'s Repo) -> Self {
        Orch {
            store,
            cfg,
            repo: Some(repo),
        }
    }

    /// Runs `f` in one write transaction after bringing attempts in line with their
    /// threads, so a change never acts on a stale picture.
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection, &inbox::Config, &mut Changes) -> Result<T>,
    ) -> Result<T> {
        let cfg = &self.cfg;
        self.store.write(|tx| {
            let mut changes = Changes::default();
            reconcile::reconcile_tx(tx, cfg, &mut changes)?;
            f(tx, cfg, &mut changes)
        })
    }

    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.store.read(|tx| f(tx))
    }

    /// Cheap when nothing moved: a read finds no attempt whose thread changed, and no
    /// write lock is taken. With a repository it also reads the live attempts' branch
    /// tips and worktrees, and repairs abandoned dispatches. Returns the events of what
    /// changed.
    pub fn reconcile(&mut self) -> Result<Vec<Event>> {
        match self.repo {
            Some(repo) => repair::reconcile(self.store, &self.cfg, repo, false),
            None => reconcile::reconcile(self.store, &self.cfg),
        }
    }

    /// `git orch reconcile`: [`Orch::reconcile`], and also attempt branches and
    /// worktrees that no attempt owns.
    pub fn reconcile_thorough(&mut self) -> Result<Vec<Event>> {
        match self.repo {
            Some(repo) => repair::reconcile(self.store, &self.cfg, repo, true),
            None => reconcile::reconcile(self.store, &self.cfg),
        }
    }
}

/// A state forbids what was asked.
pub(crate) fn invalid_transition(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidTransition, message)
}

/// Cancels a task: its attempt in flight and that attempt's thread, then the task itself.
/// Returns false when it was cancelled already; a done task is refused.
pub fn cancel_task(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    task: &tasks::TaskRow,
    reason: &str,
) -> Result<bool> {
    let act = Act {
        now: crate::time::now_ms(),
        leader: &cfg.leader,
    };
    tasks::cancel(conn, cfg, &act, changes, task, reason)
}
