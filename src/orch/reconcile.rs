//! Reconcile: bring attempts and tasks in line with their inbox threads (SPEC §6).
//!
//! | thread                          | attempt      | task                                   |
//! | ------------------------------- | ------------ | -------------------------------------- |
//! | open (new, expired or released) | `dispatched` | `dispatched`                           |
//! | claimed                         | `running`    | `running`                              |
//! | claimed, awaiting a reply       | `blocked`    | `blocked` (`question`)                 |
//! | done                            | `succeeded`  | `done`; dependents may become `ready`  |
//! | failed, retryable, attempts left| `failed`     | `ready` (or `pending`)                 |
//! | failed otherwise                | `failed`     | `failed`                               |
//! | failed by too many expiries     | `lost`       | like a retryable failure               |
//! | cancelled                       | `cancelled`  | `cancelled`                            |
//!
//! Each live attempt remembers what it last saw of its thread (status, awaiting_reply,
//! claim_count, updated_at); only attempts whose thread moved are looked at, so a
//! reconcile with nothing to do is a read of the live attempts and their threads, and
//! takes no write lock. Applying the same picture twice changes nothing: idempotent.

use super::attempts::{set_attempt_status, AttemptRef};
use super::changes::{Act, Changes};
use super::dag;
use super::model::AttemptId;
use super::status::{AttemptStatus, TaskStatus, LIVE_ATTEMPT_SQL};
use super::tasks::{self, TaskRow};
use crate::error::Result;
use crate::inbox::{self, Inbox, Thread, ThreadStatus};
use crate::orch::tasks::Transition;
use crate::store::events::Event;
use crate::store::Store;
use rusqlite::Connection;

/// Why the inbox fails a thread whose lease ran out too often.
const LEASE_EXPIRED_TOO_OFTEN: &str = "lease_expired_too_often";

pub(crate) struct Live {
    attempt: AttemptRef,
    status: AttemptStatus,
    seen: (Option<String>, Option<bool>, Option<i64>, Option<String>),
}

/// Live attempts whose thread moved since reconcile last looked, with the thread. A
/// `preparing` attempt belongs to its dispatcher until dispatch's last step.
pub(crate) fn moved(conn: &Connection) -> Result<Vec<(Live, Thread)>> {
    let live: Vec<Live> = conn
        .prepare_cached(&format!(
            "SELECT id, run, task, thread_id, status, seen_status, seen_awaiting, seen_claims, seen_updated_at
             FROM attempts WHERE status IN {LIVE_ATTEMPT_SQL} AND status <> 'preparing' AND thread_id IS NOT NULL
             ORDER BY id"
        ))?
        .query_map([], |r| {
            Ok(Live {
                attempt: AttemptRef {
                    id: r.get(0)?,
                    run: r.get(1)?,
                    task: r.get(2)?,
                    thread: r.get(3)?,
                },
                status: r.get(4)?,
                seen: (r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for live in live {
        let Some(id) = live.attempt.thread else {
            continue;
        };
        let Some(thread) = inbox::find_thread(conn, id)? else {
            continue;
        };
        let (status, awaiting, claims, updated) = &live.seen;
        let same = status.as_deref() == Some(thread.status.as_str())
            && *awaiting == Some(thread.awaiting_reply)
            && *claims == Some(thread.claim_count)
            && updated.as_deref() == Some(thread.updated_at.as_str());
        if !same {
            out.push((live, thread));
        }
    }
    Ok(out)
}

/// Reconciles with as little locking as possible: lease expiries and the look at the
/// threads are reads unless something is due or moved.
pub fn reconcile(store: &mut Store, cfg: &inbox::Config) -> Result<Vec<Event>> {
    Inbox::new(store, cfg.clone()).settle()?;
    if store.read(|tx| moved(tx))?.is_empty() {
        return Ok(Vec::new());
    }
    store.write(|tx| {
        let mut changes = Changes::default();
        reconcile_tx(tx, cfg, &mut changes)?;
        Ok(changes.events)
    })
}

/// Reconciles inside an open write transaction.
pub fn reconcile_tx(conn: &Connection, cfg: &inbox::Config, changes: &mut Changes) -> Result<()> {
    let now = crate::time::now_ms();
    inbox::expire_due(conn, cfg, now)?;
    let act = Act {
        now,
        actor: &cfg.leader,
    };
    for (live, thread) in moved(conn)? {
        apply(conn, &act, changes, &live, &thread)?;
    }
    Ok(())
}

/// The attempt status a thread's state means.
pub fn attempt_status_for(thread: &Thread) -> AttemptStatus {
    match thread.status {
        ThreadStatus::Claimed if thread.awaiting_reply => AttemptStatus::Blocked,
        ThreadStatus::Claimed => AttemptStatus::Running,
        ThreadStatus::Done => AttemptStatus::Succeeded,
        ThreadStatus::Failed
            if thread
                .failure
                .as_ref()
                .is_some_and(|f| f.reason == LEASE_EXPIRED_TOO_OFTEN) =>
        {
            AttemptStatus::Lost
        }
        ThreadStatus::Failed => AttemptStatus::Failed,
        ThreadStatus::Cancelled => AttemptStatus::Cancelled,
        ThreadStatus::Open => AttemptStatus::Dispatched,
    }
}

fn apply(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    live: &Live,
    thread: &Thread,
) -> Result<()> {
    let target = attempt_status_for(thread);
    set_attempt_status(
        conn,
        act,
        changes,
        &live.attempt,
        live.status,
        target,
        Some(thread),
    )?;
    let Some(task) = tasks::find_row(conn, &live.attempt.run, &live.attempt.task)? else {
        return Ok(());
    };
    // Only the task's latest attempt speaks for it; a finished task stays finished.
    if task.current_attempt != Some(live.attempt.id) || task.status.is_final() {
        return Ok(());
    }
    let retryable = thread.failure.as_ref().is_some_and(|f| f.retryable);
    let lost = target == AttemptStatus::Lost;
    let to = match target {
        AttemptStatus::Succeeded => TaskStatus::Done,
        AttemptStatus::Failed | AttemptStatus::Lost
            if (retryable || lost) && task.attempts < task.max_attempts =>
        {
            tasks::waiting_status(conn, &task.run, &task.key)?
        }
        AttemptStatus::Failed | AttemptStatus::Lost => TaskStatus::Failed,
        AttemptStatus::Cancelled => TaskStatus::Cancelled,
        AttemptStatus::Running => TaskStatus::Running,
        AttemptStatus::Blocked => TaskStatus::Blocked,
        // A thread never says `preparing`: that is dispatch's own.
        AttemptStatus::Dispatched | AttemptStatus::Preparing => TaskStatus::Dispatched,
    };
    move_task(conn, act, changes, &task, to, live.attempt.id, thread)
}

fn move_task(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    task: &TaskRow,
    to: TaskStatus,
    attempt: AttemptId,
    thread: &Thread,
) -> Result<()> {
    if to == TaskStatus::Blocked {
        // Refreshed even when already blocked: a second question replaces the first.
        let detail = tasks::question_detail(conn, thread.id)?;
        return tasks::set_status(
            conn,
            act,
            changes,
            &task.run,
            &task.key,
            Transition::new(task.status, to)
                .by(Some(attempt))
                .blocked("question", &detail),
        );
    }
    if task.status == to {
        return Ok(());
    }
    tasks::set_status(
        conn,
        act,
        changes,
        &task.run,
        &task.key,
        Transition::new(task.status, to).by(Some(attempt)),
    )?;
    if to == TaskStatus::Done {
        dag::promote_dependents(conn, act, changes, &task.run, &task.key)?;
    }
    Ok(())
}
