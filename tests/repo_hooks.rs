//! The hooks `git orch init` installs: next to the user's own, idempotent,
//! removable, silent outside attempt worktrees, recording commits inside them.

use crate::common::{TestEnv, INBOX};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const HOOKS: [&str; 3] = ["post-commit", "post-merge", "post-rewrite"];

/// PATH with the built binaries first, as after `cargo install`.
fn path_with_binaries() -> String {
    let bins = Path::new(INBOX).parent().unwrap();
    format!(
        "{}:{}",
        bins.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs git in `dir` with the hermetic environment and `path` as PATH.
fn git_with_path(env: &TestEnv, dir: &Path, path: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("git");
    env.hermetic(&mut cmd);
    let out = cmd
        .args(args)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn hooks_dir(env: &TestEnv) -> PathBuf {
    env.repo.join(".git/hooks")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[cfg(unix)]
fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A linked worktree on branch `orch/r1/<task>-1` with an attempt marker for `thread`.
fn attempt_worktree(env: &TestEnv, task: &str, thread: i64) -> PathBuf {
    let path = env.root().join(format!("repo.worktrees/r1/{task}-1"));
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        &format!("orch/r1/{task}-1"),
        path.to_str().unwrap(),
        "HEAD",
    ]);
    let git_dir = env.git_in(&path, &["rev-parse", "--absolute-git-dir"]);
    let marker = serde_json::json!({
        "run": "r1", "task": task, "attempt": 1, "thread": thread, "agent": "w1"
    });
    std::fs::write(Path::new(&git_dir).join("orch-attempt"), marker.to_string()).unwrap();
    path
}

/// A task thread for w1, claimed by w1; returns its id.
fn claimed_task(env: &TestEnv) -> i64 {
    let sent = env
        .sending("leader", "w1", "Lexer")
        .args(["--kind", "task"])
        .ok();
    let id = sent["thread"]["id"].as_i64().unwrap();
    env.inbox()
        .agent("w1")
        .args(["claim", &id.to_string()])
        .ok();
    id
}

fn progress_messages(env: &TestEnv, thread: i64) -> Vec<Value> {
    let shown = env
        .inbox()
        .agent("leader")
        .args(["show", &thread.to_string()])
        .ok();
    shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "progress")
        .cloned()
        .collect()
}

#[test]
fn init_installs_the_three_hooks_and_a_second_init_changes_nothing() {
    let env = TestEnv::bare_repo();
    let first = env.orch().arg("init").ok();
    assert_eq!(first["hooks"]["installed"], serde_json::json!(HOOKS));
    assert_eq!(
        first["hooks"]["dir"].as_str().map(PathBuf::from),
        Some(hooks_dir(&env))
    );
    let before: Vec<String> = HOOKS
        .iter()
        .map(|h| read(&hooks_dir(&env).join(h)))
        .collect();
    for (hook, text) in HOOKS.iter().zip(&before) {
        assert!(
            text.starts_with("#!/bin/sh\n# >>> git-orch >>>\n"),
            "{text}"
        );
        assert!(text.contains(&format!("git-inbox hook {hook} \"$@\"")));
        let status = Command::new("sh")
            .arg("-n")
            .arg(hooks_dir(&env).join(hook))
            .status()
            .unwrap();
        assert!(status.success(), "{hook} is not valid sh");
    }

    let second = env.orch().arg("init").ok();
    assert_eq!(second["hooks"]["installed"], serde_json::json!([]));
    assert_eq!(second["hooks"]["unchanged"], serde_json::json!(HOOKS));
    assert_eq!(second["created"], false);
    let after: Vec<String> = HOOKS
        .iter()
        .map(|h| read(&hooks_dir(&env).join(h)))
        .collect();
    assert_eq!(before, after);

    // `git inbox init` makes the state only.
    let inbox_init = env.inbox().arg("init").ok();
    assert!(inbox_init.get("hooks").is_none());
    // The repository's config is untouched by all of it.
    assert!(!read(&env.repo.join(".git/config")).contains("orch"));
}

#[test]
fn the_users_hooks_keep_their_lines_arguments_and_stdin() {
    let env = TestEnv::bare_repo();
    let log = env.root().join("user-hook.log");
    let user_commit = format!(
        "#!/bin/sh\necho \"post-commit in $(pwd)\" >> '{}'\nexit 0\n",
        log.display()
    );
    let user_rewrite = format!(
        "#!/bin/bash\nset -eu\n{{ echo \"post-rewrite $*\"; cat; }} >> '{}'\n",
        log.display()
    );
    write_executable(&hooks_dir(&env).join("post-commit"), &user_commit);
    write_executable(&hooks_dir(&env).join("post-rewrite"), &user_rewrite);
    let data = env.orch().arg("init").ok();
    assert_eq!(data["hooks"]["installed"], serde_json::json!(HOOKS));
    let installed = read(&hooks_dir(&env).join("post-rewrite"));
    assert!(installed.starts_with("#!/bin/bash\n# >>> git-orch >>>\n"));
    let (_, user_body) = user_rewrite.split_once('\n').unwrap();
    assert!(installed.ends_with(&format!("# <<< git-orch <<<\n{user_body}")));

    let thread = claimed_task(&env);
    let wt = attempt_worktree(&env, "lexer", thread);
    let path = path_with_binaries();
    for dir in [&env.repo, &wt] {
        std::fs::write(dir.join("f.txt"), "one\n").unwrap();
        git_with_path(&env, dir, &path, &["add", "f.txt"]);
        git_with_path(&env, dir, &path, &["commit", "-q", "-m", "one"]);
        let old = git_with_path(&env, dir, &path, &["rev-parse", "HEAD"]);
        git_with_path(
            &env,
            dir,
            &path,
            &["commit", "-q", "--amend", "-m", "one, amended"],
        );
        let new = git_with_path(&env, dir, &path, &["rev-parse", "HEAD"]);
        let (old, new) = (
            String::from_utf8_lossy(&old.stdout).trim().to_owned(),
            String::from_utf8_lossy(&new.stdout).trim().to_owned(),
        );
        let logged = read(&log);
        assert!(
            logged.contains(&format!("post-rewrite amend\n{old} {new}\n")),
            "the user's post-rewrite lost its args or stdin in {}: {logged}",
            dir.display()
        );
        assert!(logged.contains(&format!("post-commit in {}", dir.display())));
    }
    // Our part recorded both commits of the attempt worktree, and only those.
    let progress = progress_messages(&env, thread);
    let hooks: Vec<&str> = progress
        .iter()
        .map(|m| m["data"]["hook"].as_str().unwrap())
        .collect();
    assert_eq!(hooks, ["post-commit", "post-commit", "post-rewrite"]);
}

#[test]
fn uninstall_leaves_exactly_the_users_lines() {
    let env = TestEnv::bare_repo();
    let user = "#!/bin/sh\n# my hook\necho mine\n";
    write_executable(&hooks_dir(&env).join("post-merge"), user);
    env.orch().arg("init").ok();
    assert_ne!(read(&hooks_dir(&env).join("post-merge")), user);

    let removed = env.orch().arg("uninstall-hooks").ok();
    assert_eq!(removed["hooks"]["removed"], serde_json::json!(HOOKS));
    assert_eq!(
        removed["hooks"]["deleted"],
        serde_json::json!(["post-commit", "post-rewrite"])
    );
    assert_eq!(read(&hooks_dir(&env).join("post-merge")), user);
    assert!(!hooks_dir(&env).join("post-commit").exists());
    assert!(!hooks_dir(&env).join("post-rewrite").exists());

    let again = env.orch().arg("uninstall-hooks").ok();
    assert_eq!(again["hooks"]["removed"], serde_json::json!([]));
    assert_eq!(read(&hooks_dir(&env).join("post-merge")), user);
}

#[test]
fn hooks_path_inside_the_work_tree_is_refused() {
    let env = TestEnv::bare_repo();
    for value in [
        ".husky".to_owned(),
        env.repo.join("tools/hooks").display().to_string(),
    ] {
        env.git(&["config", "core.hooksPath", &value]);
        let data = env.orch().arg("init").ok();
        assert_eq!(data["hooks"]["installed"], serde_json::json!([]));
        let skipped = data["hooks"]["skipped"].as_array().unwrap();
        assert_eq!(skipped.len(), 3, "{data}");
        assert!(skipped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("core.hooksPath"));
        assert!(!env.repo.join(".husky").exists());
        assert!(!env.repo.join("tools").exists());
        assert!(!hooks_dir(&env).join("post-commit").exists());
        let human = env.orch().arg("init").run();
        assert_eq!(human.code, 0);
        assert!(human.stdout.contains("Skipped post-commit: core.hooksPath"));
    }

    // Outside the work tree it is used.
    let shared = env.root().join("shared-hooks");
    env.git(&["config", "core.hooksPath", shared.to_str().unwrap()]);
    let data = env.orch().arg("init").ok();
    assert_eq!(data["hooks"]["installed"], serde_json::json!(HOOKS));
    assert!(shared.join("post-commit").exists());
    env.orch().arg("uninstall-hooks").ok();
    assert!(!shared.join("post-commit").exists());
}

#[test]
fn a_commit_in_an_attempt_worktree_records_progress() {
    let env = TestEnv::new();
    let thread = claimed_task(&env);
    let wt = attempt_worktree(&env, "lexer", thread);
    let path = path_with_binaries();
    std::fs::create_dir_all(wt.join("src")).unwrap();
    std::fs::write(wt.join("src/lexer.rs"), "fn lex() {}\nfn more() {}\n").unwrap();
    std::fs::write(wt.join("README.md"), "hello\nworld\n").unwrap();
    git_with_path(&env, &wt, &path, &["add", "."]);
    // From a subdirectory: git runs hooks at the top of the worktree.
    let out = git_with_path(
        &env,
        &wt.join("src"),
        &path,
        &["commit", "-q", "-m", "Add the lexer\n\nwith a body"],
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha = env.git_in(&wt, &["rev-parse", "HEAD"]);

    let progress = progress_messages(&env, thread);
    assert_eq!(progress.len(), 1, "{progress:?}");
    let data = &progress[0]["data"];
    assert_eq!(data["sha"], sha);
    assert_eq!(data["subject"], "Add the lexer");
    assert_eq!(data["files_changed"], 2);
    assert_eq!(data["insertions"], 3);
    assert_eq!(data["deletions"], 0);
    assert_eq!(progress[0]["author"], "w1");

    // A commit in the main worktree records nothing.
    std::fs::write(env.repo.join("main.txt"), "x\n").unwrap();
    git_with_path(&env, &env.repo, &path, &["add", "main.txt"]);
    git_with_path(&env, &env.repo, &path, &["commit", "-q", "-m", "main"]);
    // A merge in the attempt worktree is recorded by post-merge.
    git_with_path(&env, &wt, &path, &["merge", "-q", "--no-edit", "main"]);
    let progress = progress_messages(&env, thread);
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(progress[1]["data"]["hook"], "post-merge");
}

#[test]
fn the_block_starts_no_process_outside_attempt_worktrees() {
    let env = TestEnv::new();
    let wt = attempt_worktree(&env, "quiet", 1);
    let git_dir = env.git_in(&wt, &["rev-parse", "--absolute-git-dir"]);
    // A PATH holding only a logging git-inbox: any other program the block started
    // would fail with "not found" on stderr.
    let stubs = env.root().join("stubs");
    let log = env.root().join("stub.log");
    write_executable(
        &stubs.join("git-inbox"),
        &format!("#!/bin/sh\necho \"git-inbox $*\" >> '{}'\n", log.display()),
    );
    for hook in HOOKS {
        let script = hooks_dir(&env).join(hook);
        let run = |dir: &Path, git_dir: Option<&str>| {
            let mut cmd = Command::new("/bin/sh");
            env.hermetic(&mut cmd);
            cmd.arg(&script)
                .arg("amend")
                .current_dir(dir)
                .env("PATH", &stubs)
                .stdin(Stdio::null());
            if let Some(git_dir) = git_dir {
                cmd.env("GIT_DIR", git_dir);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        // The main worktree, as git runs hooks there: no GIT_DIR, cwd at the top.
        assert_eq!(run(&env.repo, None), "");
        assert!(
            !log.exists(),
            "{hook} started a process in the main worktree"
        );
        // The attempt worktree, with GIT_DIR as git exports it and without.
        assert_eq!(run(&wt, Some(&git_dir)), "");
        assert_eq!(run(&wt, None), "");
        assert_eq!(
            read(&log),
            format!("git-inbox hook {hook} amend\n").repeat(2),
            "{hook}"
        );
        std::fs::remove_file(&log).unwrap();
    }
}

#[test]
fn a_failing_hook_call_never_fails_the_commit() {
    let env = TestEnv::new();
    // The marker names a thread that does not exist.
    let wt = attempt_worktree(&env, "broken", 999);
    std::fs::write(wt.join("a.txt"), "a\n").unwrap();
    let path = path_with_binaries();
    git_with_path(&env, &wt, &path, &["add", "a.txt"]);
    let out = git_with_path(&env, &wt, &path, &["commit", "-q", "-m", "a"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("git-orch: post-commit: not recorded (not_found"),
        "{stderr}"
    );

    // Without git-inbox anywhere on PATH: one line too, and the commit stands.
    let git_only = Path::new(
        &String::from_utf8(
            Command::new("sh")
                .args(["-c", "command -v git"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim(),
    )
    .parent()
    .unwrap()
    .to_owned();
    let stubs = env.root().join("only-git");
    std::fs::create_dir_all(&stubs).unwrap();
    std::os::unix::fs::symlink(git_only.join("git"), stubs.join("git")).unwrap();
    std::fs::write(wt.join("b.txt"), "b\n").unwrap();
    let path = stubs.display().to_string();
    git_with_path(&env, &wt, &path, &["add", "b.txt"]);
    let out = git_with_path(&env, &wt, &path, &["commit", "-q", "-m", "b"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("git-inbox is not on PATH"), "{stderr}");
    assert_eq!(env.git_in(&wt, &["log", "-1", "--format=%s"]), "b");
}

#[test]
fn the_hook_command_outside_an_attempt_worktree_does_nothing() {
    let env = TestEnv::new();
    let run = env.inbox().args(["hook", "post-commit"]).run();
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    let unknown = env.inbox().args(["hook", "pre-push"]).run();
    assert_eq!(unknown.code, 0, "a hook call never fails");
    assert_eq!(unknown.stderr.lines().count(), 1, "{}", unknown.stderr);
}
