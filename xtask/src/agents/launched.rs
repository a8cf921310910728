//! The MCP smokes as the product runs them: `git orch dispatch greet --launch=<cli>-mcp`
//! with a profile that only names the preset and `inbox = mcp` (plus the scripted
//! endpoint's environment), so the argv, the brief and the success test are the
//! launcher's own, and what passes here is what the preset does. The supervisor claims
//! the thread, writes the brief, starts the CLI and settles the attempt; this side only
//! plays the leader (answering the question) and checks.
//!
//! With `unshare -n`, the dispatch runs inside a network namespace with only loopback,
//! beside the endpoint (`netns-exec --release FILE`), so the supervisor and the agent it
//! starts live there too; the namespace is released once the agent has ended.

use super::clis::{Cli, Context as LaunchContext};
use super::smoke::{self, kill_group};
use crate::endpoint::{self, script, Verdict};
use crate::util::{finish_or_kill, Bins, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn smoke(
    cli: &'static Cli,
    bins: &Bins,
    netns: bool,
    limit: Duration,
    root: &Path,
) -> Result<String> {
    let started = Instant::now();
    let sb = smoke::smoke_repo(bins, root)?;
    let orch = |args: &[&str]| sb.data(&bins.orch, args);

    let scenario = script::Scenario::McpWorker;
    let expect = endpoint::default_expect(scenario);
    let endpoint_log = root.join("endpoint.jsonl");
    // In the namespace the endpoint runs beside the dispatch; otherwise here, on a thread.
    let (local, port) = smoke::local_endpoint(netns, scenario, &expect, &endpoint_log)?;

    // The profile: the preset, the MCP server, and the endpoint's environment (the
    // recipe's argv is not used: the preset's is what runs).
    let profile = format!("{}-mcp", cli.name);
    let home = root.join("agent-home");
    std::fs::create_dir_all(&home)?;
    let recipe = cli.launch(&LaunchContext {
        worktree: sb.repo.clone(),
        common_dir: sb.repo.join(".git"),
        git_dir: sb.repo.join(".git"),
        home,
        base_url: format!("http://127.0.0.1:{port}"),
        brief: String::new(),
    })?;
    let key = |name: &str| format!("orch.agent.{profile}.{name}");
    sb.git(&["config", &key("preset"), cli.name])?;
    sb.git(&["config", &key("inbox"), "mcp"])?;
    sb.git(&["config", &key("timeout"), &format!("{}s", limit.as_secs())])?;
    for (k, v) in &recipe.env {
        sb.git(&["config", "--add", &key("env"), &format!("{k}={v}")])?;
    }
    let shown = sb.run(&bins.orch, &["profile", "show", &profile])?;
    println!("{}", shown.trim_end());

    // The CLI is found on PATH, as a user's would be.
    let node_bin = super::install::cache_dir()
        .join(cli.name)
        .join("node_modules/.bin");
    let path =
        std::env::join_paths(std::iter::once(node_bin).chain(std::env::split_paths(&sb.path_env)))?;
    let launch = format!("--launch={profile}");
    let release = root.join("release");
    let dispatch_out = root.join("dispatch.out");
    let mut cmd = if netns {
        let mut c = sb.command("unshare");
        c.args(["-n", "--"])
            .arg(std::env::current_exe()?)
            .args(["agents", "netns-exec"]);
        c.args(["--port", &port.to_string(), "--scenario", scenario.name()]);
        c.arg("--log").arg(&endpoint_log);
        for e in &expect {
            c.args(["--expect", e]);
        }
        c.arg("--release").arg(&release);
        c.arg("--");
        c.arg(&bins.orch);
        c
    } else {
        sb.command(&bins.orch)
    };
    cmd.args(["--json", "dispatch", "greet", &launch])
        .env("PATH", &path)
        .stdout(std::fs::File::create(&dispatch_out)?)
        .stderr(Stdio::inherit());
    let mut dispatcher = cmd.spawn().context("starting the dispatch")?;
    if local.is_some() {
        let status = dispatcher.wait()?;
        if !status.success() {
            bail!(
                "dispatch failed: {}",
                std::fs::read_to_string(&dispatch_out)?
            );
        }
    }

    // The leader: answer the question from this side, as `git orch answer` would from any
    // shell, until the supervisor records the agent's end.
    let deadline = Instant::now() + limit + Duration::from_secs(30);
    let mut answered = false;
    let attempt = loop {
        if netns && dispatcher.try_wait()?.is_some() {
            // netns-exec returns early only when the dispatch failed.
            bail!(
                "dispatch failed: {}",
                std::fs::read_to_string(&dispatch_out)?
            );
        }
        let task = orch(&["task", "show", "greet"])?;
        let attempt = task["attempts"][0].clone();
        if !attempt["launch"]["ended_at"].is_null() {
            break attempt;
        }
        if Instant::now() >= deadline {
            if let Some(pid) = attempt["launch"]["pid"].as_u64() {
                kill_group(pid as u32);
            }
            let _ = std::fs::write(&release, "");
            finish_or_kill(&mut dispatcher, Duration::from_secs(10))?;
            bail!(
                "{} still running after {limit:?}: killed (log {})",
                cli.name,
                attempt["launch"]["log"].as_str().unwrap_or("?")
            );
        }
        if !answered && task["task"]["blocked_reason"] == "question" {
            orch(&["answer", "greet", "--body", super::mcp::ANSWER])?;
            answered = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    std::fs::write(&release, "")?;
    if netns && !finish_or_kill(&mut dispatcher, Duration::from_secs(10))? {
        bail!("netns-exec did not end after its release");
    }
    let verdict = match &local {
        Some(endpoint) => endpoint.verdict()?,
        None => Verdict::read(&endpoint_log)?,
    };
    drop(local);
    let launch = &attempt["launch"];
    let log_path = launch["log"].as_str().context("launch.log")?.to_owned();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let agent = launch["agent"].as_str().context("launch.agent")?.to_owned();
    let mut problems = Vec::new();
    if launch["exit_code"] != 0 {
        problems.push(format!(
            "exit {} (signal {})",
            launch["exit_code"], launch["signal"]
        ));
    }
    // The preset's success test, as the supervisor ran it, and the recipe's, which must
    // agree.
    let exit = agent_exit(&sb, bins)?;
    if exit["verdict"]["ok"] != true {
        problems.push(format!("the preset's success test: {}", exit["verdict"]));
    }
    if let Err(why) = cli.success(&log) {
        problems.push(format!("{}'s own result: {why}", cli.name));
    }
    smoke::check(&sb, bins, cli, &verdict, answered, &mut problems)?;
    super::mcp::check(cli, &log, &verdict, &agent, &mut problems);
    if !problems.is_empty() {
        bail!(
            "{}\n  endpoint: {verdict}\n  agent log: {log_path}\n  dispatch: {}",
            problems.join("; "),
            dispatch_out.display()
        );
    }
    let agent_secs = exit["duration_ms"].as_f64().unwrap_or(0.0) / 1000.0;
    Ok(format!(
        "in {:.1} s (agent {agent_secs:.1} s, launched by git orch dispatch --launch={profile}): {verdict}",
        started.elapsed().as_secs_f64()
    ))
}

/// The `data` of the run's `agent.exit` event.
fn agent_exit(sb: &Sandbox, bins: &Bins) -> Result<Value> {
    let log = sb.data(&bins.orch, &["log"])?;
    log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|e| e["kind"] == "agent.exit")
        .map(|e| e["data"].clone())
        .context("no agent.exit event")
}

/// What `netns-exec --release FILE` does once its command has succeeded: keeps the
/// endpoint (and the namespace) up until FILE exists, for at most `limit`.
pub fn hold_until(release: &Path, limit: Duration) {
    let until = Instant::now() + limit;
    while !release.exists() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
}
