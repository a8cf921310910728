//! Blocking waits, and the facade the CLI uses: one short transaction per step, and no
//! transaction while waiting.

use super::delivery::unread;
use super::lease::{
    any_due, begin, claim_next, expire_due, lost_by_expiry, next_lease_end, renew_claimed,
    require_holder, NextFilter,
};
use super::model::{Message, Posted};
use super::post::{posted, thread_closed};
use super::query::{events_after, EventFilter};
use super::rows::{get_message, get_thread};
use super::Config;
use crate::error::Result;
use crate::store::events::Event;
use crate::store::Store;
use crate::time::now_ms;
use rusqlite::{params, Connection, OptionalExtension};
use std::time::{Duration, Instant};

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
    let wake = next_lease_end(store.conn())?.map(|end| {
        Instant::now() + Duration::from_millis(u64::try_from(end - now_ms()).unwrap_or(0) + 1)
    });
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
            let holds = thread.is_held_by(actor);
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
                        return posted(tx, id, get_message(tx, message)?).map(Some);
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
                renew_at = Some(
                    Instant::now()
                        + Duration::from_millis(u64::try_from(next_check_ms).unwrap_or(0).max(1)),
                );
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
