//! `git orch retry` and `reassign`: a new attempt for a task, launched again with its
//! last attempt's profile when that one was launched (docs/launch.md).

use super::dispatch::{render_dispatched, warn_if_main_dirty};
use super::launch::{relaunch_plan, Supervisors};
use super::opts::{address, RunOpt};
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::Result;
use crate::names::Address;
use crate::orch::retry;
use serde_json::json;

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
    let plan = relaunch_plan(ctx, run, &args.key, to.is_some(), args.launch)?;
    let launcher = plan.as_ref().map(|_| Supervisors::find(ctx)).transpose()?;
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
    let plan = relaunch_plan(ctx, run, &args.key, to.is_some(), args.launch)?;
    let launcher = plan.as_ref().map(|_| Supervisors::find(ctx)).transpose()?;
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
