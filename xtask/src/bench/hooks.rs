//! `cargo xtask bench hooks`: what the installed hooks add to a `git commit`, in the main
//! worktree (the block must stay silent) and in an attempt worktree (it records progress).

use crate::util::{median_time, ms, Bins, Row, Sandbox};
use anyhow::{Context, Result};
use std::path::Path;

const RUNS: usize = 31;

fn commit(sandbox: &Sandbox, dir: &Path) -> Result<()> {
    let out = sandbox
        .command("git")
        .current_dir(dir)
        .args(["commit", "-q", "--allow-empty", "-m", "bench"])
        .output()?;
    crate::util::check(&out, "git commit")?;
    anyhow::ensure!(
        out.stderr.is_empty(),
        "the hook complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

pub fn run(bins: &Bins) -> Result<Vec<Row>> {
    let sandbox = Sandbox::new(bins)?;
    let repo = sandbox.repo.clone();
    let plain = median_time(RUNS, || commit(&sandbox, &repo))?;

    sandbox.run(&bins.orch, &["init"])?;
    let silent = median_time(RUNS, || commit(&sandbox, &repo))?;

    let sent = sandbox.run(
        &bins.inbox,
        &[
            "--json",
            "--agent",
            "leader",
            "send",
            "--to",
            "w1",
            "--subject",
            "bench",
            "--kind",
            "task",
        ],
    )?;
    let doc: serde_json::Value = serde_json::from_str(&sent)?;
    let thread = doc["data"]["thread"]["id"].as_i64().context("thread id")?;
    sandbox.run(
        &bins.inbox,
        &["--agent", "w1", "claim", &thread.to_string()],
    )?;
    let wt = sandbox.repo.parent().context("sandbox root")?.join("wt");
    sandbox.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "orch/b/t-1",
        wt.to_str().unwrap(),
    ])?;
    let git_dir = sandbox
        .command("git")
        .current_dir(&wt)
        .args(["rev-parse", "--absolute-git-dir"])
        .output()?;
    let git_dir = crate::util::check(&git_dir, "rev-parse")?;
    let marker =
        serde_json::json!({"run": "b", "task": "t", "attempt": 1, "thread": thread, "agent": "w1"});
    std::fs::write(
        Path::new(git_dir.trim()).join("orch-attempt"),
        marker.to_string(),
    )?;
    let recording = median_time(RUNS, || commit(&sandbox, &wt))?;

    let silent_cost = silent.saturating_sub(plain);
    let recording_cost = recording.saturating_sub(plain);
    Ok(vec![
        Row {
            bench: "hooks: commit outside attempt worktrees".into(),
            figure: format!("{} (+{})", ms(silent), ms(silent_cost)),
            baseline: format!("{} without hooks", ms(plain)),
            ratio: format!("{:.2}x", silent.as_secs_f64() / plain.as_secs_f64()),
            // Git starts `sh` for any hook file; the block itself starts nothing more.
            goal: "one `sh` start, ≤ 2 ms".into(),
            met: Some(silent_cost.as_secs_f64() <= 0.002),
        },
        Row {
            bench: "hooks: commit in an attempt worktree (progress recorded)".into(),
            figure: format!("{} (+{})", ms(recording), ms(recording_cost)),
            baseline: format!("{} without hooks", ms(plain)),
            ratio: format!("{:.2}x", recording.as_secs_f64() / plain.as_secs_f64()),
            goal: "a few ms".into(),
            met: Some(recording_cost.as_secs_f64() <= 0.005),
        },
    ])
}
