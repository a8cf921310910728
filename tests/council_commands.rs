//! `git orch council start | wait | tally | report` through the binaries: reviewers are
//! plain `git inbox` users answering their review threads.

use crate::common::{finish, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

fn review(title: &str, rationale: &str, priority: &str) -> Value {
    json!({"title": title, "rationale": rationale, "priority": priority})
}

fn reviews() -> Vec<(&'static str, Value)> {
    vec![
        (
            "reviewer-1",
            json!({"recommendations": [
                review("Add tests for the lexer's error paths", "Unterminated strings and bad escapes are not covered by any test.", "high"),
                review("Document the token grammar", "Newcomers cannot tell which literals are accepted without reading the code.", "medium"),
                review("Cache the parsed configuration", "The config file is parsed on every call, which dominates start-up.", "low"),
            ]}),
        ),
        (
            "reviewer-2",
            json!({"recommendations": [
                review("Test the lexer error handling", "Error paths such as unterminated strings have no tests at all.", "high"),
                review("Write down the grammar of tokens", "The accepted literals are only documented by the code.", "medium"),
            ]}),
        ),
        (
            "reviewer-3",
            json!({"recommendations": [
                review("Cover lexer error paths with tests", "No test exercises unterminated strings or invalid escapes.", "high"),
                review("Pin the toolchain version", "CI and developers build with different compilers.", "medium"),
            ]}),
        ),
    ]
}

/// The reviewer takes its review thread (addressed to it) and answers with `result`.
fn answer(env: &TestEnv, reviewer: &str, result: &Value) {
    let claimed = env
        .inbox()
        .agent(reviewer)
        .args(["claim", "--next", "--kind", "task"])
        .ok();
    let thread = claimed["thread"]["id"].as_i64().unwrap().to_string();
    let path = env.root().join(format!("{reviewer}.json"));
    std::fs::write(&path, result.to_string()).unwrap();
    env.inbox()
        .agent(reviewer)
        .args(["done", &thread, "--result-file"])
        .arg(&path)
        .ok();
}

fn start(env: &TestEnv, name: &str) -> Value {
    env.orch()
        .args([
            "council",
            "start",
            "--topic",
            "Review the calculator",
            "--name",
            name,
        ])
        .args(["--body", "Read the lexer first."])
        .ok()
}

#[test]
fn start_three_reviewers_wait_tally_report() {
    let env = TestEnv::new();
    env.orch()
        .args(["run", "init", "plan", "--title", "The plan"])
        .ok();
    let started = start(&env, "c1");
    assert_eq!(started["council"], "c1");
    assert_eq!(
        started["reviewers"],
        json!(["reviewer-1", "reviewer-2", "reviewer-3"])
    );
    let head = env.git(&["rev-parse", "HEAD"]);
    for task in started["tasks"].as_array().unwrap() {
        assert_eq!(task["kind"], "review");
        assert_eq!(task["status"], "dispatched");
        let thread = task["current_attempt"]["thread"].as_i64().unwrap();
        let shown = env.show(thread);
        assert_eq!(shown["thread"]["data"]["council"], "c1");
        assert!(
            shown["messages"][0]["body"]
                .as_str()
                .unwrap()
                .contains(&head),
            "the brief names the base sha"
        );
    }
    // A council is a side trip: the leader's current run stays current.
    let runs = env.orch().args(["run", "list"]).ok();
    let plan = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "plan")
        .unwrap()
        .clone();
    assert_eq!(
        env.orch().args(["run", "show"]).ok()["run"]["name"],
        plan["name"]
    );

    // A waiter in another process wakes when the last reviewer finishes.
    let waiter = env
        .orch()
        .args(["--json", "council", "wait", "c1", "--timeout", "30s"])
        .spawn();
    for (reviewer, result) in reviews() {
        answer(&env, reviewer, &result);
    }
    let waited = finish(waiter, Duration::from_secs(30));
    assert_eq!(waited.code, 0, "{}", waited.stdout);
    assert!(waited.data()["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["status"] == "done"));

    let tally = env.orch().args(["council", "tally", "c1"]).ok();
    assert_eq!(
        tally["responded"],
        json!(["reviewer-1", "reviewer-2", "reviewer-3"])
    );
    let groups = tally["groups"].as_array().unwrap();
    assert_eq!(groups[0]["level"], "consensus");
    assert_eq!(groups[0]["support"], 3);
    assert_eq!(groups[0]["members"].as_array().unwrap().len(), 3);
    assert_eq!(groups[1]["level"], "majority");
    assert!(groups[2..]
        .iter()
        .all(|g| g["level"] == "minority" && g["support"] == 1));

    let out = env.root().join("report.md");
    let report = env
        .orch()
        .args(["council", "report", "c1", "-o"])
        .arg(&out)
        .ok();
    let markdown = std::fs::read_to_string(&out).unwrap();
    assert_eq!(report["markdown"], markdown.as_str());
    for section in [
        "## Consensus",
        "## Majority",
        "## Minority",
        "Review the calculator",
        "reviewer-3",
    ] {
        assert!(
            markdown.contains(section),
            "{section} missing from:\n{markdown}"
        );
    }
    // The same bytes are stored as an artifact.
    let artifact = report["artifact"]["id"].as_i64().unwrap().to_string();
    let stored = env.root().join("stored.md");
    env.inbox()
        .args(["artifact", "get", &artifact, "-o"])
        .arg(&stored)
        .ok();
    assert_eq!(std::fs::read_to_string(&stored).unwrap(), markdown);

    // A directory is refused before a second report is stored.
    let artifacts = env.count("artifacts");
    env.orch()
        .args(["council", "report", "c1", "-o"])
        .arg(env.root())
        .fails("invalid_input", 2);
    assert_eq!(env.count("artifacts"), artifacts);
}

#[test]
fn a_failed_reviewer_does_not_count() {
    let env = TestEnv::new();
    start(&env, "c1");
    let all = reviews();
    answer(&env, all[0].0, &all[0].1);
    answer(&env, all[1].0, &all[1].1);
    let claimed = env
        .inbox()
        .agent("reviewer-3")
        .args(["claim", "--next"])
        .ok();
    let thread = claimed["thread"]["id"].as_i64().unwrap().to_string();
    env.inbox()
        .agent("reviewer-3")
        .args(["fail", &thread, "--reason", "no time"])
        .ok();
    env.orch()
        .args(["council", "wait", "c1", "--timeout", "10s"])
        .ok();
    let tally = env.orch().args(["council", "tally", "c1"]).ok();
    assert_eq!(tally["reviewers"].as_array().unwrap().len(), 3);
    assert_eq!(tally["responded"], json!(["reviewer-1", "reviewer-2"]));
    // With two responders, what both said is consensus; one alone is minority.
    let levels: Vec<(&str, i64)> = tally["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["level"].as_str().unwrap(), g["support"].as_i64().unwrap()))
        .collect();
    assert_eq!(levels[0], ("consensus", 2));
    assert_eq!(levels[1], ("consensus", 2));
    assert!(
        levels[2..].iter().all(|l| *l == ("minority", 1)),
        "{levels:?}"
    );
}

#[test]
fn the_tally_is_byte_identical_whatever_order_reviewers_finish_in() {
    let env = TestEnv::new();
    start(&env, "forward");
    start(&env, "backward");
    for (reviewer, result) in reviews() {
        answer_in(&env, reviewer, "forward", &result);
    }
    for (reviewer, result) in reviews().into_iter().rev() {
        answer_in(&env, reviewer, "backward", &result);
    }
    let tally = |name: &str| {
        env.orch()
            .args(["--json", "council", "tally", name])
            .run()
            .stdout
    };
    let forward = tally("forward").replace("\"forward\"", "\"X\"");
    let backward = tally("backward").replace("\"backward\"", "\"X\"");
    assert_eq!(forward, backward);
    assert_eq!(
        tally("forward"),
        tally("forward"),
        "the same input gives the same bytes"
    );
    let report = |name: &str| {
        env.orch()
            .args(["council", "report", name])
            .run()
            .stdout
            .replace(name, "X")
    };
    assert_eq!(report("forward"), report("backward"));
}

/// Answers the review thread of council `council` for `reviewer`.
fn answer_in(env: &TestEnv, reviewer: &str, council: &str, result: &Value) {
    let task = env
        .orch()
        .args(["task", "show", reviewer, "--run", council])
        .ok();
    let thread = task["task"]["current_attempt"]["thread"]
        .as_i64()
        .unwrap()
        .to_string();
    env.inbox().agent(reviewer).args(["claim", &thread]).ok();
    let path = env.root().join(format!("{council}-{reviewer}.json"));
    std::fs::write(&path, result.to_string()).unwrap();
    env.inbox()
        .agent(reviewer)
        .args(["done", &thread, "--result-file"])
        .arg(&path)
        .ok();
}

#[test]
fn council_errors() {
    let env = TestEnv::new();
    env.orch()
        .args(["council", "start", "--topic", "T", "--reviewers", "a,a"])
        .fails("invalid_input", 2);
    env.orch()
        .args(["council", "start", "--topic", "T", "--reviewers", "Bad"])
        .fails("invalid_name", 2);
    env.orch()
        .args(["council", "start", "--topic", "T", "--base", "no-such-ref"])
        .fails("bad_ref", 6);
    env.orch()
        .args(["run", "init", "plan", "--title", "P"])
        .ok();
    env.orch()
        .args(["council", "tally", "plan"])
        .fails("not_found", 3);
    start(&env, "c1");
    env.orch()
        .args(["council", "start", "--topic", "T", "--name", "c1"])
        .fails("exists", 4);
    env.orch()
        .args(["council", "tally", "c1", "--threshold", "2"])
        .fails("invalid_input", 2);
    env.orch()
        .args(["council", "wait", "c1", "--timeout", "50ms"])
        .fails("timeout", 5);
}
