//! `git inbox done` on a council review thread (its data has a `council` key) refuses a
//! result that is not a valid review, pointing at the offending field, and writes nothing.

use crate::common::TestEnv;
use serde_json::{json, Value};

/// A review thread for `reviewer-1`, claimed by it; returns the thread id as text.
fn claimed_review_thread(env: &TestEnv) -> String {
    let data = json!({"council": "c1", "run": "c1", "task": "reviewer-1", "attempt": 1});
    let sent = env
        .sending("leader", "reviewer-1", "Review the lexer")
        .args(["--kind", "task", "--data", &data.to_string()])
        .ok();
    let id = sent["thread"]["id"].as_i64().unwrap().to_string();
    env.inbox().agent("reviewer-1").args(["claim", &id]).ok();
    id
}

fn write(env: &TestEnv, name: &str, value: &Value) -> String {
    let path = env.root().join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_string_lossy().into_owned()
}

fn show(env: &TestEnv, id: &str) -> Value {
    env.inbox().agent("reviewer-1").args(["show", id]).ok()
}

#[test]
fn done_refuses_an_invalid_review_with_a_pointer_and_writes_nothing() {
    let env = TestEnv::new();
    let id = claimed_review_thread(&env);
    let before = show(&env, &id);
    let bad = write(
        &env,
        "bad.json",
        &json!({"recommendations": [
            {"title": "Add tests for the lexer", "rationale": "No escapes are tested.", "priority": "medium"},
            {"title": "Intern identifiers", "rationale": "Fewer allocations.", "priority": "urgent"}
        ]}),
    );
    let error = env
        .inbox()
        .agent("reviewer-1")
        .args(["done", &id, "--result-file", &bad])
        .fails("invalid_input", 2);
    assert_eq!(error["details"]["pointer"], "/recommendations/1/priority");
    assert!(error["message"].as_str().unwrap().contains("priority"));
    assert!(error["hint"].as_str().unwrap().contains("high"));

    let after = show(&env, &id);
    assert_eq!(after["thread"]["status"], "claimed");
    assert_eq!(after["thread"]["result"], Value::Null);
    assert_eq!(
        after["messages"], before["messages"],
        "no message was written"
    );

    // People get the same refusal on stderr, with its hint.
    let run = env
        .inbox()
        .agent("reviewer-1")
        .args(["done", &id, "--result-file", &bad])
        .run();
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("[invalid_input]"), "{}", run.stderr);
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
}

#[test]
fn done_on_a_review_thread_needs_a_result_of_the_right_shape() {
    let env = TestEnv::new();
    let id = claimed_review_thread(&env);
    for (args, pointer) in [
        (vec![], ""),
        (vec!["--result", r#"{"ok": true}"#], "/recommendations"),
        (
            vec![
                "--result",
                r#"{"recommendations": [{"title": "", "rationale": "r", "priority": "low"}]}"#,
            ],
            "/recommendations/0/title",
        ),
        (
            vec![
                "--result",
                r#"{"recommendations": [{"title": "t", "priority": "low"}]}"#,
            ],
            "/recommendations/0/rationale",
        ),
    ] {
        let error = env
            .inbox()
            .agent("reviewer-1")
            .args(["done", &id])
            .args(&args)
            .fails("invalid_input", 2);
        assert_eq!(error["details"]["pointer"], pointer, "{args:?}");
    }
    assert_eq!(show(&env, &id)["thread"]["status"], "claimed");

    let good = json!({"recommendations": [
        {"title": "Add tests for the lexer", "rationale": "No escapes are tested.", "priority": "medium", "file": "src/lexer.rs"}
    ]});
    let done = env
        .inbox()
        .agent("reviewer-1")
        .args(["done", &id, "--result", &good.to_string()])
        .ok();
    assert_eq!(done["thread"]["status"], "done");
    assert_eq!(
        done["thread"]["result"], good,
        "stored as given, extra fields kept"
    );
}

#[test]
fn an_empty_review_is_a_valid_review() {
    let env = TestEnv::new();
    let id = claimed_review_thread(&env);
    let done = env
        .inbox()
        .agent("reviewer-1")
        .args(["done", &id, "--result", r#"{"recommendations": []}"#])
        .ok();
    assert_eq!(done["thread"]["status"], "done");
}

#[test]
fn other_task_threads_accept_any_object() {
    let env = TestEnv::new();
    let sent = env
        .sending("leader", "w1", "Lexer")
        .args(["--kind", "task"])
        .args(["--data", r#"{"run": "r1", "task": "lexer"}"#])
        .ok();
    let id = sent["thread"]["id"].as_i64().unwrap().to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let done = env
        .inbox()
        .agent("w1")
        .args(["done", &id, "--result", r#"{"ok": true}"#])
        .ok();
    assert_eq!(done["thread"]["result"], json!({"ok": true}));
}
