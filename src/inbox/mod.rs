//! The inbox: threads of messages between named agents, claims under strict leases, read
//! cursors, queues, artifacts and blocking waits. It knows nothing of runs or tasks.
//!
//! Functions that change state take the open transaction (`&Connection` inside
//! [`Store::write`](crate::store::Store::write)), so a caller above, like orch, can make
//! its own rows and an inbox thread in one atomic step. The decisions behind the
//! behaviour are in `docs/inbox.md`.
//!
//! Files, each looking only at those above it: `status` and `model` (the types),
//! `validate`, `rows` (reading), `post` (how a write records itself), `lease` (claims and
//! the fence), `thread` (the rest of a thread's life), `delivery` (queues and cursors),
//! `query` (lists and events), `wait` (blocking waits and the [`Inbox`] facade).

pub mod artifacts;
mod delivery;
mod lease;
mod model;
mod post;
mod query;
mod rows;
mod status;
mod thread;
mod validate;
mod wait;

#[cfg(test)]
mod tests;

pub use delivery::{advance_cursor, subscribe, unread, unsubscribe};
pub use lease::{claim, claim_next, expire_due, release, renew, NextFilter};
pub use model::{Failure, Message, NewThread, Note, Thread};
pub use query::{events_after, list, EventFilter, ListFilter};
pub use rows::{artifact, find_thread, get_thread, thread_messages};
pub use status::ThreadStatus;
pub use thread::{ask, cancel, done, fail, progress, reply, send, update};
pub use validate::{check_body, check_note, check_object, check_reply, check_subject, parse_json};
pub use wait::{sleep_until_change, Inbox};

use std::time::Duration;

pub const MAX_SUBJECT_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// Settings that come from git config: `orch.defaultLease`, `orch.maxClaims`,
/// `orch.leader`.
#[derive(Debug, Clone)]
pub struct Config {
    pub default_lease: Duration,
    /// The expiry that fails a thread instead of reopening it (expiries, not claims).
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
