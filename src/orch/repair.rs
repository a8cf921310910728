//! Reconcile with the repository (SPEC §6, §7): besides mapping threads to attempts
//! ([`super::reconcile`]), it
//!
//! - reads the branch tip of every live attempt, so commits made without the hooks are
//!   counted (`head_sha`, `commits`, an `attempt.progress` event when the head moved);
//! - marks `lost` a live attempt whose worktree was deleted by hand (its thread is
//!   cancelled; the task is retried like after a lost lease);
//! - repairs dispatches whose process died half-way: a `preparing` attempt whose
//!   dispatch lock nobody holds is finished when its thread exists (marker written, then
//!   `dispatched`), otherwise undone (worktree and branch taken back, the row deleted);
//! - with `thorough` (`git orch reconcile`), takes back attempt branches and worktrees
//!   that no attempt owns.
//!
//! Taking back never loses work: uncommitted changes go to `refs/orch/rescue/…` and
//! commits no other ref reaches to `refs/orch/orphans/…` before anything is deleted.
//! Git is read and run outside transactions; each change is then applied in a short one
//! that checks the attempt is still as it was seen.

use super::attempts::{end_attempt, get_attempt};
use super::changes::{Act, Changes};
use super::dispatch_lock::DispatchLock;
use super::dispatch_steps::{discard_tx, hand_over};
use super::model::{Attempt, AttemptId};
use super::reconcile;
use super::status::{AttemptStatus, TaskStatus};
use super::tasks;
use super::worktrees::{self, Retired};
use crate::error::Result;
use crate::inbox::{self, Inbox};
use crate::orch::tasks::Transition;
use crate::repo::{AttemptMarker, AttemptName, CommitStats, Repo};
use crate::store::events::{Event, NewEvent};
use crate::store::Store;
use rusqlite::{params, Connection};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Why an attempt whose worktree vanished is lost (stored as its failure reason).
pub const WORKTREE_DELETED: &str = "worktree_deleted";

/// A live attempt as reconcile last stored it, with where it works.
struct LiveWork {
    id: AttemptId,
    worktree: Option<String>,
    branch: Option<String>,
    base_sha: Option<String>,
    head_sha: Option<String>,
}

/// What the repository says about one live attempt.
enum Seen {
    Head {
        id: AttemptId,
        was: Option<String>,
        stats: CommitStats,
        commits: u64,
    },
    Lost {
        id: AttemptId,
        worktree: String,
    },
    /// `git worktree move`d: the branch is checked out elsewhere.
    Moved {
        id: AttemptId,
        from: String,
        to: String,
    },
}

pub fn reconcile(
    store: &mut Store,
    cfg: &inbox::Config,
    repo: &Repo,
    thorough: bool,
) -> Result<Vec<Event>> {
    Inbox::new(store, cfg.clone()).settle()?;
    let (preparing, live, threads_moved) = store.read(|tx| {
        let preparing: Vec<AttemptId> = tx
            .prepare_cached("SELECT id FROM attempts WHERE status = 'preparing' ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let live: Vec<LiveWork> = tx
            .prepare_cached(
                "SELECT id, worktree, branch, base_sha, head_sha FROM attempts
                 WHERE status IN ('dispatched', 'running', 'blocked')
                   AND (worktree IS NOT NULL OR branch IS NOT NULL)
                 ORDER BY id",
            )?
            .query_map([], |r| {
                Ok(LiveWork {
                    id: r.get(0)?,
                    worktree: r.get(1)?,
                    branch: r.get(2)?,
                    base_sha: r.get(3)?,
                    head_sha: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let moved = !reconcile::moved(tx)?.is_empty();
        Ok((preparing, live, moved))
    })?;

    let mut events = Vec::new();
    for id in preparing {
        match repair_preparing(store, cfg, repo, id) {
            Ok(mut done) => events.append(&mut done),
            // The next reconcile tries again; only `git orch reconcile` says why.
            Err(err) if thorough => return Err(err),
            Err(_) => {}
        }
    }
    // Launch hook (SPEC §11): launched attempts whose supervisor is gone.
    match super::launch::reap_lost(store, cfg) {
        Ok(mut lost) => events.append(&mut lost),
        Err(err) if thorough => return Err(err),
        Err(_) => {}
    }
    // Check worktrees of lands that died (their lock is free) go back.
    match super::land_lock::reclaim(repo, store.state_dir()) {
        Err(err) if thorough => return Err(err),
        _ => {}
    }
    if thorough {
        events.append(&mut take_back_orphans(store, cfg, repo)?);
        clear_stale_locks(store)?;
    }

    let mut linked = None;
    let seen: Vec<Seen> = live
        .iter()
        .filter_map(|w| look(repo, w, &mut linked))
        .collect();
    if seen.is_empty() && !threads_moved && events.is_empty() {
        return Ok(events);
    }
    let mut applied = store.write(|tx| {
        let mut changes = Changes::default();
        let act = Act::now(&cfg.leader);
        // Heads first: an attempt that just succeeded keeps the head it ended at.
        for s in &seen {
            if let Seen::Head {
                id,
                was,
                stats,
                commits,
            } = s
            {
                let still = get_attempt(tx, *id)?;
                if still.head_sha == *was {
                    worktrees::record_head(
                        tx,
                        &act,
                        &mut changes,
                        *id,
                        stats,
                        *commits,
                        "reconcile",
                    )?;
                }
            }
        }
        for s in &seen {
            if let Seen::Moved { id, from, to } = s {
                tx.prepare_cached(
                    "UPDATE attempts SET worktree = ?3 WHERE id = ?1 AND worktree = ?2",
                )?
                .execute(params![id, from, to])?;
            }
        }
        reconcile::reconcile_tx(tx, cfg, &mut changes)?;
        // After the threads: a thread that is done wins over a worktree that is gone.
        for s in &seen {
            if let Seen::Lost { id, worktree } = s {
                lose(tx, cfg, &act, &mut changes, *id, worktree)?;
            }
        }
        Ok(changes.events)
    })?;
    events.append(&mut applied);
    Ok(events)
}

/// Reads one live attempt's worktree and branch; `None` when nothing changed (or the
/// repository cannot say: the next reconcile looks again). `linked` caches `git worktree
/// list`, asked only when a worktree is missing.
fn look(
    repo: &Repo,
    work: &LiveWork,
    linked: &mut Option<Vec<crate::repo::LinkedWorktree>>,
) -> Option<Seen> {
    if let Some(worktree) = &work.worktree {
        if !Path::new(worktree).exists() {
            if linked.is_none() {
                *linked = Some(repo.linked_worktrees().ok()?);
            }
            let moved = linked
                .as_ref()?
                .iter()
                .find(|w| w.branch.is_some() && w.branch == work.branch && w.path.exists());
            return Some(match moved {
                Some(w) => Seen::Moved {
                    id: work.id,
                    from: worktree.clone(),
                    to: w.path.to_string_lossy().into_owned(),
                },
                None => Seen::Lost {
                    id: work.id,
                    worktree: worktree.clone(),
                },
            });
        }
    }
    let branch = work.branch.as_deref()?;
    let current = work.head_sha.as_ref().or(work.base_sha.as_ref());
    if current.is_some_and(|sha| repo.branch_is_at(branch, sha)) {
        return None;
    }
    let tip = repo.branch_tip(branch).ok()??;
    if current == Some(&tip) {
        return None;
    }
    let commits = match &work.base_sha {
        Some(base) => repo.count_commits(&tip, base).ok()?,
        None => 0,
    };
    let stats = repo.commit_stats(&tip).ok()?;
    Some(Seen::Head {
        id: work.id,
        was: work.head_sha.clone(),
        stats,
        commits,
    })
}

/// A live attempt whose worktree is gone: `lost`, its thread cancelled so nobody takes
/// it up again, and the task retried like after a lost lease (ready while attempts
/// remain, else failed).
fn lose(
    conn: &Connection,
    cfg: &inbox::Config,
    act: &Act<'_>,
    changes: &mut Changes,
    id: AttemptId,
    worktree: &str,
) -> Result<()> {
    let attempt = get_attempt(conn, id)?;
    if !attempt.status.is_live() || attempt.status == AttemptStatus::Preparing {
        return Ok(());
    }
    if Path::new(worktree).exists() {
        return Ok(());
    }
    let reason = format!("the attempt's worktree {worktree} was deleted");
    end_attempt(
        conn,
        cfg,
        act,
        changes,
        &attempt,
        AttemptStatus::Lost,
        &reason,
    )?;
    conn.prepare_cached("UPDATE attempts SET fail_reason = ?2, fail_retryable = 1 WHERE id = ?1")?
        .execute(params![id, WORKTREE_DELETED])?;
    let Some(task) = tasks::find_row(conn, &attempt.run, &attempt.task)? else {
        return Ok(());
    };
    if task.current_attempt != Some(id) || task.status.is_final() {
        return Ok(());
    }
    let to = if task.attempts < task.max_attempts {
        tasks::waiting_status(conn, &task.run, &task.key)?
    } else {
        TaskStatus::Failed
    };
    tasks::set_status(
        conn,
        act,
        changes,
        &task.run,
        &task.key,
        Transition::new(task.status, to).by(Some(id)),
    )
}

fn repair_event(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    name: (&str, &str),
    attempt: Option<AttemptId>,
    data: serde_json::Value,
) -> Result<()> {
    let act = Act::now(&cfg.leader);
    changes.emit(
        conn,
        &act,
        NewEvent {
            kind: "attempt.repair",
            run: Some(name.0),
            task: Some(name.1),
            attempt: attempt.map(|a| a.0),
            data: Some(data),
            ..NewEvent::default()
        },
    )
}

/// A `preparing` attempt: left alone while its dispatcher holds the lock; otherwise its
/// dispatcher died, and it is finished (thread sent) or undone (no thread yet).
fn repair_preparing(
    store: &mut Store,
    cfg: &inbox::Config,
    repo: &Repo,
    id: AttemptId,
) -> Result<Vec<Event>> {
    let state_dir = store.state_dir().to_owned();
    let finished = || store.read(|tx| Ok(get_attempt(tx, id)?.status != AttemptStatus::Preparing));
    let Some(_lock) = DispatchLock::try_acquire_unless_finished(&state_dir, id, finished)? else {
        return Ok(Vec::new());
    };
    // Read again under the lock: the dispatcher may have finished just before.
    let attempt = match store.read(|tx| get_attempt(tx, id)) {
        Ok(attempt) if attempt.status == AttemptStatus::Preparing => attempt,
        _ => return Ok(Vec::new()),
    };
    if let Some(thread) = attempt.thread {
        finish(store, cfg, &attempt, thread)
    } else {
        undo(store, cfg, repo, &attempt)
    }
}

/// The thread exists: write the marker if the worktree lacks it, then step 5.
fn finish(
    store: &mut Store,
    cfg: &inbox::Config,
    attempt: &Attempt,
    thread: i64,
) -> Result<Vec<Event>> {
    let mut marker_written = false;
    if let Some(path) = attempt.worktree.as_deref().map(Path::new) {
        if path.exists() {
            let worktree = Repo::open_worktree(path)?;
            let marker = AttemptMarker {
                run: attempt.run.clone(),
                task: attempt.task.clone(),
                attempt: attempt.id.0,
                thread,
                agent: (!attempt.to.starts_with('@')).then(|| attempt.to.clone()),
            };
            if worktree.attempt_marker()?.as_ref() != Some(&marker) {
                crate::repo::write_attempt_marker(worktree.git_dir(), &marker)?;
                marker_written = true;
            }
        }
    }
    store.write(|tx| {
        let mut changes = Changes::default();
        hand_over(tx, cfg, &mut changes, attempt.id)?;
        repair_event(
            tx,
            cfg,
            &mut changes,
            (&attempt.run, &attempt.task),
            Some(attempt.id),
            json!({
                "action": "finished",
                "reason": "its dispatch stopped after the thread was sent",
                "marker_written": marker_written,
            }),
        )?;
        Ok(changes.events)
    })
}

/// No thread yet: nobody was told of the attempt. Its branch and worktree (if made)
/// are taken back, its bases ref deleted, and the row goes; the task is as it was.
fn undo(
    store: &mut Store,
    cfg: &inbox::Config,
    repo: &Repo,
    attempt: &Attempt,
) -> Result<Vec<Event>> {
    let mut retired = Retired::default();
    let mut branch = None;
    let mut stale_locks = Vec::new();
    if let Ok(n) = u32::try_from(attempt.n) {
        if let Ok(name) = AttemptName::new(&attempt.run, &attempt.task, n) {
            let wanted = name.branch();
            let path = repo.attempt_worktree_path(&name)?;
            // A `git worktree add` that outlived its killed dispatcher is still at work:
            // leave the attempt to a later reconcile rather than race it.
            if repo.worktree_lock_reason(&path)?.as_deref() == Some("initializing")
                && recently_locked(repo, &path)
            {
                return Ok(Vec::new());
            }
            // Its dispatcher is dead (we hold its lock), and it was the only writer of
            // these refs: a lock file on them is what a killed `git update-ref` left.
            let branch_ref = format!("refs/heads/{wanted}");
            let stale = repo.remove_stale_ref_locks(&[&branch_ref, &name.bases_ref()])?;
            let worktree = worktree_of(repo, &wanted, Some(&path))?;
            retired = worktrees::retire(repo, &name, worktree.as_deref(), Some(&wanted), None)?;
            retired.moved_aside = move_aside_unregistered(store, repo, &name)?;
            repo.delete_ref(&name.bases_ref(), None)?;
            branch = Some(wanted);
            stale_locks = stale;
        }
    }
    store.write(|tx| {
        let mut changes = Changes::default();
        if discard_tx(tx, attempt.id)? {
            repair_event(
                tx,
                cfg,
                &mut changes,
                (&attempt.run, &attempt.task),
                Some(attempt.id),
                json!({
                    "action": "undone",
                    "reason": "its dispatch stopped before the thread was sent",
                    "n": attempt.n, "branch": branch, "retired": retired,
                    "stale_ref_locks": stale_locks,
                }),
            )?;
        }
        Ok(changes.events)
    })
}

/// Whether git's `initializing` lock on the worktree at `path` is younger than a minute
/// (a live `git worktree add`), rather than left by one that died too.
fn recently_locked(repo: &Repo, path: &Path) -> bool {
    let Some(id) = path.file_name() else {
        return false;
    };
    let lock = repo.common_dir().join("worktrees").join(id).join("locked");
    std::fs::metadata(lock)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < std::time::Duration::from_secs(60))
}

/// A dispatch killed inside `git worktree add` can leave the attempt's folder without
/// git knowing it; the next dispatch of the same attempt number would then find its path
/// taken. The folder is moved under `<common>/orch/lost+found/` (never deleted: it may
/// hold something) and the move is reported.
fn move_aside_unregistered(
    store: &Store,
    repo: &Repo,
    name: &AttemptName,
) -> Result<Option<PathBuf>> {
    let path = repo.attempt_worktree_path(name)?;
    let registered = repo.registered_worktrees()?.iter().any(|p| p == &path);
    if !path.exists() || (registered && Repo::open_worktree(&path).is_ok()) {
        return Ok(None);
    }
    let dest = store
        .state_dir()
        .join("lost+found")
        .join(name.run())
        .join(format!("{}-{}", name.slug(), crate::time::now_ms()));
    let parent = dest.parent().expect("lost+found path has a parent");
    std::fs::create_dir_all(parent)
        .map_err(|e| crate::error::Error::io(format!("creating {}", parent.display()), e))?;
    std::fs::rename(&path, &dest)
        .map_err(|e| crate::error::Error::io(format!("moving {} aside", path.display()), e))?;
    if registered {
        repo.forget_worktree(&path)?;
    }
    Ok(Some(dest))
}

/// Where git has `branch` checked out, else `expected` if git has a worktree there.
fn worktree_of(repo: &Repo, branch: &str, expected: Option<&Path>) -> Result<Option<PathBuf>> {
    let linked = repo.linked_worktrees()?;
    if let Some(w) = linked.iter().find(|w| w.branch.as_deref() == Some(branch)) {
        return Ok(Some(w.path.clone()));
    }
    Ok(expected
        .filter(|e| linked.iter().any(|w| w.path == *e))
        .map(Path::to_owned))
}

/// Attempt branches (and their worktrees) of a run's attempts that do not exist: taken
/// back.
fn take_back_orphans(store: &mut Store, cfg: &inbox::Config, repo: &Repo) -> Result<Vec<Event>> {
    // Branches first, rows second: a dispatch writes its row before its branch.
    let branches = repo.attempt_branches()?;
    if branches.is_empty() {
        return Ok(Vec::new());
    }
    let (runs, known): (HashSet<String>, HashSet<(String, String, i64)>) = store.read(|tx| {
        let runs = tx
            .prepare_cached("SELECT name FROM runs")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let rows = tx
            // A row owns its branch once it records it, or while it is being dispatched.
            .prepare_cached(
                "SELECT run, task, n FROM attempts WHERE branch IS NOT NULL OR status = 'preparing'",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((runs, rows))
    })?;
    let mut events = Vec::new();
    for b in branches {
        let key = (
            b.name.run().to_owned(),
            b.name.task().to_owned(),
            i64::from(b.name.n()),
        );
        // A branch of a run this repository never had is somebody else's naming.
        if known.contains(&key) || !runs.contains(b.name.run()) {
            continue;
        }
        let worktree = worktree_of(repo, &b.branch, None)?;
        let retired = worktrees::retire(repo, &b.name, worktree.as_deref(), Some(&b.branch), None)?;
        let mut done = store.write(|tx| {
            let mut changes = Changes::default();
            repair_event(
                tx,
                cfg,
                &mut changes,
                (b.name.run(), b.name.task()),
                None,
                json!({
                    "action": "orphan",
                    "reason": "no attempt owns this branch",
                    "branch": b.branch, "tip": b.tip,
                    "worktree": worktree.as_ref().map(|p| p.to_string_lossy().into_owned()),
                    "retired": retired,
                }),
            )?;
            Ok(changes.events)
        })?;
        events.append(&mut done);
    }
    Ok(events)
}

/// Lock files of attempts no longer being dispatched (a process that died after its
/// last step leaves its file behind).
fn clear_stale_locks(store: &mut Store) -> Result<()> {
    let dir = store.state_dir().join("dispatch");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let ids: Vec<AttemptId> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".lock")?
                .parse()
                .ok()
                .map(AttemptId)
        })
        .collect();
    for id in ids {
        let preparing = store.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT 1 FROM attempts WHERE id = ?1 AND status = 'preparing'")?
                .exists([id])?)
        })?;
        if !preparing {
            // Dropping a lock we could take removes its file.
            drop(DispatchLock::try_acquire(store.state_dir(), id)?);
        }
    }
    Ok(())
}
