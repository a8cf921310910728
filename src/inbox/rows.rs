//! Reading rows: the column lists, row mapping, and lookups of one thread, message or
//! artifact. Stored times are Unix milliseconds; the JSON types carry RFC 3339.

use super::artifacts::ArtifactRef;
use super::model::{Failure, Message, Thread};
use crate::error::{Error, Result};
use crate::time::rfc3339;
use rusqlite::{Connection, OptionalExtension, Row};
use serde_json::Value;

pub(super) const THREAD_COLUMNS: &str =
    "t.id, t.subject, t.kind, t.from_agent, t.to_addr, t.status, t.claimed_by, \
     t.lease_expires_at, t.claim_count, t.awaiting_reply, t.data, t.result, t.fail_reason, \
     t.fail_retryable, t.created_at, t.updated_at";

fn parse_stored_json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

pub(super) fn thread_from_row(row: &Row<'_>) -> rusqlite::Result<Thread> {
    let lease: Option<i64> = row.get(7)?;
    let fail_reason: Option<String> = row.get(12)?;
    let retryable: Option<bool> = row.get(13)?;
    Ok(Thread {
        id: row.get(0)?,
        subject: row.get(1)?,
        kind: row.get(2)?,
        from: row.get(3)?,
        to: row.get(4)?,
        status: row.get(5)?,
        claimed_by: row.get(6)?,
        lease_expires_at: lease.map(rfc3339),
        claim_count: row.get(8)?,
        awaiting_reply: row.get(9)?,
        data: parse_stored_json(row.get(10)?),
        result: parse_stored_json(row.get(11)?),
        failure: fail_reason.map(|reason| Failure {
            reason,
            retryable: retryable.unwrap_or(false),
        }),
        created_at: rfc3339(row.get(14)?),
        updated_at: rfc3339(row.get(15)?),
    })
}

pub(super) fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get(0)?,
        thread: row.get(1)?,
        author: row.get(2)?,
        kind: row.get(3)?,
        body: row.get(4)?,
        data: parse_stored_json(row.get(5)?),
        created_at: rfc3339(row.get(6)?),
        artifacts: Vec::new(),
    })
}

pub(super) const MESSAGE_COLUMNS: &str =
    "m.id, m.thread_id, m.author, m.kind, m.body, m.data, m.created_at";

pub fn get_thread(conn: &Connection, id: i64) -> Result<Thread> {
    find_thread(conn, id)?.ok_or_else(|| {
        Error::not_found(format!("thread {id} does not exist"))
            .hint("list threads with `git inbox list`")
            .detail("thread", id)
    })
}

pub fn find_thread(conn: &Connection, id: i64) -> Result<Option<Thread>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {THREAD_COLUMNS} FROM threads t WHERE t.id = ?1"
    ))?;
    Ok(stmt.query_row([id], thread_from_row).optional()?)
}

pub(super) fn attach_artifacts(conn: &Connection, messages: &mut [Message]) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, sha256, size FROM artifacts WHERE message_id = ?1 ORDER BY id",
    )?;
    for message in messages {
        message.artifacts = stmt
            .query_map([message.id], |r| {
                Ok(ArtifactRef {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    sha256: r.get(2)?,
                    size: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
    }
    Ok(())
}

pub fn thread_messages(conn: &Connection, thread: i64) -> Result<Vec<Message>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.thread_id = ?1 ORDER BY m.id"
    ))?;
    let mut messages: Vec<Message> = stmt
        .query_map([thread], message_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    attach_artifacts(conn, &mut messages)?;
    Ok(messages)
}

pub(super) fn get_message(conn: &Connection, id: i64) -> Result<Message> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"
    ))?;
    let mut message = stmt.query_row([id], message_from_row)?;
    attach_artifacts(conn, std::slice::from_mut(&mut message))?;
    Ok(message)
}

pub fn artifact(conn: &Connection, id: i64) -> Result<ArtifactRef> {
    conn.prepare_cached("SELECT id, name, sha256, size FROM artifacts WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(ArtifactRef {
                id: r.get(0)?,
                name: r.get(1)?,
                sha256: r.get(2)?,
                size: r.get(3)?,
            })
        })
        .optional()?
        .ok_or_else(|| {
            Error::not_found(format!("artifact {id} does not exist"))
                .hint("see a message's artifacts with `git inbox show THREAD`")
        })
}
