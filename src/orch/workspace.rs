//! The port between the dispatch pipeline and whoever makes workspaces: `Workspaces`
//! (implemented by `worktrees::GitWorkspaces`, and `NoWorkspaces` for worktree-less
//! attempts), what it is handed (`Prepared`) and what it gives back (`Workspace`).

use super::base::BaseChoice;
use crate::error::{Error, Result};
use crate::names::Address;
use crate::orch::model::AttemptId;
use crate::orch::status::TaskStatus;
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Where an attempt works: its worktree, branch and resolved base, when it has them.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    /// The worktree's private git dir, where the attempt marker goes.
    pub git_dir: Option<PathBuf>,
    /// `refs/orch/bases/…` when the base is a merge of several dependencies.
    pub bases_ref: Option<String>,
}

/// An attempt allocated in `preparing`: everything the later steps need.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub attempt: AttemptId,
    pub run: String,
    pub task: String,
    pub kind: String,
    pub n: i64,
    pub to: Address,
    pub title: String,
    pub body: String,
    /// The base as given: `--base` > the task's > the run's; `None` for the
    /// dependencies' results or `HEAD`.
    pub base_ref: Option<String>,
    pub base: BaseChoice,
    /// The task's status when the attempt was allocated, checked again at hand-over.
    pub task_status: TaskStatus,
    /// Extra fields for the thread's data.
    pub extra: Map<String, Value>,
    /// The dispatch lock's file while this process dispatches the attempt: git steps
    /// whose undo is reconcile's get it as stdin and hold the lock while they run.
    pub dispatch_lock: Option<std::sync::Arc<std::fs::File>>,
}

impl Prepared {
    /// The agent the attempt is addressed to; `None` for a queue.
    pub fn agent(&self) -> Option<&str> {
        match &self.to {
            Address::Agent(agent) => Some(agent),
            Address::Queue(_) => None,
        }
    }
}

/// The steps of the pipeline, named for crash tests (`ORCH_TEST_CRASH_AFTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Allocate,
    Worktree,
    Thread,
    Marker,
    Store,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Allocate,
        Step::Worktree,
        Step::Thread,
        Step::Marker,
        Step::Store,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Allocate => "allocate",
            Step::Worktree => "worktree",
            Step::Thread => "thread",
            Step::Marker => "marker",
            Step::Store => "store",
        }
    }

    pub fn parse(text: &str) -> Result<Step> {
        Step::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Error::invalid_input(format!("unknown dispatch step {text:?}"))
                    .hint("one of allocate, worktree, thread, marker, store")
            })
    }
}

/// The workspace steps of dispatch.
pub trait Workspaces {
    /// Resolves the base and makes the attempt's workspace. Runs outside any transaction.
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace>;
    /// Once the thread exists: ties the workspace to it (the attempt marker).
    fn attach(&self, _attempt: &Prepared, _workspace: &Workspace, _thread: i64) -> Result<()> {
        Ok(())
    }
    /// Undoes [`Workspaces::prepare`] after a later step failed, without losing work.
    fn undo(&self, attempt: &Prepared, workspace: &Workspace) -> Result<()>;
    /// Called after each step has taken effect (crash injection in tests).
    fn reached(&self, _step: Step) {}
}

/// Every attempt is worktree-less: the base is recorded as given, nothing is made.
pub struct NoWorkspaces;

impl Workspaces for NoWorkspaces {
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace> {
        Ok(Workspace {
            base_ref: attempt.base_ref.clone(),
            ..Workspace::default()
        })
    }

    fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) -> Result<()> {
        Ok(())
    }
}
