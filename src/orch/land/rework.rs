//! The rework attempts of what a land sent back: each starts from the integration tip
//! recorded when it was sent back, its brief carrying the conflicting paths or the
//! check's output (the dispatch step reads both from `blocked_detail`).

use crate::error::Result;
use crate::orch::dispatch::{dispatch_one, Request, Workspaces};
use crate::orch::facade::Orch;
use crate::orch::launch::Plan;
use crate::orch::model::Attempt;
use crate::orch::runs;
use crate::orch::status::TaskStatus;
use crate::orch::tasks::{self, Select};
use serde_json::{json, Map};

/// Dispatches the rework attempts of the run's tasks that land sent back and that have
/// no attempt in flight, at most `max` of them, oldest send-back first. With `launch`
/// each gets an agent like any launched attempt (drive's profile). Returns each task with
/// its new attempt or why it could not be dispatched (it stays blocked, and says why).
pub fn dispatch_reworks(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    launch: Option<&Plan>,
    max: Option<usize>,
) -> Result<Vec<(String, Result<Attempt>)>> {
    let (run, keys) = orch.read(|tx| {
        let run = runs::resolve(tx, run_name)?;
        let mut sent: Vec<(String, String)> =
            tasks::load(tx, &run.name, Select::Status(TaskStatus::Blocked))?
                .into_iter()
                .filter(|t| {
                    matches!(
                        t.blocked_reason.as_deref(),
                        Some("land_conflict" | "land_check")
                    )
                })
                .map(|t| (t.updated_at.clone(), t.key))
                .collect();
        sent.sort();
        let keys: Vec<String> = sent.into_iter().map(|(_, key)| key).collect();
        Ok((run, keys))
    })?;
    let mut out = Vec::new();
    for key in keys.into_iter().take(max.unwrap_or(usize::MAX)) {
        let mut extra = Map::new();
        extra.insert("land_rework".into(), json!(true));
        let req = Request {
            key: &key,
            to: None,
            base: None,
            force: true,
            extra,
            launch,
        };
        let attempt = dispatch_one(orch, workspaces, &run, &req);
        out.push((key, attempt));
    }
    Ok(out)
}
