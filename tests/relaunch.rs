//! What launches besides `dispatch --launch`: `retry` and `reassign` of a launched
//! attempt (the same profile, or `--launch P`), `council start --launch` (reviewers as
//! agents answering with the review JSON), and `.worktreeinclude` in new worktrees. The
//! agents are the real fixture scripts under real supervisors.

use crate::common::{wait_until, TestEnv};
use crate::orch_plan::{add, with_run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const AGENT_WAIT: Duration = Duration::from_secs(60);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents")
        .join(name)
}

/// A `script` profile running `launched.sh MODE`.
fn profile(env: &TestEnv, name: &str, mode: &str) {
    let command = format!("{} {mode}", fixture("launched.sh").display());
    env.git(&["config", &format!("orch.agent.{name}.command"), &command]);
    env.git(&["config", &format!("orch.agent.{name}.protocol"), "inbox"]);
}

fn current(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()["task"]["current_attempt"].clone()
}

fn until_status(env: &TestEnv, key: &str, want: &str) -> Value {
    wait_until(&format!("{key} to be {want}"), AGENT_WAIT, || {
        let task = env.orch().args(["task", "show", key]).ok()["task"].clone();
        (task["status"] == want).then_some(task)
    })
}

#[test]
fn retry_of_a_launched_attempt_launches_the_same_profile_unless_told_otherwise() {
    let env = with_run();
    profile(&env, "w", "fail");
    add(&env, "a", &["--max-attempts", "1"]);
    env.orch().args(["dispatch", "a", "--launch", "w"]).ok();
    until_status(&env, "a", "failed");

    // The profile's command changed meanwhile: the retry runs the profile as it is now.
    profile(&env, "w", "done");
    let retried = env.orch().args(["retry", "a"]).ok()["attempts"][0].clone();
    let id = retried["id"].as_i64().unwrap();
    assert_eq!(retried["n"], 2);
    assert_eq!(retried["agent"], format!("w-{id}"), "{retried}");
    assert_eq!(retried["launch"]["profile"], "w");
    until_status(&env, "a", "done");
    assert_eq!(current(&env, "a")["launch"]["exit_code"], 0);

    // --launch names another profile; --to hands it to an agent by hand, unlaunched.
    profile(&env, "v", "fail");
    add(&env, "b", &["--max-attempts", "1"]);
    env.orch().args(["dispatch", "b", "--launch", "v"]).ok();
    until_status(&env, "b", "failed");
    let other = env.orch().args(["retry", "b", "--launch=w"]).ok()["attempts"][0].clone();
    assert_eq!(other["launch"]["profile"], "w", "{other}");
    until_status(&env, "b", "done");

    add(&env, "c", &["--max-attempts", "1"]);
    env.orch().args(["dispatch", "c", "--launch", "v"]).ok();
    until_status(&env, "c", "failed");
    let by_hand = env.orch().args(["retry", "c", "--to", "bob"]).ok()["attempts"][0].clone();
    assert_eq!(by_hand["agent"], "bob");
    assert!(by_hand["launch"].is_null(), "{by_hand}");
    env.orch()
        .args(["retry", "c", "--to", "bob", "--launch", "w"])
        .fails("usage", 2);
}

#[test]
fn reassign_of_a_launched_attempt_ends_its_agent_and_launches_a_new_one() {
    let env = with_run();
    profile(&env, "slow", "hang");
    profile(&env, "w", "done");
    add(&env, "a", &[]);
    env.orch().args(["dispatch", "a", "--launch", "slow"]).ok();
    let first = wait_until("the agent to start", AGENT_WAIT, || {
        let a = current(&env, "a");
        a["launch"]["pid"].as_i64().map(|_| a)
    });

    // An unknown profile is refused before the running attempt is touched.
    env.orch()
        .args(["reassign", "a", "--launch", "nope"])
        .fails("unknown_profile", 3);
    assert_eq!(current(&env, "a")["id"], first["id"]);

    let moved = env.orch().args(["reassign", "a", "--launch=w"]).ok()["attempts"][0].clone();
    assert_eq!(moved["n"], 2);
    assert_eq!(moved["launch"]["profile"], "w", "{moved}");
    until_status(&env, "a", "done");
    // The old agent was ended by its supervisor when its thread was cancelled.
    let old = wait_until("the old agent to be ended", AGENT_WAIT, || {
        let agents = env.orch().arg("agents").ok()["agents"].clone();
        agents
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["attempt"] == first["id"] && !a["ended_at"].is_null())
            .cloned()
    });
    assert_eq!(old["state"], "killed", "{old}");
    // The new attempt starts from the old one's branch: reassign keeps the work.
    assert_eq!(moved["base_ref"], first["branch"], "{moved}");

    // Without --to, a task whose attempt was not launched has nobody to go to.
    add(&env, "b", &[]);
    env.orch().args(["dispatch", "b"]).ok();
    env.orch().args(["reassign", "b"]).fails("usage", 2);
}

#[test]
fn a_launched_council_gets_every_review_back_and_an_unknown_profile_starts_nothing() {
    let env = TestEnv::new();
    let command = format!("sh {}", fixture("reviewer.sh").display());
    env.git(&["config", "orch.agent.critic.command", &command]);
    env.git(&["config", "orch.agent.critic.protocol", "inbox"]);
    env.orch()
        .args(["council", "start", "--topic", "T", "--launch", "nope"])
        .fails("unknown_profile", 3);
    assert_eq!(env.count("runs"), 0, "nothing was made");

    let started = env
        .orch()
        .args(["council", "start", "--topic", "Review it"])
        .args(["--reviewers", "reviewer-1,reviewer-2", "--launch", "critic"])
        .ok();
    let brief = started["tasks"][0]["body"].as_str().unwrap().to_owned();
    assert!(brief.contains("git inbox done --result-file"), "{brief}");
    assert!(
        !brief.contains("claim --next"),
        "the supervisor claims: {brief}"
    );
    let waited = env
        .orch()
        .args(["council", "wait", "--timeout", "60s"])
        .ok();
    assert!(
        waited["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "done"),
        "{waited}"
    );
    let tally = env.orch().args(["council", "tally"]).ok();
    assert_eq!(tally["responded"].as_array().unwrap().len(), 2, "{tally}");
    let agents = env.orch().args(["agents", "--run", "r1"]).ok()["agents"].clone();
    assert_eq!(agents.as_array().unwrap().len(), 2, "{agents}");
    assert!(agents[0]["agent"].as_str().unwrap().starts_with("critic-"));
}

#[test]
fn a_new_worktree_gets_the_ignored_files_worktreeinclude_names() {
    let env = with_run();
    let root = env.repo.clone();
    std::fs::write(root.join(".gitignore"), ".env\nbuild/\n").unwrap();
    std::fs::write(root.join(".worktreeinclude"), ".env\n").unwrap();
    env.git(&["add", ".gitignore", ".worktreeinclude"]);
    env.git(&["commit", "-qm", "local files"]);
    std::fs::write(root.join(".env"), "TOKEN=local\n").unwrap();
    std::fs::create_dir_all(root.join("build")).unwrap();
    std::fs::write(root.join("build/out"), "big\n").unwrap();
    add(&env, "a", &[]);
    let attempt = env.orch().args(["dispatch", "a"]).ok()["attempts"][0].clone();
    let worktree = PathBuf::from(attempt["worktree"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(worktree.join(".env")).unwrap(),
        "TOKEN=local\n"
    );
    assert!(
        !worktree.join("build/out").exists(),
        "ignored but not named"
    );
    // Ignored in the worktree too: the copy leaves it clean.
    assert_eq!(env.git_in(&worktree, &["status", "--porcelain"]), "");
}
