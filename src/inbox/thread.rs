//! A thread's life after its claim: starting one, progress and questions, replies, and
//! the three ends (done, failed, cancelled). Acts of the holder go through the fence.

use super::lease::{begin, begin_held, begin_open, extend_lease};
use super::model::{NewThread, Note, Posted, Thread};
use super::post::{end_hold, insert_message, posted, status_change, status_event, touch, Post};
use super::rows::get_thread;
use super::status::ThreadStatus;
use super::validate::{check_body, check_note, check_object, check_reply, check_subject};
use super::Config;
use crate::error::{Code, Error, Result};
use crate::names;
use rusqlite::{params, Connection};
use serde_json::{json, Map, Value};

pub fn send(conn: &Connection, cfg: &Config, actor: &str, new: NewThread<'_>) -> Result<Posted> {
    names::check_name("agent", actor)?;
    check_subject(new.subject)?;
    check_body(new.body)?;
    if !matches!(new.kind, "message" | "task") {
        return Err(
            Error::invalid_input(format!("unknown thread kind {:?}", new.kind))
                .hint("use message or task"),
        );
    }
    let data = new
        .data
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()));
    check_object("data", &data)?;
    let now = begin(conn, cfg)?;
    conn.prepare_cached(
        "INSERT INTO threads (subject, kind, from_agent, to_addr, status, data, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?6)",
    )?
    .execute(params![new.subject, new.kind, actor, new.to.to_stored(), data.to_string(), now])?;
    let id = conn.last_insert_rowid();
    let thread = get_thread(conn, id)?;
    status_change(conn, now, &thread, None, ThreadStatus::Open, actor)?;
    let note = Note {
        body: new.body,
        data: None,
        artifacts: new.artifacts,
    };
    let message = insert_message(conn, now, Post::note(&thread, actor, "send", note))?;
    posted(conn, id, message)
}

/// A progress note by the claimant; renews the lease.
pub fn update(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    note: Note<'_>,
) -> Result<Posted> {
    check_note(&note)?;
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    extend_lease(conn, now, id, None)?;
    let message = insert_message(conn, now, Post::note(&thread, actor, "update", note))?;
    posted(conn, id, message)
}

/// Records a `progress` message (from a git hook) by the current claimant, or by `actor`
/// when the thread is not claimed; never refused for fencing, since hooks are hints.
pub fn progress(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    body: &str,
    data: &Value,
) -> Result<Posted> {
    check_body(body)?;
    check_object("data", data)?;
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    let author = thread.holder().unwrap_or(actor).to_owned();
    touch(conn, now, id)?;
    let message = insert_message(
        conn,
        now,
        Post::plain(&thread, &author, "progress", body, Some(data)),
    )?;
    posted(conn, id, message)
}

pub fn ask(conn: &Connection, cfg: &Config, actor: &str, id: i64, body: &str) -> Result<Posted> {
    check_body(body)?;
    if body.trim().is_empty() {
        return Err(Error::invalid_input("the question is empty")
            .hint("pass it with --body or --body-file"));
    }
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    // Asking is a sign of life: the lease runs from now, as with update.
    extend_lease(conn, now, id, None)?;
    conn.prepare_cached("UPDATE threads SET awaiting_reply = 1, asked_by = ?2 WHERE id = ?1")?
        .execute(params![id, actor])?;
    let message = insert_message(conn, now, Post::plain(&thread, actor, "ask", body, None))?;
    posted(conn, id, message)
}

/// Whether `actor` takes part in `thread`: sender, addressee, a member of its queue, a
/// past or present holder, or the leader.
fn is_participant(conn: &Connection, cfg: &Config, thread: &Thread, actor: &str) -> Result<bool> {
    if thread.from == actor || thread.to == actor || cfg.leader == actor {
        return Ok(true);
    }
    if let Some(queue) = thread.to.strip_prefix('@') {
        if conn
            .prepare_cached("SELECT 1 FROM subscriptions WHERE agent = ?1 AND queue = ?2")?
            .exists(params![actor, queue])?
        {
            return Ok(true);
        }
    }
    Ok(conn
        .prepare_cached("SELECT 1 FROM holders WHERE thread_id = ?1 AND agent = ?2")?
        .exists(params![thread.id, actor])?)
}

pub fn reply(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    note: Note<'_>,
) -> Result<Posted> {
    check_reply(&note)?;
    let (now, thread) = begin_open(conn, cfg, id)?;
    if !is_participant(conn, cfg, &thread, actor)? {
        return Err(Error::new(
            Code::Conflict,
            format!("{actor} takes no part in thread {id}"),
        )
        .hint(
            "only the sender, the addressee, its queue's members, holders and the leader may reply",
        )
        .detail("thread", id));
    }
    conn.prepare_cached(
        "UPDATE threads SET awaiting_reply = 0, asked_by = NULL, updated_at = ?3
         WHERE id = ?1 AND awaiting_reply = 1 AND asked_by IS NOT ?2",
    )?
    .execute(params![id, actor, now])?;
    touch(conn, now, id)?;
    let message = insert_message(conn, now, Post::note(&thread, actor, "reply", note))?;
    posted(conn, id, message)
}

/// Checks a result before it is accepted; the layer above may know its expected shape.
pub type ResultCheck<'a> = &'a dyn Fn(&Thread, &Value) -> Result<()>;

pub fn done(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    note: Note<'_>,
    result: Option<&Value>,
    check: Option<ResultCheck<'_>>,
) -> Result<Posted> {
    check_body(note.body)?;
    if let Some(result) = result {
        check_object("result", result)?;
    }
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    if let Some(check) = check {
        check(&thread, result.unwrap_or(&Value::Null))?;
    }
    conn.prepare_cached(
        "UPDATE threads SET status = 'done', lease_expires_at = NULL, awaiting_reply = 0, asked_by = NULL,
                result = ?2, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, result.map(Value::to_string), now])?;
    end_hold(conn, id, actor, "done")?;
    status_event(conn, now, &thread, ThreadStatus::Done, actor)?;
    let message = insert_message(
        conn,
        now,
        // The result stands as the closing message's data.
        Post {
            data: result,
            ..Post::note(&thread, actor, "done", note)
        },
    )?;
    posted(conn, id, message)
}

pub fn fail(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    reason: &str,
    retryable: bool,
) -> Result<Posted> {
    check_body(reason)?;
    if reason.trim().is_empty() {
        return Err(Error::invalid_input("the reason is empty").hint("say why with --reason"));
    }
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    conn.prepare_cached(
        "UPDATE threads SET status = 'failed', lease_expires_at = NULL, awaiting_reply = 0, asked_by = NULL,
                fail_reason = ?2, fail_retryable = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, reason, retryable, now])?;
    end_hold(conn, id, actor, "fail")?;
    status_event(conn, now, &thread, ThreadStatus::Failed, actor)?;
    let data = json!({"reason": reason, "retryable": retryable});
    let message = insert_message(
        conn,
        now,
        Post::plain(&thread, actor, "fail", reason, Some(&data)),
    )?;
    posted(conn, id, message)
}

/// Withdraws a thread: by its sender or the leader.
pub fn cancel(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    reason: &str,
) -> Result<Posted> {
    check_body(reason)?;
    let (now, thread) = begin_open(conn, cfg, id)?;
    if actor != thread.from && actor != cfg.leader {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "only the sender ({}) or the leader ({}) may cancel thread {id}",
                thread.from, cfg.leader
            ),
        )
        .hint("ask the sender to cancel it, or give it back with `git inbox release`")
        .detail("thread", id));
    }
    conn.prepare_cached(
        "UPDATE threads SET status = 'cancelled', lease_expires_at = NULL, awaiting_reply = 0, asked_by = NULL,
                updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    if let Some(holder) = thread.holder() {
        end_hold(conn, id, holder, "cancel")?;
    }
    status_event(conn, now, &thread, ThreadStatus::Cancelled, actor)?;
    let message = insert_message(
        conn,
        now,
        Post::plain(&thread, actor, "cancel", reason, None),
    )?;
    posted(conn, id, message)
}
