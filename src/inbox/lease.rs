//! Claims and leases. A claim is fenced by an epoch bumped on every new claim and a lease
//! end checked inside the transaction of every act of the holder. Expiry is lazy: every
//! write begins by applying the expiries that are due, and reads do when any is.

use super::model::{Posted, Thread};
use super::post::{end_hold, insert_message, posted, status_event, thread_closed, Post};
use super::rows::get_thread;
use super::status::ThreadStatus;
use super::validate::check_lease;
use super::Config;
use crate::error::{Code, Error, Result};
use crate::time::{now_ms, rfc3339};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;
use std::time::Duration;

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
        insert_message(
            conn,
            now,
            Post::plain(&thread, &holder, "expire", "", Some(&data)),
        )?;
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
            status_event(conn, now, &thread, ThreadStatus::Failed, &holder)?;
        } else {
            conn.prepare_cached(
                "UPDATE threads SET status = 'open', claimed_by = NULL, lease_expires_at = NULL, awaiting_reply = 0,
                        asked_by = NULL, expire_count = expire_count + 1, updated_at = ?2
                 WHERE id = ?1",
            )?
            .execute(params![id, now])?;
            status_event(conn, now, &thread, ThreadStatus::Open, &holder)?;
        }
    }
    Ok(due.len())
}

/// Whether any lease has run out (a cheap indexed read, so reads only write when needed).
pub(super) fn any_due(conn: &Connection, now: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM threads WHERE status = 'claimed' AND lease_expires_at <= ?1 LIMIT 1",
        )?
        .exists([now])?)
}

/// The earliest lease end in the future, so that waits can wake when a thread reopens.
pub(super) fn next_lease_end(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT min(lease_expires_at) FROM threads WHERE status = 'claimed'",
        [],
        |r| r.get(0),
    )?)
}

/// The fence: `actor` must hold an unexpired claim on `thread`, checked inside the same
/// transaction as the act (expiries due are applied at its start).
pub(super) fn require_holder(conn: &Connection, thread: &Thread, actor: &str) -> Result<()> {
    if thread.is_held_by(actor) {
        return Ok(());
    }
    if lost_by_expiry(conn, thread.id, actor)? {
        return Err(Error::new(Code::LeaseLost, format!("your lease on thread {} ran out", thread.id))
            .hint("the thread went back to its queue; claim it again if it is still open (work done since may be redone by another agent)")
            .detail("thread", thread.id)
            .detail("status", thread.status.as_str()));
    }
    if thread.is_closed() {
        return Err(thread_closed(thread));
    }
    Err(Error::new(
        Code::NotClaimant,
        format!("{actor} does not hold thread {}", thread.id),
    )
    .hint(match thread.holder() {
        Some(holder) => format!("it is claimed by {holder}"),
        None => format!("claim it first: git inbox claim {}", thread.id),
    })
    .detail("thread", thread.id)
    .detail("claimed_by", thread.claimed_by.clone()))
}

/// Whether `actor`'s last claim on thread `id` ended by its lease running out.
pub(super) fn lost_by_expiry(conn: &Connection, id: i64, actor: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM holders WHERE thread_id = ?1 AND agent = ?2 AND ended_by = 'expire'",
        )?
        .exists(params![id, actor])?)
}

/// Extends `actor`'s claim: `lease` from now, or the claim's own lease length.
pub(super) fn extend_lease(
    conn: &Connection,
    now: i64,
    id: i64,
    lease_ms: Option<i64>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE threads SET lease_expires_at = ?2 + coalesce(?3, lease_ms), lease_ms = coalesce(?3, lease_ms),
                updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now, lease_ms])?;
    Ok(())
}

/// Begins a write: the clock and lazy expiry for every command.
pub(super) fn begin(conn: &Connection, cfg: &Config) -> Result<i64> {
    let now = now_ms();
    expire_due(conn, cfg, now)?;
    Ok(now)
}

/// Begins a write by `actor` on thread `id`, which it must hold (the fence): the clock
/// and the thread.
pub(super) fn begin_held(
    conn: &Connection,
    cfg: &Config,
    actor: &str,
    id: i64,
) -> Result<(i64, Thread)> {
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    require_holder(conn, &thread, actor)?;
    Ok((now, thread))
}

/// Begins a write on thread `id`, which must not be closed: the clock and the thread.
pub(super) fn begin_open(conn: &Connection, cfg: &Config, id: i64) -> Result<(i64, Thread)> {
    let now = begin(conn, cfg)?;
    let thread = get_thread(conn, id)?;
    if thread.is_closed() {
        return Err(thread_closed(&thread));
    }
    Ok((now, thread))
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
    let (now, thread) = begin_open(conn, cfg, id)?;
    if thread.status == ThreadStatus::Claimed {
        if thread.is_held_by(actor) {
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
    let epoch: i64 = conn
        .prepare_cached(
            "UPDATE threads SET status = 'claimed', claimed_by = ?2, lease_expires_at = ?3 + ?4, lease_ms = ?4,
                    claim_epoch = claim_epoch + 1, claim_count = claim_count + 1, awaiting_reply = 0,
                    asked_by = NULL, updated_at = ?3
             WHERE id = ?1 AND status = 'open' RETURNING claim_epoch",
        )?
        .query_row(params![thread.id, actor, now, lease_ms], |r| r.get(0))
        .optional()?
        .ok_or_else(|| {
            Error::internal(format!("thread {} changed under the write lock", thread.id))
        })?;
    conn.prepare_cached(
        "INSERT INTO holders (thread_id, agent, epoch, ended_by) VALUES (?1, ?2, ?3, NULL)
         ON CONFLICT (thread_id, agent) DO UPDATE SET epoch = excluded.epoch, ended_by = NULL",
    )?
    .execute(params![thread.id, actor, epoch])?;
    status_event(conn, now, thread, ThreadStatus::Claimed, actor)?;
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
/// The oldest open thread addressed to agent ?1 or a queue it is subscribed to, of kind
/// ?2 when given.
pub(super) const CLAIM_NEXT_SQL: &str =
    "SELECT id FROM threads WHERE status = 'open' AND to_addr = ?1 AND (?2 IS NULL OR kind = ?2)
     UNION ALL
     SELECT t.id FROM subscriptions s CROSS JOIN threads t
         ON t.status = 'open' AND t.to_addr = '@' || s.queue
     WHERE s.agent = ?1 AND (?2 IS NULL OR t.kind = ?2)
     ORDER BY 1 LIMIT 1";

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
        // One index range of open threads per address the agent takes work from (the
        // CROSS JOIN keeps subscriptions outside): with `OR`, SQLite walked every open
        // thread of every address.
        None => conn
            .prepare_cached(CLAIM_NEXT_SQL)?
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

pub(super) fn renew_claimed(
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
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    renew_claimed(conn, now, &thread, actor, lease_ms)
}

pub fn release(conn: &Connection, cfg: &Config, actor: &str, id: i64) -> Result<Posted> {
    let (now, thread) = begin_held(conn, cfg, actor, id)?;
    conn.prepare_cached(
        "UPDATE threads SET status = 'open', claimed_by = NULL, lease_expires_at = NULL, awaiting_reply = 0,
                asked_by = NULL, updated_at = ?2 WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    end_hold(conn, id, actor, "release")?;
    status_event(conn, now, &thread, ThreadStatus::Open, actor)?;
    let message = insert_message(conn, now, Post::plain(&thread, actor, "release", "", None))?;
    posted(conn, id, message)
}
