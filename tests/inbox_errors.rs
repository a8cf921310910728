//! Every error a `git inbox` command can return, with its exit status (docs/reference.md), and that a
//! refused command wrote nothing.

use crate::common::{Cmd, TestEnv};
use serde_json::Value;

const TABLES: [&str; 7] = [
    "threads",
    "messages",
    "artifacts",
    "events",
    "subscriptions",
    "cursors",
    "holders",
];

/// Every row count, and the artifact blobs on disk.
fn snapshot(env: &TestEnv) -> (Vec<i64>, usize) {
    let counts = TABLES.iter().map(|t| env.count(t)).collect();
    let blobs = walk_files(&env.repo.join(".git/orch/artifacts"));
    (counts, blobs)
}

fn walk_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk_files(&path)
            } else {
                1
            }
        })
        .sum()
}

/// Runs `cmd`, expects `code`/`exit`, and checks that nothing was written.
fn refused(env: &TestEnv, cmd: Cmd, code: &str, exit: i32) -> Value {
    let before = snapshot(env);
    let error = cmd.fails(code, exit);
    assert_eq!(
        snapshot(env),
        before,
        "a refused command ({code}) wrote something"
    );
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(
        error.get("hint").is_some() && error["details"].is_object(),
        "{error}"
    );
    error
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    let t = env.send("leader", "w1", "s").to_string();
    for args in [
        vec!["send", "--subject", "no recipient"],
        vec!["send", "--to", "w1"],
        vec!["fetch", "--no-such-flag"],
        vec![
            "send",
            "--to",
            "w1",
            "--subject",
            "s",
            "--body",
            "b",
            "--body-file",
            "-",
        ],
        vec![
            "send",
            "--to",
            "w1",
            "--subject",
            "s",
            "--data",
            "{}",
            "--data-file",
            "-",
        ],
        vec!["send", "--to", "w1", "--subject", "s", "--kind", "epic"],
        vec!["claim", &t, "--next"],
        vec!["claim", "--queue", "@workers"],
        vec!["claim", "not-a-number"],
        vec!["fetch", "--limit", "0"],
        vec!["list", "--status", "sleeping"],
        vec!["reply"],
        vec!["fail", &t],
        vec!["frobnicate"],
    ] {
        let error = refused(&env, env.inbox().agent("w1").args(&args), "usage", 2);
        assert!(error["hint"].is_string(), "{args:?}: {error}");
    }
    // A command that needs a thread id outside an attempt worktree.
    for cmd in [
        "claim",
        "renew",
        "release",
        "update",
        "ask",
        "wait-reply",
        "done",
        "show",
    ] {
        let mut args = vec![cmd];
        if cmd == "ask" {
            args.extend(["--body", "q"]);
        }
        refused(&env, env.inbox().agent("w1").args(&args), "usage", 2);
    }
    // Artifact bytes cannot share stdout with --json.
    let file = env.root().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let sent = env
        .sending("leader", "w1", "s")
        .arg("--attach")
        .arg(&file)
        .ok();
    let art = sent["message"]["artifacts"][0]["id"].to_string();
    refused(
        &env,
        env.inbox().args(["artifact", "get", &art]),
        "usage",
        2,
    );

    // Without --json the error is on stderr, stdout stays empty, the status is the same.
    let run = env.inbox().agent("w1").args(["send", "--to", "w1"]).run();
    assert_eq!(run.code, 2);
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(!run.stderr.is_empty());
}

#[test]
fn invalid_input_errors_exit_2() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let send = |extra: &[&str]| env.sending("leader", "w1", "s").args(extra);
    refused(&env, send(&["--data", "[1, 2]"]), "invalid_input", 2);
    refused(&env, send(&["--data", "\"text\""]), "invalid_input", 2);
    refused(&env, send(&["--data", "{not json"]), "invalid_input", 2);
    let bin = env.root().join("bin.txt");
    std::fs::write(&bin, [0xff, 0xfe, 0x00]).unwrap();
    refused(
        &env,
        send(&[]).arg("--body-file").arg(&bin),
        "invalid_input",
        2,
    );
    for subject in ["", "   ", "two\nlines", "cr\rhere"] {
        refused(
            &env,
            env.sending("leader", "w1", subject),
            "invalid_input",
            2,
        );
    }
    // Durations and leases.
    for lease in ["0", "0s", "abc", "1.5s", "-3"] {
        refused(
            &env,
            env.inbox()
                .agent("w1")
                .arg("claim")
                .arg(&id)
                .arg(format!("--lease={lease}")),
            "invalid_input",
            2,
        );
    }
    refused(
        &env,
        env.inbox().agent("w1").args(["fetch", "--wait", "soon"]),
        "invalid_input",
        2,
    );
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["wait-reply", &id, "--timeout", "x"]),
        "invalid_input",
        2,
    );
    // Empty questions, answers and reasons.
    refused(
        &env,
        env.inbox().agent("w1").args(["ask", &id, "--body", " "]),
        "invalid_input",
        2,
    );
    refused(
        &env,
        env.inbox().agent("w1").args(["ask", &id]),
        "invalid_input",
        2,
    );
    refused(
        &env,
        env.inbox()
            .agent("leader")
            .args(["reply", &id, "--body", ""]),
        "invalid_input",
        2,
    );
    refused(
        &env,
        env.inbox().agent("w1").args(["fail", &id, "--reason", ""]),
        "invalid_input",
        2,
    );
    // done: the result must be a JSON object; the thread stays claimed.
    for result in ["[1]", "42", "\"done\"", "null", "{oops"] {
        refused(
            &env,
            env.inbox()
                .agent("w1")
                .args(["done", &id, "--result", result]),
            "invalid_input",
            2,
        );
    }
    assert_eq!(env.show(t)["thread"]["status"], "claimed");
    // Input is checked before attachments are stored: no orphan blob either.
    let attachment = env.root().join("unique.txt");
    std::fs::write(&attachment, "stored only by a valid message").unwrap();
    for cmd in ["update", "reply"] {
        refused(
            &env,
            env.inbox()
                .agent("w1")
                .args([cmd, &id, "--body", "b", "--data", "[1]", "--attach"])
                .arg(&attachment),
            "invalid_input",
            2,
        );
    }
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["reply", &id, "--attach"])
            .arg(&attachment),
        "invalid_input",
        2,
    );
    // Attachments must be regular files with a name.
    for bad in [env.root(), env.root().join("..")] {
        refused(
            &env,
            env.inbox()
                .agent("w1")
                .args(["update", &id, "--attach"])
                .arg(&bad),
            "invalid_input",
            2,
        );
    }
    // A bad orch.maxClaims is reported, not ignored.
    env.git(&["config", "orch.maxClaims", "zero"]);
    refused(
        &env,
        env.inbox().agent("w1").args(["renew", &id]),
        "invalid_input",
        2,
    );
}

#[test]
fn invalid_name_errors_exit_2() {
    let env = TestEnv::new();
    for agent in ["Worker", "-x", "a/b", "a..b", "a b", "", "x.lock"] {
        refused(
            &env,
            env.inbox().arg(format!("--agent={agent}")).args([
                "send",
                "--to",
                "w1",
                "--subject",
                "s",
            ]),
            "invalid_name",
            2,
        );
    }
    refused(
        &env,
        env.inbox()
            .env("ORCH_AGENT", "Bad Name")
            .args(["send", "--to", "w1", "--subject", "s"]),
        "invalid_name",
        2,
    );
    for to in ["a/b", "@", "@Up", "../x", "--", "w1\n"] {
        refused(
            &env,
            env.inbox()
                .agent("leader")
                .args(["send", "--subject", "s"])
                .arg(format!("--to={to}")),
            "invalid_name",
            2,
        );
    }
    for queue in ["workers", "@a/b", "@-x"] {
        refused(
            &env,
            env.inbox().agent("w1").args(["subscribe", queue]),
            "invalid_name",
            2,
        );
    }
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["claim", "--next", "--queue", "workers"]),
        "invalid_name",
        2,
    );
    refused(
        &env,
        env.inbox().agent("w1").args(["list", "--to", "../etc"]),
        "invalid_name",
        2,
    );
}

#[test]
fn too_large_errors_exit_2_and_write_nothing() {
    let env = TestEnv::new();
    let send = || env.sending("leader", "w1", "s");
    // Subject: 200 characters (not bytes) pass, 201 do not.
    env.inbox()
        .agent("leader")
        .args(["send", "--to", "w1", "--subject", &"é".repeat(200)])
        .ok();
    refused(
        &env,
        env.inbox()
            .agent("leader")
            .args(["send", "--to", "w1", "--subject", &"s".repeat(201)]),
        "too_large",
        2,
    );
    // Body: 1 MiB passes, one byte more does not.
    let body = env.root().join("body.txt");
    std::fs::write(&body, "b".repeat(1024 * 1024)).unwrap();
    send().arg("--body-file").arg(&body).ok();
    std::fs::write(&body, "b".repeat(1024 * 1024 + 1)).unwrap();
    refused(&env, send().arg("--body-file").arg(&body), "too_large", 2);
    refused(
        &env,
        send()
            .args(["--body-file", "-"])
            .stdin("b".repeat(1024 * 1024 + 1)),
        "too_large",
        2,
    );
    // Data: a JSON object past 256 KiB.
    let data = env.root().join("data.json");
    let big = format!(r#"{{"blob": "{}"}}"#, "d".repeat(256 * 1024));
    std::fs::write(&data, &big).unwrap();
    refused(&env, send().arg("--data-file").arg(&data), "too_large", 2);
    let huge = format!(r#"{{"blob": "{}"}}"#, "d".repeat(2 * 1024 * 1024));
    std::fs::write(&data, &huge).unwrap();
    refused(&env, send().arg("--data-file").arg(&data), "too_large", 2);
    // The same limit on a result.
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    std::fs::write(&data, &big).unwrap();
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["done", &id, "--result-file"])
            .arg(&data),
        "too_large",
        2,
    );
    // An artifact past 100 MiB (sparse: no 100 MiB written), alone or next to a good one.
    let sparse = env.root().join("big.bin");
    let file = std::fs::File::create(&sparse).unwrap();
    file.set_len(100 * 1024 * 1024 + 1).unwrap();
    drop(file);
    let good = env.root().join("good.txt");
    std::fs::write(&good, "fine").unwrap();
    refused(&env, send().arg("--attach").arg(&sparse), "too_large", 2);
    refused(
        &env,
        send()
            .arg("--attach")
            .arg(&good)
            .arg("--attach")
            .arg(&sparse),
        "too_large",
        2,
    );
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["update", &id, "--attach"])
            .arg(&sparse),
        "too_large",
        2,
    );
    assert_eq!(env.show(t)["thread"]["status"], "claimed");
}

#[test]
fn not_found_errors_exit_3() {
    let env = TestEnv::new();
    let t = env.send("leader", "w1", "s").to_string();
    for args in [
        vec!["show", "999"],
        vec!["claim", "999"],
        vec!["renew", "999"],
        vec!["release", "999"],
        vec!["update", "999", "--body", "x"],
        vec!["ask", "999", "--body", "x"],
        vec!["reply", "999", "--body", "x"],
        vec!["wait-reply", "999", "--timeout", "1s"],
        vec!["done", "999"],
        vec!["fail", "999", "--reason", "x"],
        vec!["cancel", "999"],
        vec!["artifact", "get", "999", "-o", "out.bin"],
        vec!["claim", "--next"],
        vec!["reply", &t, "--body-file", "/no/such/file"],
        vec!["reply", &t, "--body", "x", "--attach", "/no/such/file"],
    ] {
        refused(&env, env.inbox().agent("w2").args(&args), "not_found", 3);
    }
    assert!(!env.repo.join("out.bin").exists());
    // -C into a directory that does not exist, or outside any repository.
    refused(
        &env,
        env.inbox().agent("w1").args(["-C", "/no/such/dir", "list"]),
        "not_found",
        3,
    );
    let outside = tempfile::tempdir().unwrap();
    env.inbox()
        .agent("w1")
        .env("GIT_CEILING_DIRECTORIES", outside.path().parent().unwrap())
        .dir(outside.path())
        .arg("list")
        .fails("not_found", 3);
}

#[test]
fn not_initialized_exit_3() {
    let env = TestEnv::bare_repo();
    for args in [
        vec!["send", "--to", "w1", "--subject", "s"],
        vec!["fetch"],
        vec!["list"],
        vec!["claim", "--next"],
        vec!["subscribe", "@workers"],
        vec!["watch", "--timeout", "1s"],
        vec!["show", "1"],
        vec!["whoami"],
        vec!["artifact", "get", "1", "-o", "x"],
    ] {
        let error = env
            .inbox()
            .agent("w1")
            .args(&args)
            .fails("not_initialized", 3);
        assert!(error["hint"].as_str().unwrap().contains("init"), "{error}");
    }
    assert!(
        !env.state_db().exists(),
        "no command but init creates the state"
    );
}

#[test]
fn no_identity_exit_3() {
    let env = TestEnv::new();
    let t = env.send("leader", "w1", "s").to_string();
    for args in [
        vec!["whoami"],
        vec!["send", "--to", "w1", "--subject", "s"],
        vec!["fetch"],
        vec!["claim", &t],
        vec!["subscribe", "@workers"],
        vec!["list", "--mine"],
    ] {
        let error = refused(&env, env.inbox().args(&args), "no_identity", 3);
        assert!(
            error["hint"].as_str().unwrap().contains("--agent"),
            "{error}"
        );
    }
    // An empty ORCH_AGENT is no identity either.
    refused(
        &env,
        env.inbox().env("ORCH_AGENT", "").arg("whoami"),
        "no_identity",
        3,
    );
    // Reading needs no identity.
    env.inbox().arg("list").ok();
    env.inbox().args(["show", &t]).ok();
}

#[test]
fn state_errors_exit_4() {
    let env = TestEnv::new();
    let t = env.task("alice", "@workers", "work");
    let id = t.to_string();
    let direct = env.task("leader", "w1", "for w1").to_string();

    // conflict: claiming what is addressed to someone else, replying as an outsider,
    // cancelling as neither sender nor leader.
    refused(
        &env,
        env.inbox().agent("w2").args(["claim", &direct]),
        "conflict",
        4,
    );
    env.inbox().agent("w1").args(["claim", &id]).ok();
    refused(
        &env,
        env.inbox()
            .agent("stranger")
            .args(["reply", &direct, "--body", "hi"]),
        "conflict",
        4,
    );
    refused(
        &env,
        env.inbox().agent("w1").args(["cancel", &id]),
        "conflict",
        4,
    );

    // already_claimed, with who holds it.
    let error = refused(
        &env,
        env.inbox().agent("w2").args(["claim", &id]),
        "already_claimed",
        4,
    );
    assert_eq!(error["details"]["claimed_by"], "w1");

    // not_claimant: the holder's acts by anyone else, and on an open thread.
    for args in [
        vec!["renew", &id],
        vec!["release", &id],
        vec!["update", &id, "--body", "x"],
        vec!["ask", &id, "--body", "x"],
        vec!["done", &id],
        vec!["fail", &id, "--reason", "x"],
    ] {
        refused(&env, env.inbox().agent("w2").args(&args), "not_claimant", 4);
        refused(
            &env,
            env.inbox().agent("alice").args(&args),
            "not_claimant",
            4,
        );
    }
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["update", &direct, "--body", "x"]),
        "not_claimant",
        4,
    );
    // ...and after giving it back.
    env.inbox().agent("w1").args(["release", &id]).ok();
    refused(
        &env,
        env.inbox().agent("w1").args(["update", &id, "--body", "x"]),
        "not_claimant",
        4,
    );

    // thread_closed: anything on a done, failed or cancelled thread.
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox().agent("w1").args(["done", &id]).ok();
    for args in [
        vec!["claim", &id],
        vec!["renew", &id],
        vec!["release", &id],
        vec!["update", &id, "--body", "x"],
        vec!["ask", &id, "--body", "x"],
        vec!["done", &id],
        vec!["fail", &id, "--reason", "x"],
        vec!["reply", &id, "--body", "x"],
    ] {
        refused(
            &env,
            env.inbox().agent("w1").args(&args),
            "thread_closed",
            4,
        );
    }
    refused(
        &env,
        env.inbox().agent("alice").args(["cancel", &id]),
        "thread_closed",
        4,
    );
    refused(
        &env,
        env.inbox()
            .agent("w1")
            .args(["claim", "--next", "--queue", "@workers"]),
        "not_found",
        3,
    );
    env.inbox().agent("leader").args(["cancel", &direct]).ok();
    let error = refused(
        &env,
        env.inbox().agent("w1").args(["claim", &direct]),
        "thread_closed",
        4,
    );
    assert_eq!(error["details"]["status"], "cancelled");
    refused(
        &env,
        env.inbox()
            .agent("leader")
            .args(["wait-reply", &direct, "--timeout", "5s"]),
        "thread_closed",
        4,
    );
}

#[test]
fn timeouts_exit_5() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work").to_string();
    for args in [
        vec!["fetch", "--wait", "100ms"],
        vec!["claim", "--next", "--wait", "100ms"],
        vec!["wait-reply", &t, "--timeout", "100ms"],
    ] {
        let error = refused(&env, env.inbox().agent("w9").args(&args), "timeout", 5);
        assert!(error["hint"].is_string());
    }
    // A --peek wait with nothing after the cursor times out too.
    env.inbox().agent("w1").arg("fetch").ok();
    env.inbox()
        .agent("w1")
        .args(["fetch", "--peek", "--wait", "100ms"])
        .fails("timeout", 5);
}

#[test]
fn io_errors_exit_1_without_a_panic() {
    let env = TestEnv::new();
    let file = env.root().join("f.txt");
    std::fs::write(&file, "x").unwrap();
    let sent = env
        .sending("leader", "w1", "s")
        .arg("--attach")
        .arg(&file)
        .ok();
    let art = sent["message"]["artifacts"][0]["id"].to_string();
    let run = env
        .inbox()
        .args(["artifact", "get", &art, "-o", "/no/such/dir/out", "--json"])
        .run();
    run.error("io", 1);
    assert!(!run.stderr.contains("panicked"), "{run:?}");
    // A blob gone from the store is an I/O error too, not a crash.
    let sha = sent["message"]["artifacts"][0]["sha256"].as_str().unwrap();
    std::fs::remove_file(
        env.repo
            .join(".git/orch/artifacts")
            .join(&sha[..2])
            .join(sha),
    )
    .unwrap();
    let out = env.root().join("out");
    env.inbox()
        .args(["artifact", "get", &art, "-o"])
        .arg(&out)
        .fails("io", 1);
    assert!(!out.exists());
}
