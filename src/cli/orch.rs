//! `git orch`: the leader's scheduler (SPEC §6).

use super::{Ctx, GlobalArgs, Out};
use crate::error::{Code, Error, Result};
use crate::repo::{AttemptMarker, HooksReport, HOOK_NAMES};
use clap::{Parser, Subcommand};
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};

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
    /// Remove the git-orch blocks from the hooks, and nothing else
    UninstallHooks,
}

pub fn run(ctx: &mut Ctx, out: &Out, command: OrchCommand) -> Result<()> {
    match command {
        OrchCommand::Init => init(ctx, out, true),
        OrchCommand::UninstallHooks => uninstall_hooks(ctx, out),
    }
}

/// `git orch init` and `git inbox init`: the state, and for orch the hooks.
pub fn init(ctx: &mut Ctx, out: &Out, with_hooks: bool) -> Result<()> {
    let created = ctx.init_store()?;
    let state_dir = ctx.repo()?.state_dir();
    let hooks = if with_hooks {
        Some(ctx.repo()?.install_hooks()?)
    } else {
        None
    };
    let mut data = json!({"state_dir": state_dir, "created": created, "schema_version": crate::store::SCHEMA_VERSION});
    if let Some(hooks) = &hooks {
        data["hooks"] = serde_json::to_value(hooks)?;
    }
    out.success(&data, || {
        let mut text = if created {
            format!("Initialized git-orch state in {}", state_dir.display())
        } else {
            format!("git-orch state in {} is up to date", state_dir.display())
        };
        if let Some(hooks) = &hooks {
            text.push('\n');
            text.push_str(&hooks_text(hooks));
        }
        text
    })
}

fn hooks_text(report: &HooksReport) -> String {
    let dir = report
        .dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut lines = Vec::new();
    if !report.installed.is_empty() {
        lines.push(format!(
            "Installed hooks {} in {dir}",
            report.installed.join(", ")
        ));
    }
    if !report.removed.is_empty() {
        lines.push(format!(
            "Removed the git-orch block from {} in {dir}",
            report.removed.join(", ")
        ));
    }
    if !report.unchanged.is_empty() && report.installed.is_empty() && report.skipped.is_empty() {
        lines.push(format!("Hooks in {dir} are up to date"));
    }
    for skipped in &report.skipped {
        lines.push(format!("Skipped {}: {}", skipped.hook, skipped.reason));
    }
    if lines.is_empty() {
        lines.push(format!("No git-orch hooks in {dir}"));
    }
    lines.join("\n")
}

/// `git orch uninstall-hooks`.
fn uninstall_hooks(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let report = ctx.repo()?.uninstall_hooks()?;
    out.success(&json!({ "hooks": report }), || hooks_text(&report))
}

/// `git inbox hook NAME`: what the installed hooks call in attempt worktrees (SPEC §7).
/// Records the commit as a `progress` message on the attempt's thread. Whatever goes
/// wrong is one line on stderr and exit 0: a hook must never fail the user's command.
pub fn hook(ctx: &mut Ctx, _out: &Out, name: &str, args: &[String]) -> Result<()> {
    if let Err(err) = record_hook(ctx, name, args) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "git-orch: {name}: not recorded ({}: {}); `git orch reconcile` will catch up",
            err.code.as_str(),
            err.message
        );
    }
    Ok(())
}

fn record_hook(ctx: &mut Ctx, name: &str, args: &[String]) -> Result<()> {
    if !HOOK_NAMES.contains(&name) {
        return Err(Error::new(Code::Usage, format!("unknown hook {name:?}"))
            .hint(format!("git-orch handles {}", HOOK_NAMES.join(", "))));
    }
    let Some(marker) = ctx.marker()? else {
        return Ok(());
    };
    let rewritten = if name == "post-rewrite" {
        read_rewritten()?
    } else {
        Vec::new()
    };
    let repo = ctx.repo()?;
    let Some(head) = repo.head_sha()? else {
        return Ok(());
    };
    let stats = repo.commit_stats(&head)?;
    let body = format!(
        "{} {}",
        &stats.sha[..12.min(stats.sha.len())],
        stats.subject
    );
    let mut data = serde_json::to_value(&stats)?;
    data["hook"] = json!(name);
    if let Some(kind) = args.first() {
        // post-rewrite: amend|rebase; post-merge: 1 for a squash merge.
        data["hook_arg"] = json!(kind);
    }
    if !rewritten.is_empty() {
        data["rewritten"] = Value::Array(rewritten);
    }
    let actor = match ctx.identity() {
        Ok((agent, _)) => agent,
        Err(_) => ctx.leader()?,
    };
    ctx.inbox()?.write(|conn, cfg| {
        crate::inbox::progress(conn, cfg, &actor, marker.thread, &body, &data)
    })?;
    record_attempt_head(ctx, &marker, &head)
}

/// The seam where orch keeps an attempt's `head_sha` and `commits` current when a hook
/// fires in its worktree (SPEC §7): look up the attempt (`marker.attempt`) and its
/// `base_sha`, count with `Repo::count_commits(head_sha, base_sha)` outside any
/// transaction, then store both and append an `attempt.progress` event in one write.
/// The progress message is already recorded when this runs. Until orch owns an attempts
/// table there is nothing to update, and reconcile finds the same numbers from the branch.
fn record_attempt_head(ctx: &mut Ctx, marker: &AttemptMarker, head_sha: &str) -> Result<()> {
    let _ = (ctx, marker, head_sha);
    Ok(())
}

/// post-rewrite's stdin, `old new [extra]` per line, when a caller passed it on (the
/// installed block gives /dev/null to keep stdin for the user's part of the hook).
fn read_rewritten() -> Result<Vec<Value>> {
    const LIMIT: u64 = 1024 * 1024;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Vec::new());
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("reading the rewritten commits from stdin", e))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(old), Some(new)) => Some(json!({"old": old, "new": new})),
                _ => None,
            }
        })
        .take(1000)
        .collect())
}
