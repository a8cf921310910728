//! `git orch land` (SPEC §13): the merge queue, and the rework attempts of what it sent
//! back.

use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::{Error, Result};
use crate::orch::land::{self, check, LandStep, Mode, Options, Report};
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct LandArgs {
    /// The branch to land on (default: the run's base when it is a branch, else the
    /// branch checked out in the main worktree)
    #[arg(long, value_name = "BRANCH")]
    pub into: Option<String>,
    /// A command each merged candidate must pass, run in a temporary worktree (argv,
    /// split like a shell splits words, never run by one; default orch.land.check)
    #[arg(long, value_name = "CMD")]
    pub check: Option<String>,
    /// Land only this task (repeatable)
    #[arg(long = "task", value_name = "KEY")]
    pub tasks: Vec<String>,
    /// Say what would land, conflict and where the target would move; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

/// What the repository's config says about landing (`drive --land` reads it too).
pub(super) struct Configured {
    pub check: Option<check::Check>,
    pub mode: Mode,
    pub strict_untracked: bool,
}

/// The check (`given`, else `orch.land.check`, with `orch.land.checkTimeout`), the mode
/// and `orch.strictUntracked`; a malformed value is `invalid_input`.
pub(super) fn configured(ctx: &mut Ctx, given: Option<&str>) -> Result<Configured> {
    let check_text = match given {
        Some(text) => Some(text.to_owned()),
        None => ctx.config("orch.land.check")?,
    };
    let timeout = ctx.config("orch.land.checkTimeout")?;
    let check = check::from_config(check_text.as_deref(), timeout.as_deref())?;
    let mode = match ctx.config("orch.land.mode")? {
        Some(text) => Mode::parse(text.trim())?,
        None => Mode::default(),
    };
    let strict_untracked = ctx
        .repo()?
        .config_bool("orch.strictUntracked")?
        .unwrap_or(false);
    Ok(Configured {
        check,
        mode,
        strict_untracked,
    })
}

pub fn run(ctx: &mut Ctx, out: &Out, args: LandArgs) -> Result<()> {
    for key in &args.tasks {
        crate::names::check_name("task", key)?;
    }
    let Configured {
        check,
        mode,
        strict_untracked,
    } = configured(ctx, args.check.as_deref())?;
    let before_update = ctx.env.land_before_update.clone();
    let hook = move |step: LandStep| {
        if let (LandStep::BeforeUpdate, Some(program)) = (step, &before_update) {
            let _ = std::process::Command::new(program)
                .stdin(std::process::Stdio::null())
                .status();
        }
    };
    let opts = Options {
        run: args.run.run.as_deref(),
        into: args.into.as_deref(),
        check,
        tasks: &args.tasks,
        dry_run: args.dry_run,
        mode,
        strict_untracked,
        hook: Some(&hook),
    };
    let (landed, reworks) = ctx.dispatching(|orch, workspaces| {
        let landed = land::land(orch, &opts);
        // Sent back by this land or an earlier one whose dispatch failed: the rework
        // starts now, whether or not the target could be advanced.
        let reworks = match (&landed, args.dry_run) {
            (_, true) => Vec::new(),
            (Err(err), _) if err.code != crate::error::Code::TargetBusy => Vec::new(),
            _ => land::dispatch_reworks(orch, workspaces, opts.run, None, None)?,
        };
        Ok((landed, reworks))
    })?;
    let failed: Vec<serde_json::Value> = reworks
        .iter()
        .filter_map(|(task, r)| {
            r.as_ref()
                .err()
                .map(|e| json!({"task": task, "error": e.message}))
        })
        .collect();
    match landed {
        Ok(mut report) => {
            for (task, attempt) in reworks {
                if let Some(r) = report.reworked.iter_mut().find(|r| r.task == task) {
                    match attempt {
                        Ok(attempt) => r.attempt = Some(attempt),
                        Err(err) => r.dispatch_error = Some(err.message),
                    }
                }
            }
            out.success(&report, || render(&report))
        }
        Err(err) => {
            let dispatched: Vec<serde_json::Value> = reworks
                .iter()
                .filter_map(|(task, r)| {
                    r.as_ref()
                        .ok()
                        .map(|a| json!({"task": task, "attempt": a.id}))
                })
                .collect();
            Err(attach(err, dispatched, failed))
        }
    }
}

fn attach(err: Error, dispatched: Vec<serde_json::Value>, failed: Vec<serde_json::Value>) -> Error {
    if dispatched.is_empty() && failed.is_empty() {
        return err;
    }
    err.detail("reworks_dispatched", dispatched)
        .detail("reworks_failed", failed)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn render(report: &Report) -> String {
    let branch = report
        .target
        .ref_name
        .strip_prefix("refs/heads/")
        .unwrap_or(&report.target.ref_name);
    let mut lines = Vec::new();
    let (verb, sent) = if report.dry_run {
        ("Would land", "Would send back")
    } else {
        ("Landed", "Sent back")
    };
    if report.landed.is_empty() {
        lines.push(format!("Nothing to land on {branch}."));
    } else {
        lines.push(format!(
            "{verb} {} task{} on {branch} ({} → {}){}",
            report.landed.len(),
            if report.landed.len() == 1 { "" } else { "s" },
            short(&report.target.old),
            short(&report.target.new),
            if report.verified {
                format!("; verified: every landed head is reachable from {branch}")
            } else {
                String::new()
            }
        ));
        for t in &report.landed {
            let agent = t
                .current_attempt
                .as_ref()
                .and_then(|a| a.agent.clone())
                .unwrap_or_else(|| "-".into());
            lines.push(format!(
                "  {}  {}  {}",
                t.key,
                t.landed_commit.as_deref().map(short).unwrap_or("-"),
                agent
            ));
        }
    }
    for r in &report.reworked {
        let what = match (&r.paths, &r.output) {
            (Some(paths), _) => format!("conflicts in {}", paths.join(", ")),
            (_, Some(output)) => format!(
                "the check failed: {}",
                output.last().map(String::as_str).unwrap_or("")
            ),
            _ => String::new(),
        };
        let attempt = match (&r.attempt, &r.dispatch_error) {
            (Some(a), _) => format!("; rework attempt {} dispatched", a.n),
            (None, Some(err)) => format!("; its rework could not be dispatched: {err}"),
            (None, None) => String::new(),
        };
        lines.push(format!("{sent} {} ({}): {what}{attempt}", r.task, r.reason));
    }
    for w in &report.waiting {
        lines.push(format!(
            "Waiting: {} (on {} to land first)",
            w.task,
            w.on.join(", ")
        ));
    }
    if report.restarts > 0 {
        lines.push(format!(
            "{branch} moved meanwhile; started over {} time(s) from its new tip",
            report.restarts
        ));
    }
    lines.join("\n")
}
