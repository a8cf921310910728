//! One CLI's plan under drive: `a`, `b` (which asks), then `c` after both.

use super::{
    agent_exits, position, profile, sandbox, show, start_drive, wait_for, walls, Drive, Net, Row,
};
use crate::agents::clis::Cli;
use crate::endpoint::script;
use crate::util::{Bins, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the leader answers `b`'s question with.
const ANSWER: &str = "Yes, make it formal.";

pub fn plan(cli: &'static Cli, bins: &Bins, netns: bool, root: &Path) -> Result<Row> {
    let started = Instant::now();
    let ask = cli.inbox_protocol;
    let ask_profile = format!("{}-ask", cli.name);
    let task = |key: &str, after: &[&str]| {
        let mut t = serde_json::json!({
            "key": key,
            "title": format!("Write {key}.txt"),
            "body": format!("{}{key}.txt`.", script::FILE_DIRECTIVE),
            "after": after,
            "max_attempts": 2,
        });
        if key == "b" && ask {
            t["profile"] = ask_profile.clone().into();
        }
        t
    };
    let tasks = vec![task("a", &[]), task("b", &[]), task("c", &["a", "b"])];
    let sb = sandbox(bins, root, Value::Array(tasks))?;
    let kept = || format!("the run is kept in {}", root.display());
    let net = Net::new(netns, cli, root)?;
    profile(
        &sb,
        cli,
        cli.name,
        net.port,
        script::Scenario::QuietWorker,
        "5m",
    )?;
    if ask {
        profile(
            &sb,
            cli,
            &ask_profile,
            net.port,
            script::Scenario::Worker,
            "5m",
        )?;
    }
    let args = ["--launch", cli.name, "--parallel", "3", "--timeout", "10m"];
    let mut drive = start_drive(&sb, bins, cli, net, &args).with_context(kept)?;
    let answerer = ask.then(|| answerer(&sb, bins));
    let (lines, last) = drive.finish(Duration::from_secs(660)).with_context(kept)?;
    let answered = match answerer {
        Some(a) => Some(
            a.join()
                .map_err(|_| anyhow::anyhow!("the answerer panicked"))?
                .with_context(kept)?,
        ),
        None => None,
    };
    let attempts =
        check_plan(&sb, bins, cli, &mut drive, &lines, &last, answered).with_context(kept)?;
    Ok(Row {
        label: cli.name.to_owned(),
        tasks: 3,
        attempts,
        walls: walls(&lines, &["a", "b", "c"]),
        total: started.elapsed(),
    })
}

/// The leader in another shell: waits (`git orch wait`) until `b` asks and `a` is done,
/// then answers with `git orch answer`; each a process of its own, beside drive.
fn answerer(sb: &Sandbox, bins: &Bins) -> std::thread::JoinHandle<Result<Value>> {
    let mut wait_b = sb.command(&bins.orch);
    wait_b.args([
        "--json",
        "wait",
        "--until",
        "blocked",
        "--task",
        "b",
        "--timeout",
        "8m",
    ]);
    let mut wait_a = sb.command(&bins.orch);
    wait_a.args([
        "--json",
        "wait",
        "--until",
        "done",
        "--task",
        "a",
        "--timeout",
        "8m",
    ]);
    let mut answer = sb.command(&bins.orch);
    answer.args(["--json", "answer", "b", "--body", ANSWER]);
    std::thread::spawn(move || {
        for (what, cmd) in [
            ("wait for b's question", &mut wait_b),
            ("wait for a", &mut wait_a),
        ] {
            let out = cmd.output()?;
            crate::util::check(&out, what)?;
        }
        let out = answer.output()?;
        crate::util::data_of(&String::from_utf8_lossy(&out.stdout)).context("git orch answer b")
    })
}

/// Every check of one CLI's plan; returns the number of attempts.
#[allow(clippy::too_many_arguments)]
fn check_plan(
    sb: &Sandbox,
    bins: &Bins,
    cli: &Cli,
    drive: &mut Drive,
    lines: &[(Duration, Value)],
    last: &Value,
    answered: Option<Value>,
) -> Result<usize> {
    let mut problems = Vec::new();
    // Every attempt's agent has ended (the supervisor recorded it) before the
    // namespace's endpoint may go: an agent still talks to it after `git inbox done`.
    let keys = ["a", "b", "c"];
    let shown = wait_for("every agent to end", Duration::from_secs(120), || {
        let shown: Vec<Value> = keys
            .iter()
            .map(|k| show(sb, bins, k))
            .collect::<Result<_>>()?;
        let ended = shown.iter().all(|t| {
            t["attempts"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|a| !a["launch"]["ended_at"].is_null())
        });
        Ok(ended.then_some(shown))
    });
    let (code, verdict) = drive.end()?;
    if code != 0 || last["data"]["end"] != "done" {
        problems.push(format!("drive exited {code}: {last}"));
    }
    let shown = shown?;
    let exits = agent_exits(sb, bins)?;
    let mut attempts = 0;
    for (key, t) in keys.iter().zip(&shown) {
        let task = &t["task"];
        if task["status"] != "done" {
            problems.push(format!(
                "{key} is {} ({})",
                task["status"], task["current_attempt"]["failure"]
            ));
        }
        let want = if *key == "b" && cli.inbox_protocol {
            format!("{}-ask", cli.name)
        } else {
            cli.name.to_owned()
        };
        let list = t["attempts"].as_array().cloned().unwrap_or_default();
        attempts += list.len();
        for a in &list {
            if a["launch"]["profile"] != want.as_str() {
                problems.push(format!(
                    "{key} launched with {} instead of {want}",
                    a["launch"]["profile"]
                ));
            }
            let id = a["id"].as_i64().unwrap_or(-1);
            match exits.iter().filter(|(att, _)| *att == id).count() {
                1 => {}
                n => problems.push(format!("{key} attempt {id}: {n} agent.exit events")),
            }
        }
        let current = &task["current_attempt"];
        if current["commits"].as_i64().unwrap_or(0) < 1 {
            problems.push(format!("{key}: no commit recorded by the hooks"));
        }
        if position(lines, key, "commit").is_none() {
            problems.push(format!("{key}: drive reported no commit"));
        }
        let exit = exits
            .iter()
            .find(|(att, _)| current["id"] == *att)
            .map(|(_, d)| d);
        match exit {
            Some(d) if d["code"] == 0 && d["verdict"]["ok"] == true => {}
            Some(d) => problems.push(format!("{key}: agent.exit {d}")),
            None => problems.push(format!("{key}: no agent.exit")),
        }
        let file = format!("{key}.txt");
        let branch = current["branch"].as_str().unwrap_or("");
        match sb.git(&["show", &format!("{branch}:{file}")]) {
            Ok(text) if text == script::CONTENT => {}
            other => problems.push(format!("{file} on {branch}: {other:?}")),
        }
    }
    // c started from a's and b's results, and only after both were done.
    let c_branch = shown[2]["task"]["current_attempt"]["branch"]
        .as_str()
        .unwrap_or("");
    for dep in ["a", "b"] {
        if sb.git(&["show", &format!("{c_branch}:{dep}.txt")]).is_err() {
            problems.push(format!("c's branch lacks {dep}.txt"));
        }
        if position(lines, dep, "done") > position(lines, "c", "dispatch") {
            problems.push(format!("c was dispatched before {dep} was done"));
        }
    }
    let status = sb.data(&bins.orch, &["status"])?;
    if status["counts"]["done"] != 3 {
        problems.push(format!("status counts {}", status["counts"]));
    }
    if let Some(answer) = answered {
        if answer["message"]["body"] != ANSWER {
            problems.push(format!("the answer was {answer}"));
        }
        let question = lines
            .iter()
            .find(|(_, e)| e["kind"] == "question")
            .map(|(_, e)| e);
        match question {
            Some(q) if q["task"] == "b" && q["text"] == script::QUESTION => {}
            other => problems.push(format!("drive reported the question as {other:?}")),
        }
        // Drive went on with a while b waited: a's done before b's answer.
        if position(lines, "b", "answer").is_none()
            || position(lines, "a", "done") > position(lines, "b", "answer")
        {
            problems.push("drive did not report a done before b's answer".into());
        }
    }
    if !verdict.prompt_ok() {
        problems.push(format!(
            "prompt check failed, missing {:?}",
            verdict.missing
        ));
    }
    if !verdict.errors.is_empty() {
        problems.push(format!("endpoint errors: {:?}", verdict.errors));
    }
    if cli.inbox_protocol && !verdict.done_sent {
        problems.push("the script never got to `git inbox done`".into());
    }
    if !problems.is_empty() {
        bail!("{}\n  endpoint: {verdict}", problems.join("\n  "));
    }
    println!("{}: {verdict}", cli.name);
    Ok(attempts)
}
