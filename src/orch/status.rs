//! The statuses of runs, tasks and attempts as types. Each has its wire string
//! (`as_str`, the JSON value and the stored column value alike), parses back from it,
//! and converts to and from SQLite here and nowhere else. The SQL lists that queries
//! and a partial index need as literals sit beside the enum, and a test checks them
//! against its predicates.

use crate::error::{Error, Result};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

macro_rules! status_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($variant,)+
        }

        impl $name {
            /// Every status, in the order tables and counts show them.
            pub const ALL: &[$name] = &[$($name::$variant,)+];
            /// The wire strings of [`Self::ALL`], in the same order.
            pub const NAMES: &[&str] = &[$($text,)+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::invalid_input(format!(
                        concat!("unknown ", $what, " status {:?}"),
                        text
                    ))
                    .hint(format!("one of {}", Self::NAMES.join(", ")))),
                }
            }
        }

        impl From<$name> for serde_json::Value {
            fn from(status: $name) -> Self {
                serde_json::Value::from(status.as_str())
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                // The schema's CHECK constraints keep anything else out of the column.
                let text = value.as_str()?;
                text.parse()
                    .map_err(|_| FromSqlError::Other(format!("unknown {} status {text:?}", $what).into()))
            }
        }
    };
}

status_enum!(
    /// Where a task stands (SPEC §6).
    TaskStatus, "task" {
        Pending => "pending",
        Ready => "ready",
        Dispatched => "dispatched",
        Running => "running",
        Blocked => "blocked",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

status_enum!(
    /// Where one attempt at a task stands; `preparing` only while it is being dispatched.
    AttemptStatus, "attempt" {
        Preparing => "preparing",
        Dispatched => "dispatched",
        Running => "running",
        Blocked => "blocked",
        Succeeded => "succeeded",
        Failed => "failed",
        Lost => "lost",
        Cancelled => "cancelled",
    }
);

status_enum!(
    /// Whether a run still takes changes.
    RunStatus, "run" {
        Active => "active",
        Closed => "closed",
        Cancelled => "cancelled",
    }
);

impl TaskStatus {
    /// No reconcile changes the task any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }

    /// An attempt of the task is in flight.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            TaskStatus::Dispatched | TaskStatus::Running | TaskStatus::Blocked
        )
    }
}

impl AttemptStatus {
    /// The attempt is not over yet.
    pub fn is_live(self) -> bool {
        matches!(
            self,
            AttemptStatus::Preparing
                | AttemptStatus::Dispatched
                | AttemptStatus::Running
                | AttemptStatus::Blocked
        )
    }
}

/// [`AttemptStatus::is_live`] as an SQL list. A literal, not a bound parameter: the
/// `attempts_live` partial index is only used when SQLite can see the list.
pub(crate) const LIVE_ATTEMPT_SQL: &str = "('preparing', 'dispatched', 'running', 'blocked')";
/// The attempt statuses that are not live, as an SQL list.
pub(crate) const ENDED_ATTEMPT_SQL: &str = "('succeeded', 'failed', 'lost', 'cancelled')";
/// [`TaskStatus::is_in_flight`] as an SQL list.
pub(crate) const IN_FLIGHT_TASK_SQL: &str = "('dispatched', 'running', 'blocked')";
/// [`TaskStatus::is_final`] as an SQL list.
pub(crate) const FINAL_TASK_SQL: &str = "('done', 'failed', 'cancelled')";

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_list<T: Copy>(all: &[T], name: fn(T) -> &'static str, keep: fn(T) -> bool) -> String {
        let names: Vec<String> = all
            .iter()
            .filter(|&&s| keep(s))
            .map(|&s| format!("'{}'", name(s)))
            .collect();
        format!("({})", names.join(", "))
    }

    #[test]
    fn sql_lists_match_the_predicates() {
        let all = AttemptStatus::ALL;
        assert_eq!(
            LIVE_ATTEMPT_SQL,
            sql_list(all, AttemptStatus::as_str, AttemptStatus::is_live)
        );
        assert_eq!(
            ENDED_ATTEMPT_SQL,
            sql_list(all, AttemptStatus::as_str, |s| !s.is_live())
        );
        let all = TaskStatus::ALL;
        assert_eq!(
            IN_FLIGHT_TASK_SQL,
            sql_list(all, TaskStatus::as_str, TaskStatus::is_in_flight)
        );
        assert_eq!(
            FINAL_TASK_SQL,
            sql_list(all, TaskStatus::as_str, TaskStatus::is_final)
        );
    }

    #[test]
    fn wire_strings_round_trip_through_json_text_and_sqlite() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = rusqlite::Connection::open(tmp.path().join("status.db")).unwrap();
        for &status in TaskStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(status.as_str().parse::<TaskStatus>().unwrap(), status);
            let back: TaskStatus = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(back, status);
        }
        for &status in AttemptStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
            assert_eq!(status.as_str().parse::<AttemptStatus>().unwrap(), status);
        }
        for &status in RunStatus::ALL {
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(TaskStatus::NAMES.len(), TaskStatus::ALL.len());
        let err = "finished".parse::<TaskStatus>().unwrap_err();
        assert_eq!(err.code, crate::error::Code::InvalidInput);
        let bad: rusqlite::Result<AttemptStatus> =
            conn.query_row("SELECT 'gone'", [], |r| r.get(0));
        assert!(bad.is_err());
    }
}
