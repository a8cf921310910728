//! `git orch dispatch`, `retry` and `reassign`: each starts attempts in new worktrees.

use super::opts::{address, RunOpt};
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::escape;
use crate::error::Result;
use crate::names::Address;
use crate::orch::dispatch::{self, Options};
use crate::orch::retry;
use crate::orch::{Attempt, Task};
use serde_json::{json, Value};

#[derive(clap::Args, Debug)]
pub struct DispatchArgs {
    /// Tasks to dispatch
    pub keys: Vec<String>,
    /// Dispatch every ready task (priority, then age)
    #[arg(long)]
    pub all_ready: bool,
    /// At most N tasks
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
    /// Send to this agent or @queue instead of the task's
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: Option<String>,
    /// Start from this revision instead of the task's or the run's
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Dispatch named tasks even when they are not ready
    #[arg(long)]
    pub force: bool,
    /// Start an agent for each attempt with PROFILE (default: the task's, else orch.launch)
    #[arg(long, value_name = "PROFILE", num_args = 0..=1, default_missing_value = "", conflicts_with = "to")]
    pub launch: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn dispatch(ctx: &mut Ctx, out: &Out, args: DispatchArgs) -> Result<()> {
    // Launch hook (SPEC §11).
    if args.launch.is_some() {
        return super::launch::dispatch(ctx, out, args);
    }
    let to = address(args.to.as_deref())?;
    let opts = Options {
        keys: &args.keys,
        all_ready: args.all_ready,
        max: args.max.map(|m| m as usize),
        to: to.as_ref(),
        base: args.base.as_deref(),
        force: args.force,
        launch: None,
    };
    let done = ctx.dispatching(|orch, workspaces| {
        dispatch::dispatch_tasks(orch, workspaces, args.run.run.as_deref(), &opts)
    })?;
    warn_if_main_dirty(ctx, out, &done.attempts);
    out.success(
        &json!({ "attempts": done.attempts, "blocked": done.blocked }),
        || {
            let mut lines = Vec::new();
            if !done.attempts.is_empty() {
                lines.push(render_dispatched("Dispatched", &done.attempts));
            }
            for task in &done.blocked {
                lines.push(render_conflict(task));
            }
            if lines.is_empty() {
                "Nothing to dispatch: no task is ready.".into()
            } else {
                lines.join("\n")
            }
        },
    )
}

#[derive(clap::Args, Debug)]
pub struct RetryArgs {
    /// The task
    pub key: String,
    /// Send to this agent or @queue instead of the task's
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: Option<String>,
    /// Start from this revision
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Launch the new attempt with PROFILE (default: the profile the last attempt was launched with)
    #[arg(long, value_name = "PROFILE", num_args = 0..=1, default_missing_value = "", conflicts_with = "to")]
    pub launch: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn retry(ctx: &mut Ctx, out: &Out, args: RetryArgs) -> Result<()> {
    let to = address(args.to.as_deref())?;
    let run = args.run.run.as_deref();
    let plan = super::launch::relaunch_plan(ctx, run, &args.key, to.is_some(), args.launch)?;
    let launcher = plan
        .as_ref()
        .map(|_| super::launch::Supervisors::find(ctx))
        .transpose()?;
    let attempt = ctx.dispatching(|orch, workspaces| match &launcher {
        Some(launcher) => retry::retry(
            orch,
            &launcher.launching(workspaces),
            run,
            &args.key,
            None,
            args.base.as_deref(),
            plan.as_ref(),
        ),
        None => retry::retry(
            orch,
            workspaces,
            run,
            &args.key,
            to.as_ref(),
            args.base.as_deref(),
            None,
        ),
    })?;
    let attempts = vec![attempt];
    warn_if_main_dirty(ctx, out, &attempts);
    out.success(&json!({ "attempts": attempts }), || {
        render_dispatched("Retried", &attempts)
    })
}

#[derive(clap::Args, Debug)]
pub struct ReassignArgs {
    /// The task
    pub key: String,
    /// The agent (or @queue) to take over (needed unless the attempt was launched)
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: Option<String>,
    /// Start from the task's base instead of the old attempt's work
    #[arg(long)]
    pub fresh: bool,
    /// Launch the new attempt with PROFILE (default: the profile of the attempt it replaces)
    #[arg(long, value_name = "PROFILE", num_args = 0..=1, default_missing_value = "", conflicts_with = "to")]
    pub launch: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn reassign(ctx: &mut Ctx, out: &Out, args: ReassignArgs) -> Result<()> {
    let to = args.to.as_deref().map(Address::parse).transpose()?;
    let run = args.run.run.as_deref();
    let plan = super::launch::relaunch_plan(ctx, run, &args.key, to.is_some(), args.launch)?;
    let launcher = plan
        .as_ref()
        .map(|_| super::launch::Supervisors::find(ctx))
        .transpose()?;
    let attempt = ctx.dispatching(|orch, workspaces| match &launcher {
        Some(launcher) => retry::reassign(
            orch,
            &launcher.launching(workspaces),
            run,
            &args.key,
            None,
            args.fresh,
            plan.as_ref(),
        ),
        None => retry::reassign(
            orch,
            workspaces,
            run,
            &args.key,
            to.as_ref(),
            args.fresh,
            None,
        ),
    })?;
    let attempts = vec![attempt];
    out.success(&json!({ "attempts": attempts }), || {
        render_dispatched("Reassigned", &attempts)
    })
}

/// Only the implicit `HEAD` base runs the strict check (SPEC §7): from a named revision
/// (`--base`, the task's or the run's base), uncommitted changes in the main worktree
/// silently stay out of the agents' worktrees. Said once per command, on stderr; a
/// failure to look is no reason to fail a dispatch that succeeded.
fn warn_if_main_dirty(ctx: &mut Ctx, out: &Out, attempts: &[Attempt]) {
    let named: Vec<&str> = attempts
        .iter()
        .filter(|a| a.worktree.is_some() && a.bases_ref.is_none())
        .filter_map(|a| a.base_ref.as_deref())
        .filter(|base| *base != "HEAD" && !base.starts_with("orch/"))
        .collect();
    let Some(base) = named.first() else {
        return;
    };
    let Ok(Some(main)) = ctx.repo().and_then(|r| r.main_worktree()) else {
        return;
    };
    let Ok(paths) = crate::repo::worktree_dirty_paths(&main, crate::repo::Untracked::Ignore) else {
        return;
    };
    if let Some(first) = paths.first() {
        let more = if paths.len() > 1 {
            format!(" and {} more", paths.len() - 1)
        } else {
            String::new()
        };
        out.warn(&format!(
            "the main worktree {} has uncommitted changes ({first}{more}); attempts started from \
             {base} do not see them. Commit them to give them to the agents.",
            main.display()
        ));
    }
}

fn render_dispatched(verb: &str, attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| {
            let mut line = format!(
                "{verb} {} (attempt {}) to {} as thread {}",
                a.task,
                a.n,
                a.to,
                a.thread.map_or("-".into(), |t| t.to_string())
            );
            if let (Some(branch), Some(worktree)) = (&a.branch, &a.worktree) {
                line.push_str(&format!("\n  branch {branch} in {}", escape(worktree)));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// One task blocked by a base conflict, and how to unblock it.
pub(super) fn render_conflict(task: &Task) -> String {
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let detail = &task.blocked_detail;
    format!(
        "{} is blocked: the results of {} conflict in {}.\n  Merge them by hand and dispatch it from the merge: git orch dispatch {} --base REV",
        task.key,
        list(&detail["deps"]),
        escape(&list(&detail["paths"])),
        task.key
    )
}
