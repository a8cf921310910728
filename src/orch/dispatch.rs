//! Dispatch: one new attempt per task, as a pipeline of explicit steps (SPEC §6, §7):
//!
//! 1. `allocate`: the attempt row in `preparing` (one transaction; refuses a task that is
//!    not ready, or that has an attempt in flight), with the base to start from chosen
//!    but not yet resolved. A file lock held from here to the end tells a concurrent
//!    reconcile that this `preparing` attempt is in progress, not crashed.
//! 2. `worktree`: [`Workspaces::prepare`], outside any transaction: the base resolved,
//!    and for a `code` task the branch and worktree made.
//! 3. `thread`: the inbox thread of kind `task` (its data names the workspace), and the
//!    workspace stored on the attempt (one transaction).
//! 4. `marker`: [`Workspaces::attach`] writes the attempt marker into the worktree.
//! 5. `store` ([`super::dispatch_steps::hand_over`]): the attempt and the task `dispatched` (one
//!    transaction).
//!
//! No git work happens inside a transaction. A step that fails undoes the ones before it:
//! before the thread exists nothing is left (no attempt, branch or worktree); once the
//! thread exists (workers may have seen it) the attempt and its thread end `cancelled`
//! and the workspace is removed without losing work. A process killed between steps
//! leaves a `preparing` attempt that reconcile repairs (see [`super::repair`]).
//!
//! This file is the pipeline and drives the [`Orch`] facade. The parts the modules below
//! the facade share are siblings of their own, so that nothing below imports from here:
//! the workspace port ([`super::workspace`]), the choice of base ([`super::base`]), the
//! lock ([`super::dispatch_lock`]) and the transaction steps ([`super::dispatch_steps`]).
//! The callers above keep naming them through this module.

pub use super::dispatch_steps::Request;
pub use super::workspace::{NoWorkspaces, Prepared, Step, Workspaces};

use super::dispatch_lock::DispatchLock;
use super::dispatch_steps::{
    abandon_tx, allocate, block_on_conflict, check_dispatchable, discard_tx, hand_over, send_thread,
};
use crate::error::{Code, Error, Result};
use crate::names::Address;
use crate::orch::changes::Changes;
use crate::orch::facade::Orch;
use crate::orch::model::{Attempt, Task};
use crate::orch::runs::{self, RunRow};
use crate::orch::tasks::{self, Select};
use crate::repo::check_ref_text;
use serde_json::Map;

fn discard(orch: &mut Orch<'_>, prepared: &Prepared) {
    let _ = orch.store.write(|tx| discard_tx(tx, prepared.attempt));
}

/// What one task's dispatch came to.
pub(crate) enum Outcome {
    Dispatched(Box<Attempt>),
    Blocked(Box<(Task, Error)>),
}

/// Carries one task through the steps; a base conflict is an outcome, not an error.
pub(crate) fn dispatch_outcome(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run: &RunRow,
    req: &Request<'_>,
) -> Result<Outcome> {
    let state_dir = orch.store.state_dir().to_owned();
    let (mut prepared, lock) = orch.write(|tx, _, _| {
        let prepared = allocate(tx, run, req)?;
        // Taken before the row commits, so nobody sees it `preparing` and unlocked.
        let lock = DispatchLock::acquire(&state_dir, prepared.attempt)?;
        Ok((prepared, lock))
    })?;
    workspaces.reached(Step::Allocate);
    prepared.dispatch_lock = Some(lock.file());

    let workspace = match workspaces.prepare(&prepared) {
        Ok(workspace) => workspace,
        Err(err) => {
            discard(orch, &prepared);
            drop(lock);
            if err.code == Code::BaseConflict {
                let cfg = orch.cfg.clone();
                let task = block_on_conflict(orch.store, &cfg, &prepared, &err)?;
                return Ok(Outcome::Blocked(Box::new((task, err))));
            }
            return Err(err);
        }
    };
    workspaces.reached(Step::Worktree);

    let cfg = orch.cfg.clone();
    let thread = match orch
        .store
        .write(|tx| send_thread(tx, &cfg, &prepared, &workspace))
    {
        Ok(thread) => thread,
        Err(err) => {
            // Left `preparing` when the undo fails: reconcile finishes the job.
            if workspaces.undo(&prepared, &workspace).is_ok() {
                discard(orch, &prepared);
            }
            return Err(err);
        }
    };
    workspaces.reached(Step::Thread);

    let finished = workspaces
        .attach(&prepared, &workspace, thread.id)
        .and_then(|()| {
            workspaces.reached(Step::Marker);
            orch.store.write(|tx| {
                let mut changes = Changes::default();
                hand_over(tx, &cfg, &mut changes, prepared.attempt)
            })
        });
    let attempt = match finished {
        Ok(attempt) => attempt,
        Err(err) => {
            let reason = format!("dispatch failed: {}", err.message);
            let abandoned = orch.store.write(|tx| {
                let mut changes = Changes::default();
                abandon_tx(tx, &cfg, &mut changes, prepared.attempt, &reason)
            });
            if abandoned.is_ok() {
                let _ = workspaces.undo(&prepared, &workspace);
            }
            return Err(err);
        }
    };
    drop(lock);
    workspaces.reached(Step::Store);
    Ok(Outcome::Dispatched(Box::new(attempt)))
}

/// Dispatches one task through the steps. A base conflict is `base_conflict` (exit 6),
/// after the task went `blocked`.
pub fn dispatch_one(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run: &RunRow,
    req: &Request<'_>,
) -> Result<Attempt> {
    match dispatch_outcome(orch, workspaces, run, req)? {
        Outcome::Dispatched(attempt) => Ok(*attempt),
        Outcome::Blocked(blocked) => Err(blocked.1),
    }
}

/// What `git orch dispatch` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    pub keys: &'a [String],
    pub all_ready: bool,
    pub max: Option<usize>,
    pub to: Option<&'a Address>,
    pub base: Option<&'a str>,
    pub force: bool,
    /// Launch an agent for every attempt; every task's profile is checked first.
    pub launch: Option<&'a crate::orch::launch::Plan>,
}

/// What a dispatch of several tasks did: the attempts it started, and the tasks that
/// went `blocked` on a base conflict instead.
#[derive(Debug, Default)]
pub struct Dispatched {
    pub attempts: Vec<Attempt>,
    pub blocked: Vec<Task>,
}

/// Dispatches the named tasks and/or every ready one (priority, then age), at most
/// `max`. Named tasks are checked before the first is dispatched. A base conflict
/// blocks its task and is reported; the others go on.
pub fn dispatch_tasks(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    opts: &Options<'_>,
) -> Result<Dispatched> {
    if opts.keys.is_empty() && !opts.all_ready {
        return Err(Error::new(
            Code::Usage,
            "nothing to dispatch: name tasks or pass --all-ready",
        )
        .hint("e.g. git orch dispatch lexer, or git orch dispatch --all-ready --max 4"));
    }
    if let Some(base) = opts.base {
        check_ref_text(base)?;
    }
    orch.reconcile()?;
    let (run, keys) = orch.read(|tx| {
        let run = runs::resolve(tx, run_name)?;
        run.require_active()?;
        let mut keys: Vec<String> = Vec::new();
        for key in opts.keys {
            let task = tasks::get_row(tx, &run.name, key)?;
            check_dispatchable(tx, &task, opts.force)?;
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        if opts.all_ready {
            for task in tasks::load(tx, &run.name, Select::Ready)? {
                if !keys.contains(&task.key) {
                    keys.push(task.key);
                }
            }
        }
        // Launch hook: a task that cannot be launched is refused before anything is made.
        if let Some(plan) = opts.launch {
            for key in keys.iter().take(opts.max.unwrap_or(usize::MAX)) {
                plan.profile_for(tx, &run.name, key)?;
            }
        }
        Ok((run, keys))
    })?;
    let limit = opts.max.unwrap_or(usize::MAX);
    let mut out = Dispatched::default();
    for key in keys.iter().take(limit) {
        let req = Request {
            key,
            to: opts.to,
            base: opts.base,
            force: opts.force,
            extra: Map::new(),
            launch: opts.launch,
        };
        match dispatch_outcome(orch, workspaces, &run, &req)? {
            Outcome::Dispatched(attempt) => out.attempts.push(*attempt),
            Outcome::Blocked(blocked) => out.blocked.push(blocked.0),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox;
    use crate::orch::TaskStatus;
    use crate::orch::Workspace;
    use crate::store::{Durability, Store};
    use std::cell::Cell;

    fn setup(dir: &std::path::Path) -> Store {
        crate::orch::fixtures::store_with_task(dir).0
    }

    fn counts(store: &mut Store) -> (i64, i64, TaskStatus) {
        store
            .read(|tx| {
                let attempts = tx.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))?;
                let threads = inbox::list(
                    tx,
                    &inbox::ListFilter {
                        limit: 100,
                        ..Default::default()
                    },
                )?
                .len() as i64;
                let status = tasks::get_row(tx, "r1", "a")?.status;
                Ok((attempts, threads, status))
            })
            .unwrap()
    }

    /// Fails to prepare, or (with a store path) cancels the task meanwhile, so that the
    /// hand-over fails; counts its undos.
    struct Flaky {
        fail: bool,
        cancel_in: Option<std::path::PathBuf>,
        undone: Cell<u32>,
    }

    impl Workspaces for Flaky {
        fn prepare(&self, _attempt: &Prepared) -> Result<Workspace> {
            if self.fail {
                return Err(Error::new(Code::GitFailed, "no worktree today"));
            }
            if let Some(dir) = &self.cancel_in {
                let mut other = Store::open(dir, Durability::Normal)?;
                let cfg = inbox::Config::default();
                other.write(|tx| {
                    let task = tasks::get_row(tx, "r1", "a")?;
                    let mut changes = Changes::default();
                    crate::orch::cancel_task(tx, &cfg, &mut changes, &task, "meanwhile").map(drop)
                })?;
            }
            Ok(Workspace::default())
        }

        fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) -> Result<()> {
            self.undone.set(self.undone.get() + 1);
            Ok(())
        }
    }

    #[test]
    fn a_failed_step_leaves_no_attempt_thread_or_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orch");
        let mut store = setup(&dir);
        let req = Request {
            key: "a",
            ..Request::default()
        };

        let failing = Flaky {
            fail: true,
            cancel_in: None,
            undone: Cell::new(0),
        };
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let run = orch.read(|tx| runs::get(tx, "r1")).unwrap();
        let err = dispatch_one(&mut orch, &failing, &run, &req).unwrap_err();
        assert_eq!(err.code, Code::GitFailed);
        assert_eq!(counts(&mut store), (0, 0, TaskStatus::Ready));

        let racing = Flaky {
            fail: false,
            cancel_in: Some(dir.clone()),
            undone: Cell::new(0),
        };
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let err = dispatch_one(&mut orch, &racing, &run, &req).unwrap_err();
        assert_eq!(err.code, Code::Conflict);
        assert_eq!(racing.undone.get(), 1);
        assert_eq!(counts(&mut store), (0, 0, TaskStatus::Cancelled));

        // And when every step works: one attempt, one thread.
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let forced = Request {
            key: "a",
            force: true,
            ..Request::default()
        };
        let attempt = dispatch_one(&mut orch, &NoWorkspaces, &run, &forced).unwrap();
        assert_eq!(attempt.status, crate::orch::AttemptStatus::Dispatched);
        assert_eq!(counts(&mut store), (1, 1, TaskStatus::Dispatched));
    }
}
