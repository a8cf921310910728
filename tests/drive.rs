//! `git orch drive` (SPEC §12): the leader's loop over real supervisors running the
//! fixture agent (`fixtures/agents/by-task.sh`, a mode per task), with questions
//! answered from another process, retries, the ends (done, blocked, stuck, timeout),
//! one drive per run, and SIGINT followed by a drive that carries on; with `--land`
//! (`fixtures/agents/land-worker.sh`), each task landing as it succeeds, a conflict and a
//! failing check sent back, reworked by a launched agent and landed.

use crate::common::{finish, wait_until, Run, TestEnv};
use crate::orch_plan::{add, status_of, with_run};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

const DRIVE_WAIT: Duration = Duration::from_secs(90);

/// A run with a `script` profile `w` whose agent behaves per task as `modes` says.
fn setup(modes: &[(&str, &str)]) -> TestEnv {
    setup_with("by-task.sh", modes)
}

/// The same with another fixture agent of `fixtures/agents/`.
fn setup_with(agent: &str, modes: &[(&str, &str)]) -> TestEnv {
    let env = with_run();
    let dir = env.root().join("modes");
    std::fs::create_dir_all(&dir).unwrap();
    for (task, mode) in modes {
        std::fs::write(dir.join(task), mode).unwrap();
    }
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/agents")
        .join(agent);
    let command = format!("{} {}", fixture.display(), dir.display());
    env.git(&["config", "orch.agent.w.command", &command]);
    env.git(&["config", "orch.agent.w.protocol", "inbox"]);
    env
}

/// The event lines of a `--json` drive, and its final envelope.
fn split(run: &Run) -> (Vec<Value>, Value) {
    let mut lines = run.lines();
    let last = lines.pop().unwrap_or_else(|| panic!("no output: {run:?}"));
    (lines, last)
}

fn kinds_of(events: &[Value], task: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["task"] == task)
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn until_blocked(env: &TestEnv, key: &str) {
    wait_until("the task to ask", DRIVE_WAIT, || {
        (status_of(env, key) == "blocked").then_some(())
    });
}

fn interrupt(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn drives_a_plan_with_a_dependency_and_a_question_answered_elsewhere() {
    let env = setup(&[("c", "ask")]);
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    add(&env, "c", &[]);
    let drive = env
        .orch()
        .args(["drive", "--launch", "w", "--parallel", "2"])
        .spawn_json();
    until_blocked(&env, "c");
    let question = env.orch().arg("blocked").ok()["tasks"][0].clone();
    assert_eq!(question["key"], "c");
    env.orch()
        .args(["answer", "c", "--body", "yes, accept it"])
        .ok();
    let run = finish(drive, DRIVE_WAIT);
    assert_eq!(run.code, 0, "{run:?}");
    let (events, end) = split(&run);
    assert_eq!(end["data"]["end"], "done", "{end}");
    for key in ["a", "b", "c"] {
        assert_eq!(status_of(&env, key), "done");
        let kinds = kinds_of(&events, key);
        assert_eq!(
            kinds.first().map(String::as_str),
            Some("dispatch"),
            "{key}: {kinds:?}"
        );
        assert_eq!(
            kinds.last().map(String::as_str),
            Some("done"),
            "{key}: {kinds:?}"
        );
        assert!(kinds.contains(&"commit".to_owned()), "{key}: {kinds:?}");
    }
    let asked = events.iter().find(|e| e["kind"] == "question").unwrap();
    assert_eq!(asked["task"], "c");
    assert!(
        asked["text"].as_str().unwrap().contains("empty input"),
        "{asked}"
    );
    assert_eq!(asked["answer_with"], "git orch answer c --run r1 --body …");
    assert!(kinds_of(&events, "c").contains(&"answer".to_owned()));
    // b waited for a: its dispatch comes after a's done.
    let pos = |key: &str, kind: &str| {
        events
            .iter()
            .position(|e| e["task"] == key && e["kind"] == kind)
            .unwrap()
    };
    assert!(pos("a", "done") < pos("b", "dispatch"));
}

/// The most attempts in flight at any one time, from allocation (`started_at`) to the
/// end the drive saw (`ended_at`); an attempt that starts in the millisecond another
/// ended does not overlap it.
fn most_at_once(env: &TestEnv) -> usize {
    let db = env.db();
    let mut stmt = db
        .prepare("SELECT started_at, ended_at FROM attempts WHERE run = 'r1'")
        .unwrap();
    let spans: Vec<(i64, i64)> = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(i64::MAX)))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    spans
        .iter()
        .map(|(at, _)| spans.iter().filter(|(s, e)| s <= at && at < e).count())
        .max()
        .unwrap_or(0)
}

#[test]
fn independent_tasks_are_dispatched_at_once_never_above_parallel() {
    let env = setup(&[]);
    for chain in ["a", "b", "c"] {
        add(&env, &format!("{chain}1"), &[]);
        add(
            &env,
            &format!("{chain}2"),
            &["--after", &format!("{chain}1")],
        );
    }
    // `git worktree add` runs post-checkout inside a dispatch. The first checkout waits
    // (10 s at most) for a second dispatch to hold its lock (`<state>/dispatch/ID.lock`,
    // taken when its attempt is allocated): it can only see one when two dispatches run
    // at once. Later checkouts go straight on.
    let state = env.state_db().parent().unwrap().to_owned();
    let verdict = env.root().join("verdict");
    let hook = state.parent().unwrap().join("hooks/post-checkout");
    std::fs::create_dir_all(hook.parent().unwrap()).unwrap();
    let script = format!(
        "#!/bin/sh\n[ -e {verdict} ] && exit 0\ni=0\n\
         while [ $(ls {locks} | wc -l) -lt 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done\n\
         if [ $(ls {locks} | wc -l) -ge 2 ]; then echo met; else echo alone; fi > {verdict}\n",
        locks = state.join("dispatch").display(),
        verdict = verdict.display()
    );
    std::fs::write(&hook, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

    let run = env
        .orch()
        .args(["drive", "--launch", "w", "--parallel", "2"])
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    for chain in ["a", "b", "c"] {
        for step in ["1", "2"] {
            assert_eq!(status_of(&env, &format!("{chain}{step}")), "done");
        }
    }
    assert_eq!(std::fs::read_to_string(&verdict).unwrap(), "met\n");
    assert_eq!(most_at_once(&env), 2);
}

#[test]
fn a_retryable_failure_is_retried_while_attempts_remain() {
    let env = setup(&[("a", "flaky")]);
    add(&env, "a", &[]);
    let run = env
        .orch()
        .args(["drive", "--launch", "w"])
        .arg("--json")
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    let (events, _) = split(&run);
    assert_eq!(
        kinds_of(&events, "a")
            .into_iter()
            .filter(|k| k != "commit")
            .collect::<Vec<_>>(),
        ["dispatch", "failure", "retry", "done"]
    );
    let failure = events.iter().find(|e| e["kind"] == "failure").unwrap();
    assert_eq!(failure["retry"], true);
    assert_eq!(failure["text"], "agent_exited");
    let task = env.orch().args(["task", "show", "a"]).ok()["task"].clone();
    assert_eq!(task["attempts"], 2);
}

#[test]
fn stuck_names_the_failed_tasks_and_what_waits_on_them() {
    let env = setup(&[("a", "fail")]);
    add(&env, "a", &["--max-attempts", "1"]);
    add(&env, "b", &["--after", "a"]);
    let run = env.orch().args(["drive", "--launch", "w", "--json"]).run();
    let last = run.lines().pop().unwrap();
    assert_eq!(last["error"]["code"], "stuck", "{run:?}");
    assert_eq!(run.code, 4);
    let details = &last["error"]["details"];
    assert_eq!(details["failed"][0]["task"], "a");
    assert_eq!(details["failed"][0]["reason"], "agent_exited");
    assert_eq!(details["waiting"][0]["task"], "b");
    assert_eq!(details["waiting"][0]["on"], serde_json::json!(["a"]));
}

#[test]
fn until_blocked_returns_when_everything_in_flight_asks() {
    let env = setup(&[("a", "ask")]);
    add(&env, "a", &[]);
    let run = env
        .orch()
        .args(["drive", "--launch", "w", "--until", "blocked", "--json"])
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    let (events, end) = split(&run);
    assert_eq!(end["data"]["end"], "blocked");
    assert!(kinds_of(&events, "a").contains(&"question".to_owned()));
    env.orch().args(["answer", "a", "--body", "no"]).ok();
    let again = env.orch().args(["drive", "--launch", "w", "--json"]).run();
    assert_eq!(split(&again).1["data"]["end"], "done", "{again:?}");
}

#[test]
fn no_profile_is_refused_before_anything_is_dispatched() {
    let env = setup(&[]);
    add(&env, "a", &[]);
    let err = env.orch().arg("drive").fails("usage", 2);
    assert!(
        err["hint"].as_str().unwrap().contains("orch.launch"),
        "{err}"
    );
    assert_eq!(status_of(&env, "a"), "ready");
    assert_eq!(env.count("attempts"), 0);
}

#[test]
fn a_timeout_ends_drive_with_5_and_leaves_the_agent_working() {
    let env = setup(&[("a", "hang")]);
    add(&env, "a", &[]);
    env.git(&["config", "orch.launch", "w"]);
    let run = env
        .orch()
        .args(["drive", "--timeout", "2s", "--json"])
        .run();
    let last = run.lines().pop().unwrap();
    assert_eq!(last["error"]["code"], "timeout", "{run:?}");
    assert_eq!(run.code, 5);
    assert_eq!(status_of(&env, "a"), "running");
    env.orch().args(["cancel", "a"]).ok();
}

#[test]
fn one_drive_per_run_and_sigint_then_a_new_drive_carries_on() {
    let env = setup(&[("a", "ask"), ("b", "done")]);
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    let first = env.orch().args(["drive", "--launch", "w"]).spawn_json();
    until_blocked(&env, "a");

    let err = env
        .orch()
        .args(["drive", "--launch", "w"])
        .fails("conflict", 4);
    assert_eq!(err["details"]["pid"], first.id(), "{err}");

    interrupt(&first);
    let run = finish(first, DRIVE_WAIT);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(split(&run).1["data"]["end"], "interrupted");
    // The agent is still there, under its supervisor, waiting for its answer.
    let agents = env.orch().arg("agents").ok()["agents"].clone();
    assert_eq!(agents[0]["state"], "running", "{agents}");
    assert_eq!(status_of(&env, "b"), "pending");

    env.orch().args(["answer", "a", "--body", "go on"]).ok();
    let again = env.orch().args(["drive", "--launch", "w", "--json"]).run();
    let (events, end) = split(&again);
    assert_eq!(end["data"]["end"], "done", "{again:?}");
    assert!(kinds_of(&events, "b").contains(&"dispatch".to_owned()));
    assert_eq!(status_of(&env, "a"), "done");
    assert_eq!(status_of(&env, "b"), "done");
}

fn task_json(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()["task"].clone()
}

fn on_main(env: &TestEnv, commit: &str) -> bool {
    env.git_with_tools()
        .args(["merge-base", "--is-ancestor", commit, "main"])
        .run()
        .code
        == 0
}

#[test]
fn drive_land_lands_each_task_and_reworks_a_conflict_and_a_failing_check() {
    let env = setup_with(
        "land-worker.sh",
        &[("a", "shared"), ("c", "shared"), ("d", "broken")],
    );
    env.git(&[
        "config",
        "orch.land.check",
        "sh -c '! grep -rqs BROKEN src'",
    ]);
    add(&env, "a", &[]);
    add(&env, "b", &["--after", "a"]);
    add(&env, "c", &[]);
    add(&env, "d", &["--after", "a"]);
    let run = env
        .orch()
        .args([
            "drive",
            "--launch",
            "w",
            "--land",
            "--parallel",
            "2",
            "--json",
        ])
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    let (events, end) = split(&run);
    assert_eq!(end["data"]["end"], "done", "{end}");
    for key in ["a", "b", "c", "d"] {
        let task = task_json(&env, key);
        assert_eq!(task["status"], "done", "{task}");
        assert!(task["landed_at"].is_string(), "{key} did not land: {task}");
        let head = task["current_attempt"]["head_sha"].as_str().unwrap();
        assert!(on_main(&env, head), "{key}'s head {head} is not on main");
        assert!(kinds_of(&events, key).contains(&"landed".to_owned()));
    }
    let sent: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "sent_back")
        .map(|e| {
            (
                e["task"].as_str().unwrap().to_owned(),
                e["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Exactly one of the two that write shared.txt conflicts (whichever landed second),
    // and exactly the task whose change breaks the check fails it.
    let conflicts: Vec<&str> = sent
        .iter()
        .filter(|(_, why)| why == "land_conflict")
        .map(|(k, _)| k.as_str())
        .collect();
    assert!(conflicts == ["a"] || conflicts == ["c"], "{sent:?}");
    let checks: Vec<&str> = sent
        .iter()
        .filter(|(_, why)| why == "land_check")
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(checks, ["d"], "{sent:?}");
    let conflict = events
        .iter()
        .find(|e| e["kind"] == "sent_back" && e["text"] == "land_conflict")
        .unwrap();
    assert_eq!(conflict["paths"], serde_json::json!(["src/shared.txt"]));
    // Each was reworked by a launched agent (attempt 2) and then landed.
    for key in [conflicts[0], "d"] {
        let kinds = kinds_of(&events, key);
        let at = |kind: &str| kinds.iter().rposition(|k| k == kind).unwrap();
        assert!(at("sent_back") < at("rework"), "{key}: {kinds:?}");
        assert!(at("rework") < at("landed"), "{key}: {kinds:?}");
        let task = task_json(&env, key);
        assert_eq!(task["current_attempt"]["n"], 2, "{task}");
        assert!(task["current_attempt"]["launch"].is_object(), "{task}");
    }
    // The check never saw BROKEN on main, and main's worktree followed (fast-forwarded).
    let tree = env.git(&["ls-tree", "-r", "--name-only", "main"]);
    for file in [
        "src/a.txt",
        "src/b.txt",
        "src/c.txt",
        "src/d.txt",
        "src/shared.txt",
    ] {
        assert!(
            tree.lines().any(|l| l == file),
            "{file} not on main: {tree}"
        );
        assert!(
            env.repo.join(file).exists(),
            "{file} not in main's worktree"
        );
    }
    let d = env.git(&["show", "main:src/d.txt"]);
    assert!(!d.contains("BROKEN"), "{d}");
    assert_eq!(env.git(&["status", "--porcelain"]), "");
}

#[test]
fn drive_land_refuses_a_bad_target_before_dispatching() {
    let env = setup(&[]);
    env.git(&["tag", "v1"]);
    env.orch()
        .args(["run", "init", "r2", "--title", "Two", "--base", "v1"])
        .ok();
    add(&env, "a", &["--run", "r2"]);
    env.git(&["checkout", "-q", "--detach"]);
    let err = env
        .orch()
        .args(["drive", "--run", "r2", "--launch", "w", "--land"])
        .fails("bad_ref", 6);
    assert_eq!(err["details"]["reason"], "no_default", "{err}");
    assert_eq!(env.count("attempts"), 0);
}
