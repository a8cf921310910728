//! The JSON types of orch (`Run`, `Task`, `Attempt`, `Counts`) and the `--status`
//! choices. A leaf beside `status`: it knows no SQL and no other orch module.

use super::status::{AttemptStatus, RunStatus, TaskStatus};
use crate::error::{Code, Error};
use crate::inbox::Failure;
use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use serde_json::Value;

/// Task statuses in the order tables and counts show them (the `--status` choices).
pub const TASK_STATUSES: [&str; 8] = [
    TaskStatus::Pending.as_str(),
    TaskStatus::Ready.as_str(),
    TaskStatus::Dispatched.as_str(),
    TaskStatus::Running.as_str(),
    TaskStatus::Blocked.as_str(),
    TaskStatus::Done.as_str(),
    TaskStatus::Failed.as_str(),
    TaskStatus::Cancelled.as_str(),
];

/// An attempt's id (the `attempts` row), kept apart from the thread ids it sits beside
/// in so many signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AttemptId(pub i64);

impl std::fmt::Display for AttemptId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<AttemptId> for Value {
    fn from(id: AttemptId) -> Self {
        Value::from(id.0)
    }
}

impl ToSql for AttemptId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for AttemptId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        i64::column_result(value).map(AttemptId)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub name: String,
    pub title: String,
    pub status: RunStatus,
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
    /// Tasks not yet at an end: pending, ready, in flight or blocked.
    pub fn open(&self) -> i64 {
        self.pending + self.ready + self.dispatched + self.running + self.blocked
    }

    pub fn add(&mut self, status: TaskStatus, n: i64) {
        *self.slot(status) += n;
        self.total += n;
    }

    pub fn get(&self, status: TaskStatus) -> i64 {
        match status {
            TaskStatus::Pending => self.pending,
            TaskStatus::Ready => self.ready,
            TaskStatus::Dispatched => self.dispatched,
            TaskStatus::Running => self.running,
            TaskStatus::Blocked => self.blocked,
            TaskStatus::Done => self.done,
            TaskStatus::Failed => self.failed,
            TaskStatus::Cancelled => self.cancelled,
        }
    }

    fn slot(&mut self, status: TaskStatus) -> &mut i64 {
        match status {
            TaskStatus::Pending => &mut self.pending,
            TaskStatus::Ready => &mut self.ready,
            TaskStatus::Dispatched => &mut self.dispatched,
            TaskStatus::Running => &mut self.running,
            TaskStatus::Blocked => &mut self.blocked,
            TaskStatus::Done => &mut self.done,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
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
    pub status: TaskStatus,
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
    /// When `git orch land` brought its result onto the target branch (SPEC §13).
    pub landed_at: Option<String>,
    /// The target commit that brought it in: its merge commit, or its head when
    /// fast-forwarded or already contained.
    pub landed_commit: Option<String>,
    /// The launch profile its attempts use (`task add --agent-profile`, plan `profile`).
    pub profile: Option<String>,
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
    pub id: AttemptId,
    pub run: String,
    pub task: String,
    pub n: i64,
    pub agent: Option<String>,
    /// Where its thread was sent: an agent or `@queue`.
    pub to: String,
    pub status: AttemptStatus,
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
    /// The launched agent working on it (SPEC §11); null when nobody was launched.
    pub launch: Option<Launch>,
}

/// A state forbids what was asked.
pub(crate) fn invalid_transition(message: impl Into<String>) -> Error {
    Error::new(Code::InvalidTransition, message)
}

/// Attempt JSON's `launch` (SPEC §11).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Launch {
    pub profile: String,
    pub agent: String,
    pub pid: Option<i64>,
    pub log: String,
    pub started_at: Option<String>,
    pub exit_code: Option<i64>,
    /// The signal that ended the agent, by name (`SIGTERM`).
    pub signal: Option<String>,
    pub ended_at: Option<String>,
    pub stalled: bool,
    /// The supervisor's pid (its session id too); not part of the JSON.
    #[serde(skip)]
    pub supervisor_pid: Option<i64>,
}

/// `SIGTERM` for 15, and so on; the number for signals without a common name.
pub fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return format!("SIG{signal}"),
    };
    name.to_owned()
}
