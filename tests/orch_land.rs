//! `git orch land` (SPEC §13) against real repositories: dependency order and merge
//! commits, conflicts and failing checks sent back for rework, a hanging or missing
//! check, bad targets, a dirty checked-out target left byte for byte alone, a target
//! moved between merge and update, dry runs, and cleanup that keeps unlanded results.

use crate::common::TestEnv;
use crate::orch_plan::{add, with_run};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn git_tools(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let run = env.git_with_tools().dir(dir).args(args).run();
    assert_eq!(run.code, 0, "git {args:?} failed: {}", run.stderr);
    run.stdout.trim().to_owned()
}

fn inbox_in(env: &TestEnv, dir: &Path, args: &[&str]) -> Value {
    env.git_with_tools()
        .dir(dir)
        .args(["inbox", "--json"])
        .args(args)
        .run()
        .data()
}

fn commit_in(env: &TestEnv, dir: &Path, file: &str, text: &str) -> String {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    git_tools(env, dir, &["add", "--", file]);
    git_tools(env, dir, &["commit", "-q", "-m", &format!("write {file}")]);
    env.git_in(dir, &["rev-parse", "HEAD"])
}

fn show(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()["task"].clone()
}

fn worktree(attempt: &Value) -> PathBuf {
    PathBuf::from(attempt["worktree"].as_str().expect("a worktree"))
}

/// Dispatches `key` to w1 (unless an attempt is in flight), commits `files` in its
/// worktree and finishes it. Returns the head.
fn finish(env: &TestEnv, key: &str, files: &[(&str, &str)]) -> String {
    let task = show(env, key);
    let attempt = match task["status"].as_str() {
        Some("dispatched") => task["current_attempt"].clone(),
        _ => env.orch().args(["dispatch", key, "--to", "w1"]).ok()["attempts"][0].clone(),
    };
    let wt = worktree(&attempt);
    inbox_in(env, &wt, &["claim", "--agent", "w1"]);
    let mut head = String::new();
    for (file, text) in files {
        head = commit_in(env, &wt, file, text);
    }
    inbox_in(env, &wt, &["done", "--agent", "w1"]);
    assert_eq!(show(env, key)["status"], "done");
    head
}

fn land(env: &TestEnv, args: &[&str]) -> Value {
    env.orch().arg("land").args(args).ok()
}

fn keys(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().or(t["task"].as_str()).unwrap().to_owned())
        .collect()
}

fn is_ancestor(env: &TestEnv, a: &str, b: &str) -> bool {
    env.git_with_tools()
        .args(["merge-base", "--is-ancestor", a, b])
        .run()
        .code
        == 0
}

fn assert_healthy(env: &TestEnv) {
    let fsck = env.git(&["fsck", "--no-dangling"]);
    assert!(fsck.is_empty(), "{fsck}");
    let prune = env.git(&["worktree", "prune", "--dry-run", "-v"]);
    assert!(prune.is_empty(), "{prune}");
}

/// Lands onto a side branch nobody has checked out (the main worktree stays as it is).
fn with_integration() -> TestEnv {
    let env = with_run();
    env.git(&["branch", "integration"]);
    env
}

#[test]
fn lands_in_dependency_order_with_a_merge_commit_per_task() {
    let env = with_integration();
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    add(&env, "c", &[]);
    add(&env, "notes", &["--kind", "chore"]);
    let head_c = finish(&env, "c", &[("c.txt", "c\n")]);
    let head_a = finish(&env, "a", &[("a.txt", "a\n")]);
    let head_b = finish(&env, "b", &[("b.txt", "b\n")]);
    let old = env.git(&["rev-parse", "integration"]);

    let report = land(&env, &["--into", "integration"]);
    assert_eq!(keys(&report["landed"]), ["c", "a", "b"]);
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["verified"], true);
    assert_eq!(report["target"]["ref"], "refs/heads/integration");
    assert_eq!(report["target"]["old"], old.as_str());
    let new = env.git(&["rev-parse", "integration"]);
    assert_eq!(report["target"]["new"], new.as_str());
    for head in [&head_a, &head_b, &head_c] {
        assert!(is_ancestor(&env, head, "integration"));
    }
    // The first-parent history reads as the run's story, one merge per task.
    let story = env.git(&[
        "log",
        "--first-parent",
        "--format=%s",
        &format!("{old}..integration"),
    ]);
    let story: Vec<&str> = story.lines().collect();
    assert_eq!(story.len(), 3, "{story:?}");
    assert!(
        story[0].starts_with("land r1/b (attempt 1, w1): "),
        "{story:?}"
    );
    assert!(
        story[2].starts_with("land r1/c (attempt 1, w1): "),
        "{story:?}"
    );
    let body = env.git(&["log", "-1", "--format=%b", "integration"]);
    assert!(
        body.contains("Task: b") && body.contains("Agent: w1"),
        "{body}"
    );
    assert!(body.contains(&format!("Head: {head_b}")), "{body}");

    let a = show(&env, "a");
    assert!(a["landed_at"].is_string());
    let merge_a = a["landed_commit"].as_str().unwrap();
    assert_eq!(env.git(&["rev-parse", &format!("{merge_a}^2")]), head_a);
    let events = env.orch().args(["log"]).ok()["events"].clone();
    let landed: Vec<&Value> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "task.landed")
        .collect();
    assert_eq!(landed.len(), 3);
    assert_eq!(landed[1]["task"], "a");
    assert_eq!(landed[1]["data"]["commit"], merge_a);
    assert_eq!(landed[1]["data"]["into"], "refs/heads/integration");
    // Idempotent: nothing left to land, nothing moves.
    let again = land(&env, &["--into", "integration"]);
    assert_eq!(again["landed"], Value::Array(vec![]));
    assert_eq!(env.git(&["rev-parse", "integration"]), new);
    let human = env.orch().args(["status"]).run();
    assert!(human.stdout.contains("landed"), "{}", human.stdout);
    assert_healthy(&env);
}

#[test]
fn ff_or_merge_fast_forwards_and_a_contained_head_is_recorded() {
    let env = with_integration();
    env.git(&["config", "orch.land.mode", "ff-or-merge"]);
    env.orch()
        .args([
            "run",
            "init",
            "r2",
            "--title",
            "Two",
            "--base",
            "integration",
        ])
        .ok();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    add(&env, "c", &[]);
    let head_a = finish(&env, "a", &[("a.txt", "a\n")]);
    let head_b = finish(&env, "b", &[("b.txt", "b\n")]);
    let head_c = finish(&env, "c", &[("c.txt", "c\n")]);
    // The run's base is the target; the first task fast-forwards it.
    let report = land(&env, &["--task", "a"]);
    assert_eq!(keys(&report["landed"]), ["a"]);
    assert_eq!(env.git(&["rev-parse", "integration"]), head_a);
    assert_eq!(show(&env, "a")["landed_commit"], head_a.as_str());
    // c reaches the target by hand; b then needs a merge commit.
    env.git(&["checkout", "-q", "integration"]);
    env.git(&["merge", "-q", "--no-edit", &head_c]);
    let by_hand = env.git(&["rev-parse", "HEAD"]);
    env.git(&["checkout", "-q", "main"]);
    let report = land(&env, &[]);
    assert_eq!(keys(&report["landed"]), ["b", "c"]);
    assert_eq!(show(&env, "c")["landed_commit"], by_hand.as_str());
    let merge = env.git(&["rev-parse", "integration"]);
    assert_eq!(env.git(&["rev-parse", "integration^2"]), head_b);
    assert_eq!(env.git(&["rev-parse", "integration^1"]), by_hand);
    assert_eq!(show(&env, "b")["landed_commit"], merge.as_str());
    assert_healthy(&env);
}

#[test]
fn a_conflict_goes_back_for_rework_and_the_others_land() {
    let env = with_integration();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    add(&env, "c", &[]);
    add(&env, "after-b", &["--after", "b"]);
    finish(&env, "a", &[("same.txt", "from a\n")]);
    let head_b = finish(&env, "b", &[("same.txt", "from b\n")]);
    finish(&env, "c", &[("c.txt", "c\n")]);
    assert_eq!(show(&env, "after-b")["status"], "ready");
    // The rework's worktree path is taken: its dispatch fails and the task stays blocked.
    let root = env.root().join("repo.worktrees/r1/b-2");
    std::fs::create_dir_all(&root).unwrap();

    let report = land(&env, &["--into", "integration"]);
    assert_eq!(keys(&report["landed"]), ["a", "c"]);
    let reworked = report["reworked"].as_array().unwrap();
    assert_eq!(reworked.len(), 1);
    assert_eq!(reworked[0]["task"], "b");
    assert_eq!(reworked[0]["reason"], "land_conflict");
    assert_eq!(reworked[0]["paths"], serde_json::json!(["same.txt"]));
    assert!(reworked[0]["dispatch_error"].is_string());
    let b = show(&env, "b");
    assert_eq!(b["status"], "blocked");
    assert_eq!(b["blocked_reason"], "land_conflict");
    assert_eq!(
        b["blocked_detail"]["paths"],
        serde_json::json!(["same.txt"])
    );
    let tip = env.git(&["rev-parse", "integration"]);
    assert_eq!(b["blocked_detail"]["base"], tip.as_str());
    let blocked = env.orch().args(["blocked"]).ok();
    assert_eq!(keys(&blocked["tasks"]), ["b"]);
    // A dependent that had not started waits for its dependency's rework.
    assert_eq!(show(&env, "after-b")["status"], "pending");
    assert!(!is_ancestor(&env, &head_b, "integration"));

    // Once the path is free, the next land dispatches the rework from the tip.
    std::fs::remove_dir(&root).unwrap();
    let report = land(&env, &["--into", "integration"]);
    assert_eq!(report["landed"], Value::Array(vec![]));
    let b = show(&env, "b");
    assert_eq!(b["status"], "dispatched");
    assert_eq!(b["blocked_reason"], Value::Null);
    let attempt = b["current_attempt"].clone();
    assert_eq!(attempt["n"], 2);
    assert_eq!(attempt["base_sha"], tip.as_str());
    let thread = env
        .inbox()
        .args(["show", &attempt["thread"].to_string()])
        .ok();
    let brief = thread["messages"][0]["body"].as_str().unwrap().to_owned();
    assert!(
        brief.contains("same.txt") && brief.contains(&head_b),
        "{brief}"
    );

    // The worker merges its old result, resolves, and the rework lands.
    let wt = worktree(&attempt);
    inbox_in(&env, &wt, &["claim", "--agent", "w1"]);
    let merged = env
        .git_with_tools()
        .dir(&wt)
        .args(["merge", "-q", "--no-edit", &head_b])
        .run();
    assert_ne!(merged.code, 0, "the old result conflicts with the tip");
    commit_in(&env, &wt, "same.txt", "from a and b\n");
    inbox_in(&env, &wt, &["done", "--agent", "w1"]);
    let report = land(&env, &["--into", "integration"]);
    assert_eq!(keys(&report["landed"]), ["b"]);
    assert!(is_ancestor(&env, &head_b, "integration"));
    assert_eq!(show(&env, "after-b")["status"], "ready");
    assert_healthy(&env);
}

#[test]
fn a_failing_check_sends_exactly_that_task_back() {
    let env = with_integration();
    add(&env, "good", &[]);
    add(&env, "bad", &[]);
    add(&env, "fine", &[]);
    finish(&env, "good", &[("good.txt", "ok\n")]);
    finish(&env, "bad", &[("bad.txt", "broken\n")]);
    finish(&env, "fine", &[("fine.txt", "ok\n")]);
    let check = "sh -c 'echo checking; ls; test ! -e bad.txt'";
    let report = land(&env, &["--into", "integration", "--check", check]);
    assert_eq!(keys(&report["landed"]), ["good", "fine"]);
    let reworked = report["reworked"].as_array().unwrap();
    assert_eq!(keys(&report["reworked"]), ["bad"]);
    assert_eq!(reworked[0]["reason"], "land_check");
    let output: Vec<&str> = reworked[0]["output"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(
        output.contains(&"checking") && output.contains(&"bad.txt"),
        "{output:?}"
    );
    // The rework went out at once, its brief carrying the check's output.
    let bad = show(&env, "bad");
    assert_eq!(bad["status"], "dispatched");
    let thread = bad["current_attempt"]["thread"].to_string();
    let brief = env.inbox().args(["show", &thread]).ok()["messages"][0]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        brief.contains("fails the land check") && brief.contains("checking"),
        "{brief}"
    );
    // Only checked commits are on the target, and no check worktree is left.
    let files = env.git(&["ls-tree", "--name-only", "integration"]);
    assert!(!files.contains("bad.txt"), "{files}");
    assert!(!env.root().join("repo.worktrees/r1/.land-check").exists());
    assert_healthy(&env);
}

#[test]
fn a_missing_or_hanging_check() {
    let env = with_integration();
    add(&env, "a", &[]);
    finish(&env, "a", &[("a.txt", "a\n")]);
    let before = env.git(&["rev-parse", "integration"]);
    let err = env
        .orch()
        .args([
            "land",
            "--into",
            "integration",
            "--check",
            "no-such-check-x --flag",
        ])
        .fails("invalid_input", 2);
    assert!(
        err["message"].as_str().unwrap().contains("not found"),
        "{err}"
    );
    assert_eq!(show(&env, "a")["status"], "done");
    assert_eq!(env.git(&["rev-parse", "integration"]), before);

    env.git(&[
        "config",
        "orch.land.check",
        "sh -c 'echo hanging; sleep 300'",
    ]);
    env.git(&["config", "orch.land.checkTimeout", "1s"]);
    let started = std::time::Instant::now();
    let report = land(&env, &["--into", "integration"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(keys(&report["reworked"]), ["a"]);
    let output = report["reworked"][0]["output"].to_string();
    assert!(
        output.contains("hanging") && output.contains("ran out of time"),
        "{output}"
    );
    assert_eq!(env.git(&["rev-parse", "integration"]), before);
    assert_healthy(&env);
}

#[test]
fn bad_targets_are_refused() {
    let env = with_integration();
    add(&env, "a", &[]);
    finish(&env, "a", &[("a.txt", "a\n")]);
    env.git(&["tag", "v1"]);
    for (into, reason) in [
        ("nope", "missing"),
        ("v1", "not_a_branch"),
        ("orch/r1/a-1", "attempt_branch"),
    ] {
        let err = env
            .orch()
            .args(["land", "--into", into])
            .fails("bad_ref", 6);
        assert_eq!(err["details"]["reason"], reason, "{err}");
    }
    env.orch().args(["land", "--into", "-x"]).fails("usage", 2);
    assert_eq!(show(&env, "a")["landed_at"], Value::Null);
}

#[test]
fn a_dirty_checked_out_target_is_left_byte_for_byte() {
    let env = with_run();
    add(&env, "a", &[]);
    let head = finish(&env, "a", &[("a.txt", "a\n")]);
    let main_before = env.git(&["rev-parse", "main"]);
    let readme = env.repo.join("README.md");
    std::fs::write(&readme, b"my own edit, not committed\r\n\x00bytes").unwrap();
    let err = env.orch().arg("land").fails("target_busy", 6);
    assert_eq!(err["details"]["worktree"], env.repo.to_str().unwrap());
    assert_eq!(err["details"]["ref"], "refs/orch/land/r1");
    assert_eq!(err["details"]["paths"], serde_json::json!(["README.md"]));
    assert_eq!(
        std::fs::read(&readme).unwrap(),
        b"my own edit, not committed\r\n\x00bytes"
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);
    let waiting = env.git(&["rev-parse", "refs/orch/land/r1"]);
    assert!(is_ancestor(&env, &head, &waiting));
    assert_eq!(show(&env, "a")["landed_at"], Value::Null);

    // An untracked file the fast-forward would overwrite: busy too, the file untouched.
    env.git(&["checkout", "--", "README.md"]);
    std::fs::write(env.repo.join("a.txt"), "mine\n").unwrap();
    env.orch().arg("land").fails("target_busy", 6);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("a.txt")).unwrap(),
        "mine\n"
    );
    assert_eq!(env.git(&["rev-parse", "main"]), main_before);

    // Clean again: the waiting result lands and the files follow.
    std::fs::remove_file(env.repo.join("a.txt")).unwrap();
    let report = land(&env, &[]);
    assert_eq!(keys(&report["landed"]), ["a"]);
    assert_eq!(env.git(&["rev-parse", "main"]), waiting);
    assert_eq!(
        std::fs::read_to_string(env.repo.join("a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    let gone = env
        .git_with_tools()
        .args(["rev-parse", "--verify", "--quiet", "refs/orch/land/r1"])
        .run();
    assert_ne!(gone.code, 0);
    assert_healthy(&env);
}

#[test]
fn a_target_moved_between_merge_and_update_starts_over() {
    let env = with_integration();
    add(&env, "a", &[]);
    let head = finish(&env, "a", &[("a.txt", "a\n")]);
    // Someone else's commit on integration, pushed while land is merging.
    env.git(&["checkout", "-q", "-b", "theirs", "integration"]);
    std::fs::write(env.repo.join("theirs.txt"), "theirs\n").unwrap();
    env.git(&["add", "theirs.txt"]);
    env.git(&["commit", "-q", "-m", "theirs"]);
    let theirs = env.git(&["rev-parse", "HEAD"]);
    env.git(&["checkout", "-q", "main"]);
    let script = env.root().join("move-target.sh");
    let marker = env.root().join("moved-once");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ -e {m} ] && exit 0\ntouch {m}\ngit -C {r} update-ref refs/heads/integration {theirs}\n",
            m = marker.display(),
            r = env.repo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let report = env
        .orch()
        .args(["land", "--into", "integration"])
        .env("ORCH_TEST_LAND_BEFORE_UPDATE", &script)
        .ok();
    assert!(marker.exists());
    assert_eq!(report["restarts"], 1);
    assert_eq!(keys(&report["landed"]), ["a"]);
    // Never forced: their commit stays, under ours.
    assert!(is_ancestor(&env, &theirs, "integration"));
    assert!(is_ancestor(&env, &head, "integration"));
    assert_eq!(env.git(&["rev-parse", "integration^1"]), theirs);
    assert_healthy(&env);
}

#[test]
fn dry_run_writes_nothing() {
    let env = with_integration();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    finish(&env, "a", &[("same.txt", "a\n")]);
    finish(&env, "b", &[("same.txt", "b\n")]);
    let events = env.count("events");
    let refs = env.git(&["for-each-ref"]);
    let report = land(
        &env,
        &["--into", "integration", "--dry-run", "--check", "true"],
    );
    assert_eq!(report["dry_run"], true);
    assert_eq!(keys(&report["landed"]), ["a"]);
    assert_eq!(keys(&report["reworked"]), ["b"]);
    assert_eq!(
        report["reworked"][0]["paths"],
        serde_json::json!(["same.txt"])
    );
    assert_ne!(report["target"]["new"], report["target"]["old"]);
    assert_eq!(env.count("events"), events);
    assert_eq!(env.git(&["for-each-ref"]), refs);
    assert_eq!(show(&env, "b")["status"], "done");
    assert_eq!(
        env.git(&["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        3
    );
}

#[test]
fn prune_branches_keeps_a_result_until_it_lands() {
    let env = with_integration();
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    finish(&env, "a", &[("a.txt", "a\n")]);
    // b starts from a's head, so a's branch holds nothing only it has.
    finish(&env, "b", &[("b.txt", "b\n")]);
    let dry = env
        .orch()
        .args(["cleanup", "--prune-branches", "--dry-run"])
        .ok();
    assert_eq!(dry["removed"].as_array().unwrap().len(), 2);
    let kept: Vec<&str> = dry["kept_branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch"].as_str().unwrap())
        .collect();
    assert_eq!(kept, ["orch/r1/a-1", "orch/r1/b-1"]);
    let out = env.orch().args(["cleanup", "--prune-branches"]).ok();
    assert_eq!(out["branches"], Value::Array(vec![]));
    assert!(env
        .git(&["branch", "--list", "orch/r1/a-1"])
        .contains("a-1"));
    // A second dry run lists no worktree: they are gone already.
    let dry = env
        .orch()
        .args(["cleanup", "--prune-branches", "--dry-run"])
        .ok();
    assert_eq!(dry["removed"], Value::Array(vec![]));

    land(&env, &["--into", "main"]);
    let out = env.orch().args(["cleanup", "--prune-branches"]).ok();
    let deleted: Vec<&str> = out["branches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["branch"].as_str().unwrap())
        .collect();
    assert_eq!(deleted, ["orch/r1/a-1", "orch/r1/b-1"]);
    assert_eq!(env.git(&["branch", "--list", "orch/*"]), "");
    assert_healthy(&env);
}
