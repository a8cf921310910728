//! Finding the repository and its state like git does, global flags in any
//! position (§3), init and migrations.

use crate::common::{finish, TestEnv};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

fn migrations_count() -> i64 {
    std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "sql")
        })
        .count() as i64
}

fn user_version(env: &TestEnv) -> i64 {
    env.db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

fn subjects(data: &serde_json::Value) -> Vec<String> {
    data["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["subject"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn global_flags_are_accepted_in_any_position() {
    let env = TestEnv::new();
    let elsewhere = env.root();
    let repo = env.repo.to_str().unwrap();
    let variants: Vec<Vec<&str>> = vec![
        vec![
            "--json",
            "-C",
            repo,
            "--agent",
            "leader",
            "send",
            "--to",
            "w1",
            "--subject",
            "a",
        ],
        vec![
            "send",
            "--to",
            "w1",
            "--subject",
            "b",
            "--agent",
            "leader",
            "-C",
            repo,
            "--json",
        ],
        vec![
            "-C",
            repo,
            "send",
            "--json",
            "--to",
            "w1",
            "--agent",
            "leader",
            "--subject",
            "c",
        ],
        vec![
            "--agent",
            "leader",
            "send",
            "-C",
            repo,
            "--to",
            "w1",
            "--subject",
            "d",
            "--json",
        ],
        vec![
            "--agent=leader",
            "--json",
            "send",
            "--to=w1",
            "--subject=e",
            "-C",
            repo,
        ],
    ];
    for args in &variants {
        let run = env.inbox().dir(&elsewhere).args(args).run();
        let doc = run.doc();
        assert_eq!(doc["ok"], true, "{args:?}: {doc}");
        assert_eq!(doc["data"]["thread"]["from"], "leader");
    }
    let listed = env.inbox().dir(&elsewhere).args(["list", "-C", repo]).ok();
    assert_eq!(subjects(&listed), ["a", "b", "c", "d", "e"]);
    // A usage error reports JSON when --json comes after the subcommand too.
    let run = env.inbox().args(["send", "--bogus", "--json"]).run();
    assert_eq!(run.code, 2);
    assert_eq!(run.doc()["error"]["code"], "usage");
    // -C relative to where we stand.
    let listed = env
        .inbox()
        .dir(&elsewhere)
        .args(["-C", "repo", "list", "--json"])
        .run()
        .data();
    assert_eq!(subjects(&listed).len(), 5);
}

#[test]
fn subdirectories_and_linked_worktrees_share_one_state() {
    let env = TestEnv::new();
    let sub = env.repo.join("src").join("deep");
    std::fs::create_dir_all(&sub).unwrap();
    env.inbox()
        .dir(&sub)
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "from a subdirectory"])
        .ok();

    let wt = env.root().join("linked");
    env.git(&["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()]);
    std::fs::create_dir_all(wt.join("nested")).unwrap();
    // init from the linked worktree finds the existing state in the common dir.
    let init = env.inbox().dir(&wt).arg("init").ok();
    assert_eq!(init["created"], false);
    let state_dir = init["state_dir"].as_str().unwrap();
    assert_eq!(
        Path::new(state_dir),
        env.repo.join(".git").join("orch").canonicalize().unwrap()
    );
    assert!(
        !wt.join(".git").is_dir(),
        "a linked worktree has a .git file"
    );
    env.inbox()
        .dir(wt.join("nested"))
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "from the worktree"])
        .ok();
    let from_main = env.inbox().arg("list").ok();
    let from_wt = env.inbox().dir(&wt).arg("list").ok();
    assert_eq!(
        subjects(&from_main),
        ["from a subdirectory", "from the worktree"]
    );
    assert_eq!(from_main, from_wt);
    // A claim in one worktree is seen from the other.
    env.inbox()
        .dir(&wt)
        .agent("w1")
        .args(["claim", "--next"])
        .ok();
    let listed = env.inbox().args(["list", "--status", "claimed"]).ok();
    assert_eq!(subjects(&listed), ["from a subdirectory"]);
}

#[test]
fn git_dir_and_work_tree_from_the_environment_as_in_hooks() {
    let env = TestEnv::new();
    let outside = env.home.clone();
    let git_dir = env.repo.join(".git");
    // Absolute GIT_DIR and GIT_WORK_TREE, run from somewhere unrelated.
    env.inbox()
        .dir(&outside)
        .env("GIT_DIR", &git_dir)
        .env("GIT_WORK_TREE", &env.repo)
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "via GIT_DIR"])
        .ok();
    // Relative GIT_DIR=.git at the top of the work tree, as git sets it in hooks there.
    env.inbox()
        .env("GIT_DIR", ".git")
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "relative"])
        .ok();
    // A linked worktree's private git dir, as in a hook running there.
    let wt = env.root().join("wt");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "hooked",
        wt.to_str().unwrap(),
    ]);
    let wt_git_dir = env.git_in(&wt, &["rev-parse", "--absolute-git-dir"]);
    env.inbox()
        .dir(&wt)
        .env("GIT_DIR", &wt_git_dir)
        .env("GIT_WORK_TREE", &wt)
        .env("GIT_INDEX_FILE", Path::new(&wt_git_dir).join("index"))
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "from a worktree hook"])
        .ok();
    let listed = env.inbox().arg("list").ok();
    assert_eq!(
        subjects(&listed),
        ["via GIT_DIR", "relative", "from a worktree hook"]
    );
    // GIT_DIR wins over the directory we stand in: pointing at another repository's
    // git dir reads that repository's state.
    let other = TestEnv::bare_repo();
    env.inbox()
        .env("GIT_DIR", other.repo.join(".git"))
        .arg("list")
        .fails("not_initialized", 3);
}

#[test]
fn runs_as_a_git_subcommand() {
    let env = TestEnv::new();
    let sent = env
        .git_with_tools()
        .args([
            "inbox",
            "--agent",
            "leader",
            "send",
            "--to",
            "w1",
            "--subject",
            "via git",
        ])
        .ok();
    assert_eq!(sent["thread"]["subject"], "via git");
    let sub = env.repo.join("d");
    std::fs::create_dir_all(&sub).unwrap();
    let listed = env
        .git_with_tools()
        .dir(env.root())
        .args(["-C", sub.to_str().unwrap(), "inbox", "list"])
        .ok();
    assert_eq!(subjects(&listed), ["via git"]);
    let init = env.git_with_tools().args(["orch", "init"]).ok();
    assert_eq!(init["created"], false);
}

#[test]
fn init_is_idempotent_and_migrates_to_the_latest_schema() {
    let env = TestEnv::bare_repo();
    let first = env.inbox().arg("init").ok();
    assert_eq!(first["created"], true);
    assert_eq!(first["schema_version"], migrations_count());
    let state = env.repo.join(".git/orch");
    for path in ["state.db", "artifacts", "logs"] {
        assert!(state.join(path).exists(), "{path}");
    }
    assert_eq!(user_version(&env), migrations_count());
    let mode: String = env
        .db()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    env.send("leader", "w1", "keep me");
    let second = env.inbox().arg("init").ok();
    assert_eq!(second["created"], false);
    let third = env.orch().arg("init").ok();
    assert_eq!(third["created"], false);
    assert_eq!(env.count("threads"), 1, "init never touches existing state");
    assert_eq!(user_version(&env), migrations_count());
    // Human output says so too.
    let run = env.inbox().arg("init").run();
    assert_eq!(run.code, 0);
    assert!(run.stdout.contains("up to date"), "{run:?}");
}

#[test]
fn concurrent_first_inits_agree() {
    let env = TestEnv::bare_repo();
    let children: Vec<_> = (0..4)
        .map(|n| {
            if n % 2 == 0 {
                env.inbox().arg("init").spawn_json()
            } else {
                env.orch().arg("init").spawn_json()
            }
        })
        .collect();
    let runs: Vec<_> = children
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(30)))
        .collect();
    let created = runs.iter().filter(|r| r.data()["created"] == true).count();
    assert!(created >= 1, "{runs:#?}");
    assert_eq!(user_version(&env), migrations_count());
    env.send("leader", "w1", "works");
}

#[test]
fn an_empty_database_is_not_initialized_until_init_adopts_and_migrates_it() {
    let env = TestEnv::bare_repo();
    let state = env.repo.join(".git/orch");
    std::fs::create_dir_all(&state).unwrap();
    // A database at schema 0 with nothing in it: only init may turn it into state.
    rusqlite::Connection::open(state.join("state.db"))
        .unwrap()
        .execute_batch("PRAGMA user_version = 0;")
        .unwrap();
    env.sending("leader", "w1", "too early")
        .fails("not_initialized", 3);
    env.orch().arg("init").ok();
    let id = env.send("leader", "w1", "after migrating");
    assert_eq!(env.show(id)["thread"]["subject"], "after migrating");
    assert_eq!(user_version(&env), migrations_count());
}

#[test]
fn a_newer_schema_is_refused_with_exit_8() {
    let env = TestEnv::new();
    let t = env.send("leader", "w1", "before").to_string();
    env.db().execute_batch("PRAGMA user_version = 99;").unwrap();
    let threads = env.count("threads");
    let messages = env.count("messages");
    for args in [
        vec!["list"],
        vec!["send", "--to", "w1", "--subject", "after"],
        vec!["claim", &t],
        vec!["fetch"],
        vec!["init"],
    ] {
        let error = env
            .inbox()
            .agent("w1")
            .args(&args)
            .fails("schema_too_new", 8);
        assert_eq!(error["details"]["schema_version"], 99, "{error}");
        assert!(error["hint"].is_string());
    }
    env.orch().arg("init").fails("schema_too_new", 8);
    assert_eq!(env.count("threads"), threads);
    assert_eq!(env.count("messages"), messages);
    let version: i64 = env
        .db()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 99, "never downgraded");
}

#[test]
fn state_lives_in_the_common_dir_only() {
    let env = TestEnv::new();
    let wt = env.root().join("wt2");
    env.git(&["worktree", "add", "-q", "-b", "w", wt.to_str().unwrap()]);
    env.inbox()
        .dir(&wt)
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "s"])
        .ok();
    let wt_git_dir = env.git_in(&wt, &["rev-parse", "--absolute-git-dir"]);
    assert!(!Path::new(&wt_git_dir).join("orch").exists());
    assert!(!wt.join("orch").exists());
    // Nothing appears in the work tree: git status stays clean.
    assert_eq!(env.git(&["status", "--porcelain"]), "");
    assert_eq!(env.git_in(&wt, &["status", "--porcelain"]), "");
    assert_eq!(
        env.inbox().arg("list").ok()["threads"][0]["subject"],
        json!("s")
    );
}

#[test]
fn a_bare_repository_keeps_its_state_in_itself() {
    let env = TestEnv::bare_repo();
    let bare = env.root().join("shared.git");
    env.git(&["clone", "-q", "--bare", ".", bare.to_str().unwrap()]);
    let init = env.inbox().dir(&bare).arg("init").ok();
    assert_eq!(init["created"], true);
    assert_eq!(
        std::path::PathBuf::from(init["state_dir"].as_str().unwrap()),
        bare.join("orch")
    );
    env.inbox()
        .dir(&bare)
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", "in a bare repo"])
        .ok();
    let listed = env.inbox().dir(bare.join("refs")).arg("list").ok();
    assert_eq!(subjects(&listed), ["in a bare repo"]);
    // The clone's source is a different repository with no state.
    env.inbox().arg("list").fails("not_initialized", 3);
}
