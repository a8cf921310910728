//! The inbox: threads of messages between named agents, claims under strict leases, read
//! cursors, queues, artifacts and blocking waits (SPEC §5).
//!
//! The inbox knows nothing of runs or tasks. Functions that change state take the open
//! transaction (`&Connection` inside [`Store::write`]) so a caller above, like orch, can
//! make its own rows and an inbox thread in one atomic step.
//!
//! Where SPEC §5 is silent, these are the decisions (each has an integration test):
//! - Claiming a thread addressed to another agent is `conflict`; a queue thread may be
//!   claimed by anyone, subscribed or not. So are `cancel` by neither sender nor leader,
//!   and `reply` by someone who takes no part (sender, addressee, queue member, past or
//!   present holder, leader).
//! - `update` is the claimant's alone (`not_claimant` for others, who use `reply`).
//! - `wait-reply` returns the first message of kind send/update/ask/reply by someone else
//!   after the caller's last message on the thread; renewals, hook progress and expiries
//!   written in the caller's name do not move that baseline. done/fail/cancel end it with
//!   `thread_closed`. A holder whose lease ran out gets `lease_lost`, not a silent wait.
//! - An expiry is recorded as an `expire` message authored by the holder that lost the
//!   lease; `orch.maxClaims` counts expiries, not claims (as SPEC words it).
//! - The read cursor is one global message id per agent: subscribing to a queue later
//!   does not replay that queue's messages from before the cursor.
//! - Thread JSON adds `failure: {reason, retryable} | null`.

pub mod artifacts;

use crate::error::{Code, Error, Result};
use crate::names::{self, Address};
use crate::store::events::{self, Event, NewEvent};
use crate::store::Store;
use crate::time::{now_ms, rfc3339};
use artifacts::{ArtifactRef, StagedArtifact};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::{Duration, Instant};

pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// Settings that come from git config (SPEC §9).
#[derive(Debug, Clone)]
pub struct Config {
    pub default_lease: Duration,
    pub max_claims: i64,
    pub leader: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            default_lease: Duration::from_secs(30 * 60),
            max_claims: 5,
            leader: "leader".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Thread {
    pub id: i64,
    pub subject: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub status: String,
    pub claimed_by: Option<String>,
    pub lease_expires_at: Option<String>,
    pub claim_count: i64,
    pub awaiting_reply: bool,
    pub data: Value,
    pub result: Value,
    /// Why a failed thread failed; null otherwise. (An addition to SPEC §5's Thread.)
    pub failure: Option<Failure>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Failure {
    pub reason: String,
    pub retryable: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Message {
    pub id: i64,
    pub thread: i64,
    pub author: String,
    pub kind: String,
    pub body: String,
    pub data: Value,
    pub created_at: String,
    pub artifacts: Vec<ArtifactRef>,
}

/// What a write returns: the thread after the change and the message it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Posted {
    pub thread: Thread,
    pub message: Message,
}

impl Thread {
    pub fn is_closed(&self) -> bool {
        matches!(self.status.as_str(), "done" | "failed" | "cancelled")
    }
}

// ---------------------------------------------------------------------------------------
// Validation: everything is checked before the first write.

pub fn check_subject(subject: &str) -> Result<()> {
    if subject.trim().is_empty() {
        return Err(
            Error::invalid_input("the subject is empty").hint("give a short one-line --subject")
        );
    }
    if subject.contains(['\n', '\r']) {
        return Err(
            Error::invalid_input("the subject must be one line").hint("put details in --body")
        );
    }
    let chars = subject.chars().count();
    if chars > MAX_SUBJECT_CHARS {
        return Err(Error::new(
            Code::TooLarge,
            format!("the subject is {chars} characters; at most {MAX_SUBJECT_CHARS}"),
        )
        .hint("shorten the subject and put details in --body"));
    }
    Ok(())
}

pub fn check_body(body: &str) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::new(
            Code::TooLarge,
            format!("the body is {} bytes; at most 1 MiB", body.len()),
        )
        .hint("attach large text as a file with --attach")
        .detail("size", body.len())
        .detail("limit", MAX_BODY_BYTES));
    }
    Ok(())
}

/// `data` and `result` are JSON objects of at most 256 KiB.
pub fn check_object(what: &str, value: &Value) -> Result<()> {
    if !value.is_object() {
        return Err(
            Error::invalid_input(format!("{what} must be a JSON object"))
                .hint("wrap the value: {\"value\": …}")
                .detail("pointer", ""),
        );
    }
    let size = value.to_string().len();
    if size > MAX_DATA_BYTES {
        return Err(Error::new(
            Code::TooLarge,
            format!("{what} is {size} bytes; at most 256 KiB"),
        )
        .hint("attach large data as a file with --attach")
        .detail("size", size)
        .detail("limit", MAX_DATA_BYTES));
    }
    Ok(())
}

/// Parses JSON text given on the command line or in a file.
pub fn parse_json(what: &str, text: &str) -> Result<Value> {
    if text.len() > MAX_DATA_BYTES * 4 {
        return Err(Error::new(
            Code::TooLarge,
            format!("{what} is {} bytes; at most 256 KiB", text.len()),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(format!("{what} is not valid JSON: {e}"))
            .hint("quote the JSON for your shell, e.g. --data '{\"key\": 1}'")
    })
}

fn check_lease(lease: Duration) -> Result<i64> {
    let ms = lease.as_millis() as i64;
    if ms <= 0 {
        return Err(
            Error::invalid_input("a lease must be longer than zero").hint("e.g. --lease 30m")
        );
    }
    Ok(ms)
}

// ---------------------------------------------------------------------------------------
// Reading rows.

const THREAD_COLUMNS: &str =
    "t.id, t.subject, t.kind, t.from_agent, t.to_addr, t.status, t.claimed_by, \
     t.lease_expires_at, t.claim_count, t.awaiting_reply, t.data, t.result, t.fail_reason, \
     t.fail_retryable, t.created_at, t.updated_at";

fn parse_stored_json(text: Option<String>) -> Value {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null)
}

fn thread_from_row(row: &Row<'_>) -> rusqlite::Result<Thread> {
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

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<Message> {
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

const MESSAGE_COLUMNS: &str = "m.id, m.thread_id, m.author, m.kind, m.body, m.data, m.created_at";

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

fn attach_artifacts(conn: &Connection, messages: &mut [Message]) -> Result<()> {
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

fn get_message(conn: &Connection, id: i64) -> Result<Message> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?1"
    ))?;
    let mut message = stmt.query_row([id], message_from_row)?;
    attach_artifacts(conn, std::slice::from_mut(&mut message))?;
    Ok(message)
}

// ---------------------------------------------------------------------------------------
// Writing: the primitives every command is made of.

/// Correlation tags copied from a thread's data into its events, so that a layer above
/// (orch) can follow its threads in the event log without the inbox knowing what they mean.
fn tags(data: &Value) -> (Option<&str>, Option<&str>, Option<i64>) {
    (
        data.get("run").and_then(Value::as_str),
        data.get("task").and_then(Value::as_str),
        data.get("attempt").and_then(Value::as_i64),
    )
}

struct Post<'a> {
    thread: &'a Thread,
    author: &'a str,
    kind: &'a str,
    body: &'a str,
    data: Option<&'a Value>,
    artifacts: &'a [StagedArtifact],
}

impl<'a> Post<'a> {
    /// A message without attachments.
    fn plain(
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
}

fn insert_message(conn: &Connection, now: i64, post: Post<'_>) -> Result<i64> {
    let data = post.data.map(Value::to_string);
    conn.prepare_cached(
        "INSERT INTO messages (thread_id, author, kind, body, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![post.thread.id, post.author, post.kind, post.body, data, now])?;
    let id = conn.last_insert_rowid();
    let mut insert_artifact = conn.prepare_cached(
        "INSERT INTO artifacts (message_id, name, sha256, size) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for artifact in post.artifacts {
        insert_artifact.execute(params![
            id,
            artifact.name,
            artifact.sha256,
            artifact.size as i64
        ])?;
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
    Ok(id)
}

/// Records how `agent`'s hold on a thread ended (`lease_lost` tells expiry apart).
fn end_hold(conn: &Connection, thread: i64, agent: &str, how: &str) -> Result<()> {
    conn.prepare_cached("UPDATE holders SET ended_by = ?3 WHERE thread_id = ?1 AND agent = ?2")?
        .execute(params![thread, agent, how])?;
    Ok(())
}

fn status_event(conn: &Connection, now: i64, thread: &Thread, to: &str, actor: &str) -> Result<()> {
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
            from: Some(&thread.status),
            to: Some(to),
            actor: Some(actor),
            data: None,
        },
    )?;
    Ok(())
}

fn touch(conn: &Connection, now: i64, id: i64) -> Result<()> {
    conn.prepare_cached("UPDATE threads SET updated_at = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

fn posted(conn: &Connection, thread: i64, message: i64) -> Result<Posted> {
    Ok(Posted {
        thread: get_thread(conn, thread)?,
        message: get_message(conn, message)?,
    })
}

fn thread_closed(thread: &Thread) -> Error {
    Error::new(
        Code::ThreadClosed,
        format!("thread {} is {}", thread.id, thread.status),
    )
    .hint("a closed thread takes no more claims or messages; start a new one")
    .detail("thread", thread.id)
    .detail("status", thread.status.clone())
}

/// Reopens (or fails, past `max_claims`) every thread whose lease has run out. Runs at
/// the start of every write, and of reads when something is due: there is no daemon.
pub fn expire_due(conn: &Connection, cfg: &Config, now: i64) -> Result<usize> {
    let due: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT id, expire_count FROM threads WHERE status = 'claimed' AND lease_expires_at <= ?1 ORDER BY id",
        )?
        .query_map([now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for &(id, expire_count) in &due {
        let thread = get_thread(conn, id)?;
        let holder = thread.claimed_by.clone().unwrap_or_default();
        let expired_at: i64 = conn.query_row(
            "SELECT lease_expires_at FROM threads WHERE id = ?1",
            [id],
            |r| r.get(0),
        )?;
        let too_often = expire_count + 1 >= cfg.max_claims;
        let data = json!({"holder": holder, "lease_expired_at": rfc3339(expired_at), "expiries": expire_count + 1});
        let message = insert_message(
            conn,
            now,
            Post::plain(&thread, &holder, "expire", "", Some(&data)),
        )?;
        let _ = message;
        end_hold(conn, id, &holder, "expire")?;
        if too_often {
            let reason = "lease_expired_too_often";
            conn.prepare_cached(
                "UPDATE threads SET status = 'failed', lease_expires_at = NULL, awaiting_reply = 0,
                        expire_count = expire_count + 1, fail_reason = ?2, fail_retryable = 0, updated_at = ?3
                 WHERE id = ?1",
            )?
            .execute(params![id, reason, now])?;
            let fail_data = json!({"reason": reason, "retryable": false});
            insert_message(
                conn,
                now,
                Post::plain(&thread, &holder, "fail", reason, Some(&fail_data)),
            )?;
            status_event(conn, now, &thread, "failed", &holder)?;
        } else {
            conn.prepare_cached(
                "UPDATE threads SET status = 'open', claimed_by = NULL, lease_expires_at = NULL, awaiting_reply = 0,
                        asked_by = NULL, expire_count = expire_count + 1, updated_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            status_event(conn, now, &thread, "open", &holder)?;
        }
    }
    Ok(due.len())
}

/// Whether any lease has run out (a cheap indexed read, so reads only write when needed).
fn any_due(conn: &Connection, now: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM threads WHERE status = 'claimed' AND lease_expires_at <= ?1 LIMIT 1",
        )?
        .exists([now])?)
}

/// The earliest lease end in the future, so that waits can wake when a thread reopens.
fn next_lease_end(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT min(lease_expires_at) FROM threads WHERE status = 'claimed'",
        [],
        |r| r.get(0),
    )?)
}

/// The fence: `actor` must hold an unexpired claim on `thread`, checked inside the same
/// transaction as the act. Returns the current claim epoch.
fn require_holder(conn: &Connection, thread: &Thread, actor: &str) -> Result<i64> {
    if thread.status == "claimed" && thread.claimed_by.as_deref() == Some(actor) {
        return Ok(conn.query_row(
            "SELECT claim_epoch FROM threads WHERE id = ?1",
            [thread.id],
            |r| r.get(0),
        )?);
    }
    let ended_by: Option<Option<String>> = conn
        .prepare_cached("SELECT ended_by FROM holders WHERE thread_id = ?1 AND agent = ?2")?
        .query_row(params![thread.id, actor], |r| r.get(0))
        .optional()?;
    if let Some(Some(ended)) = ended_by {
        if ended == "expire" {
            return Err(Error::new(Code::LeaseLost, format!("your lease on thread {} ran out", thread.id))
                .hint("the thread went back to its queue; claim it again if it is still open (work done since may be redone by another agent)")
                .detail("thread", thread.id)
                .detail("status", thread.status.clone()));
        }
    }
    if thread.is_closed() {
        return Err(thread_closed(thread));
    }
    Err(Error::new(
        Code::NotClaimant,
        format!("{actor} does not hold thread {}", thread.id),
    )
    .hint(match &thread.claimed_by {
        Some(holder) if thread.status == "claimed" => format!("it is claimed by {holder}"),
        _ => format!("claim it first: git inbox claim {}", thread.id),
    })
    .detail("thread", thread.id)
    .detail("claimed_by", thread.claimed_by.clone()))
}

/// Whether `actor`'s last claim on thread `id` ended by its lease running out.
fn lost_by_expiry(conn: &Connection, id: i64, actor: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM holders WHERE thread_id = ?1 AND agent = ?2 AND ended_by = 'expire'",
        )?
        .exists(params![id, actor])?)
}

/// Extends `actor`'s claim: `lease` from now, or the claim's own lease length.
fn extend_lease(conn: &Connection, now: i64, id: i64, lease_ms: Option<i64>) -> Result<()> {
    conn.prepare_cached(
        "UPDATE threads SET lease_expires_at = ?2 + coalesce(?3, lease_ms), lease_ms = coalesce(?3, lease_ms),
                updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now, lease_ms])?;
    Ok(())
}

/// Begins a write: the clock and lazy expiry for every command.
fn begin(conn: &Connection, cfg: &Config) -> Result<i64> {
    let now = now_ms();
    expire_due(conn, cfg, now)?;
    Ok(now)
}

// ---------------------------------------------------------------------------------------
// Commands, at the transaction level.

pub struct NewThread<'a> {
    pub to: &'a Address,
    pub subject: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub data: Option<&'a Value>,
    pub artifacts: &'a [StagedArtifact],
}

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
    let (run, task, attempt) = tags(&thread.data);
    events::append(
        conn,
        now,
        &NewEvent {
            kind: "thread.status",
            thread: Some(id),
            run,
            task,
            attempt,
            to: Some("open"),
            actor: Some(actor),
            ..NewEvent::default()
        },
    )?;
    let message = insert_message(
        conn,
        now,
        Post {
            thread: &thread,
            author: actor,
            kind: "send",
            body: new.body,
            data: None,
            artifacts: new.artifacts,
        },
    )?;
    posted(conn, id, message)
}

/// Takes thread `id` (or renews it when `actor` holds it already).
pub fn claim(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    lease: Option<Duration>,
) -> Result<Posted> {
    let lease_ms = check_lease(lease.unwrap_or(cfg.default_lease))?;
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    if thread.is_closed() {
        return Err(thread_closed(&thread));
    }
    if thread.status == "claimed" {
        if thread.claimed_by.as_deref() == Some(actor) {
            return renew_claimed(conn, now, &thread, actor, Some(lease_ms));
        }
        return Err(Error::new(
            Code::AlreadyClaimed,
            format!(
                "thread {id} is already claimed by {}",
                thread.claimed_by.as_deref().unwrap_or("?")
            ),
        )
        .hint("take another thread: git inbox claim --next")
        .detail("thread", id)
        .detail("claimed_by", thread.claimed_by.clone())
        .detail("lease_expires_at", thread.lease_expires_at.clone()));
    }
    if !thread.to.starts_with('@') && thread.to != actor {
        return Err(Error::new(Code::Conflict, format!("thread {id} is addressed to {}, not {actor}", thread.to))
            .hint("only the addressee may claim a thread sent to one agent; queue threads (@queue) are open to all")
            .detail("thread", id)
            .detail("to", thread.to.clone()));
    }
    take(conn, now, &thread, actor, lease_ms)
}

fn take(
    conn: &Connection,
    now: i64,
    thread: &Thread,
    actor: &str,
    lease_ms: i64,
) -> Result<Posted> {
    let changed = conn
        .prepare_cached(
            "UPDATE threads SET status = 'claimed', claimed_by = ?2, lease_expires_at = ?3 + ?4, lease_ms = ?4,
                    claim_epoch = claim_epoch + 1, claim_count = claim_count + 1, awaiting_reply = 0,
                    asked_by = NULL, updated_at = ?3
             WHERE id = ?1 AND status = 'open'",
        )?
        .execute(params![thread.id, actor, now, lease_ms])?;
    if changed != 1 {
        return Err(Error::internal(format!(
            "thread {} changed under the write lock",
            thread.id
        )));
    }
    let epoch: i64 = conn.query_row(
        "SELECT claim_epoch FROM threads WHERE id = ?1",
        [thread.id],
        |r| r.get(0),
    )?;
    conn.prepare_cached(
        "INSERT INTO holders (thread_id, agent, epoch, ended_by) VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (thread_id, agent) DO UPDATE SET epoch = excluded.epoch, ended_by = NULL",
    )?
    .execute(params![thread.id, actor, epoch])?;
    status_event(conn, now, thread, "claimed", actor)?;
    let data = json!({"epoch": epoch, "lease_expires_at": rfc3339(now + lease_ms)});
    let message = insert_message(
        conn,
        now,
        Post::plain(thread, actor, "claim", "", Some(&data)),
    )?;
    posted(conn, thread.id, message)
}

/// Which open thread `claim --next` would take.
pub struct NextFilter<'a> {
    /// One queue, subscribed or not; `None` means "to me or to any queue I subscribe to".
    pub queue: Option<&'a str>,
    pub kind: Option<&'a str>,
}

/// Takes the oldest open thread for `actor`; `Ok(None)` when there is none.
pub fn claim_next(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    filter: &NextFilter<'_>,
    lease: Option<Duration>,
) -> Result<Option<Posted>> {
    let lease_ms = check_lease(lease.unwrap_or(cfg.default_lease))?;
    let now = begin(conn, cfg)?;
    let id: Option<i64> = match filter.queue {
        Some(queue) => conn
            .prepare_cached(
                "SELECT id FROM threads WHERE status = 'open' AND to_addr = '@' || ?1
                 AND (?2 IS NULL OR kind = ?2) ORDER BY id LIMIT 1",
            )?
            .query_row(params![queue, filter.kind], |r| r.get(0))
            .optional()?,
        None => conn
            .prepare_cached(
                "SELECT id FROM threads WHERE status = 'open'
                 AND (to_addr = ?1 OR to_addr IN (SELECT '@' || queue FROM subscriptions WHERE agent = ?1))
                 AND (?2 IS NULL OR kind = ?2) ORDER BY id LIMIT 1",
            )?
            .query_row(params![actor, filter.kind], |r| r.get(0))
            .optional()?,
    };
    match id {
        Some(id) => {
            let thread = get_thread(conn, id)?;
            take(conn, now, &thread, actor, lease_ms).map(Some)
        }
        None => Ok(None),
    }
}

fn renew_claimed(
    conn: &Connection,
    now: i64,
    thread: &Thread,
    actor: &str,
    lease_ms: Option<i64>,
) -> Result<Posted> {
    extend_lease(conn, now, thread.id, lease_ms)?;
    let expires: i64 = conn.query_row(
        "SELECT lease_expires_at FROM threads WHERE id = ?1",
        [thread.id],
        |r| r.get(0),
    )?;
    let data = json!({"lease_expires_at": rfc3339(expires)});
    let message = insert_message(
        conn,
        now,
        Post::plain(thread, actor, "renew", "", Some(&data)),
    )?;
    posted(conn, thread.id, message)
}

pub fn renew(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
    lease: Option<Duration>,
) -> Result<Posted> {
    let lease_ms = lease.map(check_lease).transpose()?;
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    renew_claimed(conn, now, &thread, actor, lease_ms)
}

pub fn release(conn: &Connection, cfg: &Config, actor: &str, id: i64) -> Result<Posted> {
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    conn.prepare_cached(
        "UPDATE threads SET status = 'open', claimed_by = NULL, lease_expires_at = NULL, awaiting_reply = 0,
                asked_by = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    end_hold(conn, id, actor, "release")?;
    status_event(conn, now, &thread, "open", actor)?;
    let message = insert_message(conn, now, Post::plain(&thread, actor, "release", "", None))?;
    posted(conn, id, message)
}

/// A note with optional data and files; the body, data and files of one message.
#[derive(Default)]
pub struct Note<'a> {
    pub body: &'a str,
    pub data: Option<&'a Value>,
    pub artifacts: &'a [StagedArtifact],
}

/// Checks a note's body and data; callers run it before staging attachments too, so
/// that bad input never leaves a stored blob behind.
pub fn check_note(note: &Note<'_>) -> Result<()> {
    check_body(note.body)?;
    if let Some(data) = note.data {
        check_object("data", data)?;
    }
    Ok(())
}

/// [`check_note`] for a reply, which must say something.
pub fn check_reply(note: &Note<'_>) -> Result<()> {
    check_note(note)?;
    if note.body.trim().is_empty() {
        return Err(
            Error::invalid_input("the reply is empty").hint("pass it with --body or --body-file")
        );
    }
    Ok(())
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    extend_lease(conn, now, id, None)?;
    let message = insert_message(
        conn,
        now,
        Post {
            thread: &thread,
            author: actor,
            kind: "update",
            body: note.body,
            data: note.data,
            artifacts: note.artifacts,
        },
    )?;
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
    let author = thread
        .claimed_by
        .clone()
        .filter(|_| thread.status == "claimed")
        .unwrap_or_else(|| actor.to_owned());
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    if thread.is_closed() {
        return Err(thread_closed(&thread));
    }
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
    let message = insert_message(
        conn,
        now,
        Post {
            thread: &thread,
            author: actor,
            kind: "reply",
            body: note.body,
            data: note.data,
            artifacts: note.artifacts,
        },
    )?;
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    if let Some(check) = check {
        check(&thread, result.unwrap_or(&Value::Null))?;
    }
    conn.prepare_cached(
        "UPDATE threads SET status = 'done', lease_expires_at = NULL, awaiting_reply = 0, asked_by = NULL,
                result = ?2, updated_at = ?3 WHERE id = ?1",
    )?
    .execute(params![id, result.map(Value::to_string), now])?;
    end_hold(conn, id, actor, "done")?;
    status_event(conn, now, &thread, "done", actor)?;
    let message = insert_message(
        conn,
        now,
        Post {
            thread: &thread,
            author: actor,
            kind: "done",
            body: note.body,
            data: result,
            artifacts: note.artifacts,
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    conn.prepare_cached(
        "UPDATE threads SET status = 'failed', lease_expires_at = NULL, awaiting_reply = 0, asked_by = NULL,
                fail_reason = ?2, fail_retryable = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![id, reason, retryable, now])?;
    end_hold(conn, id, actor, "fail")?;
    status_event(conn, now, &thread, "failed", actor)?;
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
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    if thread.is_closed() {
        return Err(thread_closed(&thread));
    }
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
    if let Some(holder) = thread
        .claimed_by
        .as_deref()
        .filter(|_| thread.status == "claimed")
    {
        end_hold(conn, id, holder, "cancel")?;
    }
    status_event(conn, now, &thread, "cancelled", actor)?;
    let message = insert_message(
        conn,
        now,
        Post::plain(&thread, actor, "cancel", reason, None),
    )?;
    posted(conn, id, message)
}

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

pub fn subscriptions(conn: &Connection, actor: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached("SELECT queue FROM subscriptions WHERE agent = ?1 ORDER BY queue")?
        .query_map([actor], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

// ---------------------------------------------------------------------------------------
// Reading.

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
                filter.status,
                filter.kind,
                filter.mine,
                filter.limit
            ],
            thread_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(threads)
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

// ---------------------------------------------------------------------------------------
// The facade the CLI uses: one short transaction per step, blocking waits without one.

/// The sleep of every blocking wait (inbox and orch alike): until another process
/// commits after `version`, the next lease runs out (so an expiry is seen without anyone
/// writing), or `deadline` passes. Returns false once the deadline has passed; the
/// caller probes again otherwise. The deadline is checked first, so a stream of
/// commits the caller does not care about cannot carry a wait past it.
pub fn sleep_until_change(store: &Store, version: i64, deadline: Option<Instant>) -> Result<bool> {
    let passed = |d: Instant| Instant::now() >= d;
    if deadline.is_some_and(passed) {
        return Ok(false);
    }
    let wake = next_lease_end(store.conn())?
        .map(|end| Instant::now() + Duration::from_millis((end - now_ms()).max(0) as u64 + 1));
    let until = match (deadline, wake) {
        (Some(d), Some(w)) => Some(d.min(w)),
        (d, w) => d.or(w),
    };
    let committed = store.wait_for_commit(version, until)?;
    Ok(committed || !deadline.is_some_and(passed))
}

pub struct Inbox<'s> {
    pub store: &'s mut Store,
    pub cfg: Config,
}

impl<'s> Inbox<'s> {
    pub fn new(store: &'s mut Store, cfg: Config) -> Self {
        Inbox { store, cfg }
    }

    /// Applies due lease expiries before a read, taking the write lock only when needed.
    pub fn settle(&mut self) -> Result<()> {
        if any_due(self.store.conn(), now_ms())? {
            let cfg = self.cfg.clone();
            self.store
                .write(|tx| expire_due(tx, &cfg, now_ms()).map(drop))?;
        }
        Ok(())
    }

    pub fn write<T>(&mut self, f: impl FnOnce(&Connection, &Config) -> Result<T>) -> Result<T> {
        let cfg = &self.cfg;
        self.store.write(|tx| f(tx, cfg))
    }

    pub fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.settle()?;
        self.store.read(|tx| f(tx))
    }

    /// Blocks until `probe` yields something or `deadline` passes (`Ok(None)`). `probe`
    /// runs again after each commit by another process and when a lease runs out.
    fn wait_for<T>(
        &mut self,
        deadline: Option<Instant>,
        mut probe: impl FnMut(&mut Self) -> Result<Option<T>>,
    ) -> Result<Option<T>> {
        loop {
            let version = self.store.data_version()?;
            if let Some(found) = probe(self)? {
                return Ok(Some(found));
            }
            if !sleep_until_change(self.store, version, deadline)? {
                return Ok(None);
            }
        }
    }

    pub fn fetch_wait(
        &mut self,
        actor: &str,
        limit: i64,
        deadline: Option<Instant>,
    ) -> Result<Option<(Vec<Message>, i64)>> {
        self.wait_for(deadline, |inbox| {
            let (messages, cursor) = inbox.read(|tx| unread(tx, actor, limit))?;
            Ok((!messages.is_empty()).then_some((messages, cursor)))
        })
    }

    pub fn claim_next_wait(
        &mut self,
        actor: &str,
        filter: &NextFilter<'_>,
        lease: Option<Duration>,
        deadline: Option<Instant>,
    ) -> Result<Option<Posted>> {
        self.wait_for(deadline, |inbox| {
            inbox.write(|tx, cfg| claim_next(tx, cfg, actor, filter, lease))
        })
    }

    /// Blocks until someone other than `actor` posts on thread `id` after `actor`'s last
    /// message there (so a reply that raced ahead of the wait is not missed; renewals and
    /// progress records do not count as `actor`'s messages). Renews
    /// `actor`'s lease while waiting when `actor` holds the thread.
    pub fn wait_reply(
        &mut self,
        actor: &str,
        id: i64,
        deadline: Option<Instant>,
    ) -> Result<Option<Posted>> {
        let (baseline, holds) = self.read(|tx| {
            let thread = get_thread(tx, id)?;
            // Bookkeeping written in my name (renewals, hook progress, an expiry) is not
            // a turn in the conversation: a reply that came after my last real message
            // is still unanswered even when a renewal followed it.
            let mine: Option<i64> = tx
                .prepare_cached(
                    "SELECT max(id) FROM messages WHERE thread_id = ?1 AND author = ?2
                     AND kind NOT IN ('renew', 'progress', 'expire')",
                )?
                .query_row(params![id, actor], |r| r.get(0))?;
            let latest: i64 = tx.query_row(
                "SELECT coalesce(max(id), 0) FROM messages WHERE thread_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            let holds = thread.status == "claimed" && thread.claimed_by.as_deref() == Some(actor);
            // A holder whose lease ran out must hear so (lease_lost) rather than wait on
            // as a bystander for an answer to work it no longer owns.
            if !holds && lost_by_expiry(tx, id, actor)? {
                require_holder(tx, &thread, actor)?;
            }
            Ok((mine.unwrap_or(latest), holds))
        })?;
        // A holder checks its lease straight away, then whenever half of it is left.
        let mut renew_at: Option<Instant> = holds.then(Instant::now);
        loop {
            let step_deadline = match (deadline, renew_at) {
                (Some(d), Some(r)) => Some(d.min(r)),
                (d, r) => d.or(r),
            };
            let found = self.wait_for(step_deadline, |inbox| {
                inbox.read(|tx| {
                    let thread = get_thread(tx, id)?;
                    if holds {
                        require_holder(tx, &thread, actor)?;
                    }
                    let reply: Option<i64> = tx
                        .prepare_cached(
                            "SELECT id FROM messages WHERE thread_id = ?1 AND id > ?2 AND author <> ?3
                             AND kind IN ('send', 'update', 'ask', 'reply') ORDER BY id LIMIT 1",
                        )?
                        .query_row(params![id, baseline, actor], |r| r.get(0))
                        .optional()?;
                    if let Some(message) = reply {
                        return posted(tx, id, message).map(Some);
                    }
                    if thread.is_closed() {
                        return Err(thread_closed(&thread));
                    }
                    Ok(None)
                })
            })?;
            if found.is_some() {
                return Ok(found);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            if holds {
                // Renew once half the lease is left, well before it can run out.
                let next_check_ms = self.write(|tx, cfg| {
                    let now = begin(tx, cfg)?;
                    let thread = get_thread(tx, id)?;
                    require_holder(tx, &thread, actor)?;
                    let (expires, lease_ms): (i64, i64) = tx.query_row(
                        "SELECT lease_expires_at, lease_ms FROM threads WHERE id = ?1",
                        [id],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )?;
                    if expires - now <= lease_ms / 2 {
                        renew_claimed(tx, now, &thread, actor, None)?;
                        return Ok(lease_ms / 2);
                    }
                    Ok(expires - now - lease_ms / 2)
                })?;
                renew_at =
                    Some(Instant::now() + Duration::from_millis(next_check_ms.max(1) as u64));
            }
        }
    }

    /// Streams events after `after` to `emit` until it returns false or `deadline` passes.
    pub fn watch(
        &mut self,
        filter: &EventFilter,
        mut after: i64,
        deadline: Option<Instant>,
        mut emit: impl FnMut(&Event) -> Result<bool>,
    ) -> Result<bool> {
        loop {
            let found = self.wait_for(deadline, |inbox| {
                let batch = inbox.read(|tx| events_after(tx, filter, after, 500))?;
                Ok((!batch.is_empty()).then_some(batch))
            })?;
            let Some(batch) = found else { return Ok(false) };
            for event in &batch {
                after = event.id;
                if !emit(event)? {
                    return Ok(true);
                }
            }
        }
    }
}
