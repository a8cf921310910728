//! Listing threads and reading the event log, with their filters.

use super::model::Thread;
use super::rows::{thread_from_row, THREAD_COLUMNS};
use super::status::ThreadStatus;
use crate::error::Result;
use crate::store::events::{self, Event};
use rusqlite::{params, Connection};

#[derive(Debug, Default)]
pub struct ListFilter<'a> {
    pub to: Option<&'a str>,
    pub from: Option<&'a str>,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    /// Threads I sent, that are addressed to me, or that I hold or held.
    pub mine: Option<&'a str>,
    pub limit: i64,
}

/// The newest `limit` threads matching the filter, oldest first.
pub fn list(conn: &Connection, filter: &ListFilter<'_>) -> Result<Vec<Thread>> {
    // A misspelt status is refused rather than answered with an empty list.
    let status = filter.status.map(ThreadStatus::parse).transpose()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT * FROM (SELECT {THREAD_COLUMNS} FROM threads t
         WHERE (?1 IS NULL OR t.to_addr = ?1) AND (?2 IS NULL OR t.from_agent = ?2)
           AND (?3 IS NULL OR t.status = ?3) AND (?4 IS NULL OR t.kind = ?4)
           AND (?5 IS NULL OR t.from_agent = ?5 OR t.to_addr = ?5
                OR EXISTS (SELECT 1 FROM holders h WHERE h.thread_id = t.id AND h.agent = ?5))
         ORDER BY t.id DESC LIMIT ?6) ORDER BY id"
    ))?;
    let threads = stmt
        .query_map(
            params![
                filter.to,
                filter.from,
                status,
                filter.kind,
                filter.mine,
                filter.limit
            ],
            thread_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(threads)
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub thread: Option<i64>,
    pub to: Option<String>,
    pub run: Option<String>,
}

pub fn events_after(
    conn: &Connection,
    filter: &EventFilter,
    after: i64,
    limit: i64,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM events e LEFT JOIN threads t ON t.id = e.thread_id
         WHERE e.id > ?1 AND (?2 IS NULL OR e.thread_id = ?2) AND (?3 IS NULL OR t.to_addr = ?3)
           AND (?4 IS NULL OR e.run = ?4)
         ORDER BY e.id LIMIT ?5",
        events::COLUMNS
    ))?;
    let rows = stmt
        .query_map(
            params![after, filter.thread, filter.to, filter.run, limit],
            events::from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}
