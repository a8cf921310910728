//! Runs: creating, listing, the current run, closing and cancelling.

use super::changes::{Act, Changes};
use super::model::{invalid_transition, Counts, Run};
use super::status::{RunStatus, TaskStatus, IN_FLIGHT_TASK_SQL};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::names::check_name;
use crate::repo::check_ref_text;
use crate::store::events::NewEvent;
use crate::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension};

const CURRENT_RUN: &str = "current_run";

/// A run's stored row, without counts.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub name: String,
    pub title: String,
    pub status: RunStatus,
    pub base_ref: Option<String>,
    pub kind: String,
    pub created_at: i64,
}

impl RunRow {
    /// Refuses changes to a run that is over.
    pub fn require_active(&self) -> Result<()> {
        if self.status == RunStatus::Active {
            return Ok(());
        }
        Err(
            invalid_transition(format!("run {} is {}", self.name, self.status))
                .hint("start a new run with `git orch run init NAME --title T`")
                .detail("run", self.name.clone())
                .detail("status", self.status.as_str()),
        )
    }
}

fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        name: r.get(0)?,
        title: r.get(1)?,
        status: r.get(2)?,
        base_ref: r.get(3)?,
        kind: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn find(conn: &Connection, name: &str) -> Result<Option<RunRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT name, title, status, base_ref, kind, created_at FROM runs WHERE name = ?1",
        )?
        .query_row([name], run_from_row)
        .optional()?)
}

pub fn get(conn: &Connection, name: &str) -> Result<RunRow> {
    find(conn, name)?.ok_or_else(|| {
        Error::not_found(format!("run {name} does not exist"))
            .hint("list runs with `git orch run list`")
            .detail("run", name)
    })
}

pub fn current_name(conn: &Connection) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM orch_settings WHERE key = ?1")?
        .query_row([CURRENT_RUN], |r| r.get(0))
        .optional()?)
}

/// `--run NAME` or the current run; `not_found` with a hint when there is neither.
pub fn resolve(conn: &Connection, given: Option<&str>) -> Result<RunRow> {
    if let Some(name) = given {
        check_name("run", name)?;
        return get(conn, name);
    }
    match current_name(conn)? {
        Some(name) => get(conn, &name),
        None => Err(Error::not_found("no run given and no current run")
            .hint("start one with `git orch run init NAME --title T`, or pass --run NAME")),
    }
}

fn set_current(conn: &Connection, name: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO orch_settings (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![CURRENT_RUN, name])?;
    Ok(())
}

pub fn counts(conn: &Connection, run: &str) -> Result<Counts> {
    // One count per status, each over its own range of `tasks_by_status`: SQLite counts
    // a range faster than it groups a scan of the run by status (54M against 89M
    // instructions at 100k tasks).
    let per_status: Vec<String> = TaskStatus::NAMES
        .iter()
        .map(|status| {
            format!("(SELECT count(*) FROM tasks WHERE run = ?1 AND status = '{status}')")
        })
        .collect();
    let sql = format!("SELECT {}", per_status.join(", "));
    let mut counts = Counts::default();
    conn.prepare_cached(&sql)?.query_row([run], |r| {
        for (i, &status) in TaskStatus::ALL.iter().enumerate() {
            counts.add(status, r.get(i)?);
        }
        Ok(())
    })?;
    Ok(counts)
}

pub fn to_json(row: &RunRow, counts: Counts) -> Run {
    Run {
        name: row.name.clone(),
        title: row.title.clone(),
        status: row.status,
        base_ref: row.base_ref.clone(),
        kind: row.kind.clone(),
        created_at: rfc3339(row.created_at),
        counts,
    }
}

pub fn show(conn: &Connection, row: &RunRow) -> Result<Run> {
    Ok(to_json(row, counts(conn, &row.name)?))
}

pub fn list(conn: &Connection) -> Result<Vec<Run>> {
    let rows: Vec<RunRow> = conn
        .prepare_cached(
            "SELECT name, title, status, base_ref, kind, created_at FROM runs ORDER BY created_at, name",
        )?
        .query_map([], run_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    rows.iter().map(|row| show(conn, row)).collect()
}

pub struct NewRun<'a> {
    pub name: Option<&'a str>,
    pub title: &'a str,
    pub base_ref: Option<&'a str>,
    pub kind: &'a str,
}

/// A name for a run started without one: `r1`, `r2`, … the first free.
fn next_free_name(conn: &Connection) -> Result<String> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM runs WHERE name = ?1")?;
    let taken: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
    for n in (taken + 1).. {
        let name = format!("r{n}");
        if !stmt.exists([&name])? {
            return Ok(name);
        }
    }
    Err(Error::internal("no free run name"))
}

/// Creates a run and makes it the current one.
pub fn create(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    new: &NewRun<'_>,
) -> Result<Run> {
    inbox::check_subject(new.title).map_err(|e| e.detail("field", "title"))?;
    if let Some(base) = new.base_ref {
        check_ref_text(base)?;
    }
    let name = match new.name {
        Some(name) => {
            check_name("run", name)?;
            name.to_owned()
        }
        None => next_free_name(conn)?,
    };
    if let Some(existing) = find(conn, &name)? {
        // Names are never reused, even of a cancelled run: its branches, worktrees and
        // events are named after it and stay on record.
        let hint = if existing.status == RunStatus::Active {
            format!("pick another name, or make it current: git orch run use {name}")
        } else {
            format!(
                "run {name} is {}, and run names are never reused (its branches and events keep the name): pick another name",
                existing.status.as_str()
            )
        };
        return Err(
            Error::new(Code::Exists, format!("run {name} already exists"))
                .hint(hint)
                .detail("run", name)
                .detail("status", existing.status.as_str()),
        );
    }
    let act = Act::now(&cfg.leader);
    conn.prepare_cached(
        "INSERT INTO runs (name, title, status, base_ref, kind, created_at, updated_at)
         VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?5)",
    )?
    .execute(params![name, new.title, new.base_ref, new.kind, act.now])?;
    set_current(conn, &name)?;
    changes.emit(
        conn,
        &act,
        NewEvent {
            kind: "run.status",
            run: Some(&name),
            to: Some(RunStatus::Active.as_str()),
            ..NewEvent::default()
        },
    )?;
    show(conn, &get(conn, &name)?)
}

/// Changes the revision a run's tasks start from when neither dispatch nor the task
/// names one (`None`: the main worktree's `HEAD`). Attempts already made keep theirs.
/// The caller has checked that the revision resolves.
pub fn set_base(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    row: &RunRow,
    base: Option<&str>,
) -> Result<Run> {
    row.require_active()?;
    if let Some(base) = base {
        check_ref_text(base)?;
    }
    let act = Act::now(&cfg.leader);
    conn.prepare_cached("UPDATE runs SET base_ref = ?2, updated_at = ?3 WHERE name = ?1")?
        .execute(params![row.name, base, act.now])?;
    changes.emit(
        conn,
        &act,
        NewEvent {
            kind: "run.base",
            run: Some(&row.name),
            from: row.base_ref.as_deref(),
            to: base,
            ..NewEvent::default()
        },
    )?;
    show(conn, &get(conn, &row.name)?)
}

pub fn use_run(conn: &Connection, name: &str) -> Result<Run> {
    check_name("run", name)?;
    let row = get(conn, name)?;
    set_current(conn, name)?;
    show(conn, &row)
}

/// Ends a run as `to` (closed or cancelled) with its event; returns it as it now stands.
pub(crate) fn end(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    row: &RunRow,
    to: RunStatus,
) -> Result<Run> {
    conn.prepare_cached("UPDATE runs SET status = ?2, updated_at = ?3 WHERE name = ?1")?
        .execute(params![row.name, to, act.now])?;
    changes.emit(
        conn,
        act,
        NewEvent {
            kind: "run.status",
            run: Some(&row.name),
            from: Some(row.status.as_str()),
            to: Some(to.as_str()),
            ..NewEvent::default()
        },
    )?;
    show(conn, &get(conn, &row.name)?)
}

/// Closes a run; one with attempts in flight is refused (`cancel::cancel_run` cancels
/// them instead).
pub fn close(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    row: &RunRow,
) -> Result<Run> {
    row.require_active()?;
    let act = Act::now(&cfg.leader);
    let live: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM tasks WHERE run = ?1 AND status IN {IN_FLIGHT_TASK_SQL}"
        ))?
        .query_row([&row.name], |r| r.get(0))?;
    if live > 0 {
        return Err(invalid_transition(format!(
            "run {} has {live} task(s) in flight",
            row.name
        ))
        .hint("wait for them (`git orch wait --until done`), or cancel them with `git orch run close --cancel`")
        .detail("run", row.name.clone())
        .detail("in_flight", live));
    }
    end(conn, &act, changes, row, RunStatus::Closed)
}
