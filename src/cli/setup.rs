//! `git orch init`, `git inbox init` and `git orch uninstall-hooks`: the state and the
//! hooks, shared by both binaries.

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::escape_path;
use crate::error::Result;
use crate::repo::HooksReport;
use serde_json::json;

/// `git orch init` and `git inbox init`: the state, and for orch the hooks.
pub fn init(ctx: &mut Ctx, out: &Out, with_hooks: bool) -> Result<()> {
    let created = ctx.init_store()?;
    let state_dir = ctx.repo()?.state_dir();
    let hooks = if with_hooks {
        Some(ctx.repo()?.install_hooks()?)
    } else {
        None
    };
    let mut data = json!({"state_dir": crate::paths::lossy(&state_dir), "created": created, "schema_version": crate::store::SCHEMA_VERSION});
    if let Some(hooks) = &hooks {
        data["hooks"] = serde_json::to_value(hooks)?;
    }
    out.success(&data, || {
        let mut text = if created {
            format!("Initialized git-orch state in {}", escape_path(&state_dir))
        } else {
            format!(
                "git-orch state in {} is up to date",
                escape_path(&state_dir)
            )
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
        .map(|d| escape_path(d))
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
pub fn uninstall_hooks(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let report = ctx.repo()?.uninstall_hooks()?;
    out.success(&json!({ "hooks": report }), || hooks_text(&report))
}
