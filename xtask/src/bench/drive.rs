//! `cargo xtask bench drive`: `git orch drive --launch` over 200 code tasks whose agent
//! (a `script` profile running `true`) finishes at once, at most 8 in flight. The plan
//! is 8 chains of 25, so every `done` frees exactly one dependent and the time from a
//! task's thread going `done` to its dependent's `agent.start` is drive's scheduling
//! latency: waking, reconcile, dispatch (worktree, thread) and the supervisor's start.
//! Both times are read from the store's events. Against it, the median of single `git
//! orch dispatch` commands in the same sandbox (no launch): the floor of one dispatch.
//! Peak memory of the drive process is its `VmHWM` in /proc, read while it runs.

use crate::util::{median, ms, Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const CHAINS: usize = 8;
const LENGTH: usize = 25;
const PARALLEL: usize = 8;
const DISPATCHES: usize = 9;

pub fn run(bins: &Bins, quick: bool) -> Result<Vec<Row>> {
    let length = if quick { 5 } else { LENGTH };
    let sb = Sandbox::new(bins)?;
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    orch(&["init"])?;

    // The floor: one plain dispatch of a ready code task (worktree, branch, thread).
    orch(&["run", "init", "floor", "--title", "One dispatch at a time"])?;
    let mut times = Vec::new();
    for i in 0..=DISPATCHES {
        let key = format!("d{i}");
        orch(&["task", "add", &key, "--title", "A task", "--run", "floor"])?;
        let started = Instant::now();
        orch(&["dispatch", &key, "--run", "floor"])?;
        if i > 0 {
            times.push(started.elapsed());
        }
    }
    let dispatch = median(&mut times);
    orch(&["run", "close", "floor", "--cancel"])?;

    orch(&[
        "run",
        "init",
        "drive",
        "--title",
        "Chains of instant agents",
    ])?;
    let tasks: Vec<_> = (0..CHAINS)
        .flat_map(|c| {
            (0..length).map(move |i| {
                let after: Vec<String> = if i == 0 {
                    Vec::new()
                } else {
                    vec![format!("c{c}-{}", i - 1)]
                };
                json!({"key": format!("c{c}-{i}"), "title": format!("Step {i} of chain {c}"), "after": after})
            })
        })
        .collect();
    let total = tasks.len();
    let plan = sb.home.join("chains.json");
    std::fs::write(&plan, json!({ "tasks": tasks }).to_string())?;
    orch(&["task", "import", plan.to_str().context("UTF-8 temp path")?])?;
    sb.git(&["config", "orch.agent.instant.command", "true"])?;

    let started = Instant::now();
    let mut child = sb
        .command(&bins.orch)
        .args(["--json", "drive", "--run", "drive", "--launch", "instant"])
        .args(["--parallel", &PARALLEL.to_string(), "--timeout", "600s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting git orch drive")?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0_u64;
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kb(&s))
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        // The high-water mark only grows: the last read before the exit is the peak.
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    if !status.success() {
        bail!("git orch drive exited with {status}");
    }
    let latencies = latencies(&sb, length)?;
    if latencies.len() != CHAINS * (length - 1) {
        bail!(
            "{} latencies for {} dependent tasks",
            latencies.len(),
            CHAINS * (length - 1)
        );
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    let p50 = sorted[sorted.len() / 2];
    let max = *sorted.last().context("no latency")?;
    let goal = Duration::from_millis(50);
    let baseline = format!(
        "{} (one `git orch dispatch`, median of {DISPATCHES})",
        ms(dispatch)
    );
    Ok(vec![
        Row {
            bench: format!("drive: {total} instant `script` agents, {CHAINS} chains, --parallel {PARALLEL}, wall time"),
            figure: format!("{:.2} s", wall.as_secs_f64()),
            baseline: baseline.clone(),
            ratio: format!("{:.1} ms per task", wall.as_secs_f64() * 1000.0 / total as f64),
            goal: "-".into(),
            met: None,
        },
        Row {
            bench: "drive: scheduling latency, a task's `done` to its dependent's `agent.start`, p50".into(),
            figure: ms(p50),
            baseline: baseline.clone(),
            ratio: format!(
                "{:.2}x baseline, {:.2} of goal",
                p50.as_secs_f64() / dispatch.as_secs_f64(),
                p50.as_secs_f64() / goal.as_secs_f64()
            ),
            goal: "≤ 50 ms (issue 15: ≤ 20 ms)".into(),
            met: Some(p50 <= goal),
        },
        Row {
            bench: "drive: scheduling latency, max".into(),
            figure: ms(max),
            baseline,
            ratio: format!("{:.2}x p50", max.as_secs_f64() / p50.as_secs_f64()),
            goal: "-".into(),
            met: None,
        },
        Row {
            bench: format!("drive: peak RSS of the drive process over {total} tasks"),
            figure: format!("{:.1} MiB", peak_kb as f64 / 1024.0),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
    ])
}

fn vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// From the event log: for every task after the first of its chain, the time from its
/// dependency's thread going `done` to its own agent's start.
fn latencies(sb: &Sandbox, length: usize) -> Result<Vec<Duration>> {
    let db = rusqlite::Connection::open(sb.repo.join(".git/orch/state.db"))?;
    let times = |sql: &str| -> Result<HashMap<String, i64>> {
        let mut stmt = db.prepare(sql)?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let done = times(
        "SELECT task, min(at) FROM events WHERE run = 'drive' AND kind = 'thread.status'
         AND to_status = 'done' GROUP BY task",
    )?;
    let start = times(
        "SELECT task, min(at) FROM events WHERE run = 'drive' AND kind = 'agent.start'
         GROUP BY task",
    )?;
    let mut out = Vec::new();
    for c in 0..CHAINS {
        for i in 1..length {
            let (dep, key) = (format!("c{c}-{}", i - 1), format!("c{c}-{i}"));
            let (Some(done), Some(start)) = (done.get(&dep), start.get(&key)) else {
                bail!("no done of {dep} or no start of {key} in the event log");
            };
            out.push(Duration::from_millis((start - done).max(0) as u64));
        }
    }
    Ok(out)
}
