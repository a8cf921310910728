//! Attempts as rows: the columns every query reads them with, the status change every
//! caller goes through, and `end_attempt`, the one way an attempt ends together with its
//! thread. Attempts never read tasks.

use super::changes::{Act, Changes};
use super::model::{signal_name, Attempt, AttemptId, Launch};
use super::status::{AttemptStatus, LIVE_ATTEMPT_SQL};
use crate::error::{Error, Result};
use crate::inbox::{self, Failure, Thread};
use crate::store::events::NewEvent;
use crate::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Deserialize;

/// Attempt columns in the order [`attempt_from_row`] reads them (the last two are the
/// thread's `updated_at` as reconcile last saw it).
pub(crate) const ATTEMPT_COLUMNS: &str = "a.id, a.run, a.task, a.n, a.agent, a.to_addr, a.status, a.thread_id, \
     a.worktree, a.branch, a.base_ref, a.base_sha, a.head_sha, a.commits, a.started_at, a.ended_at, \
     a.fail_reason, a.fail_retryable, a.seen_updated_at, a.seen_updated_ms, \
     json_extract(a.data, '$.bases_ref'), json_extract(a.data, '$.rescue_ref'), \
     json_extract(a.data, '$.worktree_removed_at'), json_extract(a.data, '$.branch_deleted_at'), \
     (SELECT json_object('profile', l.profile, 'agent', l.agent, 'pid', l.pid, 'log', l.log, \
       'started_at', l.started_at, 'exit_code', l.exit_code, 'signal', l.signal, \
       'ended_at', l.ended_at, 'stalled', l.stalled, 'supervisor_pid', l.supervisor_pid) \
      FROM launches l WHERE l.attempt_id = a.id)";

/// How many columns [`ATTEMPT_COLUMNS`] has.
pub(crate) const ATTEMPT_WIDTH: usize = 25;

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
        id: AttemptId(id),
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
        launch: launch_from_column(row.get(at + 24)?),
    };
    let seen: Option<String> = row.get(at + 18)?;
    let seen_ms: Option<i64> = row.get(at + 19)?;
    Ok(Some((attempt, seen.zip(seen_ms))))
}

/// The attempts of a task that are not over yet, oldest first.
pub(crate) fn live_attempts(conn: &Connection, run: &str, task: &str) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a
         WHERE a.run = ?1 AND a.task = ?2 AND a.status IN {LIVE_ATTEMPT_SQL} ORDER BY a.id"
    ))?;
    let rows = stmt
        .query_map(params![run, task], |r| attempt_from_row(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().flatten().collect())
}

pub fn get_attempt(conn: &Connection, id: AttemptId) -> Result<Attempt> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.id = ?1"
    ))?;
    stmt.query_row([id], |r| attempt_from_row(r, 0))
        .optional()?
        .flatten()
        .ok_or_else(|| Error::not_found(format!("attempt {id} does not exist")))
}

/// Enough of an attempt to change its status and name it in events.
#[derive(Debug, Clone)]
pub(crate) struct AttemptRef {
    pub id: AttemptId,
    pub run: String,
    pub task: String,
    pub thread: Option<i64>,
}

impl From<&Attempt> for AttemptRef {
    fn from(attempt: &Attempt) -> Self {
        AttemptRef {
            id: attempt.id,
            run: attempt.run.clone(),
            task: attempt.task.clone(),
            thread: attempt.thread,
        }
    }
}

/// Moves an attempt to `to`, remembering what it saw of its thread, and records the event.
pub(crate) fn set_attempt_status(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    attempt: &AttemptRef,
    from: AttemptStatus,
    to: AttemptStatus,
    thread: Option<&Thread>,
) -> Result<()> {
    let ended = !to.is_live();
    conn.prepare_cached(
        "UPDATE attempts SET status = ?2,
                ended_at = CASE WHEN ?3 THEN coalesce(ended_at, ?4) ELSE NULL END
         WHERE id = ?1",
    )?
    .execute(params![attempt.id, to, ended, act.now])?;
    if let Some(thread) = thread {
        // A closed thread keeps its last holder: the agent even when reconcile never saw
        // the claim (claimed and finished between two looks).
        let holder = thread.claimed_by.as_deref();
        conn.prepare_cached(
            "UPDATE attempts SET agent = coalesce(?2, agent), seen_status = ?3, seen_awaiting = ?4,
                    seen_claims = ?5, fail_reason = ?7, fail_retryable = ?8,
                    seen_updated_ms = CASE WHEN seen_updated_at IS ?6 THEN seen_updated_ms ELSE ?9 END,
                    seen_updated_at = ?6
             WHERE id = ?1",
        )?
        .execute(params![
            attempt.id,
            holder,
            thread.status,
            thread.awaiting_reply,
            thread.claim_count,
            thread.updated_at,
            thread.failure.as_ref().map(|f| f.reason.as_str()),
            thread.failure.as_ref().map(|f| f.retryable),
            act.now,
        ])?;
    }
    if from != to {
        changes.emit(
            conn,
            act,
            NewEvent {
                kind: "attempt.status",
                thread: attempt.thread,
                run: Some(&attempt.run),
                task: Some(&attempt.task),
                attempt: Some(attempt.id.0),
                from: Some(from.as_str()),
                to: Some(to.as_str()),
                ..NewEvent::default()
            },
        )?;
    }
    Ok(())
}

/// Ends `attempt` as `to`: its thread is cancelled with `reason` first when still open
/// (so no worker takes it up again), then the attempt is marked, remembering the thread
/// as it now stands. The task is the caller's business.
pub(crate) fn end_attempt(
    conn: &Connection,
    cfg: &inbox::Config,
    act: &Act<'_>,
    changes: &mut Changes,
    attempt: &Attempt,
    to: AttemptStatus,
    reason: &str,
) -> Result<()> {
    let mut seen = None;
    if let Some(thread_id) = attempt.thread {
        let thread = inbox::get_thread(conn, thread_id)?;
        seen = Some(if thread.is_closed() {
            thread
        } else {
            inbox::cancel(conn, cfg, &cfg.leader, thread_id, reason)?.thread
        });
    }
    set_attempt_status(
        conn,
        act,
        changes,
        &AttemptRef::from(attempt),
        attempt.status,
        to,
        seen.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orch::dispatch::{dispatch_one, NoWorkspaces, Request};
    use crate::orch::tasks;
    use crate::orch::Orch;
    use crate::store::Store;

    /// A store in a temp dir with run `r1`, task `a` dispatched to `@workers`.
    fn dispatched(dir: &std::path::Path) -> (Store, Attempt) {
        let (mut store, run) = crate::orch::fixtures::store_with_task(dir);
        let cfg = inbox::Config::default();
        let req = Request {
            key: "a",
            ..Request::default()
        };
        let attempt =
            dispatch_one(&mut Orch::new(&mut store, cfg), &NoWorkspaces, &run, &req).unwrap();
        (store, attempt)
    }

    #[test]
    fn end_attempt_cancels_the_open_thread_then_marks_the_attempt_once() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut store, attempt) = dispatched(&tmp.path().join("orch"));
        let cfg = inbox::Config::default();
        let end = |store: &mut Store| {
            store
                .write(|tx| {
                    let attempt = get_attempt(tx, attempt.id)?;
                    let mut changes = Changes::default();
                    let act = Act::now(&cfg.leader);
                    end_attempt(
                        tx,
                        &cfg,
                        &act,
                        &mut changes,
                        &attempt,
                        AttemptStatus::Lost,
                        "gone",
                    )?;
                    Ok(changes.events)
                })
                .unwrap()
        };

        let events = end(&mut store);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "attempt.status");
        assert_eq!(events[0].from.as_deref(), Some("dispatched"));
        assert_eq!(events[0].to.as_deref(), Some("lost"));
        let (ended, thread) = store
            .read(|tx| {
                let a = get_attempt(tx, attempt.id)?;
                Ok((a, inbox::get_thread(tx, attempt.thread.unwrap())?))
            })
            .unwrap();
        assert_eq!(ended.status, AttemptStatus::Lost);
        assert!(ended.ended_at.is_some());
        assert_eq!(thread.status, inbox::ThreadStatus::Cancelled);

        // Again: the thread is closed already and the status stays, so nothing is added.
        assert!(end(&mut store).is_empty());
        let task = store.read(|tx| tasks::get_row(tx, "r1", "a")).unwrap();
        assert_eq!(
            task.status,
            crate::orch::TaskStatus::Dispatched,
            "the task is the caller's"
        );
    }
}

#[derive(Deserialize)]
struct LaunchRow {
    profile: String,
    agent: String,
    pid: Option<i64>,
    log: String,
    started_at: Option<i64>,
    exit_code: Option<i64>,
    signal: Option<i32>,
    ended_at: Option<i64>,
    stalled: i64,
    supervisor_pid: Option<i64>,
}

/// Reads the `launch` column of [`ATTEMPT_COLUMNS`]: the row as one JSON text, or null.
pub(crate) fn launch_from_column(text: Option<String>) -> Option<Launch> {
    let row: LaunchRow = serde_json::from_str(&text?).ok()?;
    Some(Launch {
        profile: row.profile,
        agent: row.agent,
        pid: row.pid,
        log: row.log,
        started_at: row.started_at.map(rfc3339),
        exit_code: row.exit_code,
        signal: row.signal.map(signal_name),
        ended_at: row.ended_at.map(rfc3339),
        stalled: row.stalled != 0,
        supervisor_pid: row.supervisor_pid,
    })
}
