//! `git orch wait` on each condition, and the event log (plain and followed).

use crate::common::{wait_until, TestEnv};
use crate::orch_plan::{add, with_run};
use serde_json::Value;
use std::process::{Child, Output};
use std::time::Duration;

fn thread_of(env: &TestEnv, key: &str) -> String {
    env.orch().args(["task", "show", key]).ok()["task"]["current_attempt"]["thread"]
        .as_i64()
        .unwrap()
        .to_string()
}

fn finish(child: Child) -> (i32, Value) {
    let Output { status, stdout, .. } = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&stdout);
    let doc = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status.code().unwrap_or(-1), doc)
}

fn spawn_wait(env: &TestEnv, args: &[&str]) -> Child {
    env.orch()
        .args(["wait", "--json", "--timeout", "20s"])
        .args(args)
        .spawn()
}

/// (kind, task, to) of each event.
fn summary(events: &Value) -> Vec<(String, String, String)> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (s("kind"), s("task"), s("to"))
        })
        .collect()
}

fn has(events: &Value, kind: &str, task: &str, to: &str) -> bool {
    summary(events).contains(&(kind.into(), task.into(), to.into()))
}

#[test]
fn wait_until_change_wakes_on_a_new_event() {
    let env = with_run();
    let mut child = spawn_wait(&env, &["--until", "change"]);
    // The waiter starts at an unknown moment: keep changing things until it has seen one.
    let mut n = 0;
    wait_until(
        "wait --until change to end",
        Duration::from_secs(20),
        || {
            if child.try_wait().unwrap().is_some() {
                return Some(());
            }
            n += 1;
            add(&env, &format!("t{n}"), &[]);
            None
        },
    );
    let (code, doc) = finish(child);
    assert_eq!(code, 0, "{doc}");
    let events = &doc["data"]["events"];
    assert!(!events.as_array().unwrap().is_empty(), "{doc}");
    assert!(
        summary(events)
            .iter()
            .all(|(kind, _, _)| kind == "task.status"),
        "{doc}"
    );
}

#[test]
fn wait_until_change_wakes_by_itself_when_a_lease_runs_out() {
    let env = with_run();
    add(&env, "spec", &[]);
    env.orch().args(["dispatch", "spec"]).ok();
    let id = thread_of(&env, "spec");
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "1s"])
        .ok();
    env.orch().arg("reconcile").ok();
    // Nobody else acts: the waiter must notice the expiry on its own.
    let (code, doc) = finish(spawn_wait(&env, &["--until", "change", "--task", "spec"]));
    assert_eq!(code, 0, "{doc}");
    let events = &doc["data"]["events"];
    assert!(has(events, "attempt.status", "spec", "dispatched"), "{doc}");
    assert!(has(events, "task.status", "spec", "dispatched"), "{doc}");
}

#[test]
fn wait_until_blocked_ready_and_done() {
    let env = with_run();
    add(&env, "spec", &[]);
    add(&env, "lexer", &["--after", "spec"]);
    env.orch().args(["dispatch", "spec"]).ok();
    let id = thread_of(&env, "spec");

    let blocked = spawn_wait(&env, &["--until", "blocked"]);
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "Which grammar?"])
        .ok();
    let (code, doc) = finish(blocked);
    assert_eq!(code, 0, "{doc}");
    assert!(
        has(&doc["data"]["events"], "task.status", "spec", "blocked"),
        "{doc}"
    );

    // A condition that already holds returns at once with the change that made it hold.
    let (code, doc) = finish(spawn_wait(&env, &["--until", "blocked", "--task", "spec"]));
    assert_eq!(code, 0, "{doc}");
    assert_eq!(
        summary(&doc["data"]["events"]),
        [("task.status".into(), "spec".into(), "blocked".into())]
    );

    env.orch().args(["answer", "spec", "--body", "EBNF"]).ok();
    let ready = spawn_wait(&env, &["--until", "ready", "--task", "lexer"]);
    let done = spawn_wait(&env, &["--until", "done", "--task", "spec"]);
    env.inbox().agent("w1").args(["done", &id]).ok();
    let (code, doc) = finish(ready);
    assert_eq!(code, 0, "{doc}");
    assert!(
        has(&doc["data"]["events"], "task.status", "lexer", "ready"),
        "{doc}"
    );
    let (code, doc) = finish(done);
    assert_eq!(code, 0, "{doc}");
    let events = &doc["data"]["events"];
    assert!(has(events, "task.status", "spec", "done"), "{doc}");
    assert!(
        summary(events).iter().all(|(_, task, _)| task == "spec"),
        "--task limits the events: {doc}"
    );

    // The run is done once no task is ready or in flight.
    let run_done = spawn_wait(&env, &["--until", "done"]);
    env.orch().args(["cancel", "lexer"]).ok();
    let (code, doc) = finish(run_done);
    assert_eq!(code, 0, "{doc}");
    assert!(
        has(&doc["data"]["events"], "task.status", "lexer", "cancelled"),
        "{doc}"
    );
}

#[test]
fn wait_times_out_with_exit_5() {
    let env = with_run();
    add(&env, "spec", &[]);
    let err = env
        .orch()
        .args(["wait", "--until", "blocked", "--timeout", "200ms"])
        .fails("timeout", 5);
    assert!(err["message"].as_str().unwrap().contains("blocked"));
    env.orch()
        .args(["wait", "--task", "ghost", "--timeout", "1s"])
        .fails("not_found", 3);
    let bare = TestEnv::new();
    bare.orch()
        .args(["wait", "--timeout", "1s"])
        .fails("not_found", 3);
}

#[test]
fn log_lists_and_follows_events() {
    let env = with_run();
    add(&env, "spec", &[]);
    let events = env.orch().arg("log").ok()["events"].clone();
    assert_eq!(
        summary(&events),
        [
            ("run.status".into(), "".into(), "active".into()),
            ("task.status".into(), "spec".into(), "ready".into())
        ]
    );
    let last = events[1]["id"].as_i64().unwrap();
    let since = env
        .orch()
        .args(["log", "--since", &events[0]["id"].to_string()])
        .ok()["events"]
        .clone();
    assert_eq!(since.as_array().unwrap().len(), 1);

    let follow = env
        .orch()
        .args(["log", "--follow", "--json", "--count", "3", "--since"])
        .arg(last.to_string())
        .spawn();
    env.orch().args(["dispatch", "spec"]).ok();
    let out = follow.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(line["id"].as_i64().unwrap() > last);
        assert_eq!(line["run"], "r1");
    }

    // A followed log that runs out of time ends with one error line.
    let out = env
        .orch()
        .args(["log", "--follow", "--json", "--timeout", "200ms", "--since"])
        .arg("1000000")
        .run();
    assert_eq!(out.code, 5);
    let last_line: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last_line["error"]["code"], "timeout");
}

#[test]
fn wait_since_an_event_id_returns_a_change_that_landed_before_it_started() {
    let env = with_run();
    let log = env.orch().args(["log"]).ok();
    let seen = log["events"].as_array().unwrap().last().unwrap()["id"]
        .as_i64()
        .unwrap();
    // A change lands after the leader looked but before it waits.
    add(&env, "late", &[]);
    let waited = env
        .orch()
        .args([
            "wait",
            "--until",
            "change",
            "--since",
            &seen.to_string(),
            "--timeout",
            "5s",
        ])
        .ok();
    assert!(
        has(&waited["events"], "task.status", "late", "ready"),
        "{waited}"
    );
    // From "now" (no --since) the same change is already in the past.
    env.orch()
        .args(["wait", "--until", "change", "--timeout", "200ms"])
        .fails("timeout", 5);
}
