//! Code tasks in attempt worktrees: dispatch with real git, the worker's side
//! from inside the worktree, progress from hooks and from reconcile, strict mode, bad
//! refs, stacked bases and their conflicts, crashes at every dispatch step, worktrees
//! deleted by hand, cleanup and reassign. Every test ends with a repository that
//! `git fsck` and `git worktree prune --dry-run` find clean.

use crate::common::{TestEnv, INBOX};
use crate::orch_plan::{add, with_run};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `git ARGS` in `dir` with our binaries on PATH (so the installed hooks record);
/// asserts success and returns trimmed stdout.
fn git_tools(env: &TestEnv, dir: &Path, args: &[&str]) -> String {
    let run = env.git_with_tools().dir(dir).args(args).run();
    assert_eq!(run.code, 0, "git {args:?} failed: {}", run.stderr);
    run.stdout.trim().to_owned()
}

/// `git inbox --json ARGS` run through git from `dir`, as a worker types it; `data`.
fn inbox_in(env: &TestEnv, dir: &Path, args: &[&str]) -> Value {
    let run = env
        .git_with_tools()
        .dir(dir)
        .args(["inbox", "--json"])
        .args(args)
        .run();
    run.data()
}

/// Writes `file` in `dir` and commits it (hooks on); returns the new HEAD.
fn commit_in(env: &TestEnv, dir: &Path, file: &str, text: &str, message: &str) -> String {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    git_tools(env, dir, &["add", "--", file]);
    git_tools(env, dir, &["commit", "-q", "-m", message]);
    env.git_in(dir, &["rev-parse", "HEAD"])
}

/// The same without any hook: a commit git-orch can only find by reading the branch.
fn commit_quietly(env: &TestEnv, dir: &Path, file: &str, text: &str, message: &str) -> String {
    std::fs::write(dir.join(file), text).unwrap();
    env.git_in(dir, &["add", "--", file]);
    env.git_in(
        dir,
        &[
            "-c",
            "core.hooksPath=/dev/null",
            "commit",
            "-q",
            "-m",
            message,
        ],
    );
    env.git_in(dir, &["rev-parse", "HEAD"])
}

fn dispatch(env: &TestEnv, args: &[&str]) -> Value {
    env.orch().arg("dispatch").args(args).ok()
}

fn dispatch_one(env: &TestEnv, args: &[&str]) -> Value {
    let data = dispatch(env, args);
    assert_eq!(data["attempts"].as_array().unwrap().len(), 1, "{data}");
    data["attempts"][0].clone()
}

fn show(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()
}

fn current(env: &TestEnv, key: &str) -> Value {
    show(env, key)["task"]["current_attempt"].clone()
}

fn worktree_of(attempt: &Value) -> PathBuf {
    PathBuf::from(attempt["worktree"].as_str().expect("a worktree"))
}

/// Attempt branches, sorted.
fn branches(env: &TestEnv) -> Vec<String> {
    let out = env.git(&[
        "for-each-ref",
        "--format=%(refname:short)",
        "refs/heads/orch/",
    ]);
    out.lines().map(str::to_owned).collect()
}

/// Refs under `prefix`, sorted.
fn refs(env: &TestEnv, prefix: &str) -> Vec<String> {
    let out = env.git(&["for-each-ref", "--format=%(refname)", prefix]);
    out.lines().map(str::to_owned).collect()
}

/// Linked worktrees git knows (the main one left out).
fn linked_worktrees(env: &TestEnv) -> Vec<PathBuf> {
    env.git(&["worktree", "list", "--porcelain"])
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .skip(1)
        .map(PathBuf::from)
        .collect()
}

fn events(env: &TestEnv, kind: &str) -> Vec<Value> {
    env.orch().arg("log").ok()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

fn reconcile(env: &TestEnv) -> Vec<Value> {
    env.orch().arg("reconcile").ok()["changes"]
        .as_array()
        .unwrap()
        .clone()
}

/// `git fsck` finds nothing wrong and no worktree is left half-registered.
fn assert_healthy(env: &TestEnv) {
    let fsck = env.git(&["fsck", "--no-dangling", "--no-progress"]);
    assert!(fsck.is_empty(), "fsck: {fsck}");
    let prune = env.git(&["worktree", "prune", "--dry-run", "-v"]);
    assert!(prune.is_empty(), "stale worktrees: {prune}");
    for path in linked_worktrees(env) {
        assert!(path.is_dir(), "{} is registered but gone", path.display());
        env.git_in(&path, &["status", "--porcelain"]);
    }
}

/// Every attempt branch belongs to an attempt that records it.
fn assert_no_orphans(env: &TestEnv) {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT branch FROM attempts WHERE branch IS NOT NULL ORDER BY branch")
        .unwrap();
    let owned: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for branch in branches(env) {
        assert!(owned.contains(&branch), "stray branch {branch}");
    }
    let preparing: i64 = db
        .query_row(
            "SELECT count(*) FROM attempts WHERE status = 'preparing'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(preparing, 0, "attempts stuck in preparing");
    let recorded: Vec<String> = db
        .prepare("SELECT worktree FROM attempts WHERE worktree IS NOT NULL")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    for path in linked_worktrees(env) {
        assert!(
            recorded.contains(&path.to_string_lossy().into_owned()),
            "stray worktree {}",
            path.display()
        );
    }
}

fn marker_of(env: &TestEnv, worktree: &Path) -> Value {
    let git_dir = env.git_in(worktree, &["rev-parse", "--absolute-git-dir"]);
    let text = std::fs::read_to_string(Path::new(&git_dir).join("orch-attempt")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[cfg(unix)]
fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_code_attempt_from_dispatch_to_done() {
    // The user has a post-commit hook of their own before git-orch arrives.
    let env = TestEnv::bare_repo();
    let log = env.root().join("user-hook.log");
    write_executable(
        &env.repo.join(".git/hooks/post-commit"),
        &format!(
            "#!/bin/sh\necho \"user hook $(git rev-parse HEAD)\" >> '{}'\n",
            log.display()
        ),
    );
    env.orch().arg("init").ok();
    env.orch()
        .args(["run", "init", "r1", "--title", "Run one"])
        .ok();
    add(
        &env,
        "lexer",
        &["--to", "worker-1", "--body", "Write the lexer"],
    );
    let main_head = env.git(&["rev-parse", "HEAD"]);

    let attempt = dispatch_one(&env, &["lexer"]);
    let wt = worktree_of(&attempt);
    assert_eq!(wt, env.root().join("repo.worktrees/r1/lexer-1"));
    assert!(wt.join("README.md").is_file());
    assert_eq!(attempt["branch"], "orch/r1/lexer-1");
    assert_eq!(attempt["base_ref"], "HEAD");
    assert_eq!(attempt["base_sha"], main_head.as_str());
    assert_eq!(attempt["head_sha"], Value::Null);
    assert_eq!(attempt["commits"], 0);
    assert_eq!(attempt["agent"], "worker-1");
    assert_eq!(
        env.git_in(&wt, &["symbolic-ref", "--short", "HEAD"]),
        "orch/r1/lexer-1"
    );
    assert_eq!(linked_worktrees(&env), std::slice::from_ref(&wt));

    // The thread's data names the workspace; the marker ties the worktree to it.
    let thread_id = attempt["thread"].as_i64().unwrap();
    let thread = env.show(thread_id)["thread"].clone();
    for (key, value) in [
        ("run", json!("r1")),
        ("task", json!("lexer")),
        ("attempt", attempt["id"].clone()),
        ("worktree", json!(wt.to_str().unwrap())),
        ("branch", json!("orch/r1/lexer-1")),
        ("base_sha", json!(main_head)),
        ("title", json!("Do lexer")),
    ] {
        assert_eq!(thread["data"][key], value, "thread data {key}");
    }
    assert_eq!(
        marker_of(&env, &wt),
        json!({"run": "r1", "task": "lexer", "attempt": attempt["id"], "thread": thread_id, "agent": "worker-1"})
    );
    // Nothing of it shows in either worktree, and the config is untouched.
    assert!(env.git_in(&wt, &["status", "--porcelain"]).is_empty());
    assert!(env.git(&["status", "--porcelain"]).is_empty());
    assert!(!std::fs::read_to_string(env.repo.join(".git/config"))
        .unwrap()
        .contains("orch"));

    // The worker needs no ids and no --agent inside the worktree.
    let whoami = inbox_in(&env, &wt, &["whoami"]);
    assert_eq!(whoami["agent"], "worker-1");
    assert_eq!(whoami["source"], "worktree");
    let outside = inbox_in(&env, &env.repo, &["--agent", "x", "whoami"]);
    assert_eq!(outside["thread"], Value::Null, "outside the worktree");
    let claimed = inbox_in(&env, &wt, &["claim"]);
    assert_eq!(claimed["thread"]["id"], thread_id);
    assert_eq!(claimed["thread"]["claimed_by"], "worker-1");

    // A commit records progress on the thread and moves the attempt's head.
    let first = commit_in(&env, &wt, "src/lexer.rs", "one\ntwo\n", "Add the lexer");
    let attempt = current(&env, "lexer");
    assert_eq!(attempt["status"], "running");
    assert_eq!(attempt["head_sha"], first.as_str());
    assert_eq!(attempt["commits"], 1);
    let second = commit_in(&env, &wt, "src/lexer.rs", "one\n2\nthree\n", "Fix it");
    let attempt = current(&env, "lexer");
    assert_eq!(attempt["head_sha"], second.as_str());
    assert_eq!(attempt["commits"], 2);
    let progress = events(&env, "attempt.progress");
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(progress[1]["attempt"], attempt["id"]);
    assert_eq!(progress[1]["actor"], "worker-1");
    assert_eq!(
        progress[1]["data"],
        json!({"sha": second, "subject": "Fix it", "files_changed": 1, "insertions": 2,
               "deletions": 1, "commits": 2, "source": "hook"})
    );
    let messages = env.show(thread_id)["messages"].clone();
    let recorded: Vec<&Value> = messages
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "progress")
        .collect();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0]["data"]["sha"], first.as_str());
    assert_eq!(recorded[0]["author"], "worker-1");
    // The user's own hook ran for both commits, in the attempt worktree too.
    let user_log = std::fs::read_to_string(&log).unwrap();
    assert!(
        user_log.contains(&format!("user hook {first}")),
        "{user_log}"
    );
    assert!(
        user_log.contains(&format!("user hook {second}")),
        "{user_log}"
    );
    // Reconcile finds nothing new: the hooks told it all.
    assert!(reconcile(&env)
        .iter()
        .all(|e| e["kind"] != "attempt.progress"));

    let done = inbox_in(&env, &wt, &["done", "--body", "lexer ready"]);
    assert_eq!(done["thread"]["status"], "done");
    let shown = show(&env, "lexer");
    assert_eq!(shown["task"]["status"], "done");
    let attempt = &shown["attempts"][0];
    assert_eq!(attempt["status"], "succeeded");
    assert_eq!(attempt["head_sha"], second.as_str());
    assert_eq!(attempt["commits"], 2);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn a_queue_attempt_worker_is_named_after_the_queue_and_the_attempt() {
    let env = with_run();
    add(&env, "parser", &[]);
    let attempt = dispatch_one(&env, &["parser"]);
    let wt = worktree_of(&attempt);
    let me = env
        .git_with_tools()
        .dir(&wt)
        .args(["inbox", "--json", "whoami"])
        .run()
        .data();
    let expected = format!("workers-{}", attempt["id"]);
    assert_eq!(me["agent"], expected.as_str());
    assert_eq!(me["source"], "worktree");
    assert_eq!(
        (me["n"].clone(), me["max_attempts"].clone()),
        (json!(1), json!(3))
    );
    let claimed = inbox_in(&env, &wt, &["claim"]);
    assert_eq!(claimed["thread"]["claimed_by"], expected.as_str());
    inbox_in(&env, &wt, &["done", "--result", "{}"]);
    assert_eq!(current(&env, "parser")["agent"], expected.as_str());
}

#[test]
fn a_queue_attempt_takes_its_agent_from_orch_agent() {
    let env = with_run();
    add(&env, "parser", &[]);
    let attempt = dispatch_one(&env, &["parser"]);
    assert_eq!(attempt["agent"], Value::Null);
    let wt = worktree_of(&attempt);
    assert_eq!(marker_of(&env, &wt)["agent"], Value::Null);

    let claimed = env
        .git_with_tools()
        .dir(&wt)
        .env("ORCH_AGENT", "w7")
        .args(["inbox", "--json", "claim"])
        .run()
        .data();
    assert_eq!(claimed["thread"]["id"], attempt["thread"]);
    assert_eq!(claimed["thread"]["claimed_by"], "w7");
    let head = env
        .git_with_tools()
        .dir(&wt)
        .env("ORCH_AGENT", "w7")
        .args(["commit", "-q", "--allow-empty", "-m", "empty"])
        .run();
    assert_eq!(head.code, 0, "{}", head.stderr);
    let attempt = current(&env, "parser");
    assert_eq!(attempt["agent"], "w7");
    assert_eq!(attempt["commits"], 1);
    assert_healthy(&env);
}

#[test]
fn commits_without_hooks_are_found_by_reconcile() {
    let env = with_run();
    add(&env, "a", &[]);
    let attempt = dispatch_one(&env, &["a"]);
    let wt = worktree_of(&attempt);
    let sha = commit_quietly(&env, &wt, "a.txt", "a\nb\n", "Quiet work");
    let changes = reconcile(&env);
    let progress: Vec<&Value> = changes
        .iter()
        .filter(|e| e["kind"] == "attempt.progress")
        .collect();
    assert_eq!(progress.len(), 1, "{changes:?}");
    assert_eq!(
        progress[0]["data"],
        json!({"sha": sha, "subject": "Quiet work", "files_changed": 1, "insertions": 2,
               "deletions": 0, "commits": 1, "source": "reconcile"})
    );
    let attempt = current(&env, "a");
    assert_eq!(attempt["head_sha"], sha.as_str());
    assert_eq!(attempt["commits"], 1);
    assert!(
        reconcile(&env).is_empty(),
        "a second reconcile changes nothing"
    );
}

#[test]
fn a_dirty_main_worktree_refuses_and_creates_nothing() {
    let env = with_run();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    std::fs::write(env.repo.join("README.md"), "changed\n").unwrap();
    std::fs::write(env.repo.join("notes.txt"), "untracked\n").unwrap();

    let err = env
        .orch()
        .args(["dispatch", "a"])
        .fails("dirty_worktree", 6);
    assert_eq!(err["details"]["paths"], json!(["README.md"]));
    assert!(err["hint"].as_str().unwrap().contains("--base"));
    assert!(branches(&env).is_empty());
    assert!(linked_worktrees(&env).is_empty());
    assert!(!env.root().join("repo.worktrees/r1/a-1").exists());
    assert_eq!(env.count("attempts"), 0);
    assert_eq!(env.count("threads"), 0);
    assert_eq!(show(&env, "a")["task"]["status"], "ready");
    assert!(!env.repo.join(".git/orch/dispatch/1.lock").exists());

    // An explicit base skips the check; the dirt stays where it was.
    let attempt = dispatch_one(&env, &["a", "--base", "HEAD"]);
    assert_eq!(attempt["base_ref"], "HEAD");
    assert_eq!(
        std::fs::read_to_string(worktree_of(&attempt).join("README.md")).unwrap(),
        "hello\n"
    );

    // Untracked files count only with orch.strictUntracked.
    env.git(&["checkout", "--", "README.md"]);
    env.git(&["config", "orch.strictUntracked", "true"]);
    let err = env
        .orch()
        .args(["dispatch", "b"])
        .fails("dirty_worktree", 6);
    assert_eq!(err["details"]["paths"], json!(["notes.txt"]));
    assert_eq!(env.count("attempts"), 1);
    env.git(&["config", "orch.strictUntracked", "false"]);
    dispatch_one(&env, &["b"]);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn bases_resolve_any_revspec_and_bad_ones_are_bad_ref() {
    let env = with_run();
    let first = env.git(&["rev-parse", "HEAD"]);
    std::fs::write(env.repo.join("second.txt"), "2\n").unwrap();
    env.git(&["add", "second.txt"]);
    env.git(&["commit", "-q", "-m", "second"]);
    add(&env, "a", &[]);
    add(&env, "b", &["--base", "no-such-branch"]);
    add(&env, "c", &[]);

    let err = env
        .orch()
        .args(["dispatch", "a", "--base", "nope~3"])
        .fails("bad_ref", 6);
    assert_eq!(err["details"]["ref"], "nope~3");
    let err = env.orch().args(["dispatch", "b"]).fails("bad_ref", 6);
    assert_eq!(err["details"]["ref"], "no-such-branch");
    assert_eq!(env.count("attempts"), 0);
    assert_eq!(env.count("threads"), 0);
    assert!(branches(&env).is_empty());

    let attempt = dispatch_one(&env, &["a", "--base", "main~1"]);
    assert_eq!(attempt["base_ref"], "main~1");
    assert_eq!(attempt["base_sha"], first.as_str());
    assert!(!worktree_of(&attempt).join("second.txt").exists());
    // The task's base, overridden by --base on dispatch.
    let attempt = dispatch_one(&env, &["b", "--base", "main"]);
    assert_eq!(attempt["base_ref"], "main");
    // The run's base comes after the task's.
    env.orch()
        .args(["run", "init", "r2", "--title", "Two", "--base", "main~1"])
        .ok();
    add(&env, "c", &[]);
    let attempt = dispatch_one(&env, &["c"]);
    assert_eq!(attempt["run"], "r2");
    assert_eq!(attempt["base_ref"], "main~1");
    assert_eq!(attempt["base_sha"], first.as_str());
    assert_healthy(&env);
}

/// Dispatches `key`, commits `files` in its worktree, and finishes it as w1.
fn finish_with(env: &TestEnv, key: &str, files: &[(&str, &str)]) -> String {
    let attempt = dispatch_one(env, &[key, "--to", "w1"]);
    let wt = worktree_of(&attempt);
    inbox_in(env, &wt, &["claim"]);
    let mut head = String::new();
    for (file, text) in files {
        head = commit_in(env, &wt, file, text, &format!("{key}: {file}"));
    }
    inbox_in(env, &wt, &["done"]);
    assert_eq!(show(env, key)["task"]["status"], "done");
    head
}

#[test]
fn stacked_bases_from_one_and_from_two_dependencies() {
    let env = with_run();
    add(&env, "a", &[]);
    add(&env, "b", &[]);
    add(&env, "one", &["--after", "a"]);
    add(&env, "two", &["--after", "a", "--after", "b"]);
    add(&env, "review", &["--after", "a", "--kind", "review"]);
    let head_a = finish_with(&env, "a", &[("a.txt", "from a\n")]);
    let head_b = finish_with(&env, "b", &[("b.txt", "from b\n"), ("b2.txt", "more\n")]);

    let one = dispatch_one(&env, &["one"]);
    assert_eq!(one["base_sha"], head_a.as_str());
    assert_eq!(one["base_ref"], "orch/r1/a-1");
    assert_eq!(one["bases_ref"], Value::Null);
    assert!(worktree_of(&one).join("a.txt").is_file());
    assert!(!worktree_of(&one).join("b.txt").exists());

    let two = dispatch_one(&env, &["two"]);
    let merge = two["base_sha"].as_str().unwrap().to_owned();
    assert_eq!(two["base_ref"], "refs/orch/bases/r1/two-1");
    assert_eq!(two["bases_ref"], "refs/orch/bases/r1/two-1");
    assert_eq!(env.git(&["rev-parse", "refs/orch/bases/r1/two-1"]), merge);
    assert_eq!(
        env.git(&["rev-list", "--parents", "-n", "1", &merge]),
        format!("{merge} {head_a} {head_b}")
    );
    let wt = worktree_of(&two);
    for file in ["README.md", "a.txt", "b.txt", "b2.txt"] {
        assert!(wt.join(file).is_file(), "{file} in the stacked worktree");
    }
    let thread = env.show(two["thread"].as_i64().unwrap())["thread"].clone();
    assert_eq!(thread["data"]["base_sha"], merge.as_str());
    assert_eq!(thread["data"]["bases_ref"], "refs/orch/bases/r1/two-1");

    // A review task has no worktree, whatever it depends on.
    let review = dispatch_one(&env, &["review"]);
    assert_eq!(review["worktree"], Value::Null);
    assert_eq!(review["branch"], Value::Null);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn conflicting_dependencies_block_the_task_and_the_others_go_on() {
    let env = with_run();
    add(&env, "x", &[]);
    add(&env, "y", &[]);
    add(&env, "z", &["--after", "x", "--after", "y"]);
    finish_with(&env, "x", &[("shared.txt", "x says\n"), ("x.txt", "x\n")]);
    finish_with(&env, "y", &[("shared.txt", "y says\n")]);
    add(&env, "w", &[]);

    let data = dispatch(&env, &["--all-ready"]);
    let started: Vec<&str> = data["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["task"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["w"]);
    let blocked = &data["blocked"][0];
    assert_eq!(blocked["key"], "z");
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["blocked_reason"], "base_conflict");
    assert_eq!(blocked["blocked_detail"]["paths"], json!(["shared.txt"]));
    assert_eq!(blocked["blocked_detail"]["deps"], json!(["x", "y"]));
    assert_eq!(
        blocked["blocked_detail"]["heads"].as_array().unwrap().len(),
        2
    );

    let listed = env.orch().arg("blocked").ok()["tasks"].clone();
    assert_eq!(listed[0]["key"], "z");
    assert_eq!(listed[0]["blocked_detail"]["paths"], json!(["shared.txt"]));
    let human = env.orch().arg("blocked").run();
    assert!(human.stdout.contains("shared.txt"), "{}", human.stdout);
    assert!(human.stdout.contains("--base"), "{}", human.stdout);
    let shown = show(&env, "z");
    assert_eq!(shown["task"]["blocked_reason"], "base_conflict");
    assert_eq!(shown["attempts"], json!([]));
    assert!(!branches(&env).contains(&"orch/r1/z-1".to_owned()));
    assert!(refs(&env, "refs/orch/bases/").is_empty());
    assert!(!env.root().join("repo.worktrees/r1/z-1").exists());
    assert_eq!(env.count("attempts"), 3);

    // Named alone, the same conflict answers as the blocked list does.
    let again = dispatch(&env, &["z"]);
    assert_eq!(again["attempts"], json!([]));
    assert_eq!(again["blocked"][0]["key"], "z");
    // The leader resolves it by hand and dispatches from the resolution.
    env.git(&["checkout", "-q", "-b", "resolved", "orch/r1/x-1"]);
    let merged = env
        .git_with_tools()
        .args(["merge", "-q", "--no-edit", "orch/r1/y-1"])
        .run();
    assert_ne!(merged.code, 0, "the merge conflicts");
    std::fs::write(env.repo.join("shared.txt"), "both say\n").unwrap();
    env.git(&["add", "shared.txt"]);
    env.git(&["commit", "-q", "--no-edit"]);
    env.git(&["checkout", "-q", "main"]);
    let attempt = dispatch_one(&env, &["z", "--base", "resolved"]);
    assert_eq!(attempt["base_ref"], "resolved");
    assert_eq!(
        std::fs::read_to_string(worktree_of(&attempt).join("shared.txt")).unwrap(),
        "both say\n"
    );
    let task = show(&env, "z")["task"].clone();
    assert_eq!(task["status"], "dispatched");
    assert_eq!(task["blocked_reason"], Value::Null);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

/// `git orch dispatch KEY` killed right after `step`.
fn crash_after(env: &TestEnv, step: &str, key: &str) {
    let run = env
        .orch()
        .env("ORCH_TEST_CRASH_AFTER", step)
        .args(["dispatch", key])
        .run();
    assert_ne!(run.code, 0, "dispatch {key} should have died after {step}");
    assert!(run.stdout.is_empty(), "{step}: {}", run.stdout);
}

fn repairs(changes: &[Value]) -> Vec<(String, String)> {
    changes
        .iter()
        .filter(|e| e["kind"] == "attempt.repair")
        .map(|e| {
            (
                e["task"].as_str().unwrap().to_owned(),
                e["data"]["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn preparing(env: &TestEnv, key: &str) -> i64 {
    env.db()
        .query_row(
            "SELECT id FROM attempts WHERE task = ?1 AND status = 'preparing'",
            [key],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_crash_after_any_dispatch_step_is_repaired_by_reconcile() {
    let env = with_run();
    let steps = ["allocate", "worktree", "thread", "marker", "store"];
    for step in steps {
        add(&env, step, &["--to", "w1"]);
    }

    // allocate: a `preparing` row and nothing else. While a dispatcher holds its lock
    // it is left alone; once the lock is free it is undone.
    crash_after(&env, "allocate", "allocate");
    let id = preparing(&env, "allocate");
    assert!(branches(&env).is_empty());
    let lock_path = env.repo.join(format!(".git/orch/dispatch/{id}.lock"));
    let held = std::fs::File::options()
        .write(true)
        .open(&lock_path)
        .unwrap();
    held.lock().unwrap();
    assert!(
        reconcile(&env).is_empty(),
        "a dispatch in progress is left alone"
    );
    assert_eq!(preparing(&env, "allocate"), id);
    drop(held);
    assert_eq!(
        repairs(&reconcile(&env)),
        [("allocate".to_owned(), "undone".to_owned())]
    );
    assert_eq!(show(&env, "allocate")["attempts"], json!([]));
    assert!(!lock_path.exists());

    // worktree: branch and worktree made, no thread. Someone found the worktree and
    // worked in it meanwhile: the commit and the uncommitted edit are kept under refs.
    crash_after(&env, "worktree", "worktree");
    preparing(&env, "worktree");
    let orphan = env.root().join("repo.worktrees/r1/worktree-1");
    assert!(orphan.is_dir());
    assert_eq!(branches(&env), ["orch/r1/worktree-1"]);
    let work = commit_quietly(&env, &orphan, "found.txt", "work\n", "Work in a stray tree");
    std::fs::write(orphan.join("README.md"), "edited, not committed\n").unwrap();
    assert_eq!(
        repairs(&reconcile(&env)),
        [("worktree".to_owned(), "undone".to_owned())]
    );
    assert!(!orphan.exists());
    assert!(branches(&env).is_empty());
    // The rescue commit sits on top of the work, so the branch needed no ref of its own.
    assert!(refs(&env, "refs/orch/orphans/").is_empty());
    let rescue = env.git(&["rev-parse", "refs/orch/rescue/r1/worktree-1"]);
    assert_eq!(env.git(&["rev-parse", &format!("{rescue}^")]), work);
    assert_eq!(
        env.git(&["show", &format!("{rescue}:README.md")]),
        "edited, not committed"
    );
    assert_eq!(env.count("threads"), 0);

    // thread and marker: the thread exists, so the dispatch is finished.
    for step in ["thread", "marker"] {
        crash_after(&env, step, step);
        let id = preparing(&env, step);
        let wt = env.root().join(format!("repo.worktrees/r1/{step}-1"));
        let git_dir = env.git_in(&wt, &["rev-parse", "--absolute-git-dir"]);
        assert_eq!(
            Path::new(&git_dir).join("orch-attempt").exists(),
            step == "marker"
        );
        let status: String = env
            .db()
            .query_row("SELECT status FROM tasks WHERE key = ?1", [step], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "ready", "{step}: the task was not dispatched yet");
        assert_eq!(
            repairs(&reconcile(&env)),
            [(step.to_owned(), "finished".to_owned())]
        );
        let attempt = current(&env, step);
        assert_eq!(attempt["id"], id);
        assert_eq!(attempt["status"], "dispatched");
        assert_eq!(show(&env, step)["task"]["status"], "dispatched");
        assert_eq!(marker_of(&env, &wt)["thread"], attempt["thread"]);
        assert_eq!(marker_of(&env, &wt)["agent"], "w1");
    }
    assert_eq!(env.count("threads"), 2);

    // store: everything was done but the answer; nothing to repair.
    crash_after(&env, "store", "store");
    assert_eq!(current(&env, "store")["status"], "dispatched");
    assert!(repairs(&reconcile(&env)).is_empty());
    assert!(reconcile(&env).is_empty(), "idempotent");
    assert_eq!(env.count("threads"), 3);

    // The undone tasks dispatch again as attempt 1.
    for key in ["allocate", "worktree"] {
        let attempt = dispatch_one(&env, &[key]);
        assert_eq!(attempt["n"], 1);
    }
    let locks: Vec<_> = env
        .repo
        .join(".git/orch/dispatch")
        .read_dir()
        .unwrap()
        .collect();
    assert!(locks.is_empty(), "{locks:?}");
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn orphan_branches_and_worktrees_are_taken_back_keeping_their_commits() {
    let env = with_run();
    let stray = env.root().join("repo.worktrees/r1/ghost-1");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "orch/r1/ghost-1",
        stray.to_str().unwrap(),
    ]);
    let work = commit_quietly(&env, &stray, "ghost.txt", "boo\n", "Ghost work");
    env.git(&["branch", "orch/r1/empty-1"]);
    env.git(&["branch", "orch/elsewhere"]);
    env.git(&["branch", "orch/not-a-run/x-1"]);

    let changes = reconcile(&env);
    let orphans: Vec<&Value> = changes
        .iter()
        .filter(|e| e["data"]["action"] == "orphan")
        .collect();
    assert_eq!(orphans.len(), 2, "{changes:?}");
    assert_eq!(branches(&env), ["orch/elsewhere", "orch/not-a-run/x-1"]);
    assert!(!stray.exists());
    assert_eq!(
        refs(&env, "refs/orch/orphans/"),
        ["refs/orch/orphans/r1/ghost-1"]
    );
    assert_eq!(
        env.git(&["rev-parse", "refs/orch/orphans/r1/ghost-1"]),
        work
    );
    assert!(reconcile(&env).is_empty());
    assert_healthy(&env);
}

#[test]
fn a_worktree_deleted_by_hand_makes_its_attempt_lost() {
    let env = with_run();
    add(&env, "a", &["--max-attempts", "2"]);
    let attempt = dispatch_one(&env, &["a", "--to", "w1"]);
    let wt = worktree_of(&attempt);
    inbox_in(&env, &wt, &["claim"]);
    std::fs::remove_dir_all(&wt).unwrap();

    let status = env.orch().arg("status").ok();
    let task = &status["tasks"][0];
    assert_eq!(task["status"], "ready");
    assert_eq!(task["current_attempt"]["status"], "lost");
    assert_eq!(
        task["current_attempt"]["failure"],
        json!({"reason": "worktree_deleted", "retryable": true})
    );
    let thread = env.show(attempt["thread"].as_i64().unwrap())["thread"].clone();
    assert_eq!(thread["status"], "cancelled");
    assert!(reconcile(&env).is_empty());

    let second = dispatch_one(&env, &["a"]);
    assert_eq!(second["n"], 2);
    std::fs::remove_dir_all(worktree_of(&second)).unwrap();
    assert!(reconcile(&env)
        .iter()
        .any(|e| e["kind"] == "task.status" && e["to"] == "failed"));
    // Cleanup forgets the folders git still had registered.
    let report = env.orch().arg("cleanup").ok();
    assert_eq!(report["removed"].as_array().unwrap().len(), 2);

    // A worktree moved with `git worktree move` is followed, not lost.
    add(&env, "b", &[]);
    let moving = dispatch_one(&env, &["b"]);
    let to = env.root().join("elsewhere-b");
    env.git(&[
        "worktree",
        "move",
        worktree_of(&moving).to_str().unwrap(),
        to.to_str().unwrap(),
    ]);
    reconcile(&env);
    let followed = current(&env, "b");
    assert_eq!(followed["status"], "dispatched");
    assert_eq!(followed["worktree"], to.to_str().unwrap());
    let sha = commit_quietly(&env, &to, "b.txt", "b\n", "Work after the move");
    assert_eq!(current(&env, "b")["head_sha"], sha.as_str());
    assert_healthy(&env);
}

#[test]
fn cleanup_skips_dirty_worktrees_and_rescues_them_with_force() {
    let env = with_run();
    env.git(&["config", "user.name", "Repo User"]);
    std::fs::write(env.repo.join(".gitignore"), "*.log\n").unwrap();
    env.git(&["add", ".gitignore"]);
    env.git(&["commit", "-q", "-m", "ignore logs"]);
    add(&env, "clean", &[]);
    add(&env, "dirty", &[]);
    add(&env, "live", &[]);
    let clean = finish_with(&env, "clean", &[]);
    let dirty_head = finish_with(&env, "dirty", &[("work.txt", "done work\n")]);
    let live = dispatch_one(&env, &["live"]);
    let dirty_wt = env.root().join("repo.worktrees/r1/dirty-1");
    std::fs::write(dirty_wt.join("work.txt"), "more work, uncommitted\n").unwrap();
    std::fs::write(dirty_wt.join("new.txt"), "untracked\n").unwrap();
    std::fs::write(dirty_wt.join("build.log"), "ignored\n").unwrap();
    assert!(clean.is_empty(), "no commits in clean");

    let dry = env.orch().args(["cleanup", "--dry-run"]).ok();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["removed"][0]["task"], "clean");
    assert_eq!(dry["skipped"][0]["attempt"]["task"], "dirty");
    assert!(env.root().join("repo.worktrees/r1/clean-1").exists());

    let report = env.orch().arg("cleanup").ok();
    let removed = report["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["task"], "clean");
    assert!(removed[0]["worktree_removed_at"].is_string());
    assert!(!env.root().join("repo.worktrees/r1/clean-1").exists());
    let skipped = &report["skipped"][0];
    assert_eq!(skipped["attempt"]["task"], "dirty");
    assert!(skipped["reason"]
        .as_str()
        .unwrap()
        .contains("uncommitted changes"));
    assert_eq!(skipped["paths"], json!(["new.txt", "work.txt"]));
    assert!(dirty_wt.exists());
    // Branches stay without --prune-branches; live attempts are never touched.
    assert!(branches(&env).contains(&"orch/r1/clean-1".to_owned()));
    assert!(worktree_of(&live).exists());

    let forced = env.orch().args(["cleanup", "--force"]).ok();
    let rescued = &forced["removed"][0];
    assert_eq!(rescued["task"], "dirty");
    assert_eq!(rescued["rescue_ref"], "refs/orch/rescue/r1/dirty-1");
    assert!(!dirty_wt.exists());
    let rescue = "refs/orch/rescue/r1/dirty-1";
    assert_eq!(env.git(&["rev-parse", &format!("{rescue}^")]), dirty_head);
    assert_eq!(
        env.git(&["show", &format!("{rescue}:work.txt")]),
        "more work, uncommitted"
    );
    assert_eq!(
        env.git(&["show", &format!("{rescue}:new.txt")]),
        "untracked"
    );
    let files = env.git(&["ls-tree", "-r", "--name-only", rescue]);
    assert!(!files.contains("build.log"), "{files}");
    // Made with the identity a commit there would get (here the environment's).
    assert_eq!(
        env.git(&["log", "-1", "--format=%an", rescue]),
        "Test Author"
    );
    assert!(env.orch().arg("cleanup").ok()["removed"]
        .as_array()
        .unwrap()
        .is_empty());

    // Pruning: clean's branch is merged into the base and goes. Dirty's is kept by its
    // rescue ref, but it is the task's result and has not landed: it stays (SPEC §13).
    // The live attempt's branch stays. Worktrees removed before are not listed again.
    let pruned = env.orch().args(["cleanup", "--prune-branches"]).ok();
    assert_eq!(pruned["removed"], json!([]), "{pruned}");
    assert_eq!(
        pruned["branches"][0]["branch"], "orch/r1/clean-1",
        "{pruned}"
    );
    assert_eq!(
        pruned["kept_branches"][0]["branch"], "orch/r1/dirty-1",
        "{pruned}"
    );
    assert_eq!(branches(&env), ["orch/r1/dirty-1", "orch/r1/live-1"]);
    assert_eq!(env.git(&["rev-parse", &format!("{rescue}^")]), dirty_head);
    let attempts = show(&env, "dirty")["attempts"].clone();
    assert!(attempts[0]["branch_deleted_at"].is_null());
    assert_eq!(events(&env, "attempt.cleanup").len(), 4);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn reassign_starts_from_the_old_head_unless_fresh() {
    let env = with_run();
    add(&env, "a", &[]);
    let first = dispatch_one(&env, &["a", "--to", "w1"]);
    let wt = worktree_of(&first);
    inbox_in(&env, &wt, &["claim"]);
    let head = commit_quietly(&env, &wt, "half.txt", "half done\n", "Half of it");

    let second = env.orch().args(["reassign", "a", "--to", "w2"]).ok()["attempts"][0].clone();
    assert_eq!(second["n"], 2);
    assert_eq!(second["base_ref"], "orch/r1/a-1");
    assert_eq!(second["base_sha"], head.as_str());
    assert_eq!(second["agent"], "w2");
    assert!(worktree_of(&second).join("half.txt").is_file());
    assert_eq!(marker_of(&env, &worktree_of(&second))["agent"], "w2");
    // The old worktree stays for cleanup; its attempt is over.
    assert!(wt.exists());
    assert_eq!(show(&env, "a")["attempts"][0]["status"], "cancelled");

    let main = env.git(&["rev-parse", "HEAD"]);
    let third = env
        .orch()
        .args(["reassign", "a", "--to", "w3", "--fresh"])
        .ok()["attempts"][0]
        .clone();
    assert_eq!(third["base_sha"], main.as_str());
    assert!(!worktree_of(&third).join("half.txt").exists());

    // A retry of a code task makes a new worktree too.
    env.orch().args(["cancel", "a"]).ok();
    let fourth = env.orch().args(["retry", "a"]).ok()["attempts"][0].clone();
    assert_eq!(fourth["n"], 4);
    assert_eq!(
        worktree_of(&fourth),
        env.root().join("repo.worktrees/r1/a-4")
    );
    assert_eq!(linked_worktrees(&env).len(), 4);
    assert_healthy(&env);
    assert_no_orphans(&env);
}

#[test]
fn hooks_outside_attempts_and_for_unknown_attempts_stay_silent() {
    let env = with_run();
    // The main worktree: nothing recorded, nothing said.
    let run = env
        .git_with_tools()
        .args(["commit", "-q", "--allow-empty", "-m", "main work"])
        .run();
    assert_eq!(run.code, 0);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert!(events(&env, "attempt.progress").is_empty());
    // Binaries are where the harness says.
    assert!(Path::new(INBOX).is_file());
}

#[test]
fn a_ref_lock_left_by_a_killed_dispatch_is_removed_when_its_attempt_is_undone() {
    let env = with_run();
    add(&env, "locked", &["--to", "w1"]);
    crash_after(&env, "allocate", "locked");
    // What a SIGKILL of `git update-ref` during the branch step leaves: its lock file.
    let lock = env.repo.join(".git/refs/heads/orch/r1/locked-1.lock");
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    std::fs::write(&lock, "").unwrap();
    let changes = reconcile(&env);
    assert_eq!(
        repairs(&changes),
        [("locked".to_owned(), "undone".to_owned())]
    );
    let repair = changes
        .iter()
        .find(|e| e["kind"] == "attempt.repair")
        .unwrap();
    assert_eq!(
        repair["data"]["stale_ref_locks"],
        json!(["refs/heads/orch/r1/locked-1"])
    );
    assert!(!lock.exists());
    env.orch().args(["dispatch", "locked"]).ok();
    assert_eq!(branches(&env), ["orch/r1/locked-1"]);
}
