//! `git orch`: the leader's scheduler (SPEC §6).

use super::{Ctx, GlobalArgs, Out};
use crate::error::Result;
use clap::{Parser, Subcommand};
use serde_json::json;

/// The leader's scheduler: runs, a task DAG, dispatch into worktrees, reconcile, council
#[derive(Parser, Debug)]
#[command(
    name = "git-orch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct OrchCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: OrchCommand,
}

#[derive(Subcommand, Debug)]
pub enum OrchCommand {
    /// Create the state in this repository and install the hooks (idempotent)
    Init,
}

pub fn run(ctx: &mut Ctx, out: &Out, command: OrchCommand) -> Result<()> {
    match command {
        OrchCommand::Init => init(ctx, out, true),
    }
}

/// `git orch init` and `git inbox init`: the state, and for orch the hooks.
pub fn init(ctx: &mut Ctx, out: &Out, _with_hooks: bool) -> Result<()> {
    let created = ctx.init_store()?;
    let state_dir = ctx.repo()?.state_dir();
    let data = json!({"state_dir": state_dir, "created": created, "schema_version": crate::store::SCHEMA_VERSION});
    out.success(&data, || {
        if created {
            format!("Initialized git-orch state in {}", state_dir.display())
        } else {
            format!("git-orch state in {} is up to date", state_dir.display())
        }
    })
}

/// `git inbox hook NAME`: recording commits made in attempt worktrees (SPEC §7).
pub fn hook(_ctx: &mut Ctx, _out: &Out, _name: &str, _args: &[String]) -> Result<()> {
    Ok(())
}
