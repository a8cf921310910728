//! A task's own launch profile (`task add --agent-profile`, the plan's `"profile"`): kept
//! on the task, shown in its JSON, and what drive launches it with, over `--launch`. The
//! name is checked when the task is added; whether such a profile exists, at the launch.

use crate::common::TestEnv;
use crate::orch_plan::{add, with_run};
use serde_json::Value;
use std::path::Path;

/// A `script` profile running the fixture agent that commits and says done.
fn profile(env: &TestEnv, name: &str) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/agents/launched.sh");
    let command = format!("{} done", fixture.display());
    env.git(&["config", &format!("orch.agent.{name}.command"), &command]);
    env.git(&["config", &format!("orch.agent.{name}.protocol"), "inbox"]);
}

fn shown(env: &TestEnv, key: &str) -> Value {
    env.orch().args(["task", "show", key]).ok()
}

#[test]
fn drive_launches_each_task_with_its_own_profile() {
    let env = with_run();
    profile(&env, "alpha");
    profile(&env, "beta");
    profile(&env, "fallback");
    let plan = r#"{"tasks": [
        {"key": "a", "title": "Do a", "profile": "alpha"},
        {"key": "b", "title": "Do b", "profile": "beta"},
        {"key": "c", "title": "Do c", "after": ["a", "b"]}
    ]}"#;
    let plan_file = env.root().join("plan.json");
    std::fs::write(&plan_file, plan).unwrap();
    let imported = env.orch().args(["task", "import"]).arg(&plan_file).ok();
    let profiles: Vec<&Value> = imported["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["profile"])
        .collect();
    assert_eq!(
        profiles,
        [&Value::from("alpha"), &"beta".into(), &Value::Null]
    );
    let d = add(&env, "d", &["--after", "c", "--agent-profile", "beta"]);
    assert_eq!(d["profile"], "beta");

    let run = env.orch().args(["drive", "--launch", "fallback"]).run();
    assert_eq!(run.code, 0, "{run:?}");
    for (key, want) in [
        ("a", "alpha"),
        ("b", "beta"),
        ("c", "fallback"),
        ("d", "beta"),
    ] {
        let task = shown(&env, key);
        assert_eq!(task["task"]["status"], "done", "{key}: {task}");
        let attempts = task["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{key}: {task}");
        let launch = &attempts[0]["launch"];
        assert_eq!(launch["profile"], want, "{key}: {launch}");
        let agent = format!("{want}-{}", attempts[0]["id"]);
        assert_eq!(launch["agent"], agent.as_str(), "{key}: {launch}");
        assert!(attempts[0]["commits"].as_i64().unwrap() >= 1, "{key}");
    }
}

#[test]
fn a_bad_profile_name_is_refused_at_add_and_an_unknown_one_at_the_launch() {
    let env = with_run();
    let err = env
        .orch()
        .args([
            "task",
            "add",
            "a",
            "--title",
            "A",
            "--agent-profile",
            "no way",
        ])
        .fails("invalid_name", 2);
    assert_eq!(err["details"]["field"], "profile", "{err}");
    let plan_file = env.root().join("plan.json");
    std::fs::write(
        &plan_file,
        r#"{"tasks": [{"key": "a", "title": "A"}, {"key": "b", "title": "B", "profile": "../x"}]}"#,
    )
    .unwrap();
    let err = env
        .orch()
        .args(["task", "import"])
        .arg(&plan_file)
        .fails("invalid_name", 2);
    assert_eq!(err["details"]["task"], "b", "{err}");
    assert_eq!(env.count("tasks"), 0, "the plan is all or nothing");

    // A well-formed name nobody configured is taken: config may come after the plan.
    profile(&env, "known");
    add(&env, "a", &["--agent-profile", "later"]);
    add(&env, "b", &[]);
    let err = env
        .orch()
        .args(["drive", "--launch", "known"])
        .fails("unknown_profile", 3);
    assert_eq!(err["details"]["profile"], "later", "{err}");
    assert_eq!(env.count("attempts"), 0, "nothing dispatched: {err}");
    profile(&env, "later");
    let run = env.orch().args(["drive", "--launch", "known"]).run();
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        shown(&env, "a")["attempts"][0]["launch"]["profile"],
        "later"
    );
}
