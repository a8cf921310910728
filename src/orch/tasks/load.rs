//! Reading tasks as JSON: tasks with their current attempts and dependencies in one
//! query whatever their number, a task's attempts, and the question that blocks it.

use crate::error::{Error, Result};
use crate::inbox;
use crate::names::check_name;
use crate::orch::attempts::{attempt_and_activity, attempt_from_row, Activity, ATTEMPT_COLUMNS};
use crate::orch::model::{Attempt, Task};
use crate::orch::status::TaskStatus;
use crate::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

/// Which tasks of a run to read, and in what order.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Every task, oldest first.
    All,
    /// Tasks in one status, oldest first.
    Status(TaskStatus),
    /// Ready tasks: priority high first, then oldest.
    Ready,
    /// One task.
    Key(&'a str),
    /// Tasks with ids in `(after, last]`, oldest first: what one import wrote, without
    /// reading the rest of the run.
    Ids { after: i64, last: i64 },
}

const TASK_COLUMNS: &str = "t.run, t.key, t.title, t.body, t.kind, t.status, t.to_addr, t.priority, \
     t.max_attempts, t.attempts, t.blocked_reason, t.blocked_detail, t.base, t.created_at, t.updated_at, \
     t.landed_at, t.landed_commit, t.after_keys, t.profile";
const TASK_COLUMN_COUNT: usize = 19;

/// Tasks with their current attempts and dependencies, one query for the tasks and a
/// look-up by id for each current attempt.
pub fn load(conn: &Connection, run: &str, select: Select<'_>) -> Result<Vec<Task>> {
    let mut tasks = Vec::new();
    each(conn, run, select, |task| {
        tasks.push(task);
        Ok(())
    })?;
    Ok(tasks)
}

/// The tasks `select` names, in its order, handed to `each` one at a time as they are
/// read: memory stays flat whatever the size of the run (a 100k-task `status` held
/// 250 MB as a vector). Dependencies come from the task's own row (`after_keys`, kept
/// by triggers from `deps`), so no task costs a look-up of its own.
pub fn each(
    conn: &Connection,
    run: &str,
    select: Select<'_>,
    mut each: impl FnMut(Task) -> Result<()>,
) -> Result<()> {
    each_row(conn, run, select, |row, current| {
        each(row_to_task(row, current)?)
    })
}

/// A task's current attempt, and when reconcile last saw its thread move.
pub(super) type Current = Option<(Attempt, Activity)>;

/// The rows of [`each`] ([`TASK_COLUMNS`]) with their current attempts.
///
/// The attempt is looked up by id, not joined: a join hands over its 25 columns (and
/// runs the launch subquery) for every task, attempt or not, which at 100k tasks with
/// 50 in flight was a third of SQLite's time in `status --json`. A run whose tasks
/// all have attempts pays one indexed look-up per task instead.
pub(super) fn each_row(
    conn: &Connection,
    run: &str,
    select: Select<'_>,
    mut each: impl FnMut(&rusqlite::Row<'_>, Current) -> Result<()>,
) -> Result<()> {
    let (filter, order) = match select {
        Select::All => ("", "t.id"),
        Select::Status(_) => ("AND t.status = ?2", "t.id"),
        Select::Ready => ("AND t.status = 'ready'", "t.priority DESC, t.id"),
        Select::Key(_) => ("AND t.key = ?2", "t.id"),
        Select::Ids { .. } => ("AND t.id > ?2 AND t.id <= ?3", "t.id"),
    };
    let sql = format!(
        "SELECT {TASK_COLUMNS}, t.current_attempt FROM tasks t
         WHERE t.run = ?1 {filter} ORDER BY {order}"
    );
    let mut attempt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.id = ?1"
    ))?;
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = match select {
        Select::All | Select::Ready => stmt.query([run])?,
        Select::Status(status) => stmt.query(params![run, status])?,
        Select::Key(key) => stmt.query(params![run, key])?,
        Select::Ids { after, last } => stmt.query(params![run, after, last])?,
    };
    while let Some(row) = rows.next()? {
        let current = match row.get::<_, Option<i64>>(TASK_COLUMN_COUNT)? {
            Some(id) => attempt
                .query_row([id], |r| attempt_and_activity(r, 0))
                .optional()?
                .flatten(),
            None => None,
        };
        each(row, current)?;
    }
    Ok(())
}

fn row_to_task(r: &rusqlite::Row<'_>, current: Current) -> rusqlite::Result<Task> {
    let detail: Option<String> = r.get(11)?;
    let updated_ms: i64 = r.get(14)?;
    let updated_at = rfc3339(updated_ms);
    let (mut last_activity_at, mut last_activity_ms) = (updated_at.clone(), updated_ms);
    if let Some((_, Some((seen, seen_ms)))) = &current {
        // RFC 3339 with fixed width compares like the times it names.
        if *seen > last_activity_at {
            last_activity_at = seen.clone();
            last_activity_ms = *seen_ms;
        }
    }
    // Task names never hold a newline (see `names`), so it separates them.
    let mut after: Vec<String> = r
        .get::<_, Option<String>>(17)?
        .map_or_else(Vec::new, |keys| {
            keys.split('\n').map(str::to_owned).collect()
        });
    after.sort_unstable();
    Ok(Task {
        run: r.get(0)?,
        key: r.get(1)?,
        title: r.get(2)?,
        body: r.get(3)?,
        kind: r.get(4)?,
        status: r.get(5)?,
        to: r.get(6)?,
        after,
        priority: r.get(7)?,
        max_attempts: r.get(8)?,
        attempts: r.get(9)?,
        current_attempt: current.map(|(a, _)| a),
        blocked_reason: r.get(10)?,
        blocked_detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(Value::Null),
        base: r.get(12)?,
        landed_at: r.get::<_, Option<i64>>(15)?.map(rfc3339),
        landed_commit: r.get(16)?,
        profile: r.get(18)?,
        created_at: rfc3339(r.get(13)?),
        updated_at,
        last_activity_at,
        last_activity_ms,
    })
}

pub fn load_one(conn: &Connection, run: &str, key: &str) -> Result<Task> {
    check_name("task", key)?;
    load(conn, run, Select::Key(key))?.pop().ok_or_else(|| {
        Error::not_found(format!("task {key} does not exist in run {run}"))
            .hint("list the run's tasks with `git orch task list`")
            .detail("run", run)
            .detail("task", key)
    })
}

/// Every attempt of a task, first to last.
pub fn attempts(conn: &Connection, run: &str, key: &str) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.run = ?1 AND a.task = ?2 ORDER BY a.n"
    ))?;
    let rows = stmt
        .query_map(params![run, key], |r| attempt_from_row(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().flatten().collect())
}

/// Why a task is blocked by a question: the open question on its thread.
pub(crate) fn question_detail(conn: &Connection, thread: i64) -> Result<Value> {
    let messages = inbox::thread_messages(conn, thread)?;
    Ok(match messages.iter().rev().find(|m| m.kind == "ask") {
        Some(ask) => json!({
            "question": ask.body, "message": ask.id, "thread": thread,
            "asked_by": ask.author, "asked_at": ask.created_at,
        }),
        None => json!({"thread": thread}),
    })
}
