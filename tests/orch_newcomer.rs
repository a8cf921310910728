//! The traps of a newcomer's first hour, each as the README user meets it: a reviewer
//! without a worktree, a council started while a plan run is current, a queue worker's
//! identity, a status that tells why, an explicit base over a dirty worktree, a base
//! that names nothing, and a cancelled run's name.

use crate::common::TestEnv;
use serde_json::{json, Value};

fn run_init(env: &TestEnv, name: &str) {
    env.orch()
        .args(["run", "init", name, "--title", "Plan"])
        .ok();
}

fn add(env: &TestEnv, key: &str, extra: &[&str]) {
    env.orch()
        .args(["task", "add", key, "--title", key])
        .args(extra)
        .ok();
}

#[test]
fn a_reviewer_finishes_without_an_id_and_council_commands_find_the_council() {
    let env = TestEnv::new();
    run_init(&env, "calc");
    let started = env
        .orch()
        .args([
            "council",
            "start",
            "--topic",
            "Review it",
            "--reviewers",
            "rev-a,rev-b",
        ])
        .ok();
    let council = started["council"].as_str().unwrap().to_owned();
    // The plan run stays current.
    assert_eq!(env.orch().args(["run", "show"]).ok()["run"]["name"], "calc");
    let review = json!({"recommendations": [
        {"title": "Add tests", "rationale": "None exist", "priority": "high"}]});
    let file = env.root().join("review.json");
    std::fs::write(&file, review.to_string()).unwrap();
    for reviewer in ["rev-a", "rev-b"] {
        let claimed = env.inbox().agent(reviewer).args(["claim", "--next"]).ok();
        let body = env.show(claimed["thread"]["id"].as_i64().unwrap())["messages"][0]["body"]
            .as_str()
            .unwrap()
            .to_owned();
        // The brief says how to answer from where a reviewer stands, by name.
        assert!(body.contains(&format!("--agent {reviewer}")), "{body}");
        assert!(
            body.contains("git inbox done --result-file review.json"),
            "{body}"
        );
        // As the brief says: no id, no worktree; the one claim held is the thread.
        let done = env
            .inbox()
            .agent(reviewer)
            .args(["done", "--result-file"])
            .arg(&file)
            .ok();
        assert_eq!(done["thread"]["status"], "done");
    }
    // Without a name, each council command takes the newest council, not run calc.
    let waited = env
        .orch()
        .args(["council", "wait", "--timeout", "10s"])
        .ok();
    assert_eq!(waited["council"], council.as_str());
    let tally = env.orch().args(["council", "tally"]).ok();
    assert_eq!(tally["council"], council.as_str());
    assert_eq!(tally["groups"][0]["level"], "consensus");
    let report = env.orch().args(["council", "report"]).ok();
    assert!(report["markdown"].as_str().unwrap().contains("Add tests"));
}

#[test]
fn done_without_an_id_outside_a_worktree_needs_exactly_one_claim() {
    let env = TestEnv::new();
    let one = env.task("leader", "w1", "one");
    let two = env.task("leader", "w1", "two");
    env.inbox().agent("w1").args(["done"]).fails("usage", 2);
    env.inbox()
        .agent("w1")
        .args(["claim", &one.to_string()])
        .ok();
    env.inbox()
        .agent("w1")
        .args(["claim", &two.to_string()])
        .ok();
    let error = env.inbox().agent("w1").args(["done"]).fails("usage", 2);
    assert_eq!(error["details"]["threads"], json!([one, two]));
    env.inbox()
        .agent("w1")
        .args(["done", &two.to_string()])
        .ok();
    let done = env.inbox().agent("w1").args(["done"]).ok();
    assert_eq!(done["thread"]["id"], one);
}

#[test]
fn whoami_numbers_the_attempt_as_status_does() {
    let env = TestEnv::new();
    run_init(&env, "calc");
    add(&env, "lexer", &["--to", "w1"]);
    let first = env.orch().args(["dispatch", "lexer"]).ok()["attempts"][0].clone();
    let thread = first["thread"].as_i64().unwrap().to_string();
    env.inbox().agent("w1").args(["claim", &thread]).ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &thread, "--reason", "flaky", "--retryable"])
        .ok();
    let second = env.orch().args(["retry", "lexer"]).ok()["attempts"][0].clone();
    let wt = second["worktree"].as_str().unwrap();
    let me = env.inbox().dir(wt).args(["whoami"]).ok();
    assert_eq!(me["agent"], "w1");
    assert_eq!(
        (me["n"].clone(), me["max_attempts"].clone()),
        (json!(2), json!(3))
    );
    assert_eq!(me["attempt"], second["id"]);
    let text = env.inbox().dir(wt).arg("whoami").run().stdout;
    assert!(
        text.contains("attempt 2/3 of task lexer in run calc"),
        "{text}"
    );
}

fn status_text(env: &TestEnv) -> String {
    let run = env.orch().arg("status").run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    run.stdout
}

fn line_of<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no line for {key} in\n{text}"))
}

#[test]
fn status_says_why_a_task_is_ready_again_and_what_to_do_when_finished() {
    let env = TestEnv::new();
    run_init(&env, "calc");
    add(&env, "lexer", &["--to", "w1"]);
    add(&env, "parser", &["--to", "w1"]);
    let attempts = env.orch().args(["dispatch", "--all-ready"]).ok()["attempts"].clone();
    let thread_of = |key: &str| -> String {
        attempts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["task"] == key)
            .unwrap()["thread"]
            .to_string()
    };
    let lexer = thread_of("lexer");
    env.inbox().agent("w1").args(["claim", &lexer]).ok();
    env.inbox()
        .agent("w1")
        .args([
            "fail",
            &lexer,
            "--reason",
            "tests do not build",
            "--retryable",
        ])
        .ok();
    let parser_wt = attempts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["task"] == "parser")
        .unwrap()["worktree"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_dir_all(&parser_wt).unwrap();

    let text = status_text(&env);
    let lexer_line = line_of(&text, "lexer");
    assert!(lexer_line.contains("ready"), "{text}");
    assert!(
        lexer_line.contains("attempt 1 failed: tests do not build"),
        "{text}"
    );
    let parser_line = line_of(&text, "parser");
    assert!(parser_line.contains("ready"), "{text}");
    assert!(
        parser_line.contains("attempt 1: worktree deleted"),
        "{text}"
    );
    assert!(!text.contains("The run is finished"), "{text}");

    for key in ["lexer", "parser"] {
        let attempt = env.orch().args(["retry", key]).ok()["attempts"][0].clone();
        let thread = attempt["thread"].to_string();
        env.inbox().agent("w1").args(["claim", &thread]).ok();
        env.inbox().agent("w1").args(["done", &thread]).ok();
    }
    let text = status_text(&env);
    assert!(text.contains("The run is finished (2 done)."), "{text}");
    assert!(text.contains("git orch cleanup --run calc"), "{text}");
    assert!(text.contains("land"), "{text}");
}

#[test]
fn an_explicit_base_over_a_dirty_main_worktree_is_said_once_on_stderr() {
    let env = TestEnv::new();
    run_init(&env, "calc");
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    std::fs::write(env.repo.join("README.md"), "changed, not committed\n").unwrap();
    let run = env
        .orch()
        .args(["--json", "dispatch", "--all-ready", "--base", "main"])
        .run();
    let data = run.data();
    assert_eq!(data["attempts"].as_array().unwrap().len(), 2);
    let warnings: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(
        warnings[0].contains("uncommitted changes (README.md)"),
        "{}",
        run.stderr
    );
    assert!(warnings[0].contains("from main"), "{}", run.stderr);

    // Clean, or from the implicit HEAD (whose strict check refuses instead): no warning.
    env.git(&["checkout", "--", "README.md"]);
    add(&env, "c", &[]);
    let run = env
        .orch()
        .args(["--json", "dispatch", "c", "--base", "main"])
        .run();
    run.data();
    assert!(!run.stderr.contains("warning:"), "{}", run.stderr);
}

#[test]
fn a_run_base_that_names_nothing_is_refused_at_init_and_set_base_changes_it() {
    let env = TestEnv::new();
    env.git(&["branch", "-m", "main", "master"]);
    let error = env
        .orch()
        .args(["run", "init", "calc", "--title", "Calc", "--base", "main"])
        .fails("bad_ref", 6);
    assert!(
        error["hint"].as_str().unwrap().contains("git branch"),
        "{error}"
    );
    // Nothing was made: the name is still free.
    env.orch()
        .args(["run", "init", "calc", "--title", "Calc", "--base", "master"])
        .ok();
    env.git(&["branch", "trunk"]);
    env.orch()
        .args(["run", "set-base", "nope"])
        .fails("bad_ref", 6);
    let run = env.orch().args(["run", "set-base", "trunk"]).ok()["run"].clone();
    assert_eq!(run["base_ref"], "trunk");
    add(&env, "a", &[]);
    let attempt = env.orch().args(["dispatch", "a"]).ok()["attempts"][0].clone();
    assert_eq!(attempt["base_ref"], "trunk");
    let run = env
        .orch()
        .args(["run", "set-base", "HEAD", "--run", "calc"])
        .ok()["run"]
        .clone();
    assert_eq!(run["base_ref"], Value::Null);
    let events = env.orch().args(["log"]).ok()["events"].clone();
    let moves: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "run.base")
        .collect();
    assert_eq!(moves.len(), 2, "{events}");
    assert_eq!(
        (moves[0]["from"].clone(), moves[0]["to"].clone()),
        (json!("master"), json!("trunk"))
    );
}

#[test]
fn a_cancelled_run_name_is_refused_with_the_reason() {
    let env = TestEnv::new();
    run_init(&env, "calc");
    env.orch().args(["run", "close", "--cancel"]).ok();
    let error = env
        .orch()
        .args(["run", "init", "calc", "--title", "Again"])
        .fails("exists", 4);
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.contains("cancelled") && hint.contains("never reused"),
        "{error}"
    );
    assert_eq!(error["details"]["status"], "cancelled");
}
