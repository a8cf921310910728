//! `git inbox whoami`: the acting agent, where its name came from, and the attempt
//! worktree it stands in.

use crate::cli::ctx::{Ctx, IdentitySource};
use crate::cli::output::Out;
use crate::error::Result;
use serde_json::json;

pub fn run(ctx: &mut Ctx, out: &Out) -> Result<()> {
    // SPEC §2: every command but init needs the state, even one that reads none.
    ctx.store()?;
    let (agent, source) = ctx.identity()?;
    let marker = ctx.marker()?;
    // The attempt's number as `git orch status` shows it (2/3); the marker holds its id.
    let numbered = match &marker {
        Some(m) => ctx.store()?.read(|tx| {
            let attempt = crate::orch::get_attempt(tx, crate::orch::AttemptId(m.attempt)).ok();
            let max = crate::orch::tasks::get_row(tx, &m.run, &m.task)
                .ok()
                .map(|t| t.max_attempts);
            Ok(attempt.map(|a| (a.n, max)))
        })?,
        None => None,
    };
    let data = json!({
        "agent": agent,
        "source": source,
        "thread": marker.as_ref().map(|m| m.thread),
        "run": marker.as_ref().map(|m| m.run.clone()),
        "task": marker.as_ref().map(|m| m.task.clone()),
        "attempt": marker.as_ref().map(|m| m.attempt),
        "n": numbered.map(|(n, _)| n),
        "max_attempts": numbered.and_then(|(_, max)| max),
    });
    out.success(&data, || {
        let how = match source {
            IdentitySource::Flag => "--agent",
            IdentitySource::Env => "ORCH_AGENT",
            IdentitySource::Worktree => "this attempt worktree",
        };
        let mut text = format!("{agent} (from {how})");
        if let Some(m) = &marker {
            let number = match numbered {
                Some((n, Some(max))) => format!("{n}/{max}"),
                Some((n, None)) => n.to_string(),
                None => "?".into(),
            };
            text.push_str(&format!(
                "\nattempt {number} of task {} in run {}, thread {}",
                m.task, m.run, m.thread
            ));
        }
        text
    })
}
