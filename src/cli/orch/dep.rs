//! `git orch dep add|rm`.

use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::Result;
use crate::orch::{dag, runs};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum DepCommand {
    /// KEY runs after DEPENDS_ON (a cycle is refused)
    Add(DepArgs),
    /// KEY no longer waits for DEPENDS_ON
    Rm(DepArgs),
}

pub fn run(ctx: &mut Ctx, out: &Out, command: DepCommand) -> Result<()> {
    match command {
        DepCommand::Add(args) => add(ctx, out, args),
        DepCommand::Rm(args) => rm(ctx, out, args),
    }
}

#[derive(clap::Args, Debug)]
pub struct DepArgs {
    /// The task that waits
    pub key: String,
    /// The task it waits for
    pub depends_on: String,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn add(ctx: &mut Ctx, out: &Out, args: DepArgs) -> Result<()> {
    let (task, changed) = ctx.orch()?.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, args.run.run.as_deref())?;
        dag::dep_add(tx, cfg, changes, &run, &args.key, &args.depends_on)
    })?;
    out.success(&json!({"task": task, "changed": changed}), || {
        if changed {
            format!(
                "{} now runs after {} ({}).",
                task.key, args.depends_on, task.status
            )
        } else {
            format!("{} already runs after {}.", task.key, args.depends_on)
        }
    })
}

pub fn rm(ctx: &mut Ctx, out: &Out, args: DepArgs) -> Result<()> {
    let task = ctx.orch()?.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, args.run.run.as_deref())?;
        dag::dep_rm(tx, cfg, changes, &run, &args.key, &args.depends_on)
    })?;
    out.success(&json!({"task": task, "changed": true}), || {
        format!(
            "{} no longer waits for {} ({}).",
            task.key, args.depends_on, task.status
        )
    })
}
