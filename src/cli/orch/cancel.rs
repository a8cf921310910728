//! `git orch cancel`: a task with its attempt and thread, or a whole run.

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::orch::{cancel, runs, tasks};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The task (without it, --run cancels the whole run)
    pub key: Option<String>,
    /// The run; alone, cancel the whole run (default: the current run)
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub run: Option<String>,
    /// Why, recorded on the cancelled threads
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: CancelArgs) -> Result<()> {
    let run_name = args.run.as_deref().filter(|r| !r.is_empty());
    let reason = args
        .reason
        .unwrap_or_else(|| "cancelled by the leader".into());
    inbox::check_body(&reason)?;
    match args.key {
        Some(key) => {
            let (task, changed) = ctx.orch()?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, run_name)?;
                let row = tasks::get_row(tx, &run.name, &key)?;
                let act_changed = crate::orch::cancel_task(tx, cfg, changes, &row, &reason)?;
                Ok((tasks::load_one(tx, &run.name, &key)?, act_changed))
            })?;
            out.success(&json!({"task": task, "changed": changed}), || {
                if changed {
                    format!("Cancelled task {}.", task.key)
                } else {
                    format!("Task {} was already cancelled.", task.key)
                }
            })
        }
        None if args.run.is_some() => {
            let run = ctx.orch()?.write(|tx, cfg, changes| {
                let row = runs::resolve(tx, run_name)?;
                cancel::cancel_run(tx, cfg, changes, &row)
            })?;
            out.success(&json!({ "run": run }), || {
                format!(
                    "Cancelled run {} ({} task(s) cancelled).",
                    run.name, run.counts.cancelled
                )
            })
        }
        None => Err(
            Error::new(Code::Usage, "nothing to cancel: name a task or pass --run")
                .hint("git orch cancel KEY, or git orch cancel --run [NAME] for a whole run"),
        ),
    }
}
