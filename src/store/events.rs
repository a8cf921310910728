//! The append-only event log every state change writes to. Inbox and
//! orch both append here; `watch`, `git orch wait` and `git orch log` read it.

use crate::error::Result;
use crate::time::rfc3339;
use rusqlite::{params, Connection, Row};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub id: i64,
    pub at: String,
    pub kind: String,
    pub thread: Option<i64>,
    pub run: Option<String>,
    pub task: Option<String>,
    pub attempt: Option<i64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub actor: Option<String>,
    pub data: Value,
}

/// What a new event is about; unset fields are stored as NULL.
#[derive(Debug, Clone, Default)]
pub struct NewEvent<'a> {
    pub kind: &'a str,
    pub thread: Option<i64>,
    pub run: Option<&'a str>,
    pub task: Option<&'a str>,
    pub attempt: Option<i64>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub data: Option<Value>,
}

pub fn append(conn: &Connection, now_ms: i64, event: &NewEvent<'_>) -> Result<i64> {
    let data = event
        .data
        .as_ref()
        .map(Value::to_string)
        .unwrap_or_else(|| "{}".to_owned());
    let mut stmt = conn.prepare_cached(
        "INSERT INTO events (at, kind, thread_id, run, task, attempt, from_status, to_status, actor, data)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    stmt.execute(params![
        now_ms,
        event.kind,
        event.thread,
        event.run,
        event.task,
        event.attempt,
        event.from,
        event.to,
        event.actor,
        data
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Columns in the order [`from_row`] reads them, for queries that join other tables.
pub const COLUMNS: &str =
    "e.id, e.at, e.kind, e.thread_id, e.run, e.task, e.attempt, e.from_status, e.to_status, e.actor, e.data";

pub fn from_row(row: &Row<'_>) -> rusqlite::Result<Event> {
    let data: String = row.get(10)?;
    Ok(Event {
        id: row.get(0)?,
        at: rfc3339(row.get(1)?),
        kind: row.get(2)?,
        thread: row.get(3)?,
        run: row.get(4)?,
        task: row.get(5)?,
        attempt: row.get(6)?,
        from: row.get(7)?,
        to: row.get(8)?,
        actor: row.get(9)?,
        data: serde_json::from_str(&data).unwrap_or(Value::Null),
    })
}

/// The id of the newest event, 0 when there is none.
pub fn last_id(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM events", [], |r| r.get(0))?)
}

/// The newest event of `kind` about `run` (and `task`, when given).
pub fn latest(
    conn: &Connection,
    kind: &str,
    run: &str,
    task: Option<&str>,
) -> Result<Option<Event>> {
    use rusqlite::OptionalExtension;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM events e WHERE e.run = ?1 AND e.kind = ?2 AND (?3 IS NULL OR e.task = ?3)
         ORDER BY e.id DESC LIMIT 1"
    ))?;
    Ok(stmt
        .query_row(params![run, kind, task], from_row)
        .optional()?)
}
