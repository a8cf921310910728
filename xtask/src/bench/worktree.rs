//! `cargo xtask bench worktree` (and `bench hooks`, its commit half): on a generated
//! repository of 5,000 files,
//!
//! - one code-task dispatch (`git orch dispatch KEY`: reconcile, the strict-mode status
//!   of the main worktree, branch, worktree, thread, marker) against one plain
//!   `git worktree add -q -b` of the same repository;
//! - a `git commit` in an attempt worktree, where our hook records progress and the
//!   attempt's head, against the same commit with hooks switched off;
//! - the same in the main worktree, where our block must cost nothing measurable;
//! - the attempt commit again with `orch.durability=normal`, for comparison.
//!
//! Runs are interleaved (ours, then the baseline) so drift hits both alike.

use crate::util::{check, data_of, median, ms, Bins, Row, Sandbox};
use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Files in the generated repository: 100 folders of 50.
const DIRS: usize = 100;
const FILES_PER_DIR: usize = 50;
const RUNS: usize = 15;

/// Which half to run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Part {
    All,
    Commits,
}

fn generate(sb: &Sandbox) -> Result<usize> {
    let mut count = 0;
    for d in 0..DIRS {
        let dir = sb.repo.join(format!("src/m{d:03}"));
        std::fs::create_dir_all(&dir)?;
        for f in 0..FILES_PER_DIR {
            let text: String = (0..20)
                .map(|line| format!("// module {d} file {f} line {line}\n"))
                .collect();
            std::fs::write(dir.join(format!("f{f:02}.rs")), text)?;
            count += 1;
        }
    }
    sb.git(&["add", "-A"])?;
    sb.git(&["commit", "-q", "-m", "generated tree"])?;
    Ok(count + 1)
}

fn time(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// One commit of a one-line change in `dir`; with `hooks` false the hooks are off.
fn commit(sb: &Sandbox, dir: &Path, n: usize, hooks: bool) -> Result<Duration> {
    let file = dir.join("src/m000/f00.rs");
    let mut text = std::fs::read_to_string(&file)?;
    text.push_str(&format!("// change {n} {hooks}\n"));
    std::fs::write(&file, text)?;
    let add = sb
        .command("git")
        .current_dir(dir)
        .args(["add", "src/m000/f00.rs"])
        .output()?;
    check(&add, "git add")?;
    let mut cmd = sb.command("git");
    cmd.current_dir(dir);
    if !hooks {
        cmd.args(["-c", "core.hooksPath=/dev/null"]);
    }
    cmd.args(["commit", "-q", "-m", &format!("change {n}")]);
    let started = Instant::now();
    let out = cmd.output()?;
    let took = started.elapsed();
    check(&out, "git commit")?;
    anyhow::ensure!(
        out.stderr.is_empty(),
        "the hook complained: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(took)
}

/// Medians of interleaved commits with and without hooks in `dir`.
fn commit_pair(sb: &Sandbox, dir: &Path) -> Result<(Duration, Duration)> {
    commit(sb, dir, 0, true)?;
    commit(sb, dir, 0, false)?;
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for n in 1..=RUNS {
        with.push(commit(sb, dir, n, true)?);
        without.push(commit(sb, dir, n, false)?);
    }
    Ok((median(&mut with), median(&mut without)))
}

pub fn run(bins: &Bins, part: Part) -> Result<Vec<Row>> {
    let sb = Sandbox::new(bins)?;
    let files = generate(&sb)?;
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    let inbox = |args: &[&str]| sb.run(&bins.inbox, args);
    orch(&["init"])?;
    orch(&["run", "init", "bench", "--title", "Worktree bench"])?;
    let tasks = if part == Part::All { RUNS + 1 } else { 1 };
    for i in 0..tasks {
        orch(&["task", "add", &format!("t{i:02}"), "--title", "Bench task"])?;
    }
    let root = sb.repo.parent().context("sandbox root")?.to_path_buf();
    let mut rows = Vec::new();
    let mut first_worktree: Option<(PathBuf, i64)> = None;

    let (mut ours, mut plain) = (Vec::new(), Vec::new());
    for i in 0..tasks {
        let key = format!("t{i:02}");
        let mut attempt = Value::Null;
        let took = time(|| {
            attempt = data_of(&orch(&["--json", "dispatch", &key])?)?["attempts"][0].clone();
            Ok(())
        })?;
        if first_worktree.is_none() {
            let path = PathBuf::from(attempt["worktree"].as_str().context("a worktree")?);
            let thread = attempt["thread"].as_i64().context("a thread")?;
            first_worktree = Some((path, thread));
        }
        if part == Part::Commits {
            break;
        }
        let path = root.join(format!("plain/w{i:02}"));
        let branch = format!("plain/{i:02}");
        let base = time(|| {
            sb.git(&[
                "worktree",
                "add",
                "-q",
                "-b",
                &branch,
                path.to_str().context("UTF-8 path")?,
                "HEAD",
            ])
            .map(drop)
        })?;
        // The first of each warms the caches.
        if i > 0 {
            ours.push(took);
            plain.push(base);
        }
    }
    if part == Part::All {
        let (ours, plain) = (median(&mut ours), median(&mut plain));
        let ratio = ours.as_secs_f64() / plain.as_secs_f64();
        rows.push(Row {
            bench: format!("worktree: dispatch of one code task ({files} files)"),
            figure: ms(ours),
            baseline: format!("{} for `git worktree add -b`", ms(plain)),
            ratio: format!("{ratio:.2}x"),
            goal: "≤ 1.1x".into(),
            met: Some(ratio <= 1.1),
        });
    }

    let (wt, thread) = first_worktree.context("no attempt dispatched")?;
    inbox(&["--agent", "w1", "claim", &thread.to_string()])?;
    let (with, without) = commit_pair(&sb, &wt)?;
    let added = with.saturating_sub(without);
    rows.push(Row {
        bench: "worktree: git commit in an attempt worktree (progress + head recorded)".into(),
        figure: format!("{} (+{})", ms(with), ms(added)),
        baseline: format!("{} with hooks off", ms(without)),
        ratio: format!("{:.2}x", with.as_secs_f64() / without.as_secs_f64()),
        goal: "≤ 15 ms added".into(),
        met: Some(added.as_secs_f64() <= 0.015),
    });

    let (main_with, main_without) = commit_pair(&sb, &sb.repo)?;
    let main_added = main_with.saturating_sub(main_without);
    rows.push(Row {
        bench: "worktree: git commit in the main worktree (our block is silent)".into(),
        figure: format!("{} (+{})", ms(main_with), ms(main_added)),
        baseline: format!("{} with hooks off", ms(main_without)),
        ratio: format!(
            "{:.2}x",
            main_with.as_secs_f64() / main_without.as_secs_f64()
        ),
        // Git starts `sh` for any hook file; the block itself starts nothing more.
        goal: "no measurable difference (≤ 2 ms: one `sh`)".into(),
        met: Some(main_added.as_secs_f64() <= 0.002),
    });

    sb.git(&["config", "orch.durability", "normal"])?;
    let (normal_with, normal_without) = commit_pair(&sb, &wt)?;
    let normal_added = normal_with.saturating_sub(normal_without);
    rows.push(Row {
        bench: "worktree: the attempt commit with orch.durability=normal".into(),
        figure: format!("{} (+{})", ms(normal_with), ms(normal_added)),
        baseline: format!("{} with hooks off", ms(normal_without)),
        ratio: format!(
            "{:.2}x",
            normal_with.as_secs_f64() / normal_without.as_secs_f64()
        ),
        goal: "(for comparison)".into(),
        met: None,
    });
    Ok(rows)
}
