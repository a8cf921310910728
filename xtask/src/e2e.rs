//! `cargo xtask e2e [--release]`: the demo's scenario with assertions, then
//! crash-consistency runs, against the built binaries, and the MCP servers with a real client (`e2e mcp`
//! alone: see `mcp.rs`). `e2e agents [NAME…]` drives the real agent CLIs (`agents::e2e`).

use crate::demo::{scenario, Narrator};
use crate::util::{finish_or_kill, Bins, Rng, Sandbox};
use anyhow::{bail, ensure, Context, Result};
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn run(args: &[String]) -> Result<()> {
    if args.first().is_some_and(|a| a == "mcp") {
        return crate::mcp::run(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "agents") {
        return crate::agents::e2e::run(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "land") {
        let bins = crate::util::build(args.iter().any(|a| a == "--release"))?;
        println!("e2e land: {}", crate::land::crashes(&bins)?);
        println!("e2e land: {}", crate::land::drive_demo(&bins)?);
        return Ok(());
    }
    let release = args.iter().any(|a| a == "--release");
    let bins = crate::util::build(release)?;
    let (passed, failed) = run_all(&bins)?;
    println!("e2e: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} e2e scenarios failed");
    }
    Ok(())
}

/// Runs every scenario, printing one line each; returns (passed, failed).
pub fn run_all(bins: &Bins) -> Result<(usize, usize)> {
    type Scenario = fn(&Bins) -> Result<String>;
    let scenarios: [(&str, Scenario); 6] = [
        ("demo plan and council", demo_scenario),
        ("crash consistency of inbox writes", inbox_crashes),
        ("crash consistency of dispatch", dispatch_crashes),
        ("crash consistency of land", crate::land::crashes),
        ("the demo plan driven with --land", crate::land::drive_demo),
        ("mcp with the Python SDK", crate::mcp::scenario),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, scenario) in scenarios {
        let started = Instant::now();
        match scenario(bins) {
            Ok(summary) => {
                passed += 1;
                println!(
                    "e2e ok   {name} ({:.1} s): {summary}",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(err) => {
                failed += 1;
                println!(
                    "e2e FAIL {name} ({:.1} s): {err:#}",
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    Ok((passed, failed))
}

/// The demo, quietly, then checks of what it left in the database and the repository.
fn demo_scenario(bins: &Bins) -> Result<String> {
    let sb = Sandbox::new(bins)?;
    let started = Instant::now();
    let outcome = scenario(&sb, bins, &mut Narrator { quiet: true })?;
    // It takes a second or two; a leader loop that sleeps through a change shows up as a
    // wait running out (20 s).
    ensure!(
        started.elapsed() < Duration::from_secs(15),
        "the demo took {:.1} s: the leader missed a change",
        started.elapsed().as_secs_f64()
    );
    let tasks = outcome.status["tasks"].as_array().context("tasks")?;
    ensure!(tasks.len() >= 6, "the plan has at least six tasks");
    ensure!(
        tasks.iter().all(|t| t["status"] == "done"),
        "every task is done"
    );
    ensure!(outcome.answered >= 1, "a question was answered");
    ensure!(outcome.retried >= 1, "a retryable failure was retried");
    ensure!(
        outcome.progress_events >= tasks.len(),
        "hooks recorded every worker's commits"
    );
    for task in tasks {
        let attempt = &task["current_attempt"];
        ensure!(
            attempt["commits"].as_i64().unwrap_or(0) >= 1,
            "{} has commits recorded",
            task["key"]
        );
        let branch = attempt["branch"].as_str().context("branch")?;
        let tip = sb.git(&["rev-parse", &format!("refs/heads/{branch}")])?;
        ensure!(
            attempt["head_sha"].as_str() == Some(tip.trim()),
            "{} head_sha is its branch tip",
            task["key"]
        );
    }
    // Every attempt was launched by drive, and every agent's exit was recorded.
    let agents = sb.data(&bins.orch, &["agents", "--run", "demo"])?;
    let agents = agents["agents"].as_array().context("agents")?;
    ensure!(
        agents.len() == tasks.len() + outcome.retried,
        "one launched agent per attempt: {agents:?}"
    );
    ensure!(
        agents
            .iter()
            .all(|a| a["state"] == "exited" && a["exit_code"] == 0),
        "every agent exited 0: {agents:?}"
    );
    // The parser depends on two code tasks: its base is a merge commit kept under a ref.
    let merged = sb.git(&[
        "rev-list",
        "--parents",
        "-n",
        "1",
        "refs/orch/bases/demo/parser-1",
    ])?;
    ensure!(
        merged.split_whitespace().count() == 3,
        "the parser's base merges two heads"
    );
    let groups = outcome.tally["groups"].as_array().context("groups")?;
    ensure!(
        groups.first().is_some_and(|g| g["level"] == "consensus"),
        "the council agrees on something"
    );
    ensure!(
        outcome.report.contains("## Consensus") && outcome.report.contains("## Minority"),
        "report sections"
    );
    // Nothing is lost by cleanup, and git accepts everything left behind.
    let cleaned = sb.data(&bins.orch, &["cleanup", "--run", "demo"])?;
    let removed = cleaned["removed"].as_array().map_or(0, Vec::len);
    ensure!(
        removed >= tasks.len(),
        "cleanup removed the ended attempts' worktrees ({removed})"
    );
    let worktrees = sb.git(&["worktree", "list", "--porcelain"])?;
    ensure!(
        worktrees.matches("worktree ").count() == 1,
        "only the main worktree is left: {worktrees}"
    );
    ensure!(
        sb.git(&["worktree", "prune", "--dry-run", "-v"])?
            .trim()
            .is_empty(),
        "nothing to prune"
    );
    sb.git(&["fsck", "--no-dangling"])?;
    for task in tasks {
        let branch = task["current_attempt"]["branch"]
            .as_str()
            .context("branch")?;
        sb.git(&["rev-parse", "--verify", &format!("refs/heads/{branch}")])?;
    }
    Ok(format!(
        "{} tasks done, {} answered, {} retried, {} progress events, {} groups, {removed} worktrees cleaned",
        tasks.len(),
        outcome.answered,
        outcome.retried,
        outcome.progress_events,
        groups.len()
    ))
}

/// Kills inbox write commands at random points, many times, then checks that SQLite is
/// consistent and that every thread, message and artifact that exists is whole.
fn inbox_crashes(bins: &Bins) -> Result<String> {
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    let attachment = sb.repo.join("payload.bin");
    std::fs::write(&attachment, vec![7u8; 512 * 1024])?;
    let attachment = attachment.to_str().context("path")?.to_owned();
    let mut rng = Rng::new(std::process::id() as u64);
    let (mut killed, mut completed) = (0, 0);
    for round in 0..60 {
        let subject = format!("crash {round}");
        let id = (round / 6 + 1).to_string();
        let command: Vec<&str> = match round % 6 {
            0 => vec![
                "--agent",
                "leader",
                "send",
                "--to",
                "@q",
                "--subject",
                &subject,
                "--attach",
                &attachment,
            ],
            1 => vec!["--agent", "w1", "claim", "--next", "--queue", "@q"],
            2 => vec![
                "--agent",
                "w1",
                "update",
                &id,
                "--body",
                "progress",
                "--attach",
                &attachment,
            ],
            3 => vec!["--agent", "w1", "ask", &id, "--body", "a question"],
            4 => vec!["--agent", "leader", "reply", &id, "--body", "an answer"],
            _ => vec!["--agent", "w1", "done", &id, "--result", "{\"ok\": true}"],
        };
        let mut child = sb
            .command(&bins.inbox)
            .args(&command)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let finished = finish_or_kill(&mut child, Duration::from_micros(rng.below(12_000)))?;
        if finished {
            completed += 1
        } else {
            killed += 1
        }
    }
    ensure!(
        crate::soak::integrity_check(&sb.repo.join(".git/orch/state.db"))?,
        "integrity_check"
    );
    // Every thread that exists is whole: it starts with its send, and every artifact it
    // lists can be read back with the size recorded.
    let list = sb.data(&bins.inbox, &["list", "--limit", "1000"])?;
    let threads = list["threads"].as_array().context("threads")?;
    let mut artifacts = 0;
    for thread in threads {
        let id = thread["id"].to_string();
        let shown = sb.data(&bins.inbox, &["show", &id])?;
        let messages = shown["messages"].as_array().context("messages")?;
        ensure!(
            messages.first().is_some_and(|m| m["kind"] == "send"),
            "thread {id} starts with its send"
        );
        for m in messages {
            for a in m["artifacts"].as_array().context("artifacts")? {
                let out = sb.repo.join("check.bin");
                sb.run(
                    &bins.inbox,
                    &[
                        "artifact",
                        "get",
                        &a["id"].to_string(),
                        "-o",
                        out.to_str().context("path")?,
                    ],
                )?;
                ensure!(
                    std::fs::metadata(&out)?.len() == a["size"].as_u64().unwrap_or(0),
                    "artifact {} is whole",
                    a["id"]
                );
                artifacts += 1;
            }
        }
        if thread["status"] == "claimed" {
            ensure!(
                thread["claimed_by"] == "w1" && thread["lease_expires_at"].is_string(),
                "thread {id} claim is whole"
            );
        }
    }
    Ok(format!("{killed} commands killed, {completed} completed, {} threads and {artifacts} artifacts checked", threads.len()))
}

/// SIGKILLs `git orch dispatch` of code tasks at random points (mid-worktree, mid-thread,
/// …), then lets reconcile repair: every task ends dispatched exactly once, every branch
/// and worktree under orch's names belongs to an attempt, and git and SQLite are clean.
fn dispatch_crashes(bins: &Bins) -> Result<String> {
    const TASKS: usize = 12;
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    sb.run(
        &bins.orch,
        &["run", "init", "r", "--title", "crashes", "--base", "main"],
    )?;
    let plan = serde_json::json!({"tasks": (0..TASKS).map(|i| serde_json::json!({"key": format!("t{i}"), "title": format!("task {i}")})).collect::<Vec<_>>()});
    let plan_path = sb.repo.join("../plan.json");
    std::fs::write(&plan_path, plan.to_string())?;
    sb.run(
        &bins.orch,
        &["task", "import", plan_path.to_str().context("path")?],
    )?;
    let mut rng = Rng::new(std::process::id() as u64);
    let mut killed = 0;
    for i in 0..TASKS {
        let key = format!("t{i}");
        // Its own process group, so that the git it started can be waited for.
        let mut child = sb
            .command(&bins.orch)
            .args(["dispatch", &key])
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        if !finish_or_kill(&mut child, Duration::from_micros(5_000 + rng.below(30_000)))? {
            killed += 1;
            // A git child may outlive it for a moment; let it finish, as it would
            // before anyone looked (reconcile also leaves a worktree git is still
            // initializing alone, but racing it is not what this scenario tests).
            wait_for_group_exit(child.id())?;
        }
    }
    // A `git worktree add` can outlive its killed dispatcher for a moment; reconcile
    // leaves such an attempt alone until it is over, so repair is eventual: poll.
    let mut repairs = 0;
    let settle_by = Instant::now() + Duration::from_secs(20);
    loop {
        let repaired = sb.data(&bins.orch, &["reconcile"])?;
        repairs += repaired["changes"].as_array().map_or(0, Vec::len);
        let listed = sb.data(&bins.orch, &["task", "list"])?;
        let mut preparing = 0;
        for task in listed["tasks"].as_array().context("tasks")? {
            if task["current_attempt"]["status"] == "preparing" {
                preparing += 1;
            }
        }
        if preparing == 0 {
            break;
        }
        ensure!(
            Instant::now() < settle_by,
            "{preparing} attempts still preparing after 20 s of reconciles"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Whatever a crash undid is ready again; dispatch it now.
    sb.data(&bins.orch, &["dispatch", "--all-ready"])?;
    let listed = sb.data(&bins.orch, &["task", "list"])?;
    let tasks = listed["tasks"].as_array().context("tasks")?;
    ensure!(tasks.len() == TASKS, "every task is still there");
    let mut owned_branches = std::collections::BTreeSet::new();
    let mut live_worktrees = std::collections::BTreeSet::new();
    for task in tasks {
        let key = task["key"].as_str().context("key")?;
        ensure!(
            task["status"] == "dispatched",
            "{key} is dispatched once repaired, not {}",
            task["status"]
        );
        let shown = sb.data(&bins.orch, &["task", "show", key])?;
        let mut live = 0;
        for attempt in shown["attempts"].as_array().context("attempts")? {
            ensure!(
                attempt["status"] != "preparing",
                "{key}: no attempt is left preparing"
            );
            if let Some(branch) = attempt["branch"].as_str() {
                owned_branches.insert(branch.to_owned());
            }
            if attempt["status"] == "dispatched" {
                live += 1;
                let worktree = attempt["worktree"]
                    .as_str()
                    .context("a live code attempt has a worktree")?;
                ensure!(
                    std::path::Path::new(worktree).join(".git").exists(),
                    "{key}: its worktree exists"
                );
                live_worktrees.insert(std::fs::canonicalize(worktree)?);
            }
        }
        ensure!(live == 1, "{key} has exactly one live attempt, not {live}");
    }
    let branches = sb.git(&[
        "for-each-ref",
        "--format=%(refname:short)",
        "refs/heads/orch/",
    ])?;
    for branch in branches.lines() {
        ensure!(
            owned_branches.contains(branch),
            "branch {branch} belongs to an attempt"
        );
    }
    let listed_worktrees = sb.git(&["worktree", "list", "--porcelain"])?;
    for line in listed_worktrees
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
    {
        let path = std::fs::canonicalize(line)?;
        ensure!(
            path == std::fs::canonicalize(&sb.repo)? || live_worktrees.contains(&path),
            "worktree {line} belongs to a live attempt"
        );
    }
    ensure!(
        sb.git(&["worktree", "prune", "--dry-run", "-v"])?
            .trim()
            .is_empty(),
        "nothing to prune"
    );
    sb.git(&["fsck", "--no-dangling"])?;
    ensure!(
        crate::soak::integrity_check(&sb.repo.join(".git/orch/state.db"))?,
        "integrity_check"
    );
    Ok(format!("{killed} of {TASKS} dispatches killed, {repairs} repair events, {TASKS} tasks dispatched once, git and SQLite clean"))
}

/// Waits until no live process is left in process group `pgid` (zombies waiting for
/// the container's init to reap them do not count), reading `/proc`.
pub(crate) fn wait_for_group_exit(pgid: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while group_alive(pgid)? {
        ensure!(
            Instant::now() < deadline,
            "process group {pgid} still running after 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn group_alive(pgid: u32) -> Result<bool> {
    for entry in std::fs::read_dir("/proc")? {
        let Ok(entry) = entry else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the parenthesised name: state, ppid, pgrp, …
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 2 && fields[2] == pgid.to_string() && fields[0] != "Z" {
            return Ok(true);
        }
    }
    Ok(false)
}
