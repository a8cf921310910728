//! A thread's status, in one place: its wire and column spelling, its JSON form and its
//! SQLite form. `open` → `claimed` → `done` | `failed` | `cancelled`; a claim released or
//! run out takes a thread back to `open`.
//!
//! SQL text keeps its literals (`WHERE status = 'claimed'`): the partial index on claimed
//! threads only serves a query that names the literal, and the table's CHECK constraint
//! refuses a misspelt one at the first write. Rust code compares this type instead.

use crate::error::{Error, Result};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThreadStatus {
    Open,
    Claimed,
    Done,
    Failed,
    Cancelled,
}

impl ThreadStatus {
    pub const ALL: [ThreadStatus; 5] = [
        ThreadStatus::Open,
        ThreadStatus::Claimed,
        ThreadStatus::Done,
        ThreadStatus::Failed,
        ThreadStatus::Cancelled,
    ];

    /// The stable spelling: JSON, the `threads.status` column, events' `from`/`to`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Open => "open",
            ThreadStatus::Claimed => "claimed",
            ThreadStatus::Done => "done",
            ThreadStatus::Failed => "failed",
            ThreadStatus::Cancelled => "cancelled",
        }
    }

    pub fn from_name(text: &str) -> Option<ThreadStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// [`ThreadStatus::from_name`] for user input: an unknown name is `invalid_input`.
    pub fn parse(text: &str) -> Result<ThreadStatus> {
        Self::from_name(text).ok_or_else(|| {
            Error::invalid_input(format!("unknown thread status {text:?}"))
                .hint("use open, claimed, done, failed or cancelled")
        })
    }

    /// Done, failed and cancelled threads take no more claims or messages.
    pub fn is_closed(self) -> bool {
        matches!(
            self,
            ThreadStatus::Done | ThreadStatus::Failed | ThreadStatus::Cancelled
        )
    }
}

impl fmt::Display for ThreadStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Lets code that knew the status as a string (`thread.status == "open"`) keep reading so.
impl PartialEq<&str> for ThreadStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl ToSql for ThreadStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ThreadStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        ThreadStatus::from_name(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown thread status {text:?}").into()))
    }
}
