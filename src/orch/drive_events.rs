//! What drive reports: the run's events, as [`DriveEvent`]s.

use super::status::TaskStatus;
use super::tasks;
use crate::error::Result;
use crate::store::events::{self, Event};
use rusqlite::OptionalExtension;
use serde::Serialize;

/// One thing that happened, as drive reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DriveEvent {
    /// `dispatch`, `retry`, `rework` (a dispatch after a land sent the task back),
    /// `commit`, `question`, `answer`, `failure`, `conflict`, `cancelled`, `done`, and
    /// with `--land` `landed` and `sent_back`.
    pub kind: &'static str,
    pub task: String,
    /// The store event it comes from.
    pub event: i64,
    pub at: String,
    pub attempt: Option<i64>,
    pub n: Option<i64>,
    pub agent: Option<String>,
    /// A question's text, a failure's reason, a commit's sha, the commit that landed a
    /// task, or why it was sent back (`land_conflict`, `land_check`).
    pub text: Option<String>,
    /// `sent_back` for a conflict: the conflicting paths.
    pub paths: Option<Vec<String>>,
    /// A failure: whether drive starts another attempt.
    pub retry: Option<bool>,
    /// A question: the command that answers it, from any shell.
    pub answer_with: Option<String>,
}

/// The run's events after `since` as drive reports them, and the last event id seen.
/// Only the kinds [`describe`] reports are read: drive asks after every commit, and
/// most events (messages, claims, renewals) are not reported.
pub(crate) fn news(
    conn: &rusqlite::Connection,
    run: &str,
    since: i64,
) -> Result<(Vec<DriveEvent>, i64)> {
    let last: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), ?1) FROM events")?
        .query_row([since], |r| r.get(0))?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM events e
         WHERE e.run = ?1 AND e.id > ?2 AND e.id <= ?3 AND e.task IS NOT NULL
           AND e.kind IN ('attempt.progress', 'task.landed', 'task.land_rework', 'task.status')
         ORDER BY e.id",
        events::COLUMNS
    ))?;
    let batch = stmt
        .query_map(rusqlite::params![run, since, last], events::from_row)?
        .collect::<rusqlite::Result<Vec<Event>>>()?;
    let mut out = Vec::new();
    for event in &batch {
        if let Some(e) = describe(conn, run, event)? {
            out.push(e);
        }
    }
    Ok((out, last))
}

fn describe(conn: &rusqlite::Connection, run: &str, event: &Event) -> Result<Option<DriveEvent>> {
    let Some(key) = event.task.as_deref() else {
        return Ok(None);
    };
    // Most events (messages, threads, attempts) are not reported: skip their lookups.
    if !matches!(
        event.kind.as_str(),
        "attempt.progress" | "task.landed" | "task.land_rework" | "task.status"
    ) {
        return Ok(None);
    }
    let attempt = event
        .attempt
        .map(|id| super::get_attempt(conn, super::AttemptId(id)))
        .transpose()?;
    let mut out = DriveEvent {
        kind: "",
        task: key.to_owned(),
        event: event.id,
        at: event.at.clone(),
        attempt: event.attempt,
        n: attempt.as_ref().map(|a| a.n),
        agent: attempt.as_ref().and_then(|a| a.agent.clone()),
        text: None,
        paths: None,
        retry: None,
        answer_with: None,
    };
    let parse = |s: Option<&str>| s.and_then(|s| s.parse::<TaskStatus>().ok());
    match event.kind.as_str() {
        "attempt.progress" => {
            out.kind = "commit";
            out.text = event.data["sha"].as_str().map(str::to_owned);
        }
        "task.landed" => {
            out.kind = "landed";
            out.text = event.data["commit"].as_str().map(str::to_owned);
        }
        "task.land_rework" => {
            out.kind = "sent_back";
            out.text = event.data["reason"].as_str().map(str::to_owned);
            out.paths = serde_json::from_value(event.data["paths"].clone()).ok();
        }
        "task.status" => {
            let (from, to) = (parse(event.from.as_deref()), parse(event.to.as_deref()));
            let failure = || {
                attempt
                    .as_ref()
                    .and_then(|a| a.failure.as_ref())
                    .map(|f| f.reason.clone())
            };
            out.kind = match (from, to) {
                (_, Some(TaskStatus::Dispatched)) if is_rework(conn, event.attempt)? => "rework",
                (_, Some(TaskStatus::Dispatched)) if out.n.is_some_and(|n| n > 1) => "retry",
                (_, Some(TaskStatus::Dispatched)) => "dispatch",
                (_, Some(TaskStatus::Done)) => "done",
                (_, Some(TaskStatus::Cancelled)) => "cancelled",
                (_, Some(TaskStatus::Failed)) => {
                    out.text = failure();
                    out.retry = Some(false);
                    "failure"
                }
                (Some(f), Some(TaskStatus::Ready | TaskStatus::Pending)) if f.is_in_flight() => {
                    out.text = failure();
                    out.retry = Some(true);
                    "failure"
                }
                // Sent back by a land: `task.land_rework` says why.
                (Some(TaskStatus::Done), Some(TaskStatus::Blocked)) => return Ok(None),
                (_, Some(TaskStatus::Blocked)) => {
                    let task = tasks::get_row(conn, run, key)?;
                    if task.blocked_reason.as_deref() == Some("question") {
                        let task = tasks::load_one(conn, run, key)?;
                        out.text = task.blocked_detail["question"].as_str().map(str::to_owned);
                        out.answer_with =
                            Some(format!("git orch answer {} --run {run} --body …", key));
                        "question"
                    } else {
                        "conflict"
                    }
                }
                (Some(TaskStatus::Blocked), Some(TaskStatus::Running)) => "answer",
                _ => return Ok(None),
            };
        }
        _ => return Ok(None),
    }
    Ok(Some(out))
}

/// Whether `attempt` is the rework of a result a land sent back.
fn is_rework(conn: &rusqlite::Connection, attempt: Option<i64>) -> Result<bool> {
    let Some(id) = attempt else {
        return Ok(false);
    };
    let rework: Option<bool> = conn
        .prepare_cached("SELECT json_extract(data, '$.land_rework') FROM attempts WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .flatten();
    Ok(rework == Some(true))
}
