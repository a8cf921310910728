//! `cargo xtask bench orch`: a generated plan of 5,000 tasks with about 15,000
//! dependencies, imported at once; then the median `git orch --json ready` and
//! `git orch --json status` with some attempts in flight (so reconcile has threads to
//! look at), against a trivial `git orch --json run show` as the baseline.

use crate::util::{data_of, median_time, ms, Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const TASKS: usize = 5_000;
/// Tasks without dependencies (ready at once); every later one depends on 3 or 4 earlier.
const ROOTS: usize = 500;
const DISPATCHED: usize = 50;
const CLAIMED: usize = 20;
const RUNS: usize = 21;

/// A small deterministic generator, so every run benchmarks the same plan.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// The plan and its number of dependencies.
pub fn plan() -> (Value, usize) {
    plan_of(TASKS, ROOTS)
}

/// A plan of `count` tasks, the first `roots` without dependencies.
pub fn plan_of(count: usize, roots: usize) -> (Value, usize) {
    let mut rng = Lcg(42);
    let mut deps = 0;
    let tasks: Vec<Value> = (0..count)
        .map(|i| {
            let mut after: Vec<String> = Vec::new();
            if i >= roots {
                let want = if i % 3 == 0 { 4 } else { 3 };
                while after.len() < want {
                    let dep = format!("t{:04}", rng.below(i));
                    if !after.contains(&dep) {
                        after.push(dep);
                    }
                }
            }
            deps += after.len();
            json!({
                "key": format!("t{i:04}"),
                "title": format!("Task number {i} of the generated plan"),
                "body": format!("Do step {i}. Keep it small, test it, commit it."),
                "priority": rng.below(5),
                "after": after,
            })
        })
        .collect();
    (json!({ "tasks": tasks }), deps)
}

pub fn run(bins: &Bins) -> Result<Vec<Row>> {
    let sb = Sandbox::new(bins)?;
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    let inbox = |args: &[&str]| sb.run(&bins.inbox, args);
    orch(&["init"])?;
    orch(&["run", "init", "bench", "--title", "Generated plan"])?;

    let (plan, deps) = plan();
    let file = sb.home.join("plan.json");
    std::fs::write(&file, plan.to_string())?;
    let file = file.to_str().context("UTF-8 temp path")?.to_owned();
    let started = Instant::now();
    let imported = data_of(&orch(&["--json", "task", "import", &file])?)?;
    let import_time = started.elapsed();
    let count = imported["tasks"].as_array().map_or(0, Vec::len);
    if count != TASKS {
        bail!("imported {count} tasks, expected {TASKS}");
    }

    // Some attempts in flight, some of them claimed, so reconcile has threads to look at.
    orch(&["dispatch", "--all-ready", "--max", &DISPATCHED.to_string()])?;
    inbox(&["--agent", "w1", "subscribe", "@workers"])?;
    for _ in 0..CLAIMED {
        inbox(&["--agent", "w1", "claim", "--next"])?;
    }
    orch(&["reconcile"])?;

    let ready_count = data_of(&orch(&["--json", "ready"])?)?["tasks"]
        .as_array()
        .map_or(0, Vec::len);
    let status_doc = data_of(&orch(&["--json", "status"])?)?;
    if status_doc["counts"]["running"] != CLAIMED {
        bail!("expected {CLAIMED} running tasks: {}", status_doc["counts"]);
    }

    let baseline = median_time(RUNS, || orch(&["--json", "run", "show"]).map(drop))?;
    let ready = median_time(RUNS, || orch(&["--json", "ready"]).map(drop))?;
    let status = median_time(RUNS, || orch(&["--json", "status"]).map(drop))?;

    let row = |what: String, figure: Duration, goal_ms: u64| {
        let goal = Duration::from_millis(goal_ms);
        Row {
            bench: what,
            figure: ms(figure),
            baseline: format!("{} (`git orch --json run show`)", ms(baseline)),
            ratio: format!(
                "{:.2}x baseline, {:.2} of goal",
                figure.as_secs_f64() / baseline.as_secs_f64(),
                figure.as_secs_f64() / goal.as_secs_f64()
            ),
            goal: format!("≤ {goal_ms} ms"),
            met: Some(figure <= goal),
        }
    };
    Ok(vec![
        Row {
            bench: format!("orch: `task import` of {TASKS} tasks, {deps} dependencies, once"),
            figure: ms(import_time),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
        row(
            format!("orch: `git orch --json ready` ({ready_count} ready of {TASKS}), median of {RUNS}"),
            ready,
            150,
        ),
        row(
            format!(
                "orch: `git orch --json status` ({TASKS} tasks, {DISPATCHED} in flight), median of {RUNS}"
            ),
            status,
            400,
        ),
    ])
}
