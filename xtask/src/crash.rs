//! Crash-consistency of every leader write: each command of the matrix is SIGKILLed at a
//! random point, then `git orch reconcile` runs, then the invariants are checked:
//! SQLite's integrity and foreign keys, at most one live attempt per task, no branch,
//! worktree or ref that no attempt explains, every commit and every uncommitted change
//! that existed before still reachable (rescue refs included), and `git fsck` clean.
//!
//! A row of the matrix is a name and a `prepare` that builds one round's state and
//! returns the argv to kill. The supervisor and `drive` rows (`crash_launch.rs`) kill a
//! process that runs on by itself and check more; `land` is killed by `cargo xtask e2e`.

use crate::util::{finish_or_kill, Bins, Rng, Sandbox};
use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// One round's state is made by `prepare(sandbox, bins, round)`; it returns the argv of
/// the `git orch` command to kill.
type Prepare = fn(&Sandbox, &Bins, usize) -> Result<Vec<String>>;

/// The matrix. Add a row for every new command that writes.
const MATRIX: &[(&str, Prepare)] = &[
    ("answer", prepare_answer),
    ("cancel", prepare_cancel),
    ("retry", prepare_retry),
    ("reassign", prepare_reassign),
    ("cleanup", prepare_cleanup),
    ("cleanup --force", prepare_cleanup_force),
    ("task import", prepare_import),
    ("run close", prepare_run_close),
];

/// The invariants checked after every kill, by name (for the summary).
const INVARIANTS: &[&str] = &[
    "integrity_check",
    "foreign_key_check",
    "one live attempt per task",
    "no unexplained branch, worktree or ref",
    "commits reachable",
    "uncommitted changes reachable",
    "git fsck",
    "no agent process outlives its supervisor past reconcile",
    "no launched attempt live without its supervisor",
];

/// Runs `kills` rounds of every row (of those whose name starts with `only`); returns
/// one summary line.
pub fn crash_matrix(bins: &Bins, kills: usize, only: Option<&str>) -> Result<String> {
    let mut rng = Rng::new(std::process::id() as u64 ^ 0x9e37_79b9);
    let mut lines = Vec::new();
    let wanted = |name: &str| only.is_none_or(|o| name.starts_with(o));
    for (name, prepare) in MATRIX.iter().filter(|(name, _)| wanted(name)) {
        let started = std::time::Instant::now();
        let sb = Sandbox::new(bins)?;
        sb.run(&bins.orch, &["init"])?;
        let (mut killed, mut finished) = (0, 0);
        for round in 0..kills {
            let argv = prepare(&sb, bins, round)
                .with_context(|| format!("{name}: preparing round {round}"))?;
            let before = Snapshot::take(&sb)?;
            let mut child = sb
                .command(&bins.orch)
                .args(&argv)
                .process_group(0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            // Most kills land inside the command's work (a few ms), some before it opens
            // the database, and some never (it finished).
            let span = if rng.chance(20) { 60_000 } else { 12_000 };
            let after = Duration::from_micros(rng.below(span));
            if finish_or_kill(&mut child, after)? {
                finished += 1;
            } else {
                killed += 1;
                crate::e2e::wait_for_group_exit(child.id())?;
            }
            sb.data(&bins.orch, &["reconcile"])
                .with_context(|| format!("{name}: reconcile after round {round}"))?;
            check_invariants(&sb, &before)
                .with_context(|| format!("{name}: round {round} ({argv:?})"))?;
        }
        lines.push(format!(
            "{name}: {killed} killed, {finished} finished ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
    }
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    crate::crash_launch::setup(&sb)?;
    if wanted("supervisor") {
        let started = std::time::Instant::now();
        let (killed, finished) = crate::crash_launch::supervisor_rows(&sb, bins, &mut rng, kills)?;
        lines.push(format!(
            "supervisor: {killed} killed, {finished} finished ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
    }
    if wanted("drive") {
        let started = std::time::Instant::now();
        let (killed, finished) = crate::crash_launch::drive_rows(&sb, bins, &mut rng, kills)?;
        lines.push(format!(
            "drive --launch: {killed} killed, {finished} finished, each then driven to done ({:.0} s)",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(format!(
        "{}; after each: {} held",
        lines.join(", "),
        INVARIANTS.join(", ")
    ))
}

// ---------------------------------------------------------------------------------------
// Preparing one round. Each round has its own run (`r<round>`), so rounds never meet.

fn s(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// A run `r<round>` with one code task `t` dispatched to `w1`; returns its worktree.
fn dispatched(sb: &Sandbox, bins: &Bins, round: usize) -> Result<PathBuf> {
    let run = format!("r{round}");
    sb.run(
        &bins.orch,
        &["run", "init", &run, "--title", "crash", "--base", "main"],
    )?;
    sb.run(
        &bins.orch,
        &["task", "add", "t", "--title", "T", "--to", "w1"],
    )?;
    let data = sb.data(&bins.orch, &["dispatch", "t"])?;
    let wt = data["attempts"][0]["worktree"]
        .as_str()
        .context("a worktree")?;
    Ok(PathBuf::from(wt))
}

/// In the attempt worktree: a commit, then an uncommitted change and an untracked file.
fn work_in(sb: &Sandbox, bins: &Bins, wt: &Path, round: usize) -> Result<()> {
    std::fs::write(wt.join("done.txt"), format!("committed {round}\n"))?;
    git_in(sb, wt, &["add", "done.txt"])?;
    git_in(sb, wt, &["commit", "-q", "-m", &format!("work {round}")])?;
    std::fs::write(wt.join("README.md"), format!("edited {round}\n"))?;
    std::fs::write(wt.join("notes.txt"), format!("untracked {round}\n"))?;
    inbox_in(sb, bins, wt, &["claim"])?;
    Ok(())
}

fn git_in(sb: &Sandbox, dir: &Path, args: &[&str]) -> Result<String> {
    let out = sb.command("git").args(args).current_dir(dir).output()?;
    crate::util::check(&out, &format!("git {args:?}"))
}

fn inbox_in(sb: &Sandbox, bins: &Bins, dir: &Path, args: &[&str]) -> Result<Value> {
    let out = sb
        .command(&bins.inbox)
        .arg("--json")
        .args(args)
        .current_dir(dir)
        .output()?;
    crate::util::data_of(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("git inbox {args:?}"))
}

fn prepare_answer(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    inbox_in(sb, bins, &wt, &["ask", "--body", "which way?"])?;
    Ok(s(&["answer", "t", "--body", "this way"]))
}

fn prepare_cancel(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    Ok(s(&["cancel", "t"]))
}

fn prepare_retry(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    inbox_in(sb, bins, &wt, &["fail", "--reason", "flaky", "--retryable"])?;
    Ok(s(&["retry", "t"]))
}

fn prepare_reassign(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    Ok(s(&["reassign", "t", "--to", "w2"]))
}

fn ended_with_dirty_worktree(sb: &Sandbox, bins: &Bins, round: usize) -> Result<String> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    inbox_in(sb, bins, &wt, &["done", "--result", r#"{"ok": true}"#])?;
    sb.data(&bins.orch, &["reconcile"])?;
    Ok(format!("r{round}"))
}

fn prepare_cleanup(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let run = ended_with_dirty_worktree(sb, bins, round)?;
    Ok(s(&["cleanup", "--run", &run]))
}

fn prepare_cleanup_force(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let run = ended_with_dirty_worktree(sb, bins, round)?;
    Ok(s(&["cleanup", "--run", &run, "--force"]))
}

fn prepare_import(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let run = format!("r{round}");
    sb.run(
        &bins.orch,
        &["run", "init", &run, "--title", "crash", "--base", "main"],
    )?;
    let tasks: Vec<Value> = (0..40)
        .map(|i| json!({"key": format!("k{i}"), "title": format!("task {i}"), "after": if i > 0 { vec![format!("k{}", i - 1)] } else { vec![] }}))
        .collect();
    let plan = sb.repo.join(format!("../plan-{round}.json"));
    std::fs::write(&plan, json!({ "tasks": tasks }).to_string())?;
    Ok(vec![
        "task".into(),
        "import".into(),
        plan.to_string_lossy().into_owned(),
    ])
}

fn prepare_run_close(sb: &Sandbox, bins: &Bins, round: usize) -> Result<Vec<String>> {
    let wt = dispatched(sb, bins, round)?;
    work_in(sb, bins, &wt, round)?;
    sb.run(&bins.orch, &["task", "add", "u", "--title", "U"])?;
    Ok(s(&["run", "close", &format!("r{round}"), "--cancel"]))
}

// ---------------------------------------------------------------------------------------
// What must survive, and the checks.

/// What existed before the kill: every commit, and every uncommitted change (as blob ids
/// of the changed files' contents) in every worktree.
pub(crate) struct Snapshot {
    commits: BTreeSet<String>,
    changes: BTreeSet<String>,
}

impl Snapshot {
    pub(crate) fn take(sb: &Sandbox) -> Result<Snapshot> {
        let commits = lines(&sb.git(&["rev-list", "--all", "--reflog"])?);
        let mut changes = BTreeSet::new();
        for wt in worktrees(sb)? {
            if !wt.exists() {
                continue;
            }
            let status = git_in(
                sb,
                &wt,
                &["status", "--porcelain", "-z", "--untracked-files=all"],
            )?;
            for entry in status.split('\0').filter(|e| e.len() > 3) {
                let path = wt.join(&entry[3..]);
                if path.is_file() {
                    let blob = git_in(sb, &wt, &["hash-object", "--", &entry[3..]])?;
                    changes.insert(blob.trim().to_owned());
                }
            }
        }
        Ok(Snapshot { commits, changes })
    }
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn worktrees(sb: &Sandbox) -> Result<Vec<PathBuf>> {
    Ok(sb
        .git(&["worktree", "list", "--porcelain"])?
        .lines()
        .filter_map(|l| l.strip_prefix("worktree "))
        .map(PathBuf::from)
        .collect())
}

pub(crate) fn check_invariants(sb: &Sandbox, before: &Snapshot) -> Result<()> {
    let db = sb.repo.join(".git/orch/state.db");
    ensure!(crate::soak::integrity_check(&db)?, "integrity_check");
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let fk: i64 = conn.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
        r.get(0)
    })?;
    ensure!(fk == 0, "foreign_key_check: {fk} violations");
    let doubled: i64 = conn.query_row(
        "SELECT count(*) FROM (SELECT run, task FROM attempts
           WHERE status IN ('preparing', 'dispatched', 'running', 'blocked')
           GROUP BY run, task HAVING count(*) > 1)",
        [],
        |r| r.get(0),
    )?;
    ensure!(
        doubled == 0,
        "{doubled} tasks have more than one live attempt"
    );

    // Every branch and worktree under orch's names is an attempt's; every refs/orch ref
    // names an existing run and task.
    let mut branches = BTreeSet::new();
    let mut trees = BTreeSet::new();
    let mut stmt = conn.prepare("SELECT branch, worktree FROM attempts")?;
    for row in stmt.query_map([], |r| {
        Ok((
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<String>>(1)?,
        ))
    })? {
        let (branch, worktree) = row?;
        branches.extend(branch);
        if let Some(w) = worktree {
            let path = PathBuf::from(w);
            trees.insert(path.canonicalize().unwrap_or(path));
        }
    }
    for branch in lines(&sb.git(&[
        "for-each-ref",
        "--format=%(refname:short)",
        "refs/heads/orch/",
    ])?) {
        ensure!(
            branches.contains(&branch),
            "branch {branch} belongs to no attempt"
        );
    }
    let main = sb.repo.canonicalize()?;
    for wt in worktrees(sb)? {
        let wt = wt.canonicalize().unwrap_or(wt);
        ensure!(
            wt == main || trees.contains(&wt),
            "worktree {} belongs to no attempt",
            wt.display()
        );
    }
    let tasks: BTreeSet<(String, String)> = conn
        .prepare("SELECT run, key FROM tasks")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for name in lines(&sb.git(&["for-each-ref", "--format=%(refname)", "refs/orch/"])?) {
        // refs/orch/<kind>/<run>/<task>-<n>[/…]
        let parts: Vec<&str> = name.split('/').collect();
        let explained = parts.len() >= 5
            && parts[4]
                .rsplit_once('-')
                .is_some_and(|(task, _)| tasks.contains(&(parts[3].to_owned(), task.to_owned())));
        ensure!(explained, "ref {name} names no task");
    }

    let now = lines(&sb.git(&["rev-list", "--all", "--reflog"])?);
    if let Some(lost) = before.commits.difference(&now).next() {
        anyhow::bail!("commit {lost} is no longer reachable");
    }
    let objects = sb.git(&["rev-list", "--all", "--reflog", "--objects"])?;
    let mut present = BTreeSet::new();
    for wt in worktrees(sb)? {
        if let Ok(out) = git_in(sb, &wt, &["ls-files", "-z", "--others", "--modified"]) {
            for file in out.split('\0').filter(|f| !f.is_empty()) {
                if let Ok(blob) = git_in(sb, &wt, &["hash-object", "--", file]) {
                    present.insert(blob.trim().to_owned());
                }
            }
        }
    }
    let mut reachable: BTreeSet<&str> = objects
        .lines()
        .filter_map(|l| l.split(' ').next())
        .collect();
    reachable.extend(present.iter().map(String::as_str));
    for change in &before.changes {
        ensure!(
            reachable.contains(change.as_str()),
            "an uncommitted change (blob {change}) is lost"
        );
    }
    sb.git(&["fsck", "--no-dangling", "--no-progress"])?;
    Ok(())
}
