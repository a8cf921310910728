//! Launching agents (SPEC §11): profiles, the brief, and supervisors running the real
//! fixture agent (`fixtures/agents/launched.sh`, only git and `git inbox`) as real
//! processes: agents that finish, exit without a word, hang past their timeout, are
//! cancelled, or lose their supervisor to SIGKILL.

use crate::common::{wait_until, TestEnv};
use crate::orch_plan::{add, with_run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const AGENT_WAIT: Duration = Duration::from_secs(60);

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/agents/launched.sh")
}

/// A `script` profile `name` running the fixture in `mode`, plus extra config pairs.
fn profile(env: &TestEnv, name: &str, mode: &str, extra: &[(&str, &str)]) {
    let command = format!("{} {mode}", fixture().display());
    env.git(&["config", &format!("orch.agent.{name}.command"), &command]);
    for (key, value) in extra {
        env.git(&["config", &format!("orch.agent.{name}.{key}"), value]);
    }
}

fn task(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()["task"].clone()
}

fn launch_of(env: &TestEnv, key: &str) -> Value {
    task(env, key)["current_attempt"]["launch"].clone()
}

/// Waits until the task's current attempt's agent has ended, and returns the task.
fn until_agent_ended(env: &TestEnv, key: &str) -> Value {
    wait_until("the agent to end", AGENT_WAIT, || {
        let t = task(env, key);
        let attempt = &t["current_attempt"];
        (!attempt["launch"]["ended_at"].is_null() && attempt["status"] != "running").then_some(t)
    })
}

/// The pids the hanging fixture wrote (itself and its child).
fn agent_pids(env: &TestEnv, key: &str) -> Vec<i64> {
    let attempt = task(env, key)["current_attempt"].clone();
    let worktree = PathBuf::from(attempt["worktree"].as_str().unwrap());
    let git_dir = env.git_in(&worktree, &["rev-parse", "--absolute-git-dir"]);
    let file = PathBuf::from(git_dir).join("orch-brief.md.pids");
    let text = wait_until("the agent to write its pids", AGENT_WAIT, || {
        std::fs::read_to_string(&file)
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    text.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// A process is gone once /proc has no live entry for it (a zombie counts as gone).
fn alive(pid: i64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

fn until_gone(pids: &[i64]) {
    wait_until("the agent's processes to be gone", AGENT_WAIT, || {
        pids.iter().all(|p| !alive(*p)).then_some(())
    });
}

fn event_kinds(env: &TestEnv) -> Vec<String> {
    env.orch().arg("log").ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn profiles_resolve_presets_and_hide_secrets() {
    let env = with_run();
    profile(&env, "w", "done", &[("model", "m-1"), ("timeout", "90s")]);
    env.git(&[
        "config",
        "--add",
        "orch.agent.w.env",
        "API_KEY=sk-very-secret",
    ]);
    env.git(&[
        "config",
        "--add",
        "orch.agent.w.env",
        "ENDPOINT=http://127.0.0.1:9",
    ]);
    env.git(&["config", "orch.agent.cl.preset", "claude"]);
    env.git(&["config", "orch.agent.cl.model", "opus"]);

    let shown = env.orch().args(["profile", "show", "w"]).ok()["profile"].clone();
    assert_eq!(shown["preset"], "script");
    assert_eq!(shown["protocol"], "exit");
    assert_eq!(shown["timeout_ms"], 90_000);
    assert_eq!(
        shown["env"],
        serde_json::json!(["API_KEY=***", "ENDPOINT=http://127.0.0.1:9"])
    );
    assert_eq!(shown["argv"][1], "done");

    let claude = env.orch().args(["profile", "show", "cl"]).ok()["profile"].clone();
    let argv: Vec<&str> = claude["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(&argv[..3], ["claude", "-p", "{brief}"]);
    assert!(
        argv.windows(2).any(|w| w == ["--model", "opus"]),
        "{argv:?}"
    );
    assert!(argv
        .windows(2)
        .any(|w| w == ["--permission-mode", "acceptEdits"]));
    assert!(!argv.iter().any(|a| a.contains("dangerously")));
    assert_eq!(claude["protocol"], "inbox");

    let list = env.orch().args(["profile", "list"]).ok();
    let names: Vec<&str> = list["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "cl", "w", "claude", "codex", "gemini", "opencode", "aider", "script",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    env.orch()
        .args(["profile", "show", "nope"])
        .fails("unknown_profile", 3);
    env.git(&["config", "orch.agent.bad.command", "run {prompt}"]);
    env.orch()
        .args(["profile", "show", "bad"])
        .fails("invalid_input", 2);
}

#[test]
fn a_launched_agent_that_finishes_is_done_with_its_exit_recorded() {
    let env = with_run();
    profile(&env, "w", "done", &[("protocol", "inbox")]);
    add(&env, "a", &[]);
    let attempts = env.orch().args(["dispatch", "a", "--launch", "w"]).ok()["attempts"].clone();
    let id = attempts[0]["id"].as_i64().unwrap();
    assert_eq!(attempts[0]["agent"], format!("w-{id}"));
    assert_eq!(attempts[0]["to"], format!("w-{id}"));
    assert_eq!(attempts[0]["launch"]["profile"], "w");

    let t = until_agent_ended(&env, "a");
    assert_eq!(t["status"], "done", "{t}");
    let attempt = &t["current_attempt"];
    assert_eq!(attempt["status"], "succeeded");
    assert_eq!(attempt["launch"]["exit_code"], 0);
    assert!(attempt["launch"]["signal"].is_null());
    assert_eq!(attempt["commits"], 1);
    let log = std::fs::read_to_string(attempt["launch"]["log"].as_str().unwrap()).unwrap();
    assert!(log.contains(&format!("agent w-{id} on task a")), "{log}");
    let expected_log = env.repo.join(".git/orch/logs/r1/a-1.log");
    assert_eq!(attempt["launch"]["log"], expected_log.to_str().unwrap());

    let kinds = event_kinds(&env);
    assert!(
        kinds.contains(&"agent.start".to_owned()) && kinds.contains(&"agent.exit".to_owned()),
        "{kinds:?}"
    );
    let logs = env.orch().args(["logs", "a"]).ok();
    assert!(logs["text"].as_str().unwrap().contains("on task a"));
    let agents = env.orch().arg("agents").ok()["agents"].clone();
    assert_eq!(agents[0]["state"], "exited");
    assert_eq!(agents[0]["agent"], format!("w-{id}"));
}

#[test]
fn an_agent_that_exits_without_done_fails_retryably_or_completes_by_exit() {
    let env = with_run();
    profile(&env, "quiet", "exit", &[("protocol", "inbox")]);
    profile(&env, "byexit", "exit", &[]);
    profile(&env, "broken", "fail", &[]);
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    add(&env, "c", &[]);
    env.orch().args(["dispatch", "a", "--launch", "quiet"]).ok();
    env.orch()
        .args(["dispatch", "b", "--launch", "byexit"])
        .ok();
    env.orch()
        .args(["dispatch", "c", "--launch", "broken"])
        .ok();

    let a = until_agent_ended(&env, "a");
    assert_eq!(a["current_attempt"]["status"], "failed", "{a}");
    assert_eq!(a["current_attempt"]["failure"]["reason"], "agent_exited");
    assert_eq!(a["current_attempt"]["failure"]["retryable"], true);
    assert_eq!(
        a["status"], "ready",
        "a retryable failure with attempts left"
    );

    let b = until_agent_ended(&env, "b");
    assert_eq!(b["status"], "done", "{b}");
    let thread = b["current_attempt"]["thread"].as_i64().unwrap();
    let shown = env.inbox().args(["show", &thread.to_string()]).ok();
    let result = &shown["thread"]["result"];
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["commits"], 1);
    assert_eq!(result["head_sha"], b["current_attempt"]["head_sha"]);
    assert_eq!(result["summary"], "all committed");

    let c = until_agent_ended(&env, "c");
    assert_eq!(c["current_attempt"]["failure"]["reason"], "agent_exited");
    assert_eq!(c["current_attempt"]["launch"]["exit_code"], 3);
}

#[test]
fn an_agent_past_its_timeout_is_killed_with_its_process_group() {
    let env = with_run();
    profile(
        &env,
        "slow",
        "hang",
        &[("timeout", "1s"), ("protocol", "inbox")],
    );
    add(&env, "a", &[]);
    env.orch().args(["dispatch", "a", "--launch", "slow"]).ok();
    let pids = agent_pids(&env, "a");
    let t = until_agent_ended(&env, "a");
    assert_eq!(
        t["current_attempt"]["failure"]["reason"], "agent_timeout",
        "{t}"
    );
    assert_eq!(t["current_attempt"]["launch"]["signal"], "SIGTERM");
    until_gone(&pids);
}

#[test]
fn cancelling_a_running_agent_ends_it_and_a_quiet_one_is_marked_stalled() {
    let env = with_run();
    profile(&env, "slow", "hang", &[("stallAfter", "1s")]);
    add(&env, "a", &[]);
    env.orch().args(["dispatch", "a", "--launch", "slow"]).ok();
    let pids = agent_pids(&env, "a");
    wait_until("the agent to be marked stalled", AGENT_WAIT, || {
        (launch_of(&env, "a")["stalled"] == true).then_some(())
    });
    assert!(event_kinds(&env).contains(&"agent.stalled".to_owned()));
    env.orch().args(["cancel", "a"]).ok();
    let t = until_agent_ended(&env, "a");
    assert_eq!(t["status"], "cancelled");
    assert_eq!(t["current_attempt"]["launch"]["signal"], "SIGTERM");
    until_gone(&pids);
}

#[test]
fn a_supervisor_killed_is_reconciled_as_lost_and_its_agent_does_not_outlive_it() {
    let env = with_run();
    profile(&env, "slow", "hang", &[]);
    add(&env, "a", &[]);
    let attempt =
        env.orch().args(["dispatch", "a", "--launch", "slow"]).ok()["attempts"][0].clone();
    let id = attempt["id"].as_i64().unwrap();
    let pids = agent_pids(&env, "a");
    let supervisor = env.supervisor_pid(id);
    assert!(alive(supervisor));
    std::process::Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status()
        .unwrap();
    until_gone(&[supervisor]);
    wait_until(
        "reconcile to notice the lost supervisor",
        AGENT_WAIT,
        || {
            env.orch().arg("reconcile").ok();
            let t = task(&env, "a");
            (t["current_attempt"]["status"] == "failed").then_some(t)
        },
    );
    let t = task(&env, "a");
    assert_eq!(t["current_attempt"]["failure"]["reason"], "supervisor_lost");
    assert_eq!(t["current_attempt"]["failure"]["retryable"], true);
    until_gone(&pids);
}

/// Nothing of a refused launch is left: no attempt, thread, branch or worktree.
fn assert_nothing_dispatched(env: &TestEnv) {
    assert_eq!(env.count("attempts"), 0);
    assert_eq!(env.count("threads"), 0);
    assert_eq!(env.count("launches"), 0);
    assert_eq!(env.git(&["branch", "--list", "orch/*"]), "");
    let root = env.root().join("repo.worktrees");
    assert!(
        !root.join("r1").exists() || std::fs::read_dir(root.join("r1")).unwrap().next().is_none()
    );
}

#[test]
fn bad_launch_input_is_refused_before_anything_is_made() {
    let env = with_run();
    add(&env, "a", &[]);
    let launch = |p: &str| env.orch().args(["dispatch", "a", "--launch", p]);

    launch("nope").fails("unknown_profile", 3);
    env.git(&[
        "config",
        "orch.agent.gone.command",
        "/no/such/agent {brief_file}",
    ]);
    let err = launch("gone").fails("agent_failed_to_start", 6);
    assert!(
        err["message"].as_str().unwrap().contains("does not exist"),
        "{err}"
    );
    let plain = env.root().join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    env.git(&[
        "config",
        "orch.agent.plain.command",
        plain.to_str().unwrap(),
    ]);
    launch("plain").fails("agent_failed_to_start", 6);
    env.git(&[
        "config",
        "orch.agent.nopath.command",
        "no-such-agent-on-path",
    ]);
    launch("nopath").fails("agent_failed_to_start", 6);
    profile(&env, "typo", "done {prompt}", &[]);
    launch("typo").fails("invalid_input", 2);
    profile(&env, "slowly", "done", &[("timeout", "soon")]);
    launch("slowly").fails("invalid_input", 2);
    // No profile anywhere: `--launch` alone needs orch.launch.
    env.orch()
        .args(["dispatch", "a", "--launch"])
        .fails("usage", 2);
    env.orch()
        .args(["dispatch", "--all-ready", "--launch", "nope"])
        .fails("unknown_profile", 3);
    assert_nothing_dispatched(&env);
    assert_eq!(task(&env, "a")["status"], "ready");
}

#[test]
fn the_brief_names_the_task_its_place_and_the_protocol_in_few_lines() {
    let env = with_run();
    add(
        &env,
        "a",
        &["--body", "Write the lexer.\nTokens per the grammar."],
    );
    let preview = env.orch().args(["brief", "a"]).ok();
    let text = preview["brief"].as_str().unwrap();
    assert!(text.starts_with("# Task a: Do a"), "{text}");
    assert!(text.contains("git inbox done --body"), "{text}");
    assert!(text.contains("git inbox ask") && text.contains("git inbox wait-reply"));
    assert!(text.contains("git inbox fail --reason") && text.contains("--retryable"));
    assert!(text.ends_with("Write the lexer.\nTokens per the grammar.\n"));
    let before_body = text.split("## The task").next().unwrap();
    assert!(before_body.lines().count() <= 40, "{before_body}");
    let protocol: Vec<&str> = before_body
        .split("## Protocol")
        .nth(1)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(protocol.len() <= 10, "{protocol:?}");

    profile(&env, "w", "done", &[]);
    let exit = env.orch().args(["brief", "a", "--profile", "w"]).ok();
    assert_eq!(exit["protocol"], "exit");
    assert!(exit["brief"]
        .as_str()
        .unwrap()
        .contains("exit with status 0"));
}

#[test]
fn orch_setup_runs_in_the_new_worktree_before_the_agent_and_its_failure_fails_the_attempt() {
    let env = with_run();
    profile(&env, "w", "done", &[("protocol", "inbox")]);
    env.git(&["config", "orch.setup", "sh -c 'echo ready > .setup-ran'"]);
    add(&env, "a", &[]);
    env.orch().args(["dispatch", "a", "--launch", "w"]).ok();
    let a = until_agent_ended(&env, "a");
    assert_eq!(a["status"], "done", "{a}");
    let worktree = PathBuf::from(a["current_attempt"]["worktree"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(worktree.join(".setup-ran")).unwrap(),
        "ready\n"
    );

    env.git(&[
        "config",
        "orch.setup",
        "sh -c 'echo no database here; exit 4'",
    ]);
    add(&env, "b", &[]);
    env.orch().args(["dispatch", "b", "--launch", "w"]).ok();
    let b = until_agent_ended(&env, "b");
    let failure = &b["current_attempt"]["failure"];
    assert_eq!(failure["reason"], "setup_failed", "{b}");
    assert_eq!(failure["retryable"], true);
    assert!(
        b["current_attempt"]["launch"]["pid"].is_null(),
        "the agent never started"
    );
    let thread = b["current_attempt"]["thread"].as_i64().unwrap().to_string();
    let messages = env.inbox().args(["show", &thread]).ok()["messages"].to_string();
    assert!(messages.contains("no database here"), "{messages}");
}

#[test]
fn an_mcp_profile_names_the_tools_in_its_brief_and_shows_the_server_in_its_argv() {
    let env = with_run();
    add(&env, "a", &["--body", "Write the lexer."]);
    env.git(&["config", "orch.agent.cm.preset", "claude"]);
    env.git(&["config", "orch.agent.cm.inbox", "mcp"]);
    let brief = env.orch().args(["brief", "a", "--profile", "cm"]).ok();
    assert_eq!(brief["protocol"], "inbox");
    assert_eq!(brief["inbox"], "mcp");
    let text = brief["brief"].as_str().unwrap();
    for tool in ["`update`", "`ask`", "`wait_reply`", "`done`", "`fail`"] {
        assert!(text.contains(tool), "{tool} missing from {text}");
    }
    // No inbox command is named: the tools are the only route.
    for command in [
        "git inbox ask",
        "git inbox wait-reply",
        "git inbox done",
        "git inbox fail",
    ] {
        assert!(!text.contains(command), "{command} in {text}");
    }
    let protocol = text.split("## Protocol").nth(1).unwrap();
    let protocol = protocol.split("## The task").next().unwrap();
    assert!(protocol.lines().filter(|l| !l.trim().is_empty()).count() <= 10);

    let shown = env.orch().args(["profile", "show", "cm"]).ok()["profile"].clone();
    assert_eq!(shown["inbox"], "mcp");
    let argv: Vec<&str> = shown["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    let config = argv[argv.iter().position(|w| *w == "--mcp-config").unwrap() + 1];
    let config: Value = serde_json::from_str(config).unwrap();
    assert_eq!(config["mcpServers"]["inbox"]["command"], "git-inbox");
    assert!(argv.contains(&"Bash(git inbox *)"));
    let list = env.orch().args(["profile", "list"]).run();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("cm") && l.contains("inbox (via mcp)")),
        "{}",
        list.stdout
    );

    // Beside the shell, the brief says both work; a CLI that cannot take it is refused.
    env.git(&["config", "orch.agent.cm.inbox", "both"]);
    let both = env.orch().args(["brief", "a", "--profile", "cm"]).ok();
    assert!(both["brief"]
        .as_str()
        .unwrap()
        .contains("(or `git inbox` in the shell)"));
    env.git(&["config", "orch.agent.gm.preset", "gemini"]);
    env.git(&["config", "orch.agent.gm.inbox", "mcp"]);
    env.orch()
        .args(["profile", "show", "gm"])
        .fails("invalid_input", 2);
    env.orch()
        .args(["dispatch", "a", "--launch=gm"])
        .fails("invalid_input", 2);
    assert_nothing_dispatched(&env);
}
