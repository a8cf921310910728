//! `cargo xtask demo [--dir DIR] [--release]`: the whole product on a sample repository.
//! The leader's loop runs here; the workers and reviewers are the scripted agents of
//! `fixtures/agents/`, started as real processes inside their attempt worktrees.
//!
//! The same scenario, quiet and followed by assertions, is the first of `cargo xtask e2e`.

use crate::util::{workspace_root, Bins, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

pub struct DemoArgs {
    pub dir: Option<PathBuf>,
    pub release: bool,
}

impl DemoArgs {
    pub fn parse(args: &[String]) -> Result<DemoArgs> {
        let mut demo = DemoArgs {
            dir: None,
            release: false,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            match flag.as_str() {
                "--dir" => demo.dir = Some(PathBuf::from(it.next().context("--dir needs a path")?)),
                "--release" => demo.release = true,
                other => bail!("unknown demo flag {other:?}"),
            }
        }
        Ok(demo)
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let demo = DemoArgs::parse(args)?;
    let bins = crate::util::build(demo.release)?;
    let sb = match &demo.dir {
        Some(dir) => Sandbox::at(&bins, dir)?,
        None => Sandbox::new(&bins)?,
    };
    let started = Instant::now();
    let outcome = scenario(&sb, &bins, &mut Narrator { quiet: false })?;
    println!();
    println!("== Final status");
    print!("{}", sb.run(&bins.orch, &["status", "--run", "demo"])?);
    println!();
    println!("== Council report");
    print!("{}", outcome.report);
    println!();
    println!(
        "Demo finished in {:.1} s: {} tasks done, {} question(s) answered, {} retried, {} commits recorded by hooks.",
        started.elapsed().as_secs_f64(),
        outcome.done,
        outcome.answered,
        outcome.retried,
        outcome.progress_events
    );
    if let Some(dir) = &demo.dir {
        println!(
            "The repository is kept in {} for inspection.",
            dir.display()
        );
    }
    Ok(())
}

/// Prints the leader's view as it happens (or nothing, for the e2e run).
pub struct Narrator {
    pub quiet: bool,
}

impl Narrator {
    fn say(&mut self, line: impl AsRef<str>) {
        if !self.quiet {
            println!("{}", line.as_ref());
        }
    }
}

/// What the scenario saw, for the summary and the e2e assertions.
pub struct Outcome {
    pub done: usize,
    pub answered: usize,
    pub retried: usize,
    pub progress_events: usize,
    pub report: String,
    pub tally: Value,
    pub status: Value,
}

fn short(sha: &Value) -> String {
    sha.as_str()
        .map(|s| s.chars().take(7).collect())
        .unwrap_or_else(|| "-".into())
}

/// Starts a scripted agent with its own log file under `<common>/orch/logs/`.
fn start_agent(
    sb: &Sandbox,
    script: &str,
    agent: &str,
    cwd: &Path,
    log_name: &str,
) -> Result<Child> {
    let logs = sb.repo.join(".git/orch/logs");
    std::fs::create_dir_all(&logs)?;
    let log = std::fs::File::create(logs.join(format!("{log_name}.log")))?;
    let script = workspace_root().join("fixtures/agents").join(script);
    let child = sb
        .command("sh")
        .arg(&script)
        .current_dir(cwd)
        .env("ORCH_AGENT", agent)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {}", script.display()))?;
    Ok(child)
}

pub fn scenario(sb: &Sandbox, bins: &Bins, say: &mut Narrator) -> Result<Outcome> {
    let orch = |args: &[&str]| sb.data(&bins.orch, args);
    say.say(format!("== git-orch demo in {}", sb.repo.display()));
    sample_project(sb)?;
    orch(&["init"])?;
    say.say("$ git orch init");
    orch(&[
        "run",
        "init",
        "demo",
        "--title",
        "A tiny calculator",
        "--base",
        "main",
    ])?;
    say.say("$ git orch run init demo --title 'A tiny calculator' --base main");
    let plan = workspace_root().join("fixtures/plans/demo.json");
    let imported = orch(&["task", "import", plan.to_str().context("plan path")?])?;
    let keys: Vec<String> = imported["tasks"]
        .as_array()
        .context("tasks")?
        .iter()
        .map(|t| t["key"].as_str().unwrap_or("?").to_owned())
        .collect();
    say.say(format!(
        "$ git orch task import fixtures/plans/demo.json   ({} tasks: {})",
        keys.len(),
        keys.join(", ")
    ));
    say.say("");

    let mut workers: Vec<(String, Child)> = Vec::new();
    let mut answered_threads: BTreeSet<i64> = BTreeSet::new();
    // What the leader did, told when the event log reaches it.
    let mut dispatch_lines: BTreeMap<String, String> = BTreeMap::new();
    let mut questions: BTreeMap<String, String> = BTreeMap::new();
    let mut answers: BTreeMap<String, String> = BTreeMap::new();
    let mut dispatched_once: BTreeSet<String> = BTreeSet::new();
    let (mut answered, mut retried, mut progress_events) = (0, 0, 0);
    let mut last_event = 0_i64;
    let mut next_worker = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if Instant::now() > deadline {
            bail!("the demo run did not finish in 120 s");
        }
        // Note where the log stands before looking at the state: the wait below starts
        // from here, so anything that happens while we act wakes us again.
        let seen = orch(&["log", "--run", "demo", "--since", &last_event.to_string()])?;
        let mut events: Vec<Value> = seen["events"].as_array().cloned().unwrap_or_default();
        let mark = events
            .last()
            .and_then(|e| e["id"].as_i64())
            .unwrap_or(last_event);
        // Act first: hand ready tasks to workers and answer questions. What happened is
        // printed afterwards in the event log's order, so cause comes before effect.
        // Hand every ready task to the next scripted worker, in its own worktree.
        let dispatched = orch(&["dispatch", "--all-ready"])?;
        for attempt in dispatched["attempts"].as_array().context("attempts")? {
            let task = attempt["task"].as_str().unwrap_or("?").to_owned();
            let n = attempt["n"].as_i64().unwrap_or(0);
            let worktree = PathBuf::from(
                attempt["worktree"]
                    .as_str()
                    .context("a code attempt has a worktree")?,
            );
            let agent = format!("worker-{}", next_worker % 3 + 1);
            next_worker += 1;
            if !dispatched_once.insert(task.clone()) {
                retried += 1;
            }
            dispatch_lines.insert(
                task.clone(),
                format!(
                    "-> dispatched {task} (attempt {n}) to {agent}: branch {}, base {} {}",
                    attempt["branch"].as_str().unwrap_or("-"),
                    attempt["base_ref"].as_str().unwrap_or("HEAD"),
                    short(&attempt["base_sha"]),
                ),
            );
            let child = start_agent(
                sb,
                "worker.sh",
                &agent,
                &worktree,
                &format!("demo-{task}-{n}"),
            )?;
            workers.push((format!("{task}-{n}"), child));
        }
        // Answer every open question once.
        let blocked = orch(&["blocked"])?;
        for task in blocked["tasks"].as_array().context("tasks")? {
            let key = task["key"].as_str().unwrap_or("?");
            let thread = task["current_attempt"]["thread"].as_i64().unwrap_or(0);
            if task["blocked_reason"] == "question" && answered_threads.insert(thread) {
                let answer = "Yes: an empty input gives an empty list, not an error.";
                if let Some(question) = task["blocked_detail"]["question"].as_str() {
                    questions.insert(key.to_owned(), question.to_owned());
                }
                orch(&["answer", key, "--body", answer])?;
                answered += 1;
                answers.insert(key.to_owned(), answer.to_owned());
            }
        }
        // Then print what happened since the last look, from the event log.
        let log = orch(&["log", "--run", "demo", "--since", &mark.to_string()])?;
        events.extend(log["events"].as_array().cloned().unwrap_or_default());
        for event in &events {
            last_event = event["id"].as_i64().unwrap_or(last_event);
            let task = event["task"].as_str().unwrap_or("");
            match event["kind"].as_str().unwrap_or("") {
                "task.status" => {
                    let to = event["to"].as_str().unwrap_or("");
                    let line = match to {
                        "blocked" => match questions.get(task) {
                            Some(question) => format!("?? {task} asks: \"{question}\""),
                            None => {
                                format!("?? {task} is blocked: {}", question_of(sb, bins, task)?)
                            }
                        },
                        "dispatched" if dispatch_lines.contains_key(task) => {
                            dispatch_lines.remove(task).unwrap_or_default()
                        }
                        "running" if event["from"] == "blocked" && answers.contains_key(task) => {
                            format!(
                                "!! answered {task}: {}",
                                answers.remove(task).unwrap_or_default()
                            )
                        }
                        "failed" => format!("xx {task} failed"),
                        "done" => format!("ok {task} is done"),
                        _ if event["from"].is_null() => continue,
                        _ => format!(
                            "   {task}: {} -> {to}",
                            event["from"].as_str().unwrap_or("")
                        ),
                    };
                    say.say(line);
                }
                "attempt.status" if event["to"] == "failed" => {
                    say.say(format!(
                        "xx {task}: the attempt failed (retryable); the task goes back to ready"
                    ));
                }
                "attempt.progress" => {
                    progress_events += 1;
                    let d = &event["data"];
                    say.say(format!(
                        "   {task}: commit {} \"{}\" ({} files, +{} -{})",
                        short(&d["sha"]),
                        d["subject"].as_str().unwrap_or(""),
                        d["files_changed"],
                        d["insertions"],
                        d["deletions"]
                    ));
                }
                _ => {}
            }
        }
        let status = orch(&["status", "--run", "demo"])?;
        let counts = &status["counts"];
        let total = status["tasks"].as_array().map_or(0, Vec::len) as i64;
        if counts["done"].as_i64() == Some(total) {
            break status;
        }
        if counts["failed"].as_i64().unwrap_or(0) > 0 {
            bail!("a task failed for good: {}", status);
        }
        // Block until something happens after the mark (a worker's claim, commit,
        // question, finish). Waiting from that id rather than from "now" cannot miss a
        // change that landed while we were looking, dispatching or answering.
        let since = mark.to_string();
        let out = sb
            .command(&bins.orch)
            .args([
                "--json",
                "wait",
                "--run",
                "demo",
                "--until",
                "change",
                "--since",
                &since,
                "--timeout",
                "20s",
            ])
            .output()?;
        if !out.status.success() && out.status.code() != Some(5) {
            bail!(
                "git orch wait failed: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        reap(&mut workers)?;
    };
    for (name, mut child) in workers {
        let code = child.wait()?;
        if !code.success() {
            bail!("worker {name} exited with {code}");
        }
    }
    let done = status["counts"]["done"].as_i64().unwrap_or(0) as usize;
    say.say("");

    // The council: three scripted reviewers answer the same brief.
    say.say("== Council");
    let started = orch(&[
        "council",
        "start",
        "--name",
        "review",
        "--topic",
        "Review the calculator before release",
        "--body",
        "Read the code on main; recommend what to do next.",
    ])?;
    let reviewers: Vec<String> = started["reviewers"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                "reviewer-1".into(),
                "reviewer-2".into(),
                "reviewer-3".into(),
            ]
        });
    say.say(format!(
        "$ git orch council start --name review --topic '…'   (reviewers: {})",
        reviewers.join(", ")
    ));
    let mut children = Vec::new();
    for reviewer in &reviewers {
        children.push(start_agent(
            sb,
            "reviewer.sh",
            reviewer,
            &sb.repo,
            &format!("review-{reviewer}"),
        )?);
    }
    orch(&["council", "wait", "review", "--timeout", "60s"])?;
    for mut child in children {
        child.wait()?;
    }
    say.say("$ git orch council wait review   (every reviewer answered)");
    let tally = orch(&["council", "tally", "review"])?;
    for group in tally["groups"].as_array().context("groups")? {
        say.say(format!(
            "   {:<9} {}/{}  {}",
            group["level"].as_str().unwrap_or(""),
            group["support"],
            reviewers.len(),
            group["title"].as_str().unwrap_or("")
        ));
    }
    let report = sb.run(&bins.orch, &["council", "report", "review"])?;
    Ok(Outcome {
        done,
        answered,
        retried,
        progress_events,
        report,
        tally,
        status,
    })
}

/// The open question of a blocked task, for the leader's view.
fn question_of(sb: &Sandbox, bins: &Bins, task: &str) -> Result<String> {
    let blocked = sb.data(&bins.orch, &["blocked", "--run", "demo"])?;
    let found = blocked["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["key"] == task))
        .map(|t| {
            t["question"]
                .as_str()
                .or(t["blocked_detail"]["question"].as_str())
                .unwrap_or("(see git orch blocked)")
                .to_owned()
        });
    Ok(found.unwrap_or_else(|| "(answered already)".into()))
}

fn reap(workers: &mut Vec<(String, Child)>) -> Result<()> {
    let mut failures = BTreeMap::new();
    workers.retain_mut(|(name, child)| match child.try_wait() {
        Ok(Some(status)) => {
            if !status.success() {
                failures.insert(name.clone(), status);
            }
            false
        }
        _ => true,
    });
    if let Some((name, status)) = failures.into_iter().next() {
        bail!("worker {name} exited with {status}; see .git/orch/logs/demo-{name}.log");
    }
    Ok(())
}

/// A small project for the agents to work on.
fn sample_project(sb: &Sandbox) -> Result<()> {
    std::fs::create_dir_all(sb.repo.join("src"))?;
    std::fs::write(sb.repo.join("src/main.txt"), "the calculator starts here\n")?;
    std::fs::write(sb.repo.join(".gitignore"), "*.log\n")?;
    sb.git(&["add", "-A"])?;
    sb.git(&["commit", "-q", "-m", "A calculator project to work on"])?;
    Ok(())
}
