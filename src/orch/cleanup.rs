//! `git orch cleanup` (SPEC §7): removes the worktrees of ended attempts without ever
//! losing work. A worktree with uncommitted changes (tracked, or untracked and not
//! ignored) is skipped unless `force`; with `force` the changes are first committed to
//! `refs/orch/rescue/<run>/<task>-<n>`. Branches stay, unless `prune_branches` and the
//! branch is merged into the run's base or every commit of it is reachable from another
//! ref (a rescue ref, a dependent's branch, …). Bases and rescue refs are never deleted.

use super::attempts::get_attempt;
use super::changes::{Act, Changes};
use super::facade::Orch;
use super::model::{Attempt, AttemptId};
use super::runs;
use super::status::ENDED_ATTEMPT_SQL;
use crate::error::{Error, Result};
use crate::repo::{AttemptName, Repo, Untracked};
use crate::store::events::NewEvent;
use rusqlite::params;
use serde::Serialize;
use serde_json::json;
use std::path::Path;

#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    pub run: Option<&'a str>,
    pub dry_run: bool,
    pub force: bool,
    pub prune_branches: bool,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub attempt: Attempt,
    pub reason: String,
    /// The uncommitted paths, when that is the reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// Attempts whose worktree this cleanup removed (or, dry, would remove).
    pub removed: Vec<Attempt>,
    pub skipped: Vec<Skipped>,
    /// With `--prune-branches`: the branches deleted (or, dry, that would be).
    pub branches: Vec<Branch>,
    /// With `--prune-branches`: attempt branches kept, and why.
    pub kept_branches: Vec<Branch>,
    pub dry_run: bool,
}

/// An attempt branch that cleanup deleted or kept.
#[derive(Debug, Serialize)]
pub struct Branch {
    pub branch: String,
    pub tip: String,
    pub task: String,
    pub attempt: AttemptId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What was done to one attempt's worktree and branch.
#[derive(Default)]
struct Done {
    rescue_ref: Option<String>,
    branch_deleted: bool,
    /// The branch's tip, and why it stays (`None`: deleted) when pruning looked at it.
    branch: Option<(String, Option<String>)>,
}

/// What pruning must not delete: the branch of a code task's latest succeeded attempt
/// until that task has landed, unless its tip is on the land target anyway.
struct Guard {
    unlanded: std::collections::HashSet<AttemptId>,
    target: Option<(String, String)>,
}

pub fn cleanup(orch: &mut Orch<'_>, opts: &Options<'_>) -> Result<Report> {
    let repo = orch
        .repo
        .ok_or_else(|| Error::internal("cleanup needs the repository"))?;
    orch.reconcile()?;
    let (run, (attempts, unlanded)) = orch.read(|tx| {
        let run = runs::resolve(tx, opts.run)?;
        // Cleaned before: only their branches are left to prune.
        let ids: Vec<AttemptId> = tx
            .prepare_cached(&format!(
                "SELECT id FROM attempts
                 WHERE run = ?1 AND status IN {ENDED_ATTEMPT_SQL} AND worktree IS NOT NULL
                   AND (json_extract(data, '$.worktree_removed_at') IS NULL
                        OR (?2 AND branch IS NOT NULL
                            AND json_extract(data, '$.branch_deleted_at') IS NULL))
                 ORDER BY id"
            ))?
            .query_map(params![run.name, opts.prune_branches], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let attempts = ids
            .into_iter()
            .map(|id| get_attempt(tx, id))
            .collect::<Result<Vec<_>>>()?;
        let unlanded: std::collections::HashSet<AttemptId> = tx
            .prepare_cached(
                "SELECT a.id FROM tasks t JOIN attempts a ON a.run = t.run AND a.task = t.key
                 WHERE t.run = ?1 AND t.kind = 'code' AND t.landed_at IS NULL
                   AND a.n = (SELECT max(n) FROM attempts
                              WHERE run = t.run AND task = t.key AND status = 'succeeded')",
            )?
            .query_map([&run.name], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((run, (attempts, unlanded)))
    })?;
    // Where `git orch land` would land: a result already there may go.
    let target = super::land::resolve_target(repo, &run, None)
        .ok()
        .and_then(|b| Some((repo.branch_tip(&b).ok()??, b)));
    let guard = Guard { unlanded, target };
    // What "merged into the run's base" is measured against.
    let run_base = match &run.base_ref {
        Some(base) => repo.resolve_commit(base).ok().map(|b| b.sha),
        None => repo
            .open_main_worktree()
            .ok()
            .flatten()
            .and_then(|main| main.head_sha().ok().flatten())
            .or_else(|| repo.head_sha().ok().flatten()),
    };

    let mut report = Report {
        removed: Vec::new(),
        skipped: Vec::new(),
        branches: Vec::new(),
        kept_branches: Vec::new(),
        dry_run: opts.dry_run,
    };
    for attempt in attempts {
        match clean_one(repo, &attempt, opts, run_base.as_deref(), &guard) {
            Ok(Ok(done)) => {
                if let (Some((tip, reason)), Some(branch)) = (&done.branch, &attempt.branch) {
                    let entry = Branch {
                        branch: branch.clone(),
                        tip: tip.clone(),
                        task: attempt.task.clone(),
                        attempt: attempt.id,
                        reason: reason.clone(),
                    };
                    match reason {
                        None => report.branches.push(entry),
                        Some(_) => report.kept_branches.push(entry),
                    }
                }
                // A worktree removed by an earlier cleanup is not this one's to report.
                let removed_now = attempt.worktree_removed_at.is_none();
                if opts.dry_run {
                    if removed_now {
                        report.removed.push(attempt);
                    }
                    continue;
                }
                let recorded = record(orch, &attempt, &done)?;
                if removed_now {
                    report.removed.push(recorded);
                }
            }
            Ok(Err((reason, paths))) => report.skipped.push(Skipped {
                attempt,
                reason,
                paths,
            }),
            Err(err) => report.skipped.push(Skipped {
                attempt,
                reason: match &err.hint {
                    Some(hint) => format!("{} ({hint})", err.message),
                    None => err.message,
                },
                paths: Vec::new(),
            }),
        }
    }
    Ok(report)
}

type Outcome = std::result::Result<Done, (String, Vec<String>)>;

fn clean_one(
    repo: &Repo,
    attempt: &Attempt,
    opts: &Options<'_>,
    run_base: Option<&str>,
    guard: &Guard,
) -> Result<Outcome> {
    let Some(worktree) = attempt.worktree.as_deref() else {
        return Ok(Ok(Done::default()));
    };
    let path = Path::new(worktree);
    let n = u32::try_from(attempt.n)
        .map_err(|_| Error::internal(format!("attempt number {} is out of range", attempt.n)))?;
    let name = AttemptName::new(&attempt.run, &attempt.task, n)?;
    let mut done = Done::default();
    let removed_before = attempt.worktree_removed_at.is_some();
    if path.exists() && !removed_before {
        let dirty = crate::repo::worktree_dirty_paths(path, Untracked::Include)?;
        if !dirty.is_empty() {
            if !opts.force {
                let shown: Vec<&str> = dirty.iter().take(5).map(String::as_str).collect();
                return Ok(Err((
                    format!(
                        "uncommitted changes in {} path(s): {}{}; --force commits them to {} first",
                        dirty.len(),
                        shown.join(", "),
                        if dirty.len() > 5 { ", …" } else { "" },
                        name.rescue_ref()
                    ),
                    dirty,
                )));
            }
            if opts.dry_run {
                done.rescue_ref = Some(name.rescue_ref());
            } else {
                done.rescue_ref = repo.rescue_worktree(path, &name)?.map(|r| r.ref_name);
            }
        }
    }
    if !opts.dry_run && !removed_before {
        // Forced only once its changes are saved; git refuses anything else it finds.
        repo.remove_worktree(path, done.rescue_ref.is_some())?;
    }
    if opts.prune_branches {
        if let Some(branch) = attempt.branch.as_deref() {
            if let Some(tip) = repo.branch_tip(branch)? {
                let merged = match run_base {
                    Some(base) => repo.count_commits(&tip, base)? == 0,
                    None => false,
                };
                let kept = merged
                    || done.rescue_ref.is_some()
                    || attempt.rescue_ref.is_some()
                    || repo.unique_commits(&format!("refs/heads/{branch}"))? == 0;
                // A result that has not landed stays, whoever else holds its commits.
                let on_target = match &guard.target {
                    Some((target_tip, _)) => repo.is_ancestor(&tip, target_tip)?,
                    None => false,
                };
                let unlanded = guard.unlanded.contains(&attempt.id) && !on_target;
                if unlanded {
                    let target = guard
                        .target
                        .as_ref()
                        .map(|(_, b)| b.as_str())
                        .unwrap_or("its target");
                    done.branch = Some((
                        tip,
                        Some(format!(
                            "the task's result has not landed on {target}; `git orch land` first"
                        )),
                    ));
                } else if kept {
                    if !opts.dry_run {
                        repo.delete_branch(branch, Some(&tip))?;
                    }
                    done.branch_deleted = true;
                    done.branch = Some((tip, None));
                } else {
                    done.branch = Some((tip, Some("it holds commits no other ref has".into())));
                }
            }
        }
    }
    Ok(Ok(done))
}

/// Notes on the attempt that its worktree is gone (and where its work went).
fn record(orch: &mut Orch<'_>, attempt: &Attempt, done: &Done) -> Result<Attempt> {
    orch.write(|tx, cfg, changes| {
        let act = Act::now(&cfg.leader);
        tx.prepare_cached(
            "UPDATE attempts SET data = json_set(data,
                    '$.worktree_removed_at', coalesce(json_extract(data, '$.worktree_removed_at'), ?2),
                    '$.rescue_ref', coalesce(?3, json_extract(data, '$.rescue_ref')),
                    '$.branch_deleted_at', CASE WHEN ?4 THEN ?2 ELSE NULL END)
             WHERE id = ?1",
        )?
        .execute(params![
            attempt.id,
            act.now,
            done.rescue_ref,
            done.branch_deleted
        ])?;
        record_event(tx, &act, changes, attempt, done)?;
        get_attempt(tx, attempt.id)
    })
}

fn record_event(
    conn: &rusqlite::Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    attempt: &Attempt,
    done: &Done,
) -> Result<()> {
    changes.emit(
        conn,
        act,
        NewEvent {
            kind: "attempt.cleanup",
            thread: attempt.thread,
            run: Some(&attempt.run),
            task: Some(&attempt.task),
            attempt: Some(attempt.id.0),
            data: Some(json!({
                "worktree": attempt.worktree, "rescue_ref": done.rescue_ref,
                "branch": attempt.branch, "branch_deleted": done.branch_deleted,
            })),
            ..NewEvent::default()
        },
    )
}
