//! Orch: the leader's scheduler (SPEC §6). Runs hold a DAG of tasks; a task is carried
//! out by attempts, each of which is one inbox thread of kind `task`.
//!
//! Orch sits above the inbox: it reads threads and writes messages through the inbox's
//! transaction-level functions, and the inbox never learns what a run or a task is. The
//! mapping from threads back to attempts and tasks is [`reconcile`], which every command
//! that shows or changes state runs first, cheaply.
//!
//! Like the inbox, functions that change state take the open transaction (`&Connection`
//! inside [`crate::store::Store::write`]); the multi-step pipelines (dispatch, waits) drive the store
//! themselves so that no transaction is held across git work or waiting.

//! The modules form a DAG, each looking only at those before it (ARCHITECTURE.md):
//! model, changes → attempts → runs → deps → tasks → dag → reconcile → cancel → base,
//! workspace (the dispatch port), dispatch_lock → launch → dispatch_steps → worktrees →
//! repair → facade → dispatch (the pipeline), retry → waits, cleanup, land (`land_lock`,
//! a leaf, is what repair calls). `cargo xtask lint` checks it. This file only declares
//! them and re-exports what the layers above use.

mod attempts;
pub mod base;
pub mod cancel;
mod changes;
pub mod cleanup;
pub mod dag;
mod deps;
pub mod dispatch;
pub(crate) mod dispatch_lock;
pub(crate) mod dispatch_steps;
pub mod drive;
mod drive_events;
pub mod drive_pool;
mod facade;
#[cfg(test)]
mod fixtures;
pub mod land;
pub mod land_lock;
pub mod launch;
mod model;
pub mod reconcile;
pub mod repair;
pub mod retry;
pub mod runs;
mod status;
pub mod tasks;
pub mod waits;
pub mod workspace;
pub mod worktrees;

pub use attempts::get_attempt;
pub use cancel::cancel_task;
pub use facade::Orch;
// The property tests at the crate root build changes themselves.
#[cfg(test)]
pub use changes::Changes;
pub use model::{Attempt, AttemptId, Counts, Run, Task, TASK_STATUSES};
pub use status::{AttemptStatus, RunStatus, TaskStatus};
pub use workspace::{Step, Workspace, Workspaces};
pub use worktrees::GitWorkspaces;
