//! The inbox's nouns: what its commands return (threads, messages, failures) and what
//! its writes take (a new thread, a note).

use super::artifacts::{ArtifactRef, StagedArtifact};
use super::status::ThreadStatus;
use crate::names::Address;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Thread {
    pub id: i64,
    pub subject: String,
    pub kind: String,
    pub from: String,
    pub to: String,
    pub status: ThreadStatus,
    pub claimed_by: Option<String>,
    pub lease_expires_at: Option<String>,
    pub claim_count: i64,
    pub awaiting_reply: bool,
    pub data: Value,
    pub result: Value,
    /// Why a failed thread failed; null otherwise (an addition to the documented Thread).
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
        self.status.is_closed()
    }

    /// Whether `agent` holds the claim (the lease may still have run out: see the fence).
    pub fn is_held_by(&self, agent: &str) -> bool {
        self.status == ThreadStatus::Claimed && self.claimed_by.as_deref() == Some(agent)
    }

    /// The current holder, if the thread is claimed.
    pub fn holder(&self) -> Option<&str> {
        self.claimed_by
            .as_deref()
            .filter(|_| self.status == ThreadStatus::Claimed)
    }
}

/// A thread to start: its address, subject, kind and first message.
pub struct NewThread<'a> {
    pub to: &'a Address,
    pub subject: &'a str,
    pub kind: &'a str,
    pub body: &'a str,
    pub data: Option<&'a Value>,
    pub artifacts: &'a [StagedArtifact],
}

/// A note with optional data and files; the body, data and files of one message.
#[derive(Default)]
pub struct Note<'a> {
    pub body: &'a str,
    pub data: Option<&'a Value>,
    pub artifacts: &'a [StagedArtifact],
}
