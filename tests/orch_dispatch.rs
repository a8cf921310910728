//! Dispatch, and every rule of reconcile's mapping from threads to attempts and tasks.

use crate::common::{wait_until, TestEnv};
use crate::orch_plan::{add, status_of, with_run};
use serde_json::{json, Value};
use std::time::Duration;

fn dispatch(env: &TestEnv, args: &[&str]) -> Vec<Value> {
    env.orch().arg("dispatch").args(args).ok()["attempts"]
        .as_array()
        .unwrap()
        .clone()
}

fn task(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()["task"].clone()
}

fn thread_of(env: &TestEnv, key: &str) -> String {
    task(env, key)["current_attempt"]["thread"]
        .as_i64()
        .expect("a current thread")
        .to_string()
}

/// `git orch reconcile`'s changes as (kind, task, from, to).
fn reconcile(env: &TestEnv) -> Vec<(String, String, String, String)> {
    env.orch().arg("reconcile").ok()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("").to_owned();
            (s("kind"), s("task"), s("from"), s("to"))
        })
        .collect()
}

fn change(kind: &str, task: &str, from: &str, to: &str) -> (String, String, String, String) {
    (kind.into(), task.into(), from.into(), to.into())
}

#[test]
fn dispatch_sends_one_task_thread_per_attempt() {
    let env = with_run();
    add(
        &env,
        "spec",
        &["--body", "Write the spec", "--priority", "1"],
    );
    add(&env, "lexer", &["--after", "spec"]);
    add(&env, "docs", &["--to", "w9"]);

    env.orch().arg("dispatch").fails("usage", 2);
    let err = env
        .orch()
        .args(["dispatch", "lexer"])
        .fails("invalid_transition", 4);
    assert!(err["hint"].as_str().unwrap().contains("--force"));
    env.orch().args(["dispatch", "ghost"]).fails("not_found", 3);

    let attempts = dispatch(&env, &["spec"]);
    assert_eq!(attempts.len(), 1);
    let a = &attempts[0];
    assert_eq!(a["run"], "r1");
    assert_eq!(a["task"], "spec");
    assert_eq!(a["n"], 1);
    assert_eq!(a["status"], "dispatched");
    assert_eq!(a["agent"], Value::Null);
    // A code task works in its own worktree on its own branch (tests/orch_worktrees.rs).
    assert!(a["worktree"]
        .as_str()
        .unwrap()
        .ends_with("repo.worktrees/r1/spec-1"));
    assert_eq!(a["branch"], "orch/r1/spec-1");
    assert_eq!(a["ended_at"], Value::Null);
    assert_eq!(a["commits"], 0);

    let thread_id = a["thread"].as_i64().unwrap().to_string();
    let shown = env.inbox().agent("w1").args(["show", &thread_id]).ok();
    let thread = &shown["thread"];
    assert_eq!(thread["kind"], "task");
    assert_eq!(thread["from"], "leader");
    assert_eq!(thread["to"], "@workers");
    assert_eq!(thread["subject"], "Do spec");
    assert_eq!(thread["data"]["run"], "r1");
    assert_eq!(thread["data"]["task"], "spec");
    assert_eq!(thread["data"]["attempt"], a["id"]);
    assert_eq!(thread["data"]["title"], "Do spec");
    assert_eq!(shown["messages"][0]["body"], "Write the spec");

    let spec = task(&env, "spec");
    assert_eq!(spec["status"], "dispatched");
    assert_eq!(spec["attempts"], 1);
    assert_eq!(spec["current_attempt"]["id"], a["id"]);

    // An attempt in flight refuses another, even with --force.
    env.orch()
        .args(["dispatch", "spec", "--force"])
        .fails("conflict", 4);

    // --to overrides the task's address; an agent address names the attempt's agent.
    let forced = dispatch(&env, &["lexer", "--force", "--to", "w2"]);
    assert_eq!(forced[0]["to"], "w2");
    assert_eq!(forced[0]["agent"], "w2");
    let docs = dispatch(&env, &["--all-ready"]);
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["task"], "docs");
    assert_eq!(docs[0]["agent"], "w9");
    assert!(dispatch(&env, &["--all-ready"]).is_empty());
}

#[test]
fn all_ready_respects_priority_and_max() {
    let env = with_run();
    add(&env, "low", &[]);
    add(&env, "high", &["--priority", "3"]);
    add(&env, "mid", &["--priority", "1"]);
    let first = dispatch(&env, &["--all-ready", "--max", "2"]);
    let keys: Vec<&str> = first.iter().map(|a| a["task"].as_str().unwrap()).collect();
    assert_eq!(keys, ["high", "mid"]);
    let rest = dispatch(&env, &["--all-ready"]);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["task"], "low");
}

#[test]
fn claim_ask_answer_done_map_to_running_blocked_running_done() {
    let env = with_run();
    add(&env, "spec", &[]);
    add(&env, "lexer", &["--after", "spec"]);
    add(&env, "parser", &["--after", "spec", "--after", "lexer"]);
    dispatch(&env, &["spec"]);
    let id = thread_of(&env, "spec");
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();

    // claim → running
    env.inbox().agent("w1").args(["claim", &id]).ok();
    assert_eq!(
        reconcile(&env),
        [
            change("attempt.status", "spec", "dispatched", "running"),
            change("task.status", "spec", "dispatched", "running")
        ]
    );
    assert_eq!(task(&env, "spec")["current_attempt"]["agent"], "w1");
    // A second reconcile reports no changes.
    assert!(reconcile(&env).is_empty());

    // ask → blocked(question)
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "Which grammar?"])
        .ok();
    let blocked = env.orch().arg("blocked").ok()["tasks"].clone();
    assert_eq!(blocked.as_array().unwrap().len(), 1);
    assert_eq!(blocked[0]["key"], "spec");
    assert_eq!(blocked[0]["status"], "blocked");
    assert_eq!(blocked[0]["blocked_reason"], "question");
    assert_eq!(blocked[0]["blocked_detail"]["question"], "Which grammar?");
    assert_eq!(blocked[0]["blocked_detail"]["asked_by"], "w1");
    assert_eq!(blocked[0]["current_attempt"]["status"], "blocked");
    assert!(reconcile(&env).is_empty());

    // answer → running
    env.orch()
        .args(["answer", "lexer", "--body", "x"])
        .fails("invalid_transition", 4);
    let answered = env
        .orch()
        .args(["answer", "spec", "--body", "EBNF, please"])
        .ok();
    assert_eq!(answered["message"]["kind"], "reply");
    assert_eq!(answered["message"]["author"], "leader");
    assert_eq!(answered["thread"]["awaiting_reply"], false);
    let spec = task(&env, "spec");
    assert_eq!(spec["status"], "running");
    assert_eq!(spec["blocked_reason"], Value::Null);
    let reply = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "5s"])
        .ok();
    assert_eq!(reply["message"]["body"], "EBNF, please");

    // done → done, and dependents whose dependencies are all done become ready.
    env.inbox()
        .agent("w1")
        .args(["done", &id, "--result", r#"{"ok": true}"#])
        .ok();
    assert_eq!(
        reconcile(&env),
        [
            change("attempt.status", "spec", "running", "succeeded"),
            change("task.status", "spec", "running", "done"),
            change("task.status", "lexer", "pending", "ready"),
        ]
    );
    assert!(reconcile(&env).is_empty());
    assert_eq!(status_of(&env, "parser"), "pending");
    let spec = task(&env, "spec");
    assert_eq!(spec["current_attempt"]["status"], "succeeded");
    assert!(spec["current_attempt"]["ended_at"].is_string());
}

#[test]
fn failures_retry_until_attempts_run_out() {
    let env = with_run();
    add(&env, "flaky", &["--max-attempts", "2"]);
    add(&env, "broken", &[]);
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();

    // A retryable failure with attempts left: ready again, and a new dispatch is attempt 2.
    dispatch(&env, &["flaky"]);
    let id = thread_of(&env, "flaky");
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &id, "--reason", "network down", "--retryable"])
        .ok();
    let flaky = task(&env, "flaky");
    assert_eq!(flaky["status"], "ready", "{flaky}");
    assert_eq!(
        flaky["current_attempt"]["agent"], "w1",
        "claimed and failed unseen"
    );
    assert_eq!(flaky["current_attempt"]["status"], "failed");
    assert_eq!(
        flaky["current_attempt"]["failure"]["reason"],
        "network down"
    );
    assert!(reconcile(&env).is_empty());
    let second = dispatch(&env, &["flaky"]);
    assert_eq!(second[0]["n"], 2);

    // The last attempt fails the task, retryable or not.
    let id = thread_of(&env, "flaky");
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &id, "--reason", "still down", "--retryable"])
        .ok();
    assert_eq!(status_of(&env, "flaky"), "failed");

    // A non-retryable failure fails the task at once.
    dispatch(&env, &["broken"]);
    let id = thread_of(&env, "broken");
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &id, "--reason", "impossible"])
        .ok();
    assert_eq!(status_of(&env, "broken"), "failed");
    assert_eq!(
        env.orch().arg("ready").ok()["tasks"],
        json!([]),
        "failed tasks are not ready"
    );

    // retry: a new attempt for a failed task, here to another agent.
    env.orch()
        .args(["dispatch", "broken"])
        .fails("invalid_transition", 4);
    let retried = env.orch().args(["retry", "broken", "--to", "w2"]).ok()["attempts"][0].clone();
    assert_eq!(retried["n"], 2);
    assert_eq!(retried["to"], "w2");
    assert_eq!(status_of(&env, "broken"), "dispatched");
    env.orch()
        .args(["retry", "broken"])
        .fails("invalid_transition", 4);
    let shown = env.orch().args(["task", "show", "broken"]).ok();
    assert_eq!(shown["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(shown["attempts"][0]["status"], "failed");
    assert_eq!(shown["attempts"][1]["status"], "dispatched");
}

#[test]
fn lease_expiry_puts_the_attempt_back_to_dispatched() {
    let env = with_run();
    add(&env, "spec", &[]);
    dispatch(&env, &["spec"]);
    let id = thread_of(&env, "spec");
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "2s"])
        .ok();
    // Long enough that the lease is still held when the next command reads it on a
    // loaded machine; a 300 ms lease could run out between the two commands.
    assert_eq!(status_of(&env, "spec"), "running");
    wait_until("the lease to run out", Duration::from_secs(10), || {
        (status_of(&env, "spec") == "dispatched").then_some(())
    });
    let spec = task(&env, "spec");
    assert_eq!(spec["current_attempt"]["status"], "dispatched");
    assert_eq!(spec["attempts"], 1);
    assert!(reconcile(&env).is_empty());
    // Another worker can take it over under the same attempt.
    env.inbox().agent("w2").args(["claim", &id]).ok();
    let spec = task(&env, "spec");
    assert_eq!(spec["status"], "running");
    assert_eq!(spec["current_attempt"]["agent"], "w2");
}

#[test]
fn too_many_expiries_lose_the_attempt() {
    let env = with_run();
    env.git(&["config", "orch.maxClaims", "1"]);
    add(&env, "spec", &["--max-attempts", "2"]);
    dispatch(&env, &["spec"]);
    let id = thread_of(&env, "spec");
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "200ms"])
        .ok();
    wait_until("the attempt to be lost", Duration::from_secs(10), || {
        let spec = task(&env, "spec");
        (spec["current_attempt"]["status"] == "lost").then_some(spec)
    });
    // A lost attempt counts like a retryable failure: attempts remain, so ready again.
    assert_eq!(status_of(&env, "spec"), "ready");
}

#[test]
fn reassign_cancels_the_old_thread() {
    let env = with_run();
    add(&env, "spec", &[]);
    dispatch(&env, &["spec"]);
    let old = thread_of(&env, "spec");
    env.inbox().agent("w1").args(["claim", &old]).ok();
    env.orch()
        .args(["reassign", "ghost", "--to", "w2"])
        .fails("not_found", 3);

    let attempt = env.orch().args(["reassign", "spec", "--to", "w2"]).ok()["attempts"][0].clone();
    assert_eq!(attempt["n"], 2);
    assert_eq!(attempt["agent"], "w2");
    assert_eq!(attempt["status"], "dispatched");
    let old_thread = env.inbox().agent("w1").args(["show", &old]).ok()["thread"].clone();
    assert_eq!(old_thread["status"], "cancelled");
    let new_thread = attempt["thread"].as_i64().unwrap().to_string();
    assert_ne!(new_thread, old);
    let shown = env.inbox().agent("w2").args(["show", &new_thread]).ok();
    assert_eq!(shown["thread"]["to"], "w2");
    assert_eq!(shown["thread"]["data"]["reassigned_from"], 1);

    let shown = env.orch().args(["task", "show", "spec"]).ok();
    assert_eq!(shown["attempts"][0]["status"], "cancelled");
    assert_eq!(shown["task"]["status"], "dispatched");
    // The old holder's next act fails: its thread is closed.
    env.inbox()
        .agent("w1")
        .args(["done", &old])
        .fails("thread_closed", 4);
    assert!(reconcile(&env).is_empty());

    add(&env, "idle", &[]);
    env.orch()
        .args(["reassign", "idle", "--to", "w2"])
        .fails("invalid_transition", 4);
}

#[test]
fn cancel_a_task_or_a_whole_run() {
    let env = with_run();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    add(&env, "c", &["--after", "a"]);
    dispatch(&env, &["a", "b"]);
    let thread_a = thread_of(&env, "a");
    let thread_b = thread_of(&env, "b");
    env.inbox().agent("w1").args(["claim", &thread_a]).ok();

    let cancelled = env.orch().args(["cancel", "a"]).ok();
    assert_eq!(cancelled["changed"], true);
    assert_eq!(cancelled["task"]["status"], "cancelled");
    assert_eq!(cancelled["task"]["current_attempt"]["status"], "cancelled");
    let thread = env.inbox().agent("w1").args(["show", &thread_a]).ok()["thread"].clone();
    assert_eq!(thread["status"], "cancelled");
    assert_eq!(env.orch().args(["cancel", "a"]).ok()["changed"], false);
    assert!(reconcile(&env).is_empty());
    env.orch().arg("cancel").fails("usage", 2);

    // A cancelled task can be retried.
    let retried = env.orch().args(["retry", "a"]).ok()["attempts"][0].clone();
    assert_eq!(retried["n"], 2);

    let run = env.orch().args(["cancel", "--run"]).ok()["run"].clone();
    assert_eq!(run["status"], "cancelled");
    assert_eq!(run["counts"]["cancelled"], 3);
    for id in [&thread_b, &thread_of(&env, "a")] {
        let thread = env.inbox().agent("w1").args(["show", id]).ok()["thread"].clone();
        assert_eq!(thread["status"], "cancelled", "thread {id}");
    }
    env.orch()
        .args(["dispatch", "b", "--force"])
        .fails("invalid_transition", 4);
    let kinds: Vec<Value> = env.orch().arg("log").ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.status")
        .map(|e| e["to"].clone())
        .collect();
    assert_eq!(kinds, [json!("active"), json!("cancelled")]);
}

#[test]
fn cancelled_through_the_inbox_maps_to_cancelled() {
    let env = with_run();
    add(&env, "a", &[]);
    dispatch(&env, &["a"]);
    let id = thread_of(&env, "a");
    env.inbox().agent("leader").args(["cancel", &id]).ok();
    assert_eq!(
        reconcile(&env),
        [
            change("attempt.status", "a", "dispatched", "cancelled"),
            change("task.status", "a", "dispatched", "cancelled")
        ]
    );
}

#[test]
fn status_shows_counts_and_tasks() {
    let env = with_run();
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    dispatch(&env, &["a"]);
    let id = thread_of(&env, "a");
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let status = env.orch().arg("status").ok();
    assert_eq!(status["run"]["name"], "r1");
    assert_eq!(status["counts"]["running"], 1);
    assert_eq!(status["counts"]["pending"], 1);
    assert_eq!(status["counts"]["total"], 2);
    assert_eq!(status["run"]["counts"], status["counts"]);
    assert_eq!(status["tasks"][0]["key"], "a");
    assert_eq!(status["tasks"][0]["current_attempt"]["agent"], "w1");
    assert_eq!(status["tasks"][1]["after"], json!(["a"]));

    let human = env.orch().arg("status").run();
    assert_eq!(human.code, 0);
    let line = human
        .stdout
        .lines()
        .find(|l| l.starts_with("a "))
        .expect("a row for task a");
    assert!(line.contains("running"), "{line}");
    assert!(line.contains("w1"), "{line}");
    assert!(line.contains("1/3"), "{line}");
    assert!(line.contains("ago"), "{line}");
}
