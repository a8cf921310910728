//! `git orch land` (SPEC §13): a merge queue that brings done code tasks onto a target
//! branch, in dependency order, without a work tree, moving the target only by
//! compare-and-swap and sending back for rework what conflicts or fails the check.
//!
//! - `plan.rs`: the target, the candidates and their order (reads only).
//! - `queue.rs`: one pass: merge, check, publish (CAS), record, verify; start over when
//!   someone else moved the target.
//! - `record.rs`: the rows and events (landed, sent back), in short transactions.
//! - `check.rs`: the check command in a process group with a time limit.
//! - `rework.rs`: the rework attempts of what was sent back (launched, under drive).
//! - `super::land_lock`: the run's land lock and the check worktree that reconcile takes
//!   back (a leaf beside this module, so that repair can call it without a cycle).
//!
//! Decisions: docs/land.md.

pub mod check;
mod plan;
mod queue;
mod record;
mod rework;

pub use check::Check;
pub use plan::{resolve_target, unlanded};
pub use queue::land;
pub use rework::dispatch_reworks;

use super::model::{Attempt, Task};
use serde::Serialize;

/// `orch.land.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A merge commit for every task, so `git log --first-parent` is the run's story.
    #[default]
    Merge,
    /// Fast-forward when the target has not moved past the task's base.
    FfOrMerge,
}

impl Mode {
    pub fn parse(text: &str) -> crate::error::Result<Mode> {
        match text {
            "merge" => Ok(Mode::Merge),
            "ff-or-merge" => Ok(Mode::FfOrMerge),
            other => Err(crate::error::Error::invalid_input(format!(
                "orch.land.mode is {other:?}"
            ))
            .hint("set merge or ff-or-merge: git config orch.land.mode merge")),
        }
    }
}

/// Points a test can act at (a test-only seam, like the dispatch crash steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LandStep {
    /// The merged tip is computed (and checked); the target is about to be moved.
    BeforeUpdate,
}

/// What `git orch land` was asked for.
#[derive(Default)]
pub struct Options<'a> {
    pub run: Option<&'a str>,
    pub into: Option<&'a str>,
    pub check: Option<Check>,
    /// Only these tasks (each must be a done code task).
    pub tasks: &'a [String],
    pub dry_run: bool,
    pub mode: Mode,
    /// §7's strict check counts untracked files too (`orch.strictUntracked`).
    pub strict_untracked: bool,
    pub hook: Option<&'a dyn Fn(LandStep)>,
}

/// A task sent back for rework.
#[derive(Debug, Clone, Serialize)]
pub struct Reworked {
    pub task: String,
    /// `land_conflict` or `land_check`.
    pub reason: String,
    /// The conflicting paths (`land_conflict`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The check's last 100 lines (`land_check`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Vec<String>>,
    /// The result head that did not land.
    pub head: String,
    /// The rework attempt, once dispatched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<Attempt>,
    /// Why the rework attempt could not be dispatched (the task stays blocked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dispatch_error: Option<String>,
}

/// A candidate that waits for a dependency to land first.
#[derive(Debug, Clone, Serialize)]
pub struct Waiting {
    pub task: String,
    pub on: Vec<String>,
}

/// Where the target went.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Target {
    /// `refs/heads/<branch>`.
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub old: String,
    pub new: String,
}

/// What one land did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub landed: Vec<Task>,
    pub reworked: Vec<Reworked>,
    pub waiting: Vec<Waiting>,
    pub target: Target,
    pub dry_run: bool,
    /// Every landed task's head is reachable from the target (checked after the move).
    pub verified: bool,
    /// How often someone else moved the target under us and the pass started over.
    pub restarts: u32,
    /// The keys recorded as landed and not yet gathered into `landed`.
    #[serde(skip)]
    pub(crate) landed_keys: Vec<String>,
}
