//! Blocking waits and the event log. Nothing runs in the background: a wait polls the
//! database's change counter (no transaction held), reconciles after every wake, and
//! wakes on its own when a lease runs out so expiries are seen without another process.

use super::facade::Orch;
use super::runs;
use super::status::TaskStatus;
use super::tasks;
use crate::error::{Error, Result};
use crate::inbox::{self, EventFilter};
use crate::store::events::{self, Event};
use rusqlite::Connection;
use std::time::Instant;

/// What `git orch wait --until` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Until {
    /// Any new task, attempt or run event (of the task, with `--task`).
    Change,
    /// The task is done, failed or cancelled; for a run: no task is ready or in flight.
    Done,
    /// A task (or the task) is blocked.
    Blocked,
    /// A task (or the task) is ready.
    Ready,
}

impl Until {
    pub fn parse(text: &str) -> Result<Until> {
        match text {
            "change" => Ok(Until::Change),
            "done" => Ok(Until::Done),
            "blocked" => Ok(Until::Blocked),
            "ready" => Ok(Until::Ready),
            other => Err(Error::invalid_input(format!("unknown --until {other:?}"))
                .hint("use change, done, blocked or ready")),
        }
    }
}

/// The event kinds orch itself appends; `change` and the printed events are these.
pub fn is_orch_event(kind: &str) -> bool {
    matches!(
        kind,
        "task.status" | "attempt.status" | "attempt.progress" | "run.status"
    )
}

pub struct WaitFor<'a> {
    pub run: Option<&'a str>,
    pub until: Until,
    pub task: Option<&'a str>,
    pub deadline: Option<Instant>,
    /// Count changes after this event id rather than from the moment the wait starts,
    /// so a leader that looked at event N cannot sleep through N+1.
    pub since: Option<i64>,
}

/// Blocks until the condition holds; returns the events that made it hold, or `None`
/// when the deadline passed first.
pub fn wait(orch: &mut Orch<'_>, spec: &WaitFor<'_>) -> Result<Option<Vec<Event>>> {
    let (run, start) = orch.read(|tx| {
        let run = runs::resolve(tx, spec.run)?;
        if let Some(task) = spec.task {
            tasks::get_row(tx, &run.name, task)?;
        }
        let start = match spec.since {
            Some(since) => since,
            None => events::last_id(tx)?,
        };
        Ok((run.name, start))
    })?;
    wait_loop(orch, spec.deadline, |tx| holds(tx, &run, spec, start))
}

/// The loop every wait shares: probe, and if nothing yet, sleep until another process
/// commits, a lease runs out, or the deadline passes.
fn wait_loop<T>(
    orch: &mut Orch<'_>,
    deadline: Option<Instant>,
    mut probe: impl FnMut(&Connection) -> Result<Option<T>>,
) -> Result<Option<T>> {
    loop {
        let version = orch.store.data_version()?;
        orch.reconcile()?;
        if let Some(found) = orch.read(&mut probe)? {
            return Ok(Some(found));
        }
        if !inbox::sleep_until_change(orch.store, version, deadline)? {
            return Ok(None);
        }
    }
}

fn holds(
    conn: &Connection,
    run: &str,
    spec: &WaitFor<'_>,
    start: i64,
) -> Result<Option<Vec<Event>>> {
    let filter = EventFilter {
        run: Some(run.to_owned()),
        ..EventFilter::default()
    };
    let mut since: Vec<Event> = Vec::new();
    let mut after = start;
    loop {
        let batch = inbox::events_after(conn, &filter, after, 1000)?;
        let Some(last) = batch.last() else { break };
        after = last.id;
        since.extend(batch.into_iter().filter(|e| {
            is_orch_event(&e.kind) && spec.task.is_none_or(|t| e.task.as_deref() == Some(t))
        }));
    }
    let status_holds = |status: TaskStatus| -> Result<Vec<String>> {
        Ok(match spec.task {
            Some(key) => {
                let task = tasks::get_row(conn, run, key)?;
                if task.status == status {
                    vec![task.key]
                } else {
                    Vec::new()
                }
            }
            None => tasks::load(conn, run, tasks::Select::Status(status))?
                .into_iter()
                .map(|t| t.key)
                .collect(),
        })
    };
    let matching: Vec<String> = match spec.until {
        Until::Change => {
            return Ok((!since.is_empty()).then_some(since));
        }
        Until::Ready => status_holds(TaskStatus::Ready)?,
        Until::Blocked => status_holds(TaskStatus::Blocked)?,
        Until::Done => match spec.task {
            Some(key) => {
                let task = tasks::get_row(conn, run, key)?;
                if task.status.is_final() {
                    vec![task.key]
                } else {
                    Vec::new()
                }
            }
            None => {
                let counts = runs::counts(conn, run)?;
                let open = counts.ready + counts.dispatched + counts.running + counts.blocked;
                if open > 0 {
                    return Ok(None);
                }
                if !since.is_empty() {
                    return Ok(Some(since));
                }
                return Ok(Some(
                    events::latest(conn, "task.status", run, None)?
                        .into_iter()
                        .collect(),
                ));
            }
        },
    };
    if matching.is_empty() {
        return Ok(None);
    }
    // The events of the matching tasks since the wait began; when it held from the start,
    // the change that brought each of them (a few) where it is.
    let mut made: Vec<Event> = since
        .into_iter()
        .filter(|e| e.task.as_ref().is_some_and(|t| matching.contains(t)))
        .collect();
    if made.is_empty() {
        for key in matching.iter().take(20) {
            made.extend(events::latest(conn, "task.status", run, Some(key))?);
        }
        made.sort_by_key(|e| e.id);
    }
    Ok(Some(made))
}

/// Events of a run after `since`, oldest first.
pub fn log(orch: &mut Orch<'_>, run: Option<&str>, since: i64) -> Result<Vec<Event>> {
    orch.read(|tx| {
        let run = runs::resolve(tx, run)?;
        let filter = EventFilter {
            run: Some(run.name),
            ..EventFilter::default()
        };
        let mut out = Vec::new();
        let mut after = since;
        loop {
            let batch = inbox::events_after(tx, &filter, after, 10_000)?;
            let Some(last) = batch.last() else { break };
            after = last.id;
            out.extend(batch);
        }
        Ok(out)
    })
}

/// Streams a run's events after `since` to `emit` (reconciling on every wake) until
/// `emit` returns false (`Ok(true)`) or the deadline passes (`Ok(false)`).
pub fn follow(
    orch: &mut Orch<'_>,
    run: Option<&str>,
    since: i64,
    deadline: Option<Instant>,
    mut emit: impl FnMut(&Event) -> Result<bool>,
) -> Result<bool> {
    let run = orch.read(|tx| runs::resolve(tx, run))?.name;
    let filter = EventFilter {
        run: Some(run),
        ..EventFilter::default()
    };
    let mut after = since;
    loop {
        let found = wait_loop(orch, deadline, |tx| {
            let batch = inbox::events_after(tx, &filter, after, 500)?;
            Ok((!batch.is_empty()).then_some(batch))
        })?;
        let Some(batch) = found else {
            return Ok(false);
        };
        for event in &batch {
            after = event.id;
            if !emit(event)? {
                return Ok(true);
            }
        }
    }
}
