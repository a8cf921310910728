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

/// Unread messages on threads visible to `actor`, oldest first, and the cursor to store
/// once they were delivered.
pub fn unread(conn: &Connection, actor: &str, limit: i64) -> Result<(Vec<Message>, i64)> {
    let cursor: i64 = conn
        .prepare_cached("SELECT last_message_id FROM cursors WHERE agent = ?1")?
        .query_row([actor], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m JOIN threads t ON t.id = m.thread_id
         WHERE m.id > ?2 AND m.author <> ?1 AND (
               t.to_addr = ?1 OR t.from_agent = ?1
            OR t.to_addr IN (SELECT '@' || queue FROM subscriptions WHERE agent = ?1)
            OR EXISTS (SELECT 1 FROM holders h WHERE h.thread_id = t.id AND h.agent = ?1))
         ORDER BY m.id LIMIT ?3"
    ))?;
    let mut messages: Vec<Message> = stmt
        .query_map(params![actor, cursor, limit], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    attach_artifacts(conn, &mut messages)?;
    let next = messages.last().map_or(cursor, |m| m.id);
    Ok((messages, next))
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
