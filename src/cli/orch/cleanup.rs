//! `git orch cleanup`: the worktrees of ended attempts, never losing work.

use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash};
use crate::error::Result;
use crate::orch::cleanup;

#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    /// Say what would be removed or skipped, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove worktrees with uncommitted changes, after committing them to
    /// refs/orch/rescue/<run>/<task>-<n>
    #[arg(long)]
    pub force: bool,
    /// Also delete attempt branches merged into the run's base or kept under another ref
    #[arg(long)]
    pub prune_branches: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: CleanupArgs) -> Result<()> {
    let opts = cleanup::Options {
        run: args.run.run.as_deref(),
        dry_run: args.dry_run,
        force: args.force,
        prune_branches: args.prune_branches,
    };
    let report = cleanup::cleanup(&mut ctx.orch()?, &opts)?;
    out.success(&report, || render_cleanup(&report))
}

fn render_cleanup(report: &cleanup::Report) -> String {
    let verb = if report.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    let mut lines = Vec::new();
    for a in &report.removed {
        let mut line = format!(
            "{verb} the worktree of {} (attempt {}): {}",
            a.task,
            a.n,
            escape(&or_dash(a.worktree.as_deref()))
        );
        if let Some(rescue) = &a.rescue_ref {
            line.push_str(&format!("; uncommitted work saved to {rescue}"));
        }
        lines.push(line);
    }
    let deleted = if report.dry_run {
        "Would delete"
    } else {
        "Deleted"
    };
    for b in &report.branches {
        lines.push(format!("{deleted} branch {} ({})", b.branch, b.task));
    }
    for b in &report.kept_branches {
        lines.push(format!(
            "Kept branch {} ({}): {}",
            b.branch,
            b.task,
            b.reason.as_deref().unwrap_or("")
        ));
    }
    for s in &report.skipped {
        lines.push(format!(
            "Skipped {} (attempt {}): {}",
            s.attempt.task,
            s.attempt.n,
            escape(&s.reason)
        ));
    }
    if lines.is_empty() {
        "No worktrees of ended attempts to remove.".into()
    } else {
        lines.join("\n")
    }
}
