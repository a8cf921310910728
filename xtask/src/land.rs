//! Landing under fire and against git: the crash scenario of `cargo xtask e2e` (SIGKILL
//! of `git orch land` at random points, then another land, with the invariants checked
//! after every run), the demo plan driven with `drive --launch --land` (a planted
//! conflict and a check that fails on one task's change, both reworked and landed), and
//! `cargo xtask bench land` (100 one-commit branches landed at once against the same 100
//! `git merge-tree --write-tree` calls run bare in the same run).

use crate::util::{check, data_of, finish_or_kill, ms, workspace_root, Bins, Rng, Row, Sandbox};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Creates `n` done code tasks `t000…`, each with one commit on its own branch made from
/// `main`: every 10th conflicts with its predecessor, every 7th adds a file the check
/// refuses. Returns the keys.
fn done_tasks(sb: &Sandbox, bins: &Bins, n: usize, troubles: bool) -> Result<Vec<String>> {
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    orch(&["init"])?;
    orch(&[
        "run",
        "init",
        "r1",
        "--title",
        "Landing",
        "--base",
        "integration",
    ])?;
    let keys: Vec<String> = (0..n).map(|i| format!("t{i:03}")).collect();
    let plan = json!({"tasks": keys.iter().map(|k| json!({"key": k, "title": format!("Task {k}")})).collect::<Vec<_>>()});
    let plan_file = sb.home.join("plan.json");
    std::fs::write(&plan_file, plan.to_string())?;
    orch(&["task", "import", plan_file.to_str().context("UTF-8")?])?;
    let dispatched = data_of(&orch(&["--json", "dispatch", "--all-ready", "--to", "w1"])?)?;
    for attempt in dispatched["attempts"].as_array().context("attempts")? {
        let wt = PathBuf::from(attempt["worktree"].as_str().context("worktree")?);
        let key = attempt["task"].as_str().context("task")?;
        let i: usize = key[1..].parse()?;
        let (file, text) = if troubles && i % 10 == 9 {
            ("shared.txt".to_owned(), format!("{key}\n"))
        } else if troubles && i % 10 == 8 {
            ("shared.txt".to_owned(), format!("{key} first\n"))
        } else {
            (format!("{key}.txt"), format!("{key}\n"))
        };
        let file = if troubles && i % 7 == 6 {
            format!("fail-{key}.txt")
        } else {
            file
        };
        in_worktree(sb, bins, &wt, &["inbox", "claim", "--agent", "w1"])?;
        std::fs::write(wt.join(&file), text)?;
        in_worktree(sb, bins, &wt, &["add", "--", &file])?;
        in_worktree(
            sb,
            bins,
            &wt,
            &[
                "-c",
                "core.hooksPath=/dev/null",
                "commit",
                "-q",
                "-m",
                &format!("{key} work"),
            ],
        )?;
        in_worktree(sb, bins, &wt, &["inbox", "done", "--agent", "w1"])?;
    }
    orch(&["reconcile"])?;
    Ok(keys)
}

fn in_worktree(sb: &Sandbox, _bins: &Bins, dir: &Path, args: &[&str]) -> Result<String> {
    let out = sb.command("git").current_dir(dir).args(args).output()?;
    check(&out, &format!("git {args:?}"))
}

/// The crash scenario: `runs` lands, each killed at a random point, each followed by a
/// land that finishes the job; after every run the invariants hold.
pub fn crashes(bins: &Bins) -> Result<String> {
    const RUNS: usize = 100;
    let sb = Sandbox::new(bins)?;
    sb.git(&["branch", "integration"])?;
    let keys = done_tasks(&sb, bins, RUNS, true)?;
    let check_cmd = "sh -c 'for f in fail-*; do test -e \"$f\" && exit 1; done; exit 0'";
    sb.git(&["config", "orch.land.check", check_cmd])?;
    let start = sb.git(&["rev-parse", "integration"])?.trim().to_owned();
    let mut rng = Rng::new(0x1a2d);
    let (mut killed, mut finished) = (0, 0);
    // Kill points spread over a whole land: up to 1.5× the last one that ran to the end.
    let mut full = Duration::from_millis(300);
    for key in &keys {
        let mut child = sb
            .command(&bins.orch)
            .args(["--json", "land", "--task", key])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let after = Duration::from_micros(rng.below(full.as_micros() as u64 * 3 / 2 + 1));
        if finish_or_kill(&mut child, after)? {
            finished += 1;
        } else {
            killed += 1;
        }
        // The next land (after reconcile, as any next command does) finishes the job.
        sb.run(&bins.orch, &["reconcile"])?;
        let started = Instant::now();
        let again = sb
            .command(&bins.orch)
            .args(["--json", "land", "--task", key])
            .output()?;
        full = started.elapsed();
        let doc: Value = serde_json::from_slice(&again.stdout)
            .with_context(|| format!("land --task {key} printed no JSON"))?;
        ensure!(
            doc["ok"] == true || doc["error"]["code"] == "invalid_transition",
            "land --task {key} after a crash: {doc}"
        );
        invariants(&sb, bins, &start)?;
    }
    let fsck = sb.git(&["fsck", "--no-dangling"])?;
    ensure!(fsck.is_empty(), "git fsck: {fsck}");
    let status = data_of(&sb.run(&bins.orch, &["--json", "status"])?)?;
    let landed = status["tasks"]
        .as_array()
        .context("tasks")?
        .iter()
        .filter(|t| t["landed_at"].is_string())
        .count();
    Ok(format!(
        "{RUNS} lands ({killed} killed at random, {finished} finished first), {landed} tasks landed, every landed head on the target, only checked commits on it, no check worktree left, fsck clean"
    ))
}

/// After a run: the target's first-parent line since `start` holds only commits that
/// pass the check (no `fail-*` file, no conflict markers), every landed task's head is
/// on it, and no check worktree is left once reconcile ran.
fn invariants(sb: &Sandbox, bins: &Bins, start: &str) -> Result<()> {
    let line = sb.git(&[
        "rev-list",
        "--first-parent",
        &format!("{start}..integration"),
    ])?;
    for commit in line.lines() {
        let files = sb.git(&["ls-tree", "--name-only", commit])?;
        ensure!(
            !files.lines().any(|f| f.starts_with("fail-")),
            "{commit} on the target did not pass the check"
        );
    }
    let tasks = data_of(&sb.run(&bins.orch, &["--json", "task", "list"])?)?;
    for t in tasks["tasks"].as_array().context("tasks")? {
        if !t["landed_at"].is_string() {
            continue;
        }
        let commit = t["landed_commit"].as_str().context("landed_commit")?;
        let on = sb
            .command("git")
            .args(["merge-base", "--is-ancestor", commit, "integration"])
            .status()?;
        ensure!(
            on.success(),
            "task {} landed as {commit}, not on the target",
            t["key"]
        );
    }
    let leftover = sb
        .repo
        .parent()
        .context("root")?
        .join("repo.worktrees/r1/.land-check");
    ensure!(
        !leftover.exists(),
        "a check worktree is left: {}",
        leftover.display()
    );
    let listed = sb.git(&["worktree", "list", "--porcelain"])?;
    ensure!(
        !listed.contains(".land-check"),
        "git still lists a check worktree"
    );
    Ok(())
}

/// The demo plan under `git orch drive --launch w --land` with the scripted agent of
/// `fixtures/agents/land-worker.sh`: `docs` and `numbers`, which start together once
/// `grammar` is done, both write `src/shared.txt` (the second to land conflicts; a task
/// started later starts from what landed and could not), `evaluator`'s first result
/// fails the land check. Every task must end on `main` (by ancestry), each of the two
/// sent back exactly once and landed after its launched rework, nothing else sent back.
pub fn drive_demo(bins: &Bins) -> Result<String> {
    const LIMIT: Duration = Duration::from_secs(90);
    let sb = Sandbox::new(bins)?;
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    orch(&["init"])?;
    orch(&["run", "init", "r1", "--title", "Calculator, landed"])?;
    let plan = workspace_root().join("fixtures/plans/demo.json");
    orch(&["task", "import", plan.to_str().context("UTF-8")?])?;
    let modes = sb.home.join("modes");
    std::fs::create_dir_all(&modes)?;
    for (task, mode) in [
        ("docs", "shared"),
        ("numbers", "shared"),
        ("evaluator", "broken"),
    ] {
        std::fs::write(modes.join(task), mode)?;
    }
    let agent = workspace_root().join("fixtures/agents/land-worker.sh");
    let command = format!("{} {}", agent.display(), modes.display());
    sb.git(&["config", "orch.agent.w.command", &command])?;
    sb.git(&["config", "orch.agent.w.protocol", "inbox"])?;
    sb.git(&[
        "config",
        "orch.land.check",
        "sh -c '! grep -rqs BROKEN src'",
    ])?;

    let started = Instant::now();
    let drive = sb
        .command(&bins.orch)
        .args([
            "--json",
            "drive",
            "--launch",
            "w",
            "--land",
            "--parallel",
            "3",
        ])
        .args(["--timeout", "80s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // The demo's lexer asks a question: answer it from here, as a leader would.
    let mut answered = false;
    while !answered {
        ensure!(started.elapsed() < LIMIT, "the lexer never asked");
        let blocked = data_of(&orch(&["--json", "blocked"])?)?;
        let asking = blocked["tasks"]
            .as_array()
            .context("tasks")?
            .iter()
            .any(|t| t["key"] == "lexer" && t["blocked_reason"] == "question");
        if asking {
            orch(&["answer", "lexer", "--body", "yes, an empty input is zero"])?;
            answered = true;
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let out = drive.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .with_context(|| format!("drive printed something else than JSON lines: {stdout}"))?;
    let end = lines.last().context("drive printed nothing")?;
    ensure!(
        out.status.success() && end["data"]["end"] == "done",
        "drive --land did not finish: {end}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = &lines[..lines.len() - 1];
    let sent: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e["kind"] == "sent_back")
        .filter_map(|e| Some((e["task"].as_str()?, e["text"].as_str()?)))
        .collect();
    let conflicts: Vec<&str> = sent
        .iter()
        .filter(|s| s.1 == "land_conflict")
        .map(|s| s.0)
        .collect();
    let checks: Vec<&str> = sent
        .iter()
        .filter(|s| s.1 == "land_check")
        .map(|s| s.0)
        .collect();
    ensure!(
        conflicts == ["numbers"] || conflicts == ["docs"],
        "expected exactly one of docs and numbers sent back for a conflict: {sent:?}"
    );
    ensure!(
        checks == ["evaluator"],
        "expected only evaluator to fail the check: {sent:?}"
    );
    for key in [conflicts[0], "evaluator"] {
        let kinds: Vec<&str> = events
            .iter()
            .filter(|e| e["task"] == key)
            .filter_map(|e| e["kind"].as_str())
            .collect();
        let at = |kind: &str| kinds.iter().rposition(|k| *k == kind);
        ensure!(
            at("sent_back") < at("rework") && at("rework") < at("landed"),
            "{key} was not reworked and then landed: {kinds:?}"
        );
    }
    let tasks = data_of(&orch(&["--json", "task", "list"])?)?;
    let tasks = tasks["tasks"].as_array().context("tasks")?;
    for t in tasks {
        ensure!(t["landed_at"].is_string(), "{} did not land", t["key"]);
        let head = t["current_attempt"]["head_sha"].as_str().context("head")?;
        let on = sb
            .command("git")
            .args(["merge-base", "--is-ancestor", head, "main"])
            .status()?;
        ensure!(on.success(), "{}'s head {head} is not on main", t["key"]);
    }
    let broken = sb
        .command("git")
        .args(["grep", "-q", "BROKEN", "main", "--", "src"])
        .status()?;
    ensure!(!broken.success(), "main holds a change the check refuses");
    let fsck = sb.git(&["fsck", "--no-dangling"])?;
    ensure!(fsck.is_empty(), "git fsck: {fsck}");
    let merges = sb.git(&["rev-list", "--first-parent", "--count", "main"])?;
    Ok(format!(
        "{} tasks driven and landed in {:.1} s ({} commits on main's first-parent line), {} sent back for a conflict and {} for the check, each reworked by a launched agent and landed",
        tasks.len(),
        started.elapsed().as_secs_f64(),
        merges.trim(),
        conflicts[0],
        checks[0]
    ))
}

/// `cargo xtask bench land`.
pub fn bench(bins: &Bins) -> Result<Vec<Row>> {
    const N: usize = 100;
    let sb = Sandbox::new(bins)?;
    sb.git(&["branch", "integration"])?;
    done_tasks(&sb, bins, N, false)?;
    let base = sb.git(&["rev-parse", "integration"])?.trim().to_owned();
    let branches: Vec<String> = (0..N).map(|i| format!("orch/r1/t{i:03}-1")).collect();

    // Baseline first (it writes only unreferenced trees): the same 100 merges, bare.
    let started = Instant::now();
    for branch in &branches {
        let out = sb
            .command("git")
            .args(["merge-tree", "--write-tree", &base, branch])
            .output()?;
        check(&out, "git merge-tree")?;
    }
    let bare = started.elapsed();

    let started = Instant::now();
    let report = data_of(&sb.run(&bins.orch, &["--json", "land", "--into", "integration"])?)?;
    let ours = started.elapsed();
    let landed = report["landed"].as_array().context("landed")?.len();
    ensure!(landed == N, "landed {landed} of {N}");
    ensure!(report["verified"] == true, "not verified: {report}");
    let ratio = ours.as_secs_f64() / bare.as_secs_f64();
    Ok(vec![Row {
        bench: format!("land {N} one-commit branches (no check)"),
        figure: ms(ours),
        baseline: format!("{} ({N} bare `git merge-tree --write-tree`)", ms(bare)),
        ratio: format!("{ratio:.2}×"),
        goal: "≤ 2×".into(),
        met: Some(ratio <= 2.0),
    }])
}
