//! One integration-test binary that links once (it matters on 2 cores); each module is
//! one area of the product, driven through the real binaries.

mod common;

mod cli_edge;
mod council_commands;
mod council_review;
mod discovery;
mod drive;
mod hardening;
mod inbox_basics;
mod inbox_commands;
mod inbox_concurrency;
mod inbox_errors;
mod launch;
mod mcp;
mod orch_dispatch;
mod orch_docs;
mod orch_land;
mod orch_newcomer;
mod orch_plan;
mod orch_wait;
mod orch_worktrees;
mod relaunch;
mod repo_hooks;
mod task_profile;
mod walkthrough;

/// A test file in `tests/` that is not a module here would never be compiled or run.
#[test]
fn no_forgotten_test_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let runner = std::fs::read_to_string(dir.join("runner.rs")).unwrap();
    let mut forgotten = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.extension().is_some_and(|e| e == "rs")
            && stem != "runner"
            && !runner.contains(&format!("\nmod {stem};\n"))
        {
            forgotten.push(stem.to_owned());
        }
    }
    assert!(
        forgotten.is_empty(),
        "add `mod NAME;` to tests/runner.rs for {forgotten:?}"
    );
}
