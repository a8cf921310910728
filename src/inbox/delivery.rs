//! Delivery: queue membership and each agent's read cursor. The cursor is one global
//! message id per agent, moved forward only once the caller has written what it read.

use super::lease::begin;
use super::model::Message;
use super::rows::{attach_artifacts, message_from_row, MESSAGE_COLUMNS};
use super::Config;
use crate::error::Result;
use crate::store::events::{self, NewEvent};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

pub fn subscribe(conn: &Connection, cfg: &Config, actor: &str, queue: &str) -> Result<bool> {
    set_subscription(conn, cfg, actor, queue, true)
}

pub fn unsubscribe(conn: &Connection, cfg: &Config, actor: &str, queue: &str) -> Result<bool> {
    set_subscription(conn, cfg, actor, queue, false)
}

/// Joins or leaves a queue; returns whether membership changed (and only then logs it).
fn set_subscription(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    queue: &str,
    subscribed: bool,
) -> Result<bool> {
    let now = begin(conn, cfg)?;
    let sql = if subscribed {
        "INSERT OR IGNORE INTO subscriptions (agent, queue) VALUES (?1, ?2)"
    } else {
        "DELETE FROM subscriptions WHERE agent = ?1 AND queue = ?2"
    };
    let changed = conn.prepare_cached(sql)?.execute(params![actor, queue])? == 1;
    if changed {
        events::append(
            conn,
            now,
            &NewEvent {
                kind: "subscription",
                actor: Some(actor),
                data: Some(json!({"queue": queue, "subscribed": subscribed})),
                ..NewEvent::default()
            },
        )?;
    }
    Ok(changed)
}

/// How many message ids past the cursor `unread` scans before it estimates whether to
/// scan on or to ask which threads the agent can see: an agent that keeps up finds
/// everything here. Each scanned row costs a visibility check (~4k instructions).
const SCAN_WINDOW: i64 = 64;

/// A per-thread index seek costs about this many rows of a scan.
const SEEK_COST: i64 = 4;

/// Unread messages on threads visible to `actor`, oldest first, and the cursor to store
/// once they were delivered.
///
/// The cost follows what the agent can see, not the age of the database: first a scan
/// of the next `SCAN_WINDOW` message ids (all an agent that keeps up needs); past it,
/// whichever looks cheaper of scanning on (judged by how dense the window was) or
/// seeking the unread messages of each thread the agent can see. A worker whose cursor
/// lags a million messages of other agents' threads then pays for its own threads only.
pub fn unread(conn: &Connection, actor: &str, limit: i64) -> Result<(Vec<Message>, i64)> {
    let cursor: i64 = conn
        .prepare_cached("SELECT last_message_id FROM cursors WHERE agent = ?1")?
        .query_row([actor], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let top: i64 = conn
        .prepare_cached("SELECT coalesce(max(id), 0) FROM messages")?
        .query_row([], |r| r.get(0))?;
    let window_end = top.min(cursor.saturating_add(SCAN_WINDOW));
    let mut messages = scan(conn, actor, cursor, window_end, limit)?;
    let need = limit - messages.len() as i64;
    if need > 0 && window_end < top {
        let remaining = top - window_end;
        let found = messages.len() as i64;
        let scan_estimate = if found == 0 {
            remaining
        } else {
            remaining.min(need.saturating_mul(SCAN_WINDOW) / found)
        };
        let rest = if scan_estimate <= 4 * SCAN_WINDOW {
            scan(conn, actor, window_end, top, need)?
        } else {
            let threads = visible_threads(conn, actor)?;
            if (threads.len() as i64).saturating_mul(SEEK_COST) < scan_estimate {
                seek(conn, actor, &threads, window_end, need)?
            } else {
                scan(conn, actor, window_end, top, need)?
            }
        };
        messages.extend(rest);
    }
    attach_artifacts(conn, &mut messages)?;
    let next = messages.last().map_or(cursor, |m| m.id);
    Ok((messages, next))
}

/// Visible messages with ids in `(after, until]`, oldest first.
fn scan(
    conn: &Connection,
    actor: &str,
    after: i64,
    until: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN threads t ON t.id = m.thread_id
         WHERE m.id > ?2 AND m.id <= ?4 AND m.author <> ?1 AND (
               t.to_addr = ?1 OR t.from_agent = ?1
            OR t.to_addr IN (SELECT '@' || queue FROM subscriptions WHERE agent = ?1)
            OR EXISTS (SELECT 1 FROM holders h WHERE h.thread_id = t.id AND h.agent = ?1))
         ORDER BY m.id LIMIT ?3"
    ))?;
    let messages = stmt
        .query_map(params![actor, after, limit, until], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(messages)
}

/// Every thread `actor` can see, by the same rule as `scan`, each through an index.
fn visible_threads(conn: &Connection, actor: &str) -> Result<Vec<i64>> {
    // The status list lets the (status, to_addr, id) index answer a lookup by address.
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM threads
             WHERE status IN ('open', 'claimed', 'done', 'failed', 'cancelled') AND to_addr = ?1
         UNION SELECT id FROM threads WHERE from_agent = ?1
         UNION SELECT t.id FROM subscriptions s JOIN threads t
             ON t.status IN ('open', 'claimed', 'done', 'failed', 'cancelled')
             AND t.to_addr = '@' || s.queue WHERE s.agent = ?1
         UNION SELECT thread_id FROM holders WHERE agent = ?1",
    )?;
    let ids = stmt
        .query_map([actor], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}

/// The oldest `limit` messages after `after` on `threads` not written by `actor`: one
/// index range per thread, each cut off at the newest of the best found so far.
fn seek(
    conn: &Connection,
    actor: &str,
    threads: &[i64],
    after: i64,
    limit: i64,
) -> Result<Vec<Message>> {
    let mut ids = conn.prepare_cached(
        "SELECT id FROM messages WHERE thread_id = ?1 AND id > ?2 AND id < ?3 AND author <> ?4
         ORDER BY id LIMIT ?5",
    )?;
    let keep = usize::try_from(limit).unwrap_or(0);
    let mut best: std::collections::BinaryHeap<i64> = std::collections::BinaryHeap::new();
    for &thread in threads {
        let bound = if best.len() == keep {
            best.peek().copied().unwrap_or(i64::MAX)
        } else {
            i64::MAX
        };
        let found = ids.query_map(params![thread, after, bound, actor, limit], |r| {
            r.get::<_, i64>(0)
        })?;
        for id in found {
            best.push(id?);
            if best.len() > keep {
                best.pop();
            }
        }
    }
    let mut row = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"
    ))?;
    best.into_sorted_vec()
        .into_iter()
        .map(|id| Ok(row.query_row([id], message_from_row)?))
        .collect()
}

/// Moves `actor`'s read cursor forward (never back).
pub fn advance_cursor(conn: &Connection, actor: &str, cursor: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO cursors (agent, last_message_id) VALUES (?1, ?2)
         ON CONFLICT (agent) DO UPDATE SET last_message_id = max(last_message_id, excluded.last_message_id)",
    )?
    .execute(params![actor, cursor])?;
    Ok(())
}
