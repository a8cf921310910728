//! `git orch retry` and `git orch reassign`: a new attempt for a task, through the
//! dispatch pipeline, after a failure or away from the agent holding it.

use super::attempts::get_attempt;
use super::cancel;
use super::changes::Act;
use super::dispatch::{dispatch_one, Request, Workspaces};
use super::facade::Orch;
use super::model::{invalid_transition, Attempt};
use super::runs;
use super::status::{AttemptStatus, TaskStatus};
use super::tasks;
use crate::error::{Code, Error, Result};
use crate::names::Address;
use crate::orch::launch::Plan;
use crate::orch::tasks::Transition;
use crate::repo::check_ref_text;
use serde_json::{json, Map};

/// A new attempt for a failed or cancelled task (or one that went back to ready after
/// a failure, or one blocked by a base conflict), past its `max_attempts` if need be:
/// the leader asked for it. A code task gets a new worktree. With `launch` (and
/// `workspaces` starting supervisors) the new attempt is launched, as drive would.
pub fn retry(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: Option<&Address>,
    base: Option<&str>,
    launch: Option<&Plan>,
) -> Result<Attempt> {
    if let Some(base) = base {
        check_ref_text(base)?;
    }
    // Also repairs a dispatch of this task that died half-way.
    orch.reconcile()?;
    let run = orch.write(|tx, _, _| {
        let run = runs::resolve(tx, run_name)?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let after_failure = task.status == TaskStatus::Ready
            && task
                .current_attempt
                .map(|id| get_attempt(tx, id))
                .transpose()?
                .is_some_and(|a| matches!(a.status, AttemptStatus::Failed | AttemptStatus::Lost));
        if !matches!(task.status, TaskStatus::Failed | TaskStatus::Cancelled)
            && !after_failure
            && !task.is_base_conflict()
            && !task.is_land_rework()
        {
            return Err(invalid_transition(format!(
                "task {key} is {}; only a failed, lost or cancelled task is retried",
                task.status
            ))
            .hint(match task.status {
                TaskStatus::Ready | TaskStatus::Pending => {
                    format!("dispatch it with `git orch dispatch {key}`")
                }
                TaskStatus::Done => "a done task stays done".to_owned(),
                _ => format!("move it to another agent with `git orch reassign {key} --to AGENT`"),
            })
            .detail("task", key)
            .detail("status", task.status));
        }
        if let Some(plan) = launch {
            plan.profile_for(tx, &run.name, key)?;
        }
        Ok(run)
    })?;
    let req = Request {
        key,
        to,
        base,
        force: true,
        extra: Map::new(),
        launch,
    };
    dispatch_one(orch, workspaces, &run, &req)
}

/// Cancels the task's attempt in flight and dispatches a new one to `to` (or, with
/// `launch`, to a new launched agent), starting from the old attempt's branch head
/// unless `fresh` (then as a new dispatch would). The profile is checked before the old
/// attempt is touched.
pub fn reassign(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: Option<&Address>,
    fresh: bool,
    launch: Option<&Plan>,
) -> Result<Attempt> {
    if to.is_none() && launch.is_none() {
        return Err(Error::new(
            Code::Usage,
            format!("reassign {key} to whom? name an agent or a profile"),
        )
        .hint(format!(
            "git orch reassign {key} --to AGENT, or --launch PROFILE"
        )));
    }
    // Also finishes a dispatch of this task that died after sending its thread.
    orch.reconcile()?;
    let (run, old) = orch.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, run_name)?;
        run.require_active()?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let Some(old) = task
            .current_attempt
            .map(|id| get_attempt(tx, id))
            .transpose()?
            .filter(|a| a.status.is_live() && a.status != AttemptStatus::Preparing)
        else {
            return Err(invalid_transition(format!(
                "task {key} has no attempt in flight ({})",
                task.status
            ))
            .hint(match to {
                Some(to) => format!(
                    "start one with `git orch dispatch {key} --to {}` or `git orch retry {key} --to {}`",
                    to.to_stored(),
                    to.to_stored()
                ),
                None => format!("start one with `git orch dispatch {key} --launch` or `git orch retry {key}`"),
            })
            .detail("task", key)
            .detail("status", task.status));
        };
        let whom = match (launch, to) {
            (Some(plan), _) => format!("a new {} agent", plan.profile_for(tx, &run.name, key)?.name),
            (None, Some(to)) => to.to_stored(),
            (None, None) => unreachable!("refused above"),
        };
        let act = Act::now(&cfg.leader);
        let reason = format!("reassigned to {whom}");
        cancel::cancel_attempts(tx, cfg, &act, changes, &task, &reason)?;
        let waiting = tasks::waiting_status(tx, &run.name, key)?;
        tasks::set_status(tx, &act, changes, &run.name, key, Transition::new(task.status, waiting).by(Some(old.id)))?;
        Ok((run, old))
    })?;
    let base = if fresh {
        None
    } else {
        // The old attempt's branch names its head, uncommitted work aside; once the
        // branch is gone, the head it was last seen at.
        let branch = match (&old.branch, orch.repo) {
            (Some(branch), Some(repo)) if repo.branch_tip(branch)?.is_some() => {
                Some(branch.clone())
            }
            _ => None,
        };
        branch
            .or(old.head_sha.clone())
            .or(old.base_sha.clone())
            .or(old.base_ref.clone())
    };
    let mut extra = Map::new();
    extra.insert("reassigned_from".into(), json!(old.id));
    let req = Request {
        key,
        to,
        base: base.as_deref(),
        force: true,
        extra,
        launch,
    };
    dispatch_one(orch, workspaces, &run, &req)
}
