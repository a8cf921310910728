//! How every write records itself: the message row (with its artifacts and a
//! `message.created` event), the `thread.status` event, the holder's end, the answer.

use super::artifacts::{ArtifactRef, StagedArtifact};
use super::model::{Message, Note, Posted, Thread};
use super::rows::get_thread;
use super::status::ThreadStatus;
use crate::error::{Code, Error, Result};
use crate::store::events::{self, NewEvent};
use crate::time::rfc3339;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// Correlation tags copied from a thread's data into its events, so that a layer above
/// (orch) can follow its threads in the event log without the inbox knowing what they mean.
pub(super) fn tags(data: &Value) -> (Option<&str>, Option<&str>, Option<i64>) {
    (
        data.get("run").and_then(Value::as_str),
        data.get("task").and_then(Value::as_str),
        data.get("attempt").and_then(Value::as_i64),
    )
}

/// One message to write: who says what, of which kind, on which thread.
pub(super) struct Post<'a> {
    pub(super) thread: &'a Thread,
    pub(super) author: &'a str,
    pub(super) kind: &'a str,
    pub(super) body: &'a str,
    pub(super) data: Option<&'a Value>,
    pub(super) artifacts: &'a [StagedArtifact],
}

impl<'a> Post<'a> {
    /// A message without attachments.
    pub(super) fn plain(
        thread: &'a Thread,
        author: &'a str,
        kind: &'a str,
        body: &'a str,
        data: Option<&'a Value>,
    ) -> Self {
        Post {
            thread,
            author,
            kind,
            body,
            data,
            artifacts: &[],
        }
    }

    /// A message that carries a caller's note: its body, data and attachments.
    pub(super) fn note(thread: &'a Thread, author: &'a str, kind: &'a str, note: Note<'a>) -> Self {
        Post {
            thread,
            author,
            kind,
            body: note.body,
            data: note.data,
            artifacts: note.artifacts,
        }
    }
}

/// Writes the message with its artifacts and its `message.created` event, and returns
/// it as a read would: built from what was written, since reading it back (and looking
/// for its artifacts) cost every write two more statements.
pub(super) fn insert_message(conn: &Connection, now: i64, post: Post<'_>) -> Result<Message> {
    let data = post.data.map(Value::to_string);
    conn.prepare_cached(
        "INSERT INTO messages (thread_id, author, kind, body, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![post.thread.id, post.author, post.kind, post.body, data, now])?;
    let id = conn.last_insert_rowid();
    let mut artifacts = Vec::with_capacity(post.artifacts.len());
    if !post.artifacts.is_empty() {
        let mut insert_artifact = conn.prepare_cached(
            "INSERT INTO artifacts (message_id, name, sha256, size) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for artifact in post.artifacts {
            let size = i64::try_from(artifact.size)
                .map_err(|_| Error::internal(format!("artifact {} is too large", artifact.name)))?;
            insert_artifact.execute(params![id, artifact.name, artifact.sha256, size])?;
            artifacts.push(ArtifactRef {
                id: conn.last_insert_rowid(),
                name: artifact.name.clone(),
                sha256: artifact.sha256.clone(),
                size,
            });
        }
    }
    let (run, task, attempt) = tags(&post.thread.data);
    events::append(
        conn,
        now,
        &NewEvent {
            kind: "message.created",
            thread: Some(post.thread.id),
            run,
            task,
            attempt,
            actor: Some(post.author),
            data: Some(json!({"message": id, "kind": post.kind})),
            ..NewEvent::default()
        },
    )?;
    Ok(Message {
        id,
        thread: post.thread.id,
        author: post.author.to_owned(),
        kind: post.kind.to_owned(),
        body: post.body.to_owned(),
        // What a read of the stored text gives: the same value, or null for none.
        data: post.data.cloned().unwrap_or(Value::Null),
        created_at: rfc3339(now),
        artifacts,
    })
}

/// Records how `agent`'s hold on a thread ended (`lease_lost` tells expiry apart).
pub(super) fn end_hold(conn: &Connection, thread: i64, agent: &str, how: &str) -> Result<()> {
    conn.prepare_cached("UPDATE holders SET ended_by = ?3 WHERE thread_id = ?1 AND agent = ?2")?
        .execute(params![thread, agent, how])?;
    Ok(())
}

pub(super) fn status_event(
    conn: &Connection,
    now: i64,
    thread: &Thread,
    to: ThreadStatus,
    actor: &str,
) -> Result<()> {
    status_change(conn, now, thread, Some(thread.status), to, actor)
}

/// The `thread.status` event from `from` (none for a thread just made) to `to`.
pub(super) fn status_change(
    conn: &Connection,
    now: i64,
    thread: &Thread,
    from: Option<ThreadStatus>,
    to: ThreadStatus,
    actor: &str,
) -> Result<()> {
    let (run, task, attempt) = tags(&thread.data);
    events::append(
        conn,
        now,
        &NewEvent {
            kind: "thread.status",
            thread: Some(thread.id),
            run,
            task,
            attempt,
            from: from.map(ThreadStatus::as_str),
            to: Some(to.as_str()),
            actor: Some(actor),
            data: None,
        },
    )?;
    Ok(())
}

pub(super) fn touch(conn: &Connection, now: i64, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE threads SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// The answer of a write: the thread as it is now, and the message it wrote.
pub(super) fn posted(conn: &Connection, thread: i64, message: Message) -> Result<Posted> {
    Ok(Posted {
        thread: get_thread(conn, thread)?,
        message,
    })
}

pub(super) fn thread_closed(thread: &Thread) -> Error {
    Error::new(
        Code::ThreadClosed,
        format!("thread {} is {}", thread.id, thread.status),
    )
    .hint("a closed thread takes no more claims or messages; start a new one")
    .detail("thread", thread.id)
    .detail("status", thread.status.as_str())
}
