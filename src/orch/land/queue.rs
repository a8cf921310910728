//! One land: passes over the candidates until one ends with the target moved (or with
//! nothing to move). A pass merges each candidate onto the integration tip without a
//! work tree, runs the check at the merged commit, and publishes the tip by
//! compare-and-swap; a lost swap (someone else moved the target) starts a new pass from
//! the new tip. Nothing is recorded about a tip that did not reach the target, so a land
//! killed anywhere leaves the target holding only checked commits, and the next land
//! finds what is already there ("contained") and records it.

use super::check;
use super::plan::{self, Candidate};
use super::record::{self, How, Landing, SendBack};
use super::{LandStep, Options, Report, Reworked, Waiting};
use crate::error::{Code, Error, Result};
use crate::orch::changes::Act;
use crate::orch::facade::Orch;
use crate::orch::land_lock::{self as temp, LandLock};
use crate::orch::model::Attempt;
use crate::orch::model::Task;
use crate::orch::runs::{self, RunRow};
use crate::orch::tasks::{self, Select};
use crate::repo::{fast_forward_files, rewind_files, Merged, Repo, Swap, Untracked};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// More lost swaps in one land than this: someone keeps moving the target.
const MAX_RESTARTS: u32 = 50;

/// How a pass ended.
enum PassEnd {
    Done,
    /// The target moved under us: start over.
    Lost,
    Busy(Error),
}

/// What publishing a tip came to.
enum Publish {
    Moved,
    Lost,
    Busy(Error),
}

struct Ctx<'a> {
    repo: &'a Repo,
    run: RunRow,
    branch: String,
    target_ref: String,
    waiting_ref: String,
}

/// `git orch land`: lands the run's done code tasks (or `opts.tasks`) onto the target.
/// A checked-out target that cannot be advanced is `target_busy` (exit 6) once the
/// result waits at `refs/orch/land/<run>`; the tasks sent back are recorded either way.
pub fn land(orch: &mut Orch<'_>, opts: &Options<'_>) -> Result<Report> {
    let repo = orch
        .repo
        .ok_or_else(|| Error::internal("landing needs the repository"))?;
    orch.reconcile()?;
    let run = orch.read(|tx| runs::resolve(tx, opts.run))?;
    let branch = plan::resolve_target(repo, &run, opts.into)?;
    let _lock = match opts.dry_run {
        true => None,
        false => {
            let lock = LandLock::acquire(orch.store.state_dir(), &run.name)?;
            // A check worktree of a land that died is ours to take back.
            let path = temp::check_worktree_path(repo, &run.name)?;
            if path.exists() {
                repo.remove_temp_worktree(&path)?;
            }
            Some(lock)
        }
    };
    let ctx = Ctx {
        repo,
        target_ref: format!("refs/heads/{branch}"),
        waiting_ref: format!("refs/orch/land/{}", run.name),
        run,
        branch,
    };
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    report.target.ref_name = ctx.target_ref.clone();
    let mut landed_keys: Vec<String> = Vec::new();
    loop {
        match pass(orch, &ctx, opts, &mut report, &mut landed_keys)? {
            PassEnd::Done => break,
            PassEnd::Lost if report.restarts < MAX_RESTARTS => report.restarts += 1,
            PassEnd::Lost => {
                return Err(Error::new(
                    Code::Conflict,
                    format!("{} kept moving while landing", ctx.branch),
                )
                .hint("try again once whoever pushes to it is done"))
            }
            PassEnd::Busy(err) => return Err(err),
        }
    }
    let tip = repo
        .branch_tip(&ctx.branch)?
        .unwrap_or_else(|| report.target.new.clone());
    if !opts.dry_run {
        report.target.new = tip.clone();
    }
    report.landed = orch.read(|tx| {
        let mut done: HashMap<String, Task> = tasks::load(tx, &ctx.run.name, Select::All)?
            .into_iter()
            .map(|t| (t.key.clone(), t))
            .collect();
        Ok(landed_keys.iter().filter_map(|k| done.remove(k)).collect())
    })?;
    if !opts.dry_run {
        let heads: Vec<(String, String)> = report
            .landed
            .iter()
            .filter_map(|t| Some((t.key.clone(), t.current_attempt.as_ref().and_then(head_of)?)))
            .collect();
        let shas: Vec<&str> = heads.iter().map(|(_, h)| h.as_str()).collect();
        let off = repo.unreachable(&shas, &tip)?;
        let unreachable: Vec<String> = heads
            .iter()
            .filter(|(_, h)| off.contains(h))
            .map(|(k, _)| k.clone())
            .collect();
        if !unreachable.is_empty() {
            return Err(Error::new(
                Code::Conflict,
                format!(
                    "{} was moved back after landing: {} no longer on it",
                    ctx.branch,
                    unreachable.join(", ")
                ),
            )
            .hint("someone reset the target; run `git orch land` again to bring them back")
            .detail("tasks", unreachable));
        }
        report.verified = true;
    }
    Ok(report)
}

fn head_of(a: &Attempt) -> Option<String> {
    a.head_sha.clone().or_else(|| a.base_sha.clone())
}

fn pass(
    orch: &mut Orch<'_>,
    ctx: &Ctx<'_>,
    opts: &Options<'_>,
    report: &mut Report,
    landed_keys: &mut Vec<String>,
) -> Result<PassEnd> {
    let repo = ctx.repo;
    let plan = orch.read(|tx| plan::candidates(tx, &ctx.run.name, opts.tasks))?;
    let mut old = repo.branch_tip(&ctx.branch)?.ok_or_else(|| {
        Error::new(
            Code::BadRef,
            format!("the branch {} disappeared", ctx.branch),
        )
        .detail("into", ctx.branch.clone())
    })?;
    if report.target.old.is_empty() {
        report.target.old = old.clone();
    }
    report.waiting.clear();
    // A result that waited for a busy target is where this pass picks up.
    let mut tip = match repo.ref_target(&ctx.waiting_ref)? {
        Some(w) if w != old && repo.is_ancestor(&old, &w)? => w,
        _ => old.clone(),
    };
    let mut landed: HashSet<String> = plan.landed.clone();
    // One walk answers, for the whole queue, which heads the tip already holds; a head
    // merged in this pass holds what it reaches.
    let heads: Vec<&str> = plan.candidates.iter().map(|c| c.head.as_str()).collect();
    let beyond = repo.beyond(&heads, &tip)?;
    let mut merged_heads: Vec<String> = Vec::new();
    let mut pending: Vec<Landing> = Vec::new();
    let mut backs: Vec<SendBack> = Vec::new();
    let mut busy: Option<Error> = None;
    for c in plan.candidates {
        let on: Vec<String> = c
            .deps
            .iter()
            .filter(|d| !landed.contains(*d))
            .cloned()
            .collect();
        if !on.is_empty() {
            report.waiting.push(Waiting { task: c.key, on });
            continue;
        }
        let contained =
            beyond.on_tip(&c.head) || merged_heads.iter().any(|m| beyond.reaches(m, &c.head));
        if contained {
            let commit = repo.entered_at(&c.head, &tip)?;
            landed.insert(c.key.clone());
            pending.push(Landing {
                candidate: c,
                commit,
                how: How::Contained,
                check: None,
            });
            continue;
        }
        let base = beyond.merge_base(&c.head, &merged_heads);
        let (new, how) = match merge(repo, ctx, opts, &tip, &c, base.as_deref())? {
            Ok(merged) => merged,
            Err(paths) => {
                backs.push(SendBack {
                    candidate: c,
                    reason: "land_conflict",
                    paths: Some(paths),
                    output: None,
                });
                continue;
            }
        };
        let check = match &opts.check {
            None => None,
            Some(_) if opts.dry_run => Some(json!({"skipped": "dry_run"})),
            Some(spec) => {
                let path = temp::check_worktree_path(repo, &ctx.run.name)?;
                let worktree = repo.temp_worktree(&path, &new)?;
                let outcome = check::run(spec, &worktree.path);
                drop(worktree);
                let outcome = outcome?;
                if !outcome.passed {
                    backs.push(SendBack {
                        candidate: c,
                        reason: "land_check",
                        paths: None,
                        output: Some(outcome.tail),
                    });
                    continue;
                }
                Some(Value::from(&outcome))
            }
        };
        tip = new.clone();
        merged_heads.push(c.head.clone());
        landed.insert(c.key.clone());
        pending.push(Landing {
            candidate: c,
            commit: new,
            how,
            check,
        });
        // With a check each candidate is slow anyway: publish it at once, so the target
        // shows progress and a crash costs at most one check.
        if opts.check.is_some() && !opts.dry_run && busy.is_none() {
            match settle(
                orch,
                ctx,
                opts,
                &old,
                &tip,
                &mut pending,
                &mut backs,
                report,
            )? {
                Publish::Moved => {
                    landed_keys.extend(take_keys(report));
                    old = tip.clone();
                }
                Publish::Lost => return Ok(PassEnd::Lost),
                Publish::Busy(err) => busy = Some(err),
            }
        }
    }
    if opts.dry_run {
        report.target.new = tip;
        landed_keys.extend(pending.into_iter().map(|l| l.candidate.key));
        report
            .reworked
            .extend(backs.iter().map(|b| reworked(b, None)));
        return Ok(PassEnd::Done);
    }
    if let Some(err) = busy {
        finish_busy(orch, ctx, &tip, &mut backs, report)?;
        return Ok(PassEnd::Busy(err));
    }
    match settle(
        orch,
        ctx,
        opts,
        &old,
        &tip,
        &mut pending,
        &mut backs,
        report,
    )? {
        Publish::Moved => {
            landed_keys.extend(take_keys(report));
            Ok(PassEnd::Done)
        }
        Publish::Lost => Ok(PassEnd::Lost),
        Publish::Busy(err) => {
            finish_busy(orch, ctx, &tip, &mut backs, report)?;
            Ok(PassEnd::Busy(err))
        }
    }
}

/// The keys `settle` recorded as landed since the last call.
fn take_keys(report: &mut Report) -> Vec<String> {
    std::mem::take(&mut report.landed_keys)
}

/// Merges `c` onto `tip`: the new tip and how, or the conflicting paths.
fn merge(
    repo: &Repo,
    ctx: &Ctx<'_>,
    opts: &Options<'_>,
    tip: &str,
    c: &Candidate,
    base: Option<&str>,
) -> Result<std::result::Result<(String, How), Vec<String>>> {
    if opts.mode == super::Mode::FfOrMerge && repo.is_ancestor(tip, &c.head)? {
        return Ok(Ok((c.head.clone(), How::FastForward)));
    }
    match repo.merge_tree(tip, &c.head, base)? {
        Merged::Conflict(paths) => Ok(Err(paths)),
        Merged::Clean(tree) => {
            let commit = repo.write_commit(&tree, &[tip, &c.head], &message(ctx, c))?;
            Ok(Ok((commit, How::Merge)))
        }
    }
}

/// The merge commit's message: `git log --first-parent` of the target reads as the run's
/// story, one line per task, with who did it.
fn message(ctx: &Ctx<'_>, c: &Candidate) -> String {
    let agent = c.agent.as_deref().unwrap_or("-");
    format!(
        "land {run}/{key} (attempt {n}, {agent}): {title}\n\n\
         Run: {run}\nTask: {key}\nAttempt: {n} (id {id})\nAgent: {agent}\n\
         Branch: {branch}\nHead: {head}\nInto: {into}\n",
        run = ctx.run.name,
        key = c.key,
        n = c.n,
        id = c.attempt,
        title = c.title,
        branch = c.branch.as_deref().unwrap_or("-"),
        head = c.head,
        into = ctx.branch,
    )
}

/// Publishes `tip` (when it moved) and records what it carries and what was sent back.
#[allow(clippy::too_many_arguments)]
fn settle(
    orch: &mut Orch<'_>,
    ctx: &Ctx<'_>,
    opts: &Options<'_>,
    old: &str,
    tip: &str,
    pending: &mut Vec<Landing>,
    backs: &mut Vec<SendBack>,
    report: &mut Report,
) -> Result<Publish> {
    if tip != old {
        if let Some(hook) = opts.hook {
            hook(LandStep::BeforeUpdate);
        }
        match publish(ctx, opts, old, tip)? {
            Publish::Moved => {}
            other => return Ok(other),
        }
    }
    // The waiting result is on the target now (or was never needed).
    if let Some(waiting) = ctx.repo.ref_target(&ctx.waiting_ref)? {
        if ctx.repo.is_ancestor(&waiting, tip)? {
            ctx.repo.delete_ref(&ctx.waiting_ref, Some(&waiting))?;
        }
    }
    let landings = std::mem::take(pending);
    let sent = std::mem::take(backs);
    let (keys, reworks) = orch.write(|tx, cfg, changes| {
        let act = Act::now(&cfg.leader);
        let keys = record::landed(tx, &act, changes, &ctx.run.name, &ctx.target_ref, &landings)?;
        let mut reworks = Vec::new();
        for back in &sent {
            if record::send_back(tx, &act, changes, &ctx.run.name, &ctx.target_ref, tip, back)? {
                reworks.push(reworked(back, None));
            }
        }
        Ok((keys, reworks))
    })?;
    report.landed_keys.extend(keys);
    report.reworked.extend(reworks);
    report.target.new = tip.to_owned();
    Ok(Publish::Moved)
}

/// The target cannot be advanced: the result waits at `refs/orch/land/<run>`, and the
/// tasks sent back are recorded (they conflict or fail whatever the target does).
fn finish_busy(
    orch: &mut Orch<'_>,
    ctx: &Ctx<'_>,
    tip: &str,
    backs: &mut Vec<SendBack>,
    report: &mut Report,
) -> Result<()> {
    if ctx.repo.branch_tip(&ctx.branch)?.as_deref() != Some(tip) {
        ctx.repo
            .set_ref(&ctx.waiting_ref, tip, "git-orch: land result waiting")?;
    }
    let sent = std::mem::take(backs);
    let reworks = orch.write(|tx, cfg, changes| {
        let act = Act::now(&cfg.leader);
        let mut out = Vec::new();
        for back in &sent {
            if record::send_back(tx, &act, changes, &ctx.run.name, &ctx.target_ref, tip, back)? {
                out.push(reworked(back, None));
            }
        }
        Ok(out)
    })?;
    report.reworked.extend(reworks);
    Ok(())
}

fn reworked(back: &SendBack, attempt: Option<Attempt>) -> Reworked {
    Reworked {
        task: back.candidate.key.clone(),
        reason: back.reason.to_owned(),
        paths: back.paths.clone(),
        output: back.output.clone(),
        head: back.candidate.head.clone(),
        attempt,
        dispatch_error: None,
    }
}

/// Moves the target from `old` to `tip` by compare-and-swap. A target checked out in a
/// worktree moves only when that worktree is clean and at `old`: its files are
/// fast-forwarded first (git refuses, touching nothing, if that would overwrite anything
/// local), then the branch is swapped; a lost swap puts the files back.
fn publish(ctx: &Ctx<'_>, opts: &Options<'_>, old: &str, tip: &str) -> Result<Publish> {
    let repo = ctx.repo;
    let why = format!("git-orch: land {}", ctx.run.name);
    let Some(checked_out) = repo.checked_out(&ctx.branch)? else {
        return Ok(match repo.swap_ref(&ctx.target_ref, tip, old, &why)? {
            Swap::Moved => Publish::Moved,
            Swap::Lost(_) => Publish::Lost,
        });
    };
    if repo.branch_tip(&ctx.branch)?.as_deref() != Some(old) {
        return Ok(Publish::Lost);
    }
    let path = checked_out.path;
    let busy = |reason: String, paths: Vec<String>| {
        Publish::Busy(
            Error::new(
                Code::TargetBusy,
                format!(
                    "{} is checked out in {} and {reason}; the result waits at {}",
                    ctx.branch,
                    path.display(),
                    ctx.waiting_ref
                ),
            )
            .hint(format!(
                "commit or stash there and run `git orch land` again, or merge it yourself: git merge --ff-only {}",
                ctx.waiting_ref
            ))
            .detail("worktree", path.to_string_lossy().into_owned())
            .detail("ref", ctx.waiting_ref.clone())
            .detail("commit", tip)
            .detail("into", ctx.target_ref.clone())
            .detail("paths", paths),
        )
    };
    let worktree = Repo::open_worktree(&path)?;
    let untracked = match opts.strict_untracked {
        true => Untracked::Include,
        false => Untracked::Ignore,
    };
    let dirty = worktree.dirty_paths(untracked)?;
    if !dirty.is_empty() {
        return Ok(busy("has uncommitted changes".into(), dirty));
    }
    if let Err(err) = fast_forward_files(&path, old, tip) {
        let stderr = err
            .details
            .get("stderr")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let paths: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with('\t'))
            .map(|l| l.trim().to_owned())
            .collect();
        return Ok(busy(
            "its files cannot be fast-forwarded (untracked files would be overwritten)".into(),
            paths,
        ));
    }
    match repo.swap_ref(&ctx.target_ref, tip, old, &why)? {
        Swap::Moved => Ok(Publish::Moved),
        Swap::Lost(_) => {
            // Only our own fast-forward is undone: the worktree was clean at `old`.
            let _ = rewind_files(&path, tip, old);
            Ok(Publish::Lost)
        }
    }
}
