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
/// The second drive: few enough in flight that the CPU is not what they wait on.
const NARROW: usize = 2;
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

    let wide = drive_run(bins, &sb, "drive", length, PARALLEL)?;
    // A sandbox of its own: git's worktree commands read every worktree there is, so
    // the first drive's 200 would make the second one's dispatches dearer.
    let fresh = Sandbox::new(bins)?;
    fresh.run(&bins.orch, &["init"])?;
    let narrow = drive_run(bins, &fresh, "narrow", length, NARROW)?;
    let total = CHAINS * length;
    let goal = Duration::from_millis(50);
    let baseline = format!(
        "{} (one `git orch dispatch`, median of {DISPATCHES})",
        ms(dispatch)
    );
    let per_task = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / total as f64;
    let mut rows = vec![Row {
        bench: format!("drive: {total} instant `script` agents, {CHAINS} chains, --parallel {PARALLEL}, wall time"),
        figure: format!("{:.2} s", wall_secs(&wide)),
        baseline: baseline.clone(),
        ratio: format!("{:.1} ms per task", wall_secs(&wide) * 1000.0 / total as f64),
        goal: "-".into(),
        met: None,
    }];
    for (figures, parallel) in [(&wide, PARALLEL), (&narrow, NARROW)] {
        let (p50, max) = (figures.p50(), figures.max());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A chain's turn is its latency plus its run (start to done); with `parallel`
        // chains sharing `cores` CPUs, turns cannot come faster than the CPU they use.
        let bound = parallel as f64 * per_task(figures.cpu) / cores as f64
            - figures.run_p50().as_secs_f64() * 1000.0;
        rows.push(Row {
            bench: format!("drive --parallel {parallel}: scheduling latency, a task's `done` to its dependent's `agent.start`, p50"),
            figure: ms(p50),
            baseline: baseline.clone(),
            ratio: format!(
                "{:.2}x baseline, {:.2} of goal; CPU bound ≥ {bound:.0} ms",
                p50.as_secs_f64() / dispatch.as_secs_f64(),
                p50.as_secs_f64() / goal.as_secs_f64()
            ),
            goal: "≤ 50 ms (issue 15: ≤ 20 ms)".into(),
            met: Some(p50 <= goal),
        });
        rows.push(Row {
            bench: format!("drive --parallel {parallel}: scheduling latency, max"),
            figure: ms(max),
            baseline: baseline.clone(),
            ratio: format!("{:.2}x p50", max.as_secs_f64() / p50.as_secs_f64()),
            goal: "-".into(),
            met: None,
        });
        rows.push(Row {
            bench: format!(
                "drive --parallel {parallel}: CPU per task (drive, supervisors, git, agent)"
            ),
            figure: format!("{:.1} ms", per_task(figures.cpu)),
            baseline: format!(
                "{:.1} ms of it in drive itself",
                per_task(figures.drive_cpu)
            ),
            ratio: format!("{:.2} s wall", wall_secs(figures)),
            goal: "-".into(),
            met: None,
        });
    }
    rows.push(Row {
        bench: format!("drive: peak RSS of the drive process over {total} tasks"),
        figure: format!("{:.1} MiB", wide.peak_kb as f64 / 1024.0),
        baseline: "-".into(),
        ratio: "-".into(),
        goal: "-".into(),
        met: None,
    });
    Ok(rows)
}

/// What one drive over the chains came to.
struct Figures {
    wall: Duration,
    /// Each dependent's `done` → `agent.start`, sorted.
    latencies: Vec<Duration>,
    /// Each task's `agent.start` → `done`, sorted.
    runs: Vec<Duration>,
    peak_kb: u64,
    /// CPU of the drive and of every process it waited for (supervisors, git, agents).
    cpu: Duration,
    drive_cpu: Duration,
}

impl Figures {
    fn p50(&self) -> Duration {
        self.latencies[self.latencies.len() / 2]
    }
    fn max(&self) -> Duration {
        *self.latencies.last().unwrap_or(&Duration::ZERO)
    }
    fn run_p50(&self) -> Duration {
        self.runs
            .get(self.runs.len() / 2)
            .copied()
            .unwrap_or_default()
    }
}

fn wall_secs(f: &Figures) -> f64 {
    f.wall.as_secs_f64()
}

/// Imports the chains into a new run `name` and drives it with `parallel`.
fn drive_run(
    bins: &Bins,
    sb: &Sandbox,
    name: &str,
    length: usize,
    parallel: usize,
) -> Result<Figures> {
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    orch(&["run", "init", name, "--title", "Chains of instant agents"])?;
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
    let plan = sb.home.join(format!("{name}.json"));
    std::fs::write(&plan, json!({ "tasks": tasks }).to_string())?;
    orch(&[
        "task",
        "import",
        "--run",
        name,
        plan.to_str().context("UTF-8 temp path")?,
    ])?;
    sb.git(&["config", "orch.agent.instant.command", "true"])?;

    let cpu_before = children_cpu()?;
    let started = Instant::now();
    let mut child = sb
        .command(&bins.orch)
        .args(["--json", "drive", "--run", name, "--launch", "instant"])
        .args(["--parallel", &parallel.to_string(), "--timeout", "600s"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting git orch drive")?;
    let stat_file = format!("/proc/{}/stat", child.id());
    let status_file = format!("/proc/{}/status", child.id());
    let (mut peak_kb, mut drive_ticks) = (0_u64, 0_u64);
    let status = loop {
        if let Some(kb) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kb(&s))
        {
            peak_kb = peak_kb.max(kb);
        }
        if let Some(ticks) = std::fs::read_to_string(&stat_file)
            .ok()
            .and_then(|s| stat_ticks(&s, 13..15))
        {
            drive_ticks = drive_ticks.max(ticks);
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
    let cpu = children_cpu()?.saturating_sub(cpu_before);
    let (mut latencies, mut runs) = latencies(sb, name, length)?;
    if latencies.len() != CHAINS * (length - 1) {
        bail!(
            "{} latencies for {} dependent tasks",
            latencies.len(),
            CHAINS * (length - 1)
        );
    }
    latencies.sort();
    runs.sort();
    Ok(Figures {
        wall,
        latencies,
        runs,
        peak_kb,
        cpu,
        drive_cpu: ticks(drive_ticks),
    })
}

/// `/proc` counts CPU in clock ticks of 1/100 s (`USER_HZ`, fixed by the kernel's ABI).
fn ticks(n: u64) -> Duration {
    Duration::from_millis(n * 10)
}

/// The sum of the fields `range` of a `/proc/PID/stat`, numbered from 0 (`utime` is 13,
/// `cutime` 15).
fn stat_ticks(stat: &str, range: std::ops::Range<usize>) -> Option<u64> {
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let fields = fields.get(range.start - 2..range.end - 2)?;
    fields.iter().map(|f| f.parse::<u64>().ok()).sum()
}

/// CPU of this process's waited-for children (`cutime` + `cstime`).
fn children_cpu() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    stat_ticks(&stat, 15..17)
        .map(ticks)
        .context("reading /proc/self/stat")
}

fn vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// From the event log: for every task after the first of its chain, the time from its
/// dependency's thread going `done` to its own agent's start; and for every task, from
/// its agent's start to its thread's `done`.
fn latencies(sb: &Sandbox, run: &str, length: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    let db = rusqlite::Connection::open(sb.repo.join(".git/orch/state.db"))?;
    let times = |sql: &str| -> Result<HashMap<String, i64>> {
        let mut stmt = db.prepare(sql)?;
        let rows = stmt.query_map([run], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    };
    let done = times(
        "SELECT task, min(at) FROM events WHERE run = ?1 AND kind = 'thread.status'
         AND to_status = 'done' GROUP BY task",
    )?;
    let start = times(
        "SELECT task, min(at) FROM events WHERE run = ?1 AND kind = 'agent.start'
         GROUP BY task",
    )?;
    let since = |a: i64, b: i64| Duration::from_millis((b - a).max(0) as u64);
    let (mut out, mut runs) = (Vec::new(), Vec::new());
    for c in 0..CHAINS {
        for i in 0..length {
            let key = format!("c{c}-{i}");
            let (Some(&started), Some(&finished)) = (start.get(&key), done.get(&key)) else {
                bail!("no start or no done of {key} in the event log");
            };
            runs.push(since(started, finished));
            if i > 0 {
                let dep = format!("c{c}-{}", i - 1);
                let done = *done.get(&dep).context("a dependency without its done")?;
                out.push(since(done, started));
            }
        }
    }
    Ok((out, runs))
}
