//! The one error type every layer returns: a stable code, a message, an optional hint and
//! structured details. The CLI maps the code to its exit status (docs/reference.md lists
//! both, generated from [`Code::ALL`]).

use serde_json::{Map, Value};
use std::fmt;

/// Stable error codes. The string form is part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Internal,
    Io,
    Usage,
    InvalidInput,
    InvalidName,
    TooLarge,
    NotFound,
    NotInitialized,
    NoIdentity,
    Conflict,
    AlreadyClaimed,
    NotClaimant,
    LeaseLost,
    InvalidTransition,
    Exists,
    Cycle,
    ThreadClosed,
    Timeout,
    DirtyWorktree,
    BadRef,
    WorktreeExists,
    BaseConflict,
    GitFailed,
    UnknownProfile,
    AgentFailedToStart,
    TargetBusy,
    Busy,
    SchemaTooNew,
    /// `state.db` has content that is not a git-orch database; nothing was changed.
    InvalidState,
    Stuck,
}

impl Code {
    /// Every code, in the order the reference lists them (by exit status).
    pub const ALL: [Code; 30] = [
        Code::Internal,
        Code::Io,
        Code::Usage,
        Code::InvalidInput,
        Code::InvalidName,
        Code::TooLarge,
        Code::NotFound,
        Code::NotInitialized,
        Code::NoIdentity,
        Code::UnknownProfile,
        Code::Conflict,
        Code::AlreadyClaimed,
        Code::NotClaimant,
        Code::LeaseLost,
        Code::InvalidTransition,
        Code::Exists,
        Code::Cycle,
        Code::ThreadClosed,
        Code::Stuck,
        Code::Timeout,
        Code::DirtyWorktree,
        Code::BadRef,
        Code::WorktreeExists,
        Code::BaseConflict,
        Code::GitFailed,
        Code::AgentFailedToStart,
        Code::InvalidState,
        Code::TargetBusy,
        Code::Busy,
        Code::SchemaTooNew,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Internal => "internal",
            Code::Io => "io",
            Code::Usage => "usage",
            Code::InvalidInput => "invalid_input",
            Code::InvalidName => "invalid_name",
            Code::TooLarge => "too_large",
            Code::NotFound => "not_found",
            Code::NotInitialized => "not_initialized",
            Code::NoIdentity => "no_identity",
            Code::Conflict => "conflict",
            Code::AlreadyClaimed => "already_claimed",
            Code::NotClaimant => "not_claimant",
            Code::LeaseLost => "lease_lost",
            Code::InvalidTransition => "invalid_transition",
            Code::Exists => "exists",
            Code::Cycle => "cycle",
            Code::ThreadClosed => "thread_closed",
            Code::Timeout => "timeout",
            Code::DirtyWorktree => "dirty_worktree",
            Code::BadRef => "bad_ref",
            Code::WorktreeExists => "worktree_exists",
            Code::BaseConflict => "base_conflict",
            Code::GitFailed => "git_failed",
            Code::UnknownProfile => "unknown_profile",
            Code::AgentFailedToStart => "agent_failed_to_start",
            Code::TargetBusy => "target_busy",
            Code::Busy => "busy",
            Code::SchemaTooNew => "schema_too_new",
            Code::InvalidState => "invalid_state",
            Code::Stuck => "stuck",
        }
    }

    /// What the code tells the caller, for the reference.
    pub fn meaning(self) -> &'static str {
        match self {
            Code::Internal => "a bug in git-orch; the message and details say where",
            Code::Io => "reading or writing a file failed (permissions, a full disk)",
            Code::Usage => "the command line is wrong: a missing, extra or clashing argument",
            Code::InvalidInput => "a value is malformed: a duration, an id, JSON, a plan",
            Code::InvalidName => "an agent, run, task or queue name breaks the naming rule",
            Code::TooLarge => "a body, data object or artifact is over its size limit",
            Code::NotFound => "the thread, task, run, attempt or artifact named does not exist",
            Code::NotInitialized => "the repository has no git-orch state: run `git orch init`",
            Code::NoIdentity => {
                "no agent name: pass --agent, set ORCH_AGENT, or stand in an attempt worktree"
            }
            Code::Conflict => "someone else holds or owns it, or another attempt is in flight",
            Code::AlreadyClaimed => "the thread is claimed by another agent under a live lease",
            Code::NotClaimant => "the command needs the claim on the thread and you do not hold it",
            Code::LeaseLost => "your claim ran out and was taken back before this command",
            Code::InvalidTransition => "the thread, task or run is in a status that forbids this",
            Code::Exists => "something by that name already exists",
            Code::Cycle => "the dependency would make the task graph cyclic",
            Code::ThreadClosed => "the thread is done, failed or cancelled",
            Code::Timeout => "a blocking wait ran out before its condition held",
            Code::DirtyWorktree => {
                "the main worktree has uncommitted changes; details list the paths"
            }
            Code::BadRef => "a revision or branch name does not resolve to a commit",
            Code::WorktreeExists => "the attempt's worktree path or branch is already taken",
            Code::BaseConflict => {
                "the dependencies' results do not merge cleanly; the task is blocked"
            }
            Code::GitFailed => "a git command failed; details carry its arguments and stderr",
            Code::UnknownProfile => {
                "no agent profile or preset by that name (orch.agent.<profile>.*)"
            }
            Code::AgentFailedToStart => {
                "the profile's program is missing or not executable; nothing was dispatched"
            }
            Code::InvalidState => {
                "state.db has content that is not a git-orch database; nothing was changed"
            }
            Code::TargetBusy => {
                "the land target is checked out where it cannot be advanced; the result waits at refs/orch/land/<run>"
            }
            Code::Busy => "the database stayed locked past the busy timeout",
            Code::SchemaTooNew => "the database was written by a newer git-orch than this binary",
            Code::Stuck => "drive can make no progress: nothing in flight, nothing can start",
        }
    }

    /// The process exit status for this code.
    pub fn exit_status(self) -> u8 {
        use Code::*;
        match self {
            Internal | Io => 1,
            Usage | InvalidInput | InvalidName | TooLarge => 2,
            NotFound | NotInitialized | NoIdentity | UnknownProfile => 3,
            Conflict | AlreadyClaimed | NotClaimant | LeaseLost | InvalidTransition | Exists
            | Cycle | ThreadClosed | Stuck => 4,
            Timeout => 5,
            DirtyWorktree | BadRef | WorktreeExists | BaseConflict | GitFailed
            | AgentFailedToStart | InvalidState | TargetBusy => 6,
            Busy => 7,
            SchemaTooNew => 8,
        }
    }
}

/// How an error ends the command. Nearly every error is a failure, reported with its code;
/// a closed stdout (`git orch log | head`) is the reader leaving, not the command failing,
/// so the command stops there, quietly and with status 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Failure,
    BrokenPipe,
}

#[derive(Debug, Clone)]
pub struct Error {
    // Private so that only `broken_pipe` makes the quiet kind: a failure can never be
    // swallowed by a stray field.
    kind: Kind,
    pub code: Code,
    pub message: String,
    pub hint: Option<String>,
    pub details: Map<String, Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Failure,
            code,
            message: message.into(),
            hint: None,
            details: Map::new(),
        }
    }

    /// Stdout is gone; never on the wire (see [`Kind::BrokenPipe`]).
    pub fn broken_pipe() -> Self {
        Error {
            kind: Kind::BrokenPipe,
            ..Error::new(Code::Io, "broken pipe")
        }
    }

    /// A failed write of the command's output: a broken pipe is its own kind.
    pub fn output(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Error::broken_pipe()
        } else {
            Error::io("writing output", err)
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Code::Internal, message)
    }

    pub fn invalid_input(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(Code::NotFound, message)
    }

    pub fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(Code::Io, format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode;
        match err.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Error::new(
                Code::Busy,
                "the state database stayed locked past the busy timeout",
            )
            .hint("another git-orch process holds the write lock for too long; retry"),
            Some(ErrorCode::DiskFull | ErrorCode::SystemIoFailure | ErrorCode::CannotOpen) => {
                Error::new(Code::Io, format!("database I/O failed: {err}"))
            }
            _ => Error::internal(format!("database error: {err}")),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::internal(format!("JSON error: {err}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn only_a_closed_stdout_is_the_quiet_kind() {
        let gone = Error::output(io::Error::from(io::ErrorKind::BrokenPipe));
        assert_eq!(gone.kind(), Kind::BrokenPipe);
        assert!(gone.details.is_empty(), "nothing of it reaches the wire");
        let full = Error::output(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.kind(), Kind::Failure);
        assert_eq!(full.code, Code::Io);
        assert_eq!(Error::new(Code::Io, "x").kind(), Kind::Failure);
    }

    #[test]
    fn all_lists_every_code_once_by_exit_status() {
        // Exhaustive on purpose: a new variant stops this compiling until it is in ALL.
        let listed = |code: Code| match code {
            Code::Internal
            | Code::Io
            | Code::Usage
            | Code::InvalidInput
            | Code::InvalidName
            | Code::TooLarge
            | Code::NotFound
            | Code::NotInitialized
            | Code::NoIdentity
            | Code::Conflict
            | Code::AlreadyClaimed
            | Code::NotClaimant
            | Code::LeaseLost
            | Code::InvalidTransition
            | Code::Exists
            | Code::Cycle
            | Code::ThreadClosed
            | Code::Timeout
            | Code::DirtyWorktree
            | Code::BadRef
            | Code::WorktreeExists
            | Code::BaseConflict
            | Code::GitFailed
            | Code::Busy
            | Code::UnknownProfile
            | Code::AgentFailedToStart
            | Code::InvalidState
            | Code::SchemaTooNew
            | Code::Stuck
            | Code::TargetBusy => Code::ALL.contains(&code),
        };
        assert!(Code::ALL.iter().all(|&c| listed(c)));
        let names: std::collections::BTreeSet<&str> =
            Code::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), Code::ALL.len());
        assert!(Code::ALL
            .windows(2)
            .all(|w| w[0].exit_status() <= w[1].exit_status()));
    }
}
