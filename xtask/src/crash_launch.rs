//! The crash matrix's rows for launched agents: SIGKILL of a supervisor (the hidden
//! `git orch supervise ID` of a launched `script` agent) and of `git orch drive` at
//! random points. After each kill: reconcile, the matrix's invariants, and the launch's
//! own: no process of a dead supervisor's session (its agent's process group included)
//! is left once reconcile ran, and no launched attempt stays live without its
//! supervisor. A killed drive is then driven again to the end: every task done, every
//! supervisor and agent gone. (`git orch land` is killed 100 times by `cargo xtask e2e`.)

use crate::crash::{check_invariants, Snapshot};
use crate::util::{data_of, Bins, Rng, Sandbox};
use anyhow::{bail, ensure, Context, Result};
use rustix::process::{kill_process, kill_process_group, Pid, Signal};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The agent of both rows: a helper left in its process group (so an agent whose group
/// nobody ends shows up), a commit, a pause of `$1` seconds, exit 0.
const AGENT: &str = r#"#!/bin/sh
sleep 60 &
printf '%s\n' "$ORCH_TASK $ORCH_ATTEMPT" > "work-$ORCH_TASK.txt"
git add "work-$ORCH_TASK.txt"
git commit -q -m "work on $ORCH_TASK"
sleep "$1"
"#;

/// Writes the agent and two profiles: `slow` (it works 0.3 s) and `quick` (0.05 s).
pub fn setup(sb: &Sandbox) -> Result<()> {
    let agent = sb.home.join("agent.sh");
    std::fs::write(&agent, AGENT)?;
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    for (profile, pause) in [("slow", "0.3"), ("quick", "0.05")] {
        let command = format!("{} {pause}", agent.display());
        sb.git(&["config", &format!("orch.agent.{profile}.command"), &command])?;
    }
    Ok(())
}

/// A run of its own for one round, based on `main`.
fn new_run(sb: &Sandbox, bins: &Bins, run: &str) -> Result<()> {
    sb.run(
        &bins.orch,
        &["run", "init", run, "--title", "crash", "--base", "main"],
    )
    .map(drop)
}

/// `kills` rounds of SIGKILL to a supervisor; returns (killed, finished first).
pub fn supervisor_rows(
    sb: &Sandbox,
    bins: &Bins,
    rng: &mut Rng,
    kills: usize,
) -> Result<(usize, usize)> {
    let (mut killed, mut finished) = (0, 0);
    // Kill points spread over a supervisor's whole life: up to 1.5× the last full one.
    let mut full = Duration::from_secs(1);
    for round in 0..kills {
        let run = format!("s{round}");
        new_run(sb, bins, &run)?;
        sb.run(&bins.orch, &["task", "add", "t", "--title", "T"])?;
        let data = sb.data(&bins.orch, &["dispatch", "t", "--launch=slow"])?;
        let id = data["attempts"][0]["id"]
            .as_i64()
            .context("an attempt id")?;
        let started = Instant::now();
        let Some(pid) = supervisor_pid(sb, id)? else {
            // It ended before it could be found: it lived a short, complete life.
            finished += 1;
            continue;
        };
        // The first round runs to the end: it measures a whole life.
        let after = match round {
            0 => Duration::from_secs(60),
            _ => Duration::from_micros(rng.below(full.as_micros() as u64 * 3 / 2 + 1)),
        };
        let ended = until_gone_or(pid, after)?
            // It may end between the look and the kill.
            || kill_process(Pid::from_raw(pid).context("a pid")?, Signal::KILL)
                == Err(rustix::io::Errno::SRCH);
        if ended {
            finished += 1;
            full = started.elapsed();
        } else {
            killed += 1;
            wait_gone(pid)?;
        }
        let before = Snapshot::take(sb)?;
        sb.data(&bins.orch, &["reconcile"])
            .with_context(|| format!("supervisor: reconcile after round {round}"))?;
        check_invariants(sb, &before)
            .and_then(|()| launches_ended(sb, &run))
            .with_context(|| format!("supervisor: round {round} (attempt {id})"))?;
    }
    Ok((killed, finished))
}

/// `kills` rounds of SIGKILL to `git orch drive` (to its whole process group every other
/// time, as a closed terminal would), each followed by reconcile and a drive to the end.
pub fn drive_rows(
    sb: &Sandbox,
    bins: &Bins,
    rng: &mut Rng,
    kills: usize,
) -> Result<(usize, usize)> {
    let (mut killed, mut finished) = (0, 0);
    let mut full = Duration::from_secs(3);
    for round in 0..kills {
        let run = format!("d{round}");
        new_run(sb, bins, &run)?;
        sb.run(&bins.orch, &["task", "add", "a", "--title", "A"])?;
        sb.run(
            &bins.orch,
            &["task", "add", "b", "--title", "B", "--after", "a"],
        )?;
        sb.run(&bins.orch, &["task", "add", "c", "--title", "C"])?;
        let drive = [
            "drive",
            "--run",
            &run,
            "--launch",
            "quick",
            "--parallel",
            "2",
            "--timeout",
            "120s",
        ];
        let started = Instant::now();
        let mut child = sb
            .command(&bins.orch)
            .args(drive)
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = child.id() as i32;
        let after = match round {
            0 => Duration::from_secs(120),
            _ => Duration::from_micros(rng.below(full.as_micros() as u64 * 6 / 5 + 1)),
        };
        let until = Instant::now() + after;
        let ended = loop {
            if child.try_wait()?.is_some() {
                break true;
            }
            if Instant::now() >= until {
                break false;
            }
            std::thread::sleep(Duration::from_micros(300));
        };
        if ended {
            finished += 1;
            full = started.elapsed();
        } else {
            let pid = Pid::from_raw(pid).context("a pid")?;
            if round % 2 == 0 {
                kill_process(pid, Signal::KILL)?;
            } else {
                kill_process_group(pid, Signal::KILL)?;
            }
            child.wait()?;
            killed += 1;
            crate::e2e::wait_for_group_exit(child.id())?;
        }
        let before = Snapshot::take(sb)?;
        sb.data(&bins.orch, &["reconcile"])
            .with_context(|| format!("drive: reconcile after round {round}"))?;
        check_invariants(sb, &before).with_context(|| format!("drive: round {round} killed"))?;

        let before = Snapshot::take(sb)?;
        let again = sb.command(&bins.orch).arg("--json").args(drive).output()?;
        let text = String::from_utf8_lossy(&again.stdout);
        let last = text.lines().last().unwrap_or_default();
        let end = data_of(last)
            .with_context(|| format!("drive: round {round}, the drive after the kill"))?;
        ensure!(end["end"] == "done", "drive: round {round} ended {end}");
        check_invariants(sb, &before)
            .and_then(|()| all_done(sb, bins, &run))
            .and_then(|()| launches_ended(sb, &run))
            .with_context(|| format!("drive: round {round}, after the drive to the end"))?;
    }
    Ok((killed, finished))
}

fn all_done(sb: &Sandbox, bins: &Bins, run: &str) -> Result<()> {
    let tasks = sb.data(&bins.orch, &["task", "list", "--run", run])?;
    for task in tasks["tasks"].as_array().context("tasks")? {
        ensure!(
            task["status"] == "done",
            "task {} is {}",
            task["key"],
            task["status"]
        );
    }
    Ok(())
}

/// The launch invariants of `run`: no launched attempt is live while its supervisor is
/// dead, and nothing of a dead supervisor's session (its agent's group included) is left.
fn launches_ended(sb: &Sandbox, run: &str) -> Result<()> {
    let conn = sb.read_state()?;
    let mut stmt = conn.prepare(
        "SELECT a.id, a.status, l.pid, l.supervisor_pid FROM attempts a
           JOIN launches l ON l.attempt_id = a.id WHERE a.run = ?1",
    )?;
    let rows: Vec<(i64, String, Option<i64>, Option<i64>)> = stmt
        .query_map([run], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, status, agent, supervisor) in rows {
        let alive = supervisor.is_some_and(|s| live(s as i32));
        let in_flight = matches!(status.as_str(), "dispatched" | "running" | "blocked");
        ensure!(
            !in_flight || alive,
            "attempt {id} is {status} but its supervisor {supervisor:?} is gone"
        );
        if alive {
            continue;
        }
        // A killed process can take a moment to leave the process table.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left: Vec<i32> = procs()
                .into_iter()
                .filter(|p| {
                    supervisor.is_some_and(|s| i64::from(p.session) == s)
                        || agent.is_some_and(|a| i64::from(p.pgrp) == a)
                })
                .map(|p| p.pid)
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                bail!(
                    "attempt {id}: processes {left:?} of its agent (group {agent:?}, session {supervisor:?}) outlive its supervisor"
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// The supervisor of attempt `id` in this sandbox, from /proc (it writes its pid to the
/// store only once it has claimed the thread). None when it has already ended.
fn supervisor_pid(sb: &Sandbox, id: i64) -> Result<Option<i32>> {
    let wanted = id.to_string();
    let repo = sb.repo.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for p in procs() {
            let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let supervises = args
                .windows(2)
                .any(|w| w[0] == "supervise" && w[1] == wanted);
            if supervises && args.iter().any(|a| a == &repo) {
                return Ok(Some(p.pid));
            }
        }
        let conn = sb.read_state()?;
        let ended: Option<i64> = conn.query_row(
            "SELECT ended_at FROM launches WHERE attempt_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        if ended.is_some() {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("no supervisor of attempt {id} in /proc after 5 s")
}

/// Waits up to `after` for `pid` to end; true when it did.
fn until_gone_or(pid: i32, after: Duration) -> Result<bool> {
    let until = Instant::now() + after;
    loop {
        if !live(pid) {
            return Ok(true);
        }
        if Instant::now() >= until {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

fn wait_gone(pid: i32) -> Result<()> {
    if until_gone_or(pid, Duration::from_secs(10))? {
        Ok(())
    } else {
        bail!("process {pid} still alive 10 s after SIGKILL")
    }
}

/// One line of /proc/PID/stat: what the checks need.
struct Proc {
    pid: i32,
    pgrp: i32,
    session: i32,
}

/// Every live (not zombie) process.
fn procs() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            stat(Path::new(&format!("/proc/{pid}/stat"))).map(|(pgrp, session)| Proc {
                pid,
                pgrp,
                session,
            })
        })
        .collect()
}

fn live(pid: i32) -> bool {
    stat(Path::new(&format!("/proc/{pid}/stat"))).is_some()
}

/// (pgrp, session) of a process that is not a zombie.
fn stat(path: &Path) -> Option<(i32, i32)> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first()? == &"Z" || fields.first()? == &"X" {
        return None;
    }
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}
