//! `git orch dispatch`: attempts in new worktrees (`retry` and `reassign` are in retry.rs).

use super::opts::{address, RunOpt};
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::escape;
use crate::error::Result;
use crate::orch::dispatch::{self, Options};
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

/// Only the implicit `HEAD` base runs the strict check (SPEC §7): from a named revision
/// (`--base`, the task's or the run's base), uncommitted changes in the main worktree
/// silently stay out of the agents' worktrees. Said once per command, on stderr; a
/// failure to look is no reason to fail a dispatch that succeeded.
pub(super) fn warn_if_main_dirty(ctx: &mut Ctx, out: &Out, attempts: &[Attempt]) {
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

pub(super) fn render_dispatched(verb: &str, attempts: &[Attempt]) -> String {
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
