//! Hostile states and values below the CLI (issue 10): a `state.db` that is empty or not
//! ours is never replaced, an empty duration and a revspec naming a set of commits are
//! refused, a commit is never held up by a busy database (the hook spools), and a
//! repository under a non-UTF-8 path works without a panic.

use crate::common::{finish, TestEnv};
use crate::orch_plan::add;
use serde_json::Value;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn run_init(env: &TestEnv) {
    env.orch()
        .args(["run", "init", "r1", "--title", "Run one"])
        .ok();
}

fn snapshot(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("read state.db")
}

/// Replaces the state with `bytes` (and no WAL beside it).
fn plant_state(env: &TestEnv, bytes: &[u8]) {
    let db = env.state_db();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::write(&db, bytes).unwrap();
}

/// Every kind of command refuses the file with `code`, and none writes a byte to it.
fn assert_refused_everywhere(env: &TestEnv, code: &str, exit: i32) {
    let before = snapshot(&env.state_db());
    env.inbox().arg("list").fails(code, exit);
    env.sending("a", "b", "s").fails(code, exit);
    env.orch().arg("status").fails(code, exit);
    env.orch()
        .args(["run", "init", "r1", "--title", "R"])
        .fails(code, exit);
    env.orch().arg("reconcile").fails(code, exit);
    assert_eq!(snapshot(&env.state_db()), before, "state.db was written");
}

#[test]
fn an_empty_state_db_is_not_initialized_and_only_init_adopts_it() {
    let env = TestEnv::new();
    env.send("a", "b", "kept?");
    plant_state(&env, b"");
    let err = env.inbox().arg("list").fails("not_initialized", 3);
    assert!(err["hint"].as_str().unwrap().contains("init"), "{err}");
    assert_refused_everywhere(&env, "not_initialized", 3);
    assert_eq!(std::fs::metadata(env.state_db()).unwrap().len(), 0);

    // Nothing is in an empty file to lose: init makes it the state.
    env.orch().arg("init").ok();
    env.send("a", "b", "new");
    assert_eq!(env.count("threads"), 1);
}

#[test]
fn a_database_that_is_not_ours_is_refused_by_every_command_and_by_init() {
    let env = TestEnv::new();
    // Another program's SQLite file, then bytes that are no SQLite file at all.
    let other = env.root().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('mine');")
        .unwrap();
    drop(conn);
    let foreign = std::fs::read(&other).unwrap();
    let noise: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for bytes in [foreign, noise] {
        plant_state(&env, &bytes);
        assert_refused_everywhere(&env, "invalid_state", 6);
        let err = env.orch().arg("init").fails("invalid_state", 6);
        assert!(
            err["details"]["path"]
                .as_str()
                .unwrap()
                .ends_with("state.db"),
            "{err}"
        );
        env.inbox().arg("init").fails("invalid_state", 6);
        assert_eq!(
            snapshot(&env.state_db()),
            bytes,
            "init adopted a foreign file"
        );
    }
}

#[test]
fn an_empty_duration_is_refused_where_a_bare_wait_still_waits() {
    let env = TestEnv::new();
    let id = env.task("leader", "w1", "job");
    env.inbox()
        .agent("w1")
        .args(["claim", &id.to_string()])
        .ok();
    let refused = [
        vec!["wait-reply".to_owned(), id.to_string(), "--timeout=".into()],
        vec!["watch".into(), "--timeout=".into()],
        vec!["fetch".into(), "--wait=".into()],
        vec!["claim".into(), "--next".into(), "--wait=".into()],
        vec!["claim".into(), "--next".into(), "--lease=".into()],
    ];
    for args in refused {
        // Today an empty value means "forever": a deadline keeps a regression from hanging.
        let child = env.inbox().agent("w1").args(&args).spawn_json();
        let run = finish(child, Duration::from_secs(20));
        run.error("invalid_input", 2);
    }
    for args in [["wait", "--timeout="], ["wait", "--timeout= "]] {
        let child = env.orch().args(args).spawn_json();
        finish(child, Duration::from_secs(20)).error("invalid_input", 2);
    }
    // `--wait` without a value still blocks until something arrives.
    let fetched = env
        .inbox()
        .agent("b")
        .args(["fetch", "--wait"])
        .spawn_json();
    env.send("a", "b", "hello");
    let data = finish(fetched, Duration::from_secs(20)).data();
    assert_eq!(data["messages"][0]["body"], "", "{data}");
}

#[test]
fn a_base_must_name_exactly_one_commit() {
    let env = TestEnv::new();
    env.git(&["commit", "-q", "--allow-empty", "-m", "second"]);
    run_init(&env);
    add(&env, "a", &[]);
    for base in [
        "HEAD^!",
        "HEAD~1..HEAD",
        "HEAD~1...HEAD",
        "^HEAD",
        "HEAD^@",
        "main..",
    ] {
        let err = env
            .orch()
            .args(["dispatch", "a", "--base", base])
            .fails("bad_ref", 6);
        assert_eq!(err["details"]["ref"], base, "{err}");
    }
    assert_eq!(env.count("attempts"), 0);
    assert!(env.git(&["branch", "--list", "orch/*"]).is_empty());
    // One commit, however it is spelled, still works.
    let data = env.orch().args(["dispatch", "a", "--base", "HEAD~1"]).ok();
    assert_eq!(
        data["attempts"][0]["base_sha"],
        env.git(&["rev-parse", "HEAD~1"]).as_str()
    );
}

/// Holds the database's write lock from another connection until dropped (or 10 s).
struct WriteLock {
    release: std::sync::mpsc::Sender<()>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl WriteLock {
    fn take(db: &Path) -> WriteLock {
        let (release, rx) = std::sync::mpsc::channel::<()>();
        let (held_tx, held) = std::sync::mpsc::channel::<()>();
        let db = db.to_owned();
        let holder = std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(db).unwrap();
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            held_tx.send(()).unwrap();
            let _ = rx.recv_timeout(Duration::from_secs(10));
            conn.execute_batch("ROLLBACK").unwrap();
        });
        held.recv_timeout(Duration::from_secs(10))
            .expect("lock taken");
        WriteLock {
            release,
            holder: Some(holder),
        }
    }
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.release.send(());
        if let Some(holder) = self.holder.take() {
            let _ = holder.join();
        }
    }
}

fn progress_shas(env: &TestEnv, thread: i64) -> Vec<String> {
    env.show(thread)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "progress")
        .map(|m| m["data"]["sha"].as_str().unwrap().to_owned())
        .collect()
}

fn spool_files(env: &TestEnv) -> Vec<PathBuf> {
    match std::fs::read_dir(env.repo.join(".git/orch/spool")) {
        Ok(dir) => dir
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension() == Some(OsStr::new("json")))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_commit_is_never_held_up_by_a_busy_database() {
    let env = TestEnv::new();
    run_init(&env);
    add(&env, "lexer", &["--to", "w1"]);
    let attempt = env.orch().args(["dispatch", "lexer"]).ok()["attempts"][0].clone();
    let wt = PathBuf::from(attempt["worktree"].as_str().unwrap());
    let thread = attempt["thread"].as_i64().unwrap();

    let lock = WriteLock::take(&env.state_db());
    let mut made = Vec::new();
    let mut times = Vec::new();
    for i in 0..5 {
        std::fs::write(wt.join(format!("f{i}.txt")), format!("{i}\n")).unwrap();
        env.git_in(&wt, &["add", "--", &format!("f{i}.txt")]);
        let started = Instant::now();
        let run = env
            .git_with_tools()
            .dir(&wt)
            .args(["commit", "-q", "-m", &format!("commit {i}")])
            .run();
        let took = started.elapsed();
        assert_eq!(run.code, 0, "{}", run.stderr);
        eprintln!("commit {i} under the lock: {took:?}");
        times.push(took);
        assert!(run.stderr.contains("spooled"), "{}", run.stderr);
        made.push(env.git_in(&wt, &["rev-parse", "HEAD"]));
    }
    // The hook gives up after its short lock wait and spools; a hook that waited out the
    // store's 15 s busy timeout instead would take seconds. The bound only tells those
    // apart (a loaded machine slows `git commit` itself); the figure is printed above.
    for (i, took) in times.iter().enumerate() {
        assert!(
            *took <= Duration::from_secs(3),
            "commit {i} took {took:?}: {times:?}"
        );
    }
    assert_eq!(spool_files(&env).len(), 5);
    assert!(
        progress_shas(&env, thread).is_empty(),
        "recorded under the lock?"
    );
    drop(lock);

    // The next write takes the spool in, in order, once; a second write finds nothing.
    env.orch().arg("reconcile").ok();
    env.orch().arg("reconcile").ok();
    env.inbox()
        .agent("w1")
        .args(["claim", &thread.to_string()])
        .ok();
    assert_eq!(progress_shas(&env, thread), made);
    assert!(spool_files(&env).is_empty());
    assert_eq!(env.count("spool_taken"), 5);
    let task = env.orch().args(["task", "show", "lexer"]).ok();
    assert_eq!(
        task["task"]["current_attempt"]["head_sha"],
        made[4].as_str()
    );
    assert_eq!(task["task"]["current_attempt"]["commits"], 5);

    // Without a lock, a commit records at once and leaves no spool.
    std::fs::write(wt.join("g.txt"), "g\n").unwrap();
    env.git_in(&wt, &["add", "--", "g.txt"]);
    let started = Instant::now();
    let run = env
        .git_with_tools()
        .dir(&wt)
        .args(["commit", "-q", "-m", "g"])
        .run();
    eprintln!("commit without a lock: {:?}", started.elapsed());
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("spooled"), "{}", run.stderr);
    assert_eq!(progress_shas(&env, thread).len(), 6);
    assert!(spool_files(&env).is_empty());
}

/// A repository whose path is not UTF-8: `<tmp>/caf\xe9/repo`.
fn non_utf8_env() -> TestEnv {
    TestEnv::bare_repo_at(&Path::new(OsStr::from_bytes(b"caf\xe9")).join("repo"))
}

#[test]
fn a_repository_under_a_non_utf8_path_works_without_a_panic() {
    let env = non_utf8_env();
    let data = env.orch().arg("init").ok();
    let shown = data["state_dir"].as_str().unwrap();
    assert!(
        shown.contains('\u{fffd}') && shown.ends_with("orch"),
        "{data}"
    );
    assert!(data["hooks"]["dir"].as_str().unwrap().contains('\u{fffd}'));
    assert!(env.state_db().is_file());
    let id = env.send("a", "b", "hi");
    assert_eq!(env.show(id)["thread"]["subject"], "hi");

    // Attempt worktrees are stored by path: a root that is not UTF-8 is refused up front.
    run_init(&env);
    add(&env, "a", &["--to", "w1"]);
    let err = env.orch().args(["dispatch", "a"]).fails("invalid_input", 2);
    assert!(
        err["hint"].as_str().unwrap().contains("orch.worktreeRoot"),
        "{err}"
    );
    assert!(env.git(&["branch", "--list", "orch/*"]).is_empty());
    let trees = env.root().join("trees");
    env.git(&["config", "orch.worktreeRoot", trees.to_str().unwrap()]);
    let attempt = env.orch().args(["dispatch", "a"]).ok()["attempts"][0].clone();
    let wt = PathBuf::from(attempt["worktree"].as_str().unwrap());
    assert!(wt.starts_with(&trees));
    std::fs::write(wt.join("x.txt"), "x\n").unwrap();
    env.git_in(&wt, &["add", "x.txt"]);
    let run = env
        .git_with_tools()
        .dir(&wt)
        .args(["commit", "-q", "-m", "x"])
        .run();
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    assert_eq!(
        progress_shas(&env, attempt["thread"].as_i64().unwrap()).len(),
        1
    );

    // A file argument under the odd path: its path enters JSON by the lossy rule.
    let out = env.repo.join("copy.txt");
    std::fs::write(env.repo.join("note.txt"), "n\n").unwrap();
    let sent = env
        .sending("a", "b", "att")
        .arg("--attach")
        .arg(env.repo.join("note.txt"))
        .ok();
    let artifact = sent["message"]["artifacts"][0]["id"].as_i64().unwrap();
    let got: Value = env
        .inbox()
        .args(["artifact", "get", &artifact.to_string(), "-o"])
        .arg(&out)
        .ok();
    assert!(got["path"].as_str().unwrap().contains('\u{fffd}'), "{got}");
    assert_eq!(std::fs::read(&out).unwrap(), b"n\n");
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn process_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Dispatches `a` launched with `profile`, waits for `pid_file`, SIGKILLs the supervisor
/// and reconciles; returns the pid the file names, which must then be gone.
fn kill_supervisor_after(env: &TestEnv, profile: &str, pid_file: &Path) -> i64 {
    add(env, "a", &[]);
    let attempt = env
        .orch()
        .args(["dispatch", "a", &format!("--launch={profile}")])
        .ok()["attempts"][0]
        .clone();
    let id = attempt["id"].as_i64().unwrap();
    let pid: i64 = crate::common::wait_until("the pid file", Duration::from_secs(30), || {
        std::fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
    });
    let supervisor = env.supervisor_pid(id);
    assert!(process_alive(pid) && process_alive(supervisor));
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &supervisor.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    crate::common::wait_until("the supervisor to die", Duration::from_secs(10), || {
        (!process_alive(supervisor)).then_some(())
    });
    env.orch().arg("reconcile").ok();
    pid
}

#[test]
fn reconcile_ends_orch_setup_of_a_supervisor_killed_while_it_ran() {
    // The supervisor records its agent's pid, but never that of orch.setup: reconcile
    // used to end only the recorded group, so a setup outlived its supervisor.
    let env = TestEnv::new();
    run_init(&env);
    let pid_file = env.root().join("setup.pid");
    let setup = format!("sh -c 'echo $$ > {}; exec sleep 300'", pid_file.display());
    env.git(&["config", "orch.setup", &setup]);
    env.git(&["config", "orch.agent.p.command", "true"]);
    let pid = kill_supervisor_after(&env, "p", &pid_file);
    crate::common::wait_until("setup to be ended", Duration::from_secs(10), || {
        (!process_alive(pid)).then_some(())
    });
    let status = env.orch().args(["task", "show", "a"]).ok()["task"]["current_attempt"].clone();
    assert_eq!(status["failure"]["reason"], "supervisor_lost", "{status}");
}

#[test]
fn reconcile_ends_an_agent_that_closed_its_thread_and_lost_its_supervisor() {
    // The agent said done and stays: its attempt is over, but its process must not
    // outlive the supervisor that was killed while it waited for it.
    let env = TestEnv::new();
    run_init(&env);
    let pid_file = env.root().join("agent.pid");
    let command = format!(
        "sh -c 'git inbox done --body ok >/dev/null && echo $$ > {} && exec sleep 300'",
        pid_file.display()
    );
    env.git(&["config", "orch.agent.p.command", &command]);
    env.git(&["config", "orch.agent.p.protocol", "inbox"]);
    let pid = kill_supervisor_after(&env, "p", &pid_file);
    crate::common::wait_until("the agent to be ended", Duration::from_secs(10), || {
        (!process_alive(pid)).then_some(())
    });
    assert_eq!(
        crate::orch_plan::status_of(&env, "a"),
        "done",
        "its work stands"
    );
    let lost: i64 = env
        .db()
        .query_row(
            "SELECT count(*) FROM events WHERE kind = 'agent.lost'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lost, 1);
    let ended: Option<i64> = env
        .db()
        .query_row("SELECT ended_at FROM launches", [], |r| r.get(0))
        .unwrap();
    assert!(ended.is_some(), "the launch is marked ended");
}
