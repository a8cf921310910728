//! `Changes`, the events one command appended, and `Act`, who acts and when. A leaf over
//! the event log.

use crate::error::Result;
use crate::store::events::{self, Event, NewEvent};
use crate::time::rfc3339;
use rusqlite::Connection;
use serde_json::Value;

/// The events one command appended, in order: what `reconcile` reports as its changes.
#[derive(Debug, Default)]
pub struct Changes {
    pub events: Vec<Event>,
}

/// Who and when: the actor the events name (the leader, or the agent whose hook
/// reported a commit), and the transaction's clock.
pub(crate) struct Act<'a> {
    pub now: i64,
    pub actor: &'a str,
}

impl<'a> Act<'a> {
    /// `actor` acting now.
    pub(crate) fn now(actor: &'a str) -> Act<'a> {
        Act {
            now: crate::time::now_ms(),
            actor,
        }
    }
}

impl Changes {
    /// Appends an orch event (by `act.actor`) and keeps it.
    pub(crate) fn emit(
        &mut self,
        conn: &Connection,
        act: &Act<'_>,
        event: NewEvent<'_>,
    ) -> Result<()> {
        let event = NewEvent {
            actor: Some(act.actor),
            ..event
        };
        let id = events::append(conn, act.now, &event)?;
        self.events.push(Event {
            id,
            at: rfc3339(act.now),
            kind: event.kind.to_owned(),
            thread: event.thread,
            run: event.run.map(str::to_owned),
            task: event.task.map(str::to_owned),
            attempt: event.attempt,
            from: event.from.map(str::to_owned),
            to: event.to.map(str::to_owned),
            actor: event.actor.map(str::to_owned),
            data: event
                .data
                .unwrap_or_else(|| Value::Object(Default::default())),
        });
        Ok(())
    }
}
