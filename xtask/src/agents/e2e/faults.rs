//! Claude Code ending badly, under one drive: four tasks, each with a profile of its own
//! whose endpoint prefix picks the scenario.
//!
//! - `quits` (`/s/exit-without-done`, two attempts): commits, then exits without `done`;
//!   the supervisor fails it retryably (`agent_exited`), drive retries it once, and the
//!   second attempt does the same, so the task fails.
//! - `hangs` (`/s/hang`, `timeout 20s`): a model that never answers; the supervisor ends
//!   the agent's process group (`agent_timeout`).
//! - `cancelled` (`/s/hang`): `git orch cancel` while its agent runs; the supervisor ends
//!   the process group.
//! - `orphaned` (`/s/hang`): its supervisor is SIGKILLed; drive's reconcile fails the
//!   attempt `supervisor_lost` and ends the agent's process group.
//!
//! Nothing is left to run, nothing is done: drive ends with exit 4, `stuck`, naming the
//! three failed tasks. "Gone" is `kill(-pgid, 0)` answering ESRCH.

use super::{agent_exits, profile, sandbox, show, start_drive, wait_for, walls, Net, Row};
use crate::agents::clis::Cli;
use crate::endpoint::script::Scenario;
use crate::util::{Bins, Sandbox};
use anyhow::{bail, Context, Result};
use rustix::process::{kill_process, test_kill_process_group, Pid, Signal};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const KEYS: [&str; 4] = ["quits", "hangs", "cancelled", "orphaned"];
/// Long enough for Claude to start and reach the endpoint on a loaded machine.
const HANG_TIMEOUT: &str = "20s";
const WAIT: Duration = Duration::from_secs(120);

pub fn faults(cli: &'static Cli, bins: &Bins, netns: bool, root: &Path) -> Result<Row> {
    let started = Instant::now();
    let task = |key: &str, profile: &str, attempts: i64| {
        json!({"key": key, "title": format!("Task {key}"), "profile": profile,
               "body": format!("Write the greeting to `{key}.txt`."), "max_attempts": attempts})
    };
    let tasks = vec![
        task("quits", "claude-quits", 2),
        task("hangs", "claude-hangs", 1),
        task("cancelled", "claude-held", 1),
        task("orphaned", "claude-held", 1),
    ];
    let sb = sandbox(bins, root, Value::Array(tasks))?;
    let kept = || format!("the run is kept in {}", root.display());
    let net = Net::new(netns, cli, root)?;
    profile(
        &sb,
        cli,
        "claude-quits",
        net.port,
        Scenario::ExitWithoutDone,
        "5m",
    )?;
    profile(
        &sb,
        cli,
        "claude-hangs",
        net.port,
        Scenario::Hang,
        HANG_TIMEOUT,
    )?;
    profile(&sb, cli, "claude-held", net.port, Scenario::Hang, "10m")?;
    let args = [
        "--launch",
        "claude-quits",
        "--parallel",
        "4",
        "--timeout",
        "8m",
    ];
    let mut drive = start_drive(&sb, bins, cli, net, &args).with_context(kept)?;
    let mut problems = Vec::new();
    cancel_and_orphan(&sb, bins, &mut problems).with_context(kept)?;
    let (lines, last) = drive.finish(Duration::from_secs(540)).with_context(kept)?;
    let (code, verdict) = drive.end()?;

    if code != 4 || last["error"]["code"] != "stuck" {
        problems.push(format!("drive exited {code}, not 4 stuck: {last}"));
    }
    let failed: Vec<(String, String)> = last["error"]["details"]["failed"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| (str_of(&f["task"]), str_of(&f["reason"])))
        .collect();
    let want = [
        ("quits", "agent_exited"),
        ("hangs", "agent_timeout"),
        ("orphaned", "supervisor_lost"),
    ];
    for (task, reason) in want {
        if !failed.iter().any(|(t, r)| t == task && r == reason) {
            problems.push(format!(
                "stuck does not name {task} failed with {reason}: {failed:?}"
            ));
        }
    }
    check_quits_and_hangs(&sb, bins, &mut problems)?;
    let exits = agent_exits(&sb, bins)?;
    let mut attempts = 0;
    for key in KEYS {
        let t = show(&sb, bins, key)?;
        for a in t["attempts"].as_array().into_iter().flatten() {
            attempts += 1;
            let id = a["id"].as_i64().unwrap_or(-1);
            // A lost supervisor records no exit: reconcile records the loss instead.
            let want = usize::from(key != "orphaned");
            let n = exits.iter().filter(|(att, _)| *att == id).count();
            if n != want {
                problems.push(format!(
                    "{key} attempt {id}: {n} agent.exit events, not {want}"
                ));
            }
            if let Some(pid) = a["launch"]["pid"].as_i64() {
                if group_alive(pid) {
                    problems.push(format!(
                        "{key}: the agent's process group {pid} outlived it"
                    ));
                }
            }
        }
    }
    if !verdict.prompt_ok() {
        problems.push(format!(
            "prompt check failed, missing {:?}",
            verdict.missing
        ));
    }
    if !problems.is_empty() {
        bail!(
            "{}\n  endpoint: {verdict}\n  {}",
            problems.join("\n  "),
            kept()
        );
    }
    println!("claude-faults: {verdict}");
    Ok(Row {
        label: "claude, faults".to_owned(),
        tasks: KEYS.len(),
        attempts,
        walls: walls(&lines, &KEYS),
        total: started.elapsed(),
    })
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or("").to_owned()
}

/// Whether any process of group `pgid` is alive (`kill(-pgid, 0)`).
fn group_alive(pgid: i64) -> bool {
    match Pid::from_raw(pgid as i32) {
        Some(pid) => test_kill_process_group(pid) != Err(rustix::io::Errno::SRCH),
        None => false,
    }
}

/// Waits until the task's current attempt has a running agent; returns the attempt.
fn running(sb: &Sandbox, bins: &Bins, key: &str) -> Result<Value> {
    wait_for(&format!("{key}'s agent to run"), WAIT, || {
        let a = show(sb, bins, key)?["task"]["current_attempt"].clone();
        let pid = a["launch"]["pid"].as_i64();
        Ok((a["status"] == "running" && pid.is_some_and(group_alive)).then_some(a))
    })
}

fn gone(key: &str, pgid: i64) -> Result<()> {
    wait_for(
        &format!("{key}'s process group {pgid} to be gone"),
        WAIT,
        || Ok((!group_alive(pgid)).then_some(())),
    )
}

/// While drive runs: cancels `cancelled` and SIGKILLs `orphaned`'s supervisor, each once
/// its agent runs, and checks that neither agent outlives what ended it.
fn cancel_and_orphan(sb: &Sandbox, bins: &Bins, problems: &mut Vec<String>) -> Result<()> {
    let a = running(sb, bins, "cancelled")?;
    let pgid = a["launch"]["pid"].as_i64().context("launch.pid")?;
    sb.data(&bins.orch, &["cancel", "cancelled"])?;
    gone("cancelled", pgid)?;
    let t = wait_for("cancelled's launch to end", WAIT, || {
        let t = show(sb, bins, "cancelled")?;
        Ok((!t["attempts"][0]["launch"]["ended_at"].is_null()).then_some(t))
    })?;
    if t["task"]["status"] != "cancelled" || t["attempts"][0]["status"] != "cancelled" {
        problems.push(format!("cancelled: {}", t["task"]));
    }
    let exit = agent_exits(sb, bins)?
        .into_iter()
        .find(|(id, _)| t["attempts"][0]["id"] == *id);
    match exit {
        Some((_, d)) if d["ended_by"] == "cancel" => {}
        other => problems.push(format!("cancelled's agent.exit: {other:?}")),
    }

    let a = running(sb, bins, "orphaned")?;
    let pgid = a["launch"]["pid"].as_i64().context("launch.pid")?;
    let id = a["id"].as_i64().context("attempt id")?;
    let supervisor = supervisor_pid(sb, id)?;
    kill_process(Pid::from_raw(supervisor).context("a pid")?, Signal::KILL)?;
    let failure = wait_for("drive to fail orphaned's attempt", WAIT, || {
        let a = show(sb, bins, "orphaned")?["attempts"][0].clone();
        Ok((a["status"] == "failed").then(|| a["failure"]["reason"].clone()))
    })?;
    if failure != "supervisor_lost" {
        problems.push(format!(
            "orphaned failed with {failure}, not supervisor_lost"
        ));
    }
    gone("orphaned", pgid)
}

/// `launches.supervisor_pid` of attempt `id`, which the supervisor writes once it has
/// claimed the thread (before the agent starts, so it is there once the agent runs).
fn supervisor_pid(sb: &Sandbox, id: i64) -> Result<i32> {
    let conn = sb.read_state()?;
    let pid: Option<i32> = conn.query_row(
        "SELECT supervisor_pid FROM launches WHERE attempt_id = ?1",
        [id],
        |r| r.get(0),
    )?;
    pid.context("no supervisor pid recorded")
}

fn check_quits_and_hangs(sb: &Sandbox, bins: &Bins, problems: &mut Vec<String>) -> Result<()> {
    let quits = show(sb, bins, "quits")?;
    let list = quits["attempts"].as_array().cloned().unwrap_or_default();
    if list.len() != 2 || quits["task"]["status"] != "failed" {
        problems.push(format!(
            "quits: {} after {} attempts",
            quits["task"]["status"],
            list.len()
        ));
    }
    for a in &list {
        if a["failure"]["reason"] != "agent_exited" || a["failure"]["retryable"] != true {
            problems.push(format!(
                "quits attempt {}: failure {}",
                a["n"], a["failure"]
            ));
        }
        // It committed before it quit: the hooks recorded that too.
        if a["commits"].as_i64().unwrap_or(0) < 1 {
            problems.push(format!("quits attempt {}: no commit recorded", a["n"]));
        }
    }
    let hangs = show(sb, bins, "hangs")?;
    let a = &hangs["attempts"][0];
    if a["failure"]["reason"] != "agent_timeout" {
        problems.push(format!("hangs: failure {}", a["failure"]));
    }
    let exit = agent_exits(sb, bins)?
        .into_iter()
        .find(|(id, _)| a["id"] == *id);
    match exit {
        // Claude Code traps SIGTERM and exits 143 itself; a CLI that does not dies of it.
        Some((_, d))
            if d["ended_by"] == "timeout"
                && (d["code"] == 143 || d["signal"] == "SIGTERM" || d["signal"] == "SIGKILL") => {}
        other => problems.push(format!("hangs' agent.exit: {other:?}")),
    }
    Ok(())
}
