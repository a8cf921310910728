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
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn retry(ctx: &mut Ctx, out: &Out, args: RetryArgs) -> Result<()> {
    let to = address(args.to.as_deref())?;
    let attempt = ctx.dispatching(|orch, workspaces| {
        retry::retry(
            orch,
            workspaces,
            args.run.run.as_deref(),
            &args.key,
            to.as_ref(),
            args.base.as_deref(),
        )
    })?;
    let attempts = vec![attempt];
    out.success(&json!({ "attempts": attempts }), || {
        render_dispatched("Retried", &attempts)
    })
}

#[derive(clap::Args, Debug)]
pub struct ReassignArgs {
    /// The task
    pub key: String,
    /// The agent (or @queue) to take over
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: String,
    /// Start from the task's base instead of the old attempt's work
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn reassign(ctx: &mut Ctx, out: &Out, args: ReassignArgs) -> Result<()> {
    let to = Address::parse(&args.to)?;
    let attempt = ctx.dispatching(|orch, workspaces| {
        retry::reassign(
            orch,
            workspaces,
            args.run.run.as_deref(),
            &args.key,
            &to,
            args.fresh,
        )
    })?;
    let attempts = vec![attempt];
    out.success(&json!({ "attempts": attempts }), || {
        render_dispatched("Reassigned", &attempts)
    })
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
