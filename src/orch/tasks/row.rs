//! The stored task row, for decisions, and the one way a task changes status.

use crate::error::{Error, Result};
use crate::names::check_name;
use crate::orch::changes::{Act, Changes};
use crate::orch::model::AttemptId;
use crate::orch::status::TaskStatus;
use crate::store::events::NewEvent;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

/// The stored task row, for decisions (the JSON form is [`Task`]).
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub run: String,
    pub key: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub to: String,
    pub base: Option<String>,
    pub status: TaskStatus,
    pub max_attempts: i64,
    pub attempts: i64,
    pub current_attempt: Option<AttemptId>,
    pub blocked_reason: Option<String>,
    /// What `blocked_reason` refers to (JSON), `Null` when not blocked.
    pub blocked_detail: Value,
}

impl TaskRow {
    /// Blocked because its dependencies' heads conflict: dispatchable again.
    pub fn is_base_conflict(&self) -> bool {
        self.status == TaskStatus::Blocked
            && self.blocked_reason.as_deref() == Some("base_conflict")
    }

    /// Sent back by `git orch land` (its result conflicts with the target, or fails the
    /// land check): dispatchable again, as its rework.
    pub fn is_land_rework(&self) -> bool {
        self.status == TaskStatus::Blocked
            && matches!(
                self.blocked_reason.as_deref(),
                Some("land_conflict" | "land_check")
            )
    }

    /// For a land rework: the integration tip the new attempt starts from, and the note
    /// its brief carries (what conflicted, or the check's output).
    pub fn land_rework(&self) -> Option<(&str, &str)> {
        if !self.is_land_rework() {
            return None;
        }
        let base = self.blocked_detail.get("base")?.as_str()?;
        let note = self.blocked_detail.get("brief")?.as_str()?;
        Some((base, note))
    }
}

pub fn find_row(conn: &Connection, run: &str, key: &str) -> Result<Option<TaskRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT run, key, title, body, kind, to_addr, base, status, max_attempts, attempts, current_attempt,
                    blocked_reason, blocked_detail
             FROM tasks WHERE run = ?1 AND key = ?2",
        )?
        .query_row(params![run, key], |r| {
            Ok(TaskRow {
                run: r.get(0)?,
                key: r.get(1)?,
                title: r.get(2)?,
                body: r.get(3)?,
                kind: r.get(4)?,
                to: r.get(5)?,
                base: r.get(6)?,
                status: r.get(7)?,
                max_attempts: r.get(8)?,
                attempts: r.get(9)?,
                current_attempt: r.get(10)?,
                blocked_reason: r.get(11)?,
                blocked_detail: r
                    .get::<_, Option<String>>(12)?
                    .and_then(|d| serde_json::from_str(&d).ok())
                    .unwrap_or(Value::Null),
            })
        })
        .optional()?)
}

pub fn get_row(conn: &Connection, run: &str, key: &str) -> Result<TaskRow> {
    check_name("task", key)?;
    find_row(conn, run, key)?.ok_or_else(|| {
        Error::not_found(format!("task {key} does not exist in run {run}"))
            .hint("list the run's tasks with `git orch task list`")
            .detail("run", run)
            .detail("task", key)
    })
}

/// Whether every dependency of `key` is done.
pub fn deps_done(conn: &Connection, run: &str, key: &str) -> Result<bool> {
    Ok(!conn
        .prepare_cached(
            "SELECT 1 FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.depends_on
             WHERE d.run = ?1 AND d.task = ?2 AND t.status <> 'done' LIMIT 1",
        )?
        .exists(params![run, key])?)
}

/// What a task waiting for its turn is: `ready` when its dependencies are done.
pub fn waiting_status(conn: &Connection, run: &str, key: &str) -> Result<TaskStatus> {
    Ok(if deps_done(conn, run, key)? {
        TaskStatus::Ready
    } else {
        TaskStatus::Pending
    })
}

/// A task's move from one status to another: which attempt moved it, and why it is
/// blocked when it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transition<'a> {
    pub from: TaskStatus,
    pub to: TaskStatus,
    pub attempt: Option<AttemptId>,
    /// `blocked_reason` and `blocked_detail`; `None` clears them.
    pub blocked: Option<(&'a str, &'a Value)>,
}

impl<'a> Transition<'a> {
    pub(crate) fn new(from: TaskStatus, to: TaskStatus) -> Self {
        Transition {
            from,
            to,
            attempt: None,
            blocked: None,
        }
    }

    /// Moved by `attempt` (`None`: by no attempt).
    pub(crate) fn by(self, attempt: Option<AttemptId>) -> Self {
        Transition { attempt, ..self }
    }

    /// Blocked for `reason`, with what the reason refers to.
    pub(crate) fn blocked(self, reason: &'a str, detail: &'a Value) -> Self {
        Transition {
            blocked: Some((reason, detail)),
            ..self
        }
    }
}

/// Moves task `key` as `change` says and records the event (none when the status stays,
/// as when a second question replaces the first).
pub(crate) fn set_status(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    key: &str,
    change: Transition<'_>,
) -> Result<()> {
    let Transition {
        from,
        to,
        attempt,
        blocked,
    } = change;
    conn.prepare_cached(
        "UPDATE tasks SET status = ?3, blocked_reason = ?4, blocked_detail = ?5, updated_at = ?6
         WHERE run = ?1 AND key = ?2",
    )?
    .execute(params![
        run,
        key,
        to,
        blocked.map(|(reason, _)| reason),
        blocked.map(|(_, detail)| detail.to_string()),
        act.now
    ])?;
    if from != to {
        changes.emit(
            conn,
            act,
            NewEvent {
                kind: "task.status",
                run: Some(run),
                task: Some(key),
                attempt: attempt.map(|a| a.0),
                from: Some(from.as_str()),
                to: Some(to.as_str()),
                ..NewEvent::default()
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orch::tasks as api;
    use crate::store::Store;
    use serde_json::json;

    fn store_with_task(dir: &std::path::Path) -> Store {
        crate::orch::fixtures::store_with_task(dir).0
    }

    fn apply(store: &mut Store, change: Transition<'_>) -> Vec<crate::store::events::Event> {
        store
            .write(|tx| {
                let mut changes = Changes::default();
                set_status(tx, &Act::now("leader"), &mut changes, "r1", "a", change)?;
                Ok(changes.events)
            })
            .unwrap()
    }

    #[test]
    fn a_transition_records_its_event_and_blocked_reason_only_when_it_moves() {
        let tmp = tempfile::tempdir().unwrap();
        let mut store = store_with_task(&tmp.path().join("orch"));
        let detail = json!({"question": "which one?"});

        let blocked =
            Transition::new(TaskStatus::Ready, TaskStatus::Blocked).blocked("question", &detail);
        let events = apply(&mut store, blocked);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "task.status");
        assert_eq!(events[0].from.as_deref(), Some("ready"));
        assert_eq!(events[0].to.as_deref(), Some("blocked"));
        let task = store.read(|tx| api::load_one(tx, "r1", "a")).unwrap();
        assert_eq!(task.status, TaskStatus::Blocked);
        assert_eq!(task.blocked_reason.as_deref(), Some("question"));
        assert_eq!(task.blocked_detail, detail);

        // Staying blocked writes the new detail but no event.
        let again = json!({"question": "and now?"});
        let still =
            Transition::new(TaskStatus::Blocked, TaskStatus::Blocked).blocked("question", &again);
        assert!(apply(&mut store, still).is_empty());
        let task = store.read(|tx| api::load_one(tx, "r1", "a")).unwrap();
        assert_eq!(task.blocked_detail, again);

        // Leaving `blocked` clears the reason.
        let events = apply(
            &mut store,
            Transition::new(TaskStatus::Blocked, TaskStatus::Ready),
        );
        assert_eq!(events.len(), 1);
        let task = store.read(|tx| get_row(tx, "r1", "a")).unwrap();
        assert_eq!(task.status, TaskStatus::Ready);
        assert_eq!(task.blocked_reason, None);
    }
}
