//! Runs, tasks, dependencies and plans: everything before dispatch.

use crate::common::TestEnv;
use serde_json::{json, Value};

pub fn with_run() -> TestEnv {
    let env = TestEnv::new();
    env.orch()
        .args(["run", "init", "r1", "--title", "Run one"])
        .ok();
    env
}

pub fn add(env: &TestEnv, key: &str, extra: &[&str]) -> Value {
    env.orch()
        .args(["task", "add", key, "--title", &format!("Do {key}")])
        .args(extra)
        .ok()["task"]
        .clone()
}

pub fn status_of(env: &TestEnv, key: &str) -> String {
    env.orch().args(["task", "show", key]).ok()["task"]["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn keys(tasks: &Value) -> Vec<String> {
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["key"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn runs_are_created_listed_switched_and_closed() {
    let env = TestEnv::new();
    let err = env.orch().args(["task", "list"]).fails("not_found", 3);
    assert!(err["hint"].as_str().unwrap().contains("git orch run init"));

    let run = env
        .orch()
        .args(["run", "init", "r1", "--title", "Run one", "--base", "main"])
        .ok()["run"]
        .clone();
    assert_eq!(run["name"], "r1");
    assert_eq!(run["status"], "active");
    assert_eq!(run["kind"], "plan");
    assert_eq!(run["base_ref"], "main");
    assert_eq!(run["counts"]["ready"], 0);
    assert!(run["created_at"].as_str().unwrap().ends_with('Z'));

    env.orch()
        .args(["run", "init", "r1", "--title", "Again"])
        .fails("exists", 4);
    env.orch()
        .args(["run", "init", "Bad/Name", "--title", "x"])
        .fails("invalid_name", 2);
    // Without a name, the first free r<N>; it becomes the current run.
    let second = env.orch().args(["run", "init", "--title", "Two"]).ok()["run"].clone();
    assert_eq!(second["name"], "r2");
    assert_eq!(env.orch().args(["run", "show"]).ok()["run"]["name"], "r2");

    env.orch().args(["run", "use", "r1"]).ok();
    assert_eq!(env.orch().args(["run", "show"]).ok()["run"]["name"], "r1");
    env.orch()
        .args(["run", "use", "nope"])
        .fails("not_found", 3);

    add(&env, "a", &[]);
    let runs = env.orch().args(["run", "list"]).ok()["runs"].clone();
    assert_eq!(runs.as_array().unwrap().len(), 2);
    assert_eq!(runs[0]["counts"]["ready"], 1);
    assert_eq!(runs[0]["counts"]["total"], 1);

    let closed = env.orch().args(["run", "close", "r2"]).ok()["run"].clone();
    assert_eq!(closed["status"], "closed");
    env.orch()
        .args(["task", "add", "x", "--title", "X", "--run", "r2"])
        .fails("invalid_transition", 4);
    env.orch()
        .args(["run", "close", "r2"])
        .fails("invalid_transition", 4);
    let log = env.orch().args(["log", "--run", "r2"]).ok()["events"].clone();
    let kinds: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["to"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds, [("run.status", "active"), ("run.status", "closed")]);
}

#[test]
fn task_add_validates_and_sets_ready_or_pending() {
    let env = with_run();
    let spec = add(
        &env,
        "spec",
        &["--body", "Write it down", "--priority", "2"],
    );
    assert_eq!(spec["status"], "ready");
    assert_eq!(spec["kind"], "code");
    assert_eq!(spec["to"], "@workers");
    assert_eq!(spec["max_attempts"], 3);
    assert_eq!(spec["attempts"], 0);
    assert_eq!(spec["current_attempt"], Value::Null);
    assert_eq!(spec["blocked_reason"], Value::Null);
    assert_eq!(spec["after"], json!([]));
    assert_eq!(spec["body"], "Write it down");

    let lexer = add(
        &env,
        "lexer",
        &[
            "--after",
            "spec",
            "--to",
            "w1",
            "--kind",
            "chore",
            "--max-attempts",
            "1",
        ],
    );
    assert_eq!(lexer["status"], "pending");
    assert_eq!(lexer["after"], json!(["spec"]));
    assert_eq!(lexer["to"], "w1");
    assert_eq!(lexer["kind"], "chore");

    env.orch()
        .args(["task", "add", "spec", "--title", "dup"])
        .fails("exists", 4);
    env.orch()
        .args(["task", "add", "-x", "--title", "t"])
        .fails("usage", 2);
    env.orch()
        .args(["task", "add", "a..b", "--title", "t"])
        .fails("invalid_name", 2);
    env.orch()
        .args(["task", "add", "x", "--title", "t", "--after", "ghost"])
        .fails("not_found", 3);
    env.orch()
        .args(["task", "add", "x", "--title", "t", "--to", "@Bad"])
        .fails("invalid_name", 2);
    env.orch()
        .args(["task", "add", "x", "--title", "two\nlines"])
        .fails("invalid_input", 2);
    env.orch()
        .args(["task", "add", "x", "--title", "t", "--max-attempts", "0"])
        .fails("invalid_input", 2);
    env.orch()
        .args(["task", "add", "x", "--title", "t", "--after", "x"])
        .fails("cycle", 4);
    env.orch()
        .args(["task", "show", "ghost"])
        .fails("not_found", 3);

    let listed = env.orch().args(["task", "list"]).ok()["tasks"].clone();
    assert_eq!(keys(&listed), ["spec", "lexer"]);
    let pending = env
        .orch()
        .args(["task", "list", "--status", "pending"])
        .ok()["tasks"]
        .clone();
    assert_eq!(keys(&pending), ["lexer"]);
    let shown = env.orch().args(["task", "show", "lexer"]).ok();
    assert_eq!(shown["task"]["key"], "lexer");
    assert_eq!(shown["attempts"], json!([]));
}

#[test]
fn ready_orders_by_priority_then_age() {
    let env = with_run();
    add(&env, "old-low", &[]);
    add(&env, "high", &["--priority", "5"]);
    add(&env, "new-low", &[]);
    add(&env, "negative", &["--priority", "-1"]);
    add(&env, "waiting", &["--after", "high", "--priority", "9"]);
    let ready = env.orch().arg("ready").ok()["tasks"].clone();
    assert_eq!(keys(&ready), ["high", "old-low", "new-low", "negative"]);
}

#[test]
fn dependencies_refuse_cycles_naming_them() {
    let env = with_run();
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    add(&env, "c", &["--after", "b"]);
    let err = env.orch().args(["dep", "add", "a", "c"]).fails("cycle", 4);
    assert_eq!(err["details"]["cycle"], json!(["a", "c", "b", "a"]));
    let err = env.orch().args(["dep", "add", "a", "a"]).fails("cycle", 4);
    assert_eq!(err["details"]["cycle"], json!(["a", "a"]));
    env.orch()
        .args(["dep", "add", "a", "ghost"])
        .fails("not_found", 3);

    // A new dependency that is not done sends a ready task back to pending …
    add(&env, "d", &[]);
    assert_eq!(status_of(&env, "d"), "ready");
    let added = env.orch().args(["dep", "add", "d", "c"]).ok();
    assert_eq!(added["changed"], true);
    assert_eq!(added["task"]["status"], "pending");
    assert_eq!(added["task"]["after"], json!(["c"]));
    assert_eq!(
        env.orch().args(["dep", "add", "d", "c"]).ok()["changed"],
        false
    );
    // … and removing the last one makes it ready again.
    let removed = env.orch().args(["dep", "rm", "d", "c"]).ok();
    assert_eq!(removed["task"]["status"], "ready");
    env.orch()
        .args(["dep", "rm", "d", "c"])
        .fails("not_found", 3);

    let events = env.orch().arg("log").ok()["events"].clone();
    let d_changes: Vec<(String, String)> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "task.status" && e["task"] == "d")
        .map(|e| {
            (
                e["from"].as_str().unwrap_or("").to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        d_changes,
        [
            ("".into(), "ready".into()),
            ("ready".into(), "pending".into()),
            ("pending".into(), "ready".into())
        ]
    );
}

#[test]
fn import_is_all_or_nothing() {
    let env = with_run();
    add(&env, "existing", &[]);
    let import = |plan: &Value| {
        env.orch()
            .args(["task", "import", "-"])
            .stdin(plan.to_string())
    };
    let count = || {
        env.orch().args(["task", "list"]).ok()["tasks"]
            .as_array()
            .unwrap()
            .len()
    };

    let cyclic = json!({"tasks": [
        {"key": "a", "title": "A", "after": ["c"]},
        {"key": "b", "title": "B", "after": ["a", "existing"]},
        {"key": "c", "title": "C", "after": ["b"]},
        {"key": "d", "title": "D"},
    ]});
    let err = import(&cyclic).fails("cycle", 4);
    let cycle: Vec<String> = serde_json::from_value(err["details"]["cycle"].clone()).unwrap();
    assert_eq!(cycle.len(), 4, "{cycle:?}");
    assert_eq!(cycle.first(), cycle.last());
    for key in ["a", "b", "c"] {
        assert!(cycle.contains(&key.to_owned()), "{cycle:?}");
    }
    assert_eq!(count(), 1);

    let unknown = json!({"tasks": [{"key": "a", "title": "A", "after": ["ghost"]}]});
    let err = import(&unknown).fails("not_found", 3);
    assert_eq!(err["details"]["depends_on"], "ghost");
    let bad_name = json!({"tasks": [{"key": "ok", "title": "A"}, {"key": "Not OK", "title": "B"}]});
    let err = import(&bad_name).fails("invalid_name", 2);
    assert_eq!(err["details"]["index"], 1);
    let dup = json!({"tasks": [{"key": "a", "title": "A"}, {"key": "a", "title": "B"}]});
    import(&dup).fails("exists", 4);
    let clash = json!({"tasks": [{"key": "existing", "title": "A"}]});
    import(&clash).fails("exists", 4);
    let typo = json!({"tasks": [{"key": "a", "title": "A", "afterr": []}]});
    import(&typo).fails("invalid_input", 2);
    env.orch()
        .args(["task", "import", "-"])
        .stdin("not json")
        .fails("invalid_input", 2);
    assert_eq!(count(), 1);

    let good = json!({"tasks": [
        {"key": "spec", "title": "Spec", "body": "the body", "priority": 1},
        {"key": "lexer", "title": "Lexer", "after": ["spec", "existing"], "to": "w1", "kind": "review", "max_attempts": 2, "base": "main"},
        {"key": "parser", "title": "Parser", "after": ["lexer"]},
    ]});
    let tasks = import(&good).ok()["tasks"].clone();
    assert_eq!(keys(&tasks), ["spec", "lexer", "parser"]);
    assert_eq!(tasks[0]["status"], "ready");
    assert_eq!(tasks[0]["body"], "the body");
    assert_eq!(tasks[1]["status"], "pending");
    assert_eq!(tasks[1]["after"], json!(["existing", "spec"]));
    assert_eq!(tasks[1]["to"], "w1");
    assert_eq!(tasks[1]["kind"], "review");
    assert_eq!(tasks[1]["max_attempts"], 2);
    assert_eq!(tasks[1]["base"], "main");
    assert_eq!(count(), 4);

    let file = env.root().join("plan.json");
    std::fs::write(
        &file,
        json!({"tasks": [{"key": "from-file", "title": "F"}]}).to_string(),
    )
    .unwrap();
    let from_file = env.orch().args(["task", "import"]).arg(&file).ok()["tasks"].clone();
    assert_eq!(keys(&from_file), ["from-file"]);
}

#[test]
fn human_output_is_tables_and_sentences() {
    let env = with_run();
    add(&env, "spec", &[]);
    add(&env, "lexer", &["--after", "spec"]);
    let status = env.orch().arg("status").run();
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status.stdout.contains("2 task(s): 1 pending, 1 ready"),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("KEY"), "{}", status.stdout);
    assert!(status.stdout.contains("ACTIVITY"), "{}", status.stdout);
    // Streamed, yet aligned over every row: each column starts where its header does.
    let lines: Vec<&str> = status.stdout.lines().collect();
    let header = lines.iter().position(|l| l.starts_with("KEY")).unwrap();
    let column = |name: &str| lines[header].find(name).unwrap();
    for row in &lines[header + 1..header + 3] {
        assert_eq!(
            row.find("ready").or(row.find("pending")),
            Some(column("STATUS")),
            "{row}"
        );
        assert_eq!(
            row.find(" ago")
                .map(|end| row[..end].rfind(' ').unwrap() + 1),
            Some(column("ACTIVITY")),
            "{row}"
        );
    }
    let failed = env.orch().args(["dep", "add", "spec", "lexer"]).run();
    assert_eq!(failed.code, 4);
    assert!(failed.stderr.contains("cycle"), "{}", failed.stderr);
    assert!(failed.stderr.contains("hint:"), "{}", failed.stderr);
}

/// A state database as a binary from before migration 0006 left it: the earlier
/// migrations as they are in the tree, then a run whose tasks have dependencies.
fn database_before_0006() -> TestEnv {
    let env = TestEnv::bare_repo();
    let state = env.repo.join(".git/orch");
    std::fs::create_dir_all(&state).unwrap();
    let conn = rusqlite::Connection::open(state.join("state.db")).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().unwrap() < "0006")
        .collect();
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    for file in &files {
        conn.execute_batch(&std::fs::read_to_string(file).unwrap())
            .unwrap();
    }
    conn.execute_batch(
        "PRAGMA user_version = 5;
         INSERT INTO runs (name, title, status, kind, created_at, updated_at)
             VALUES ('r1', 'Old run', 'active', 'plan', 1, 1);
         INSERT INTO orch_settings (key, value) VALUES ('current_run', 'r1');
         INSERT INTO tasks (run, key, title, kind, to_addr, status, created_at, updated_at) VALUES
             ('r1', 'spec', 'Spec', 'code', '@workers', 'ready', 1, 1),
             ('r1', 'lexer', 'Lexer', 'code', '@workers', 'pending', 2, 2),
             ('r1', 'parser', 'Parser', 'code', '@workers', 'pending', 3, 3);
         INSERT INTO deps (run, task, depends_on) VALUES
             ('r1', 'lexer', 'spec'), ('r1', 'parser', 'spec'), ('r1', 'parser', 'lexer');",
    )
    .unwrap();
    env
}

fn after_of(env: &TestEnv) -> Vec<(String, Value)> {
    let tasks = env.orch().args(["status"]).ok()["tasks"].clone();
    tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap().to_owned(), t["after"].clone()))
        .collect()
}

#[test]
fn migrating_past_0006_copies_every_dependency_onto_its_task_and_keeps_it_in_step() {
    let env = database_before_0006();
    let expect = |lexer: Value, parser: Value| {
        vec![
            ("spec".to_owned(), json!([])),
            ("lexer".to_owned(), lexer),
            ("parser".to_owned(), parser),
        ]
    };
    // The first command migrates; the dependencies it lists come from the copies.
    assert_eq!(
        after_of(&env),
        expect(json!(["spec"]), json!(["lexer", "spec"]))
    );
    let copies: Vec<Option<String>> = env
        .db()
        .prepare("SELECT after_keys FROM tasks ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(copies[0], None);
    assert_eq!(copies[1].as_deref(), Some("spec"));
    let mut parser: Vec<&str> = copies[2].as_deref().unwrap().split('\n').collect();
    parser.sort_unstable();
    assert_eq!(parser, ["lexer", "spec"]);

    // Every later change to `deps` reaches the copy, through the commands and through
    // plain SQL alike.
    env.orch().args(["dep", "rm", "parser", "spec"]).ok();
    env.orch()
        .args(["dep", "add", "lexer", "parser"])
        .fails("cycle", 4);
    add(&env, "docs", &["--after", "parser", "--after", "lexer"]);
    env.db()
        .execute("DELETE FROM deps WHERE task = 'lexer'", [])
        .unwrap();
    let mut want = expect(json!([]), json!(["lexer"]));
    want.push(("docs".to_owned(), json!(["lexer", "parser"])));
    assert_eq!(after_of(&env), want);
}

#[test]
fn a_runs_tasks_are_read_in_creation_order_without_a_sort() {
    let env = with_run();
    for key in ["c", "a", "b"] {
        add(&env, key, &[]);
    }
    let plan: Vec<String> = env
        .db()
        .prepare(
            "EXPLAIN QUERY PLAN SELECT t.key FROM tasks t
             LEFT JOIN attempts a ON a.id = t.current_attempt
             WHERE t.run = 'r1' ORDER BY t.id",
        )
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert!(
        plan.iter().any(|step| step.contains("tasks_by_run")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|step| step.contains("TEMP B-TREE")),
        "{plan:?}"
    );
    let listed = env.orch().args(["task", "list"]).ok()["tasks"].clone();
    assert_eq!(keys(&listed), ["c", "a", "b"]);
}

#[test]
fn a_plan_file_over_4_mib_is_refused_whole_with_how_to_split_it() {
    let env = with_run();
    // Valid JSON throughout, so only the size can be what refuses it.
    let body = "Write it, test it, commit it; then say what is left. ".repeat(2);
    let tasks: Vec<Value> = (0..40_000)
        .map(|i| json!({"key": format!("task-{i}"), "title": format!("Task {i}"), "body": body}))
        .collect();
    let file = env.root().join("plan.json");
    std::fs::write(&file, json!({ "tasks": tasks }).to_string()).unwrap();
    assert!(std::fs::metadata(&file).unwrap().len() > 4 * 1024 * 1024);
    let err = env
        .orch()
        .args(["task", "import"])
        .arg(&file)
        .fails("too_large", 2);
    assert!(err["message"].as_str().unwrap().contains("4 MiB"), "{err}");
    assert!(
        err["hint"].as_str().unwrap().contains("several files"),
        "{err}"
    );
    assert_eq!(err["details"]["limit_bytes"], 4 * 1024 * 1024);
    assert_eq!(env.count("tasks"), 0);
}
