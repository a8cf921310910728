//! `git inbox hook NAME`: what the installed hooks call in attempt worktrees (SPEC §7).

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::{escape, escape_lines};
use crate::error::{Error, Result};
use crate::orch::worktrees;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};

#[derive(clap::Args, Debug)]
pub struct HookArgs {
    pub name: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Records the commit as a `progress` message on the attempt's thread. Whatever goes
/// wrong is one line on stderr and exit 0: a hook must never fail the user's command.
pub fn run(ctx: &mut Ctx, _out: &Out, args: HookArgs) -> Result<()> {
    let (name, args) = (args.name.as_str(), args.args.as_slice());
    let mut stderr = std::io::stderr().lock();
    // The name and the message come from the caller (a hook name can be anything), and
    // this line lands on the terminal of whoever ran git: escaped like every error.
    let shown = escape(name);
    match record_hook(ctx, name, args) {
        Ok(Some(_spooled)) => {
            let _ = writeln!(
                stderr,
                "git-orch: {shown}: the state database is busy; spooled, the next git-orch write records it"
            );
        }
        Ok(None) => {}
        Err(err) => {
            let _ = writeln!(
                stderr,
                "git-orch: {shown}: not recorded ({}: {}); `git orch reconcile` will catch up",
                err.code.as_str(),
                escape_lines(&err.message)
            );
        }
    }
    Ok(())
}

/// Returns the spool key when the database was busy and the record was spooled.
fn record_hook(ctx: &mut Ctx, name: &str, args: &[String]) -> Result<Option<String>> {
    worktrees::check_hook_name(name)?;
    let Some(marker) = ctx.marker()? else {
        return Ok(None);
    };
    let rewritten = if name == "post-rewrite" {
        read_rewritten()?
    } else {
        Vec::new()
    };
    let actor = match ctx.identity() {
        Ok((agent, _)) => agent,
        Err(_) => ctx.leader()?,
    };
    let cfg = ctx.inbox_config()?;
    let (repo, store) = ctx.repo_and_store()?;
    let call = worktrees::HookCall {
        name,
        arg: args.first().map(String::as_str),
        rewritten,
    };
    worktrees::record_hook(repo, store, &cfg, &actor, &marker, &call)
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
    Ok(parse_rewritten(&text))
}

/// At most 1000 `{old, new}` pairs, one per line with at least two words; other lines
/// are skipped (git writes nothing else, but anyone can call the hook).
pub(crate) fn parse_rewritten(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(old), Some(new)) => Some(json!({"old": old, "new": new})),
                _ => None,
            }
        })
        .take(1000)
        .collect()
}
