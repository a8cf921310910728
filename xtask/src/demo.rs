//! `cargo xtask demo [--dir DIR] [--release]`: the whole product on a sample repository.
//! The leader's loop is the product's own: `git orch drive --launch worker` starts the
//! scripted workers of `fixtures/agents/` (a `script` profile) in their attempt
//! worktrees under supervisors, and this file only narrates drive's event stream and
//! answers the question it reports, from another process, as a user would. The council
//! is started the same way, `council start --launch critic`.
//!
//! The same scenario, quiet and followed by assertions, is the first of `cargo xtask e2e`.

use crate::util::{workspace_root, Bins, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
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

fn short(sha: Option<&str>) -> String {
    sha.map(|s| s.chars().take(7).collect())
        .unwrap_or_else(|| "-".into())
}

/// The answer the leader gives every question of the demo.
pub const ANSWER: &str = "Yes: an empty input gives an empty list, not an error.";

/// A `script` profile running one of the fixture agents, reporting through the inbox.
fn script_profile(sb: &Sandbox, profile: &str, script: &str) -> Result<()> {
    let script = workspace_root().join("fixtures/agents").join(script);
    let script = script.to_str().context("a UTF-8 fixture path")?;
    // The template is split like a shell splits words: quoted, a path with spaces stays one.
    let command = format!("sh '{}'", script.replace('\'', r"'\''"));
    sb.git(&["config", &format!("orch.agent.{profile}.command"), &command])?;
    sb.git(&["config", &format!("orch.agent.{profile}.protocol"), "inbox"])?;
    Ok(())
}

/// Narrates one event of drive's `--json` stream; answers a question from here.
fn on_event(
    sb: &Sandbox,
    bins: &Bins,
    say: &mut Narrator,
    event: &Value,
    seen: &mut Seen,
) -> Result<()> {
    let task = event["task"].as_str().unwrap_or("?");
    let n = event["n"].as_i64().unwrap_or(0);
    let agent = event["agent"].as_str().unwrap_or("?");
    let text = event["text"].as_str();
    match event["kind"].as_str().unwrap_or("") {
        "dispatch" => say.say(format!(
            "-> dispatched {task} (attempt {n}): {agent} starts in its worktree"
        )),
        "retry" => {
            seen.retried += 1;
            say.say(format!("-> retrying {task} (attempt {n}) with {agent}"));
        }
        "commit" => {
            seen.progress_events += 1;
            say.say(format!(
                "   {task}: commit {} recorded by the hook",
                short(text)
            ));
        }
        "question" => {
            say.say(format!("?? {task} asks: \"{}\"", text.unwrap_or("")));
            // What a user does in another shell: the command drive printed.
            sb.data(
                &bins.orch,
                &["answer", task, "--run", "demo", "--body", ANSWER],
            )?;
            seen.answered += 1;
            say.say(format!("!! answered {task}: {ANSWER}"));
        }
        "answer" => say.say(format!("   {task} got its answer and goes on")),
        "failure" => say.say(format!(
            "xx {task} failed (attempt {n}, {}){}",
            text.unwrap_or("no reason"),
            if event["retry"] == true {
                "; drive retries it"
            } else {
                "; no attempts left"
            }
        )),
        "done" => say.say(format!("ok {task} is done")),
        other => say.say(format!("   {task}: {other}")),
    }
    Ok(())
}

#[derive(Default)]
struct Seen {
    answered: usize,
    retried: usize,
    progress_events: usize,
}

/// Runs `git orch --json drive …` to its end, narrating each event line as it comes.
fn drive(sb: &Sandbox, bins: &Bins, say: &mut Narrator, args: &[&str]) -> Result<Seen> {
    let mut child = sb
        .command(&bins.orch)
        .arg("--json")
        .arg("drive")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting git orch drive")?;
    let stdout = child.stdout.take().context("drive's stdout")?;
    let mut seen = Seen::default();
    let mut last = Value::Null;
    for line in BufReader::new(stdout).lines() {
        let doc: Value = serde_json::from_str(&line?).context("a line of drive --json")?;
        if doc.get("ok").is_some() {
            last = doc;
        } else if let Err(err) = on_event(sb, bins, say, &doc, &mut seen) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err);
        }
    }
    let status = child.wait()?;
    if !status.success() || last["data"]["end"] != "done" {
        bail!("git orch drive ended with {status}: {last}");
    }
    Ok(seen)
}

/// Blocks until every agent of `run` has exited (their supervisors record it just after
/// the agent's last word), so nothing is left running once the demo moves on.
fn agents_ended(sb: &Sandbox, bins: &Bins, run: &str) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let agents = sb.data(&bins.orch, &["agents", "--run", run])?;
        let list = agents["agents"].as_array().cloned().unwrap_or_default();
        let live = list.iter().filter(|a| a["ended_at"].is_null()).count();
        if live == 0 {
            return Ok(list.len());
        }
        if Instant::now() > deadline {
            bail!("{live} agents of {run} still run after 30 s: {agents}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
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
    script_profile(sb, "worker", "worker.sh")?;
    script_profile(sb, "critic", "reviewer.sh")?;
    say.say("$ git config orch.agent.worker.command \"sh fixtures/agents/worker.sh\"   (and protocol inbox)");
    say.say("$ git orch drive --launch worker --parallel 3");
    say.say("");
    let seen = drive(
        sb,
        bins,
        say,
        &["--launch", "worker", "--parallel", "3", "--timeout", "120s"],
    )?;
    agents_ended(sb, bins, "demo")?;
    let status = orch(&["status", "--run", "demo"])?;
    let done = status["counts"]["done"].as_i64().unwrap_or(0) as usize;
    say.say("");

    // The council: three scripted reviewers, launched, answer the same brief.
    say.say("== Council");
    let started = orch(&[
        "council",
        "start",
        "--name",
        "review",
        "--launch",
        "critic",
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
        .unwrap_or_default();
    say.say(format!(
        "$ git orch council start --name review --launch critic --topic '…'   (reviewers: {})",
        reviewers.join(", ")
    ));
    orch(&["council", "wait", "review", "--timeout", "60s"])?;
    agents_ended(sb, bins, "review")?;
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
        answered: seen.answered,
        retried: seen.retried,
        progress_events: seen.progress_events,
        report,
        tally,
        status,
    })
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
