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
    let data = json!({
        "agent": agent,
        "source": source,
        "thread": marker.as_ref().map(|m| m.thread),
        "run": marker.as_ref().map(|m| m.run.clone()),
        "task": marker.as_ref().map(|m| m.task.clone()),
        "attempt": marker.as_ref().map(|m| m.attempt),
    });
    out.success(&data, || {
        let how = match source {
            IdentitySource::Flag => "--agent",
            IdentitySource::Env => "ORCH_AGENT",
            IdentitySource::Worktree => "this attempt worktree",
        };
        let mut text = format!("{agent} (from {how})");
        if let Some(m) = &marker {
            text.push_str(&format!(
                "\nattempt {} of task {} in run {}, thread {}",
                m.attempt, m.task, m.run, m.thread
            ));
        }
        text
    })
}
