//! Cancelling: a task with its attempts in flight and their threads, every unfinished
//! task of a run, and the run itself (`run close --cancel`).

use super::attempts::{end_attempt, live_attempts};
use super::changes::{Act, Changes};
use super::model::{invalid_transition, Run};
use super::runs::{self, RunRow};
use super::status::{AttemptStatus, RunStatus, TaskStatus, FINAL_TASK_SQL};
use super::tasks::{self, get_row, TaskRow};
use crate::error::Result;
use crate::inbox;
use crate::orch::tasks::Transition;
use rusqlite::Connection;

/// Cancels a task: its attempt in flight and that attempt's thread, then the task itself.
/// Returns false when it was cancelled already; a done task is refused.
pub fn cancel_task(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    task: &TaskRow,
    reason: &str,
) -> Result<bool> {
    cancel(conn, cfg, &Act::now(&cfg.leader), changes, task, reason)
}

/// Ends every live attempt of a task (cancelling its thread) and cancels the task.
/// Returns false when it was cancelled already.
pub(crate) fn cancel(
    conn: &Connection,
    cfg: &inbox::Config,
    act: &Act<'_>,
    changes: &mut Changes,
    task: &TaskRow,
    reason: &str,
) -> Result<bool> {
    match task.status {
        TaskStatus::Cancelled => return Ok(false),
        TaskStatus::Done => {
            return Err(invalid_transition(format!("task {} is done", task.key))
                .hint("a done task stays done; add a new task for more work")
                .detail("task", task.key.clone()))
        }
        _ => {}
    }
    cancel_attempts(conn, cfg, act, changes, task, reason)?;
    tasks::set_status(
        conn,
        act,
        changes,
        &task.run,
        &task.key,
        Transition::new(task.status, TaskStatus::Cancelled).by(task.current_attempt),
    )?;
    Ok(true)
}

/// Cancels the live attempts of a task and their threads; the task itself is untouched.
pub(crate) fn cancel_attempts(
    conn: &Connection,
    cfg: &inbox::Config,
    act: &Act<'_>,
    changes: &mut Changes,
    task: &TaskRow,
    reason: &str,
) -> Result<()> {
    for attempt in live_attempts(conn, &task.run, &task.key)? {
        end_attempt(
            conn,
            cfg,
            act,
            changes,
            &attempt,
            AttemptStatus::Cancelled,
            reason,
        )?;
    }
    Ok(())
}

/// `run close --cancel`: cancels the run's unfinished tasks and their threads, then the
/// run.
pub fn cancel_run(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    row: &RunRow,
) -> Result<Run> {
    row.require_active()?;
    let act = Act::now(&cfg.leader);
    let keys: Vec<String> = conn
        .prepare_cached(&format!(
            "SELECT key FROM tasks WHERE run = ?1 AND status NOT IN {FINAL_TASK_SQL} ORDER BY id"
        ))?
        .query_map([&row.name], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for key in keys {
        let task = get_row(conn, &row.name, &key)?;
        cancel(conn, cfg, &act, changes, &task, "run cancelled")?;
    }
    runs::end(conn, &act, changes, row, RunStatus::Cancelled)
}
