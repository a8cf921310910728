//! Attempt worktrees for `code` tasks (SPEC §7): the [`Workspaces`] that resolves the
//! base (strict mode, stacked bases), makes the branch and worktree, writes the attempt
//! marker, and takes it all back without losing work; and the attempt's head as commits
//! land (from the hooks, or from reconcile reading the branch).
//!
//! `review` and `chore` tasks stay worktree-less: their base is resolved when one is
//! named, nothing is made.

use super::attempts::get_attempt;
use super::base::BaseChoice;
use super::changes::{Act, Changes};
use super::model::AttemptId;
use super::workspace::{Prepared, Step, Workspace, Workspaces};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::repo::{AttemptMarker, AttemptName, CommitStats, Repo, Untracked};
use crate::store::events::NewEvent;
use crate::store::Store;
use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;

/// At most this many dirty paths are listed in a `dirty_worktree` error.
const MAX_LISTED_PATHS: usize = 200;

/// Worktrees in the repository: what `git orch` dispatches with.
pub struct GitWorkspaces<'a> {
    repo: &'a Repo,
    strict_untracked: bool,
    on_step: Option<&'a dyn Fn(Step)>,
}

impl<'a> GitWorkspaces<'a> {
    pub fn new(repo: &'a Repo) -> Self {
        GitWorkspaces {
            repo,
            strict_untracked: false,
            on_step: None,
        }
    }

    /// `orch.strictUntracked`: untracked files make the main worktree dirty too.
    pub fn strict_untracked(mut self, yes: bool) -> Self {
        self.strict_untracked = yes;
        self
    }

    /// Called after each dispatch step (the CLI's crash injection for tests).
    pub fn on_step(mut self, f: &'a dyn Fn(Step)) -> Self {
        self.on_step = Some(f);
        self
    }

    fn name(attempt: &Prepared) -> Result<AttemptName> {
        let n = u32::try_from(attempt.n).map_err(|_| {
            Error::internal(format!("attempt number {} is out of range", attempt.n))
        })?;
        AttemptName::new(&attempt.run, &attempt.task, n)
    }

    /// The base as given and the commit it names, and the merge ref when one was written.
    fn resolve_base(&self, attempt: &Prepared, name: &AttemptName) -> Result<ResolvedBase> {
        match &attempt.base {
            BaseChoice::Given(text) | BaseChoice::Run(text) => {
                let base = self.repo.resolve_commit(text)?;
                Ok(ResolvedBase {
                    given: base.given,
                    sha: base.sha,
                    bases_ref: None,
                })
            }
            BaseChoice::Deps(heads) => {
                // A dependency's branch is its result; once pruned, the head it ended at.
                let mut shas = Vec::with_capacity(heads.len());
                for head in heads {
                    let tip = match &head.branch {
                        Some(branch) => self.repo.branch_tip(branch)?,
                        None => None,
                    };
                    shas.push(tip.unwrap_or_else(|| head.sha.clone()));
                }
                let merged = self.repo.merge_bases(name, &shas)?;
                let given = match &merged.ref_name {
                    Some(ref_name) => ref_name.clone(),
                    None => heads
                        .iter()
                        .zip(&shas)
                        .find(|(_, sha)| **sha == merged.sha)
                        .and_then(|(head, _)| head.branch.clone())
                        .unwrap_or_else(|| merged.sha.clone()),
                };
                Ok(ResolvedBase {
                    given,
                    sha: merged.sha,
                    bases_ref: merged.ref_name,
                })
            }
            BaseChoice::Head => {
                let main = self.repo.open_main_worktree()?;
                let at = main.as_ref().unwrap_or(self.repo);
                if main.is_some() {
                    let untracked = if self.strict_untracked {
                        Untracked::Include
                    } else {
                        Untracked::Ignore
                    };
                    let dirty = at.dirty_paths(untracked)?;
                    if !dirty.is_empty() {
                        return Err(dirty_worktree(at, &attempt.task, dirty));
                    }
                }
                let base = at.resolve_commit("HEAD")?;
                Ok(ResolvedBase {
                    given: base.given,
                    sha: base.sha,
                    bases_ref: None,
                })
            }
        }
    }
}

struct ResolvedBase {
    given: String,
    sha: String,
    bases_ref: Option<String>,
}

fn dirty_worktree(main: &Repo, task: &str, paths: Vec<String>) -> Error {
    let count = paths.len();
    let shown: Vec<String> = paths.into_iter().take(MAX_LISTED_PATHS).collect();
    let preview = shown.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    Error::new(
        Code::DirtyWorktree,
        format!(
            "the main worktree has uncommitted changes ({count} path{}: {preview}{}); task {task} would start from HEAD without them",
            if count == 1 { "" } else { "s" },
            if count > 5 { ", …" } else { "" }
        ),
    )
    .hint("commit or stash them first, or name the base explicitly: git orch dispatch KEY --base REV")
    .detail("paths", shown)
    .detail("count", count)
    .detail(
        "worktree",
        main.workdir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
    )
}

impl Workspaces for GitWorkspaces<'_> {
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace> {
        if attempt.kind != "code" {
            let base_sha = match &attempt.base {
                BaseChoice::Given(text) | BaseChoice::Run(text) => {
                    Some(self.repo.resolve_commit(text)?.sha)
                }
                BaseChoice::Deps(_) | BaseChoice::Head => None,
            };
            return Ok(Workspace {
                base_ref: attempt.base_ref.clone(),
                base_sha,
                ..Workspace::default()
            });
        }
        let name = Self::name(attempt)?;
        let base = self.resolve_base(attempt, &name)?;
        // One `git worktree add` at a time per repository: git reads every other
        // worktree's admin files while adding one and dies on one half written
        // ("failed to read .git/worktrees/…/commondir"), so concurrent dispatches (drive's
        // workers, or dispatch commands side by side) take turns for this step.
        let lock_path = self.repo.state_dir().join("worktree-add.lock");
        let lock = crate::store::lockfile::open(&lock_path)?;
        crate::store::lockfile::lock(&lock, &lock_path)?;
        let created = self.repo.create_attempt_worktree_holding(
            &name,
            &base.sha,
            attempt.dispatch_lock.as_deref(),
        );
        drop(lock);
        let guard = match created {
            Ok(guard) => guard,
            Err(err) => {
                if let Some(bases) = &base.bases_ref {
                    let _ = self.repo.delete_ref(bases, Some(&base.sha));
                }
                return Err(err);
            }
        };
        let wt = guard.keep();
        Ok(Workspace {
            worktree: Some(wt.path),
            branch: Some(wt.branch),
            base_ref: Some(base.given),
            base_sha: Some(base.sha),
            git_dir: Some(wt.git_dir),
            bases_ref: base.bases_ref,
        })
    }

    fn attach(&self, attempt: &Prepared, workspace: &Workspace, thread: i64) -> Result<()> {
        let Some(git_dir) = &workspace.git_dir else {
            return Ok(());
        };
        crate::repo::write_attempt_marker(
            git_dir,
            &AttemptMarker {
                run: attempt.run.clone(),
                task: attempt.task.clone(),
                attempt: attempt.attempt.0,
                thread,
                agent: attempt.agent().map(str::to_owned),
            },
        )
    }

    fn undo(&self, attempt: &Prepared, workspace: &Workspace) -> Result<()> {
        if workspace.branch.is_none() && workspace.worktree.is_none() {
            return Ok(());
        }
        let name = Self::name(attempt)?;
        retire(
            self.repo,
            &name,
            workspace.worktree.as_deref(),
            workspace.branch.as_deref(),
            workspace.base_sha.as_deref(),
        )?;
        if let Some(bases) = &workspace.bases_ref {
            self.repo.delete_ref(bases, None)?;
        }
        Ok(())
    }

    fn reached(&self, step: Step) {
        if let Some(f) = self.on_step {
            f(step);
        }
    }
}

/// What taking an attempt's workspace back did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Retired {
    pub removed_worktree: bool,
    pub deleted_branch: bool,
    /// Uncommitted work found in the worktree, saved first.
    pub rescue_ref: Option<String>,
    /// Commits of the branch that no other ref had, kept under this ref.
    pub kept_ref: Option<String>,
    /// A folder at the worktree's path that git never registered (a `git worktree add`
    /// killed half-way), moved here rather than deleted.
    pub moved_aside: Option<std::path::PathBuf>,
}

/// Takes back a workspace nobody should be using (an undone or abandoned dispatch, an
/// orphan branch): uncommitted work in the worktree is committed under
/// `refs/orch/rescue/…` first, the worktree goes, and the branch goes too; when it holds
/// commits no other ref reaches, they are kept under `refs/orch/orphans/…` first.
pub(crate) fn retire(
    repo: &Repo,
    name: &AttemptName,
    worktree: Option<&Path>,
    branch: Option<&str>,
    base_sha: Option<&str>,
) -> Result<Retired> {
    let mut done = Retired::default();
    if let Some(path) = worktree {
        if path.exists() {
            match crate::repo::worktree_dirty_paths(path, Untracked::Include) {
                Ok(dirty) => {
                    if !dirty.is_empty() {
                        done.rescue_ref = repo.rescue_worktree(path, name)?.map(|r| r.ref_name);
                    }
                    repo.remove_worktree(path, true)?;
                    done.removed_worktree = true;
                }
                // A worktree `git worktree add` never finished (its dispatch was killed):
                // git cannot open or remove it; the caller moves the folder aside.
                Err(err) if err.code == crate::error::Code::NotFound => {}
                Err(err) => return Err(err),
            }
        } else if repo.registered_worktrees()?.iter().any(|p| p == path) {
            repo.remove_worktree(path, true)?;
            done.removed_worktree = true;
        }
    }
    if let Some(branch) = branch {
        if let Some(tip) = repo.branch_tip(branch)? {
            let full = format!("refs/heads/{branch}");
            if Some(tip.as_str()) != base_sha && repo.unique_commits(&full)? > 0 {
                let prefix = format!("refs/orch/orphans/{}/{}", name.run(), name.slug());
                done.kept_ref = Some(repo.keep_under_ref(
                    &prefix,
                    &tip,
                    "git-orch: keep an abandoned attempt's commits",
                )?);
            }
            done.deleted_branch = repo.delete_branch(branch, Some(&tip))?;
        }
    }
    Ok(done)
}

/// An attempt's head moved to `head` (`commits` since its base): stores both and
/// appends an `attempt.progress` event with the commit's numbers. Only a live attempt
/// whose head is not `head` already changes (a finished attempt keeps its final head);
/// returns whether it did. `act.leader` is the actor: the agent for a hook.
pub(crate) fn record_head(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    attempt_id: AttemptId,
    stats: &CommitStats,
    commits: u64,
    source: &str,
) -> Result<bool> {
    let attempt = get_attempt(conn, attempt_id)?;
    let current = attempt.head_sha.as_ref().or(attempt.base_sha.as_ref());
    if !attempt.status.is_live() || current == Some(&stats.sha) {
        return Ok(false);
    }
    let commits = i64::try_from(commits).unwrap_or(i64::MAX);
    conn.prepare_cached("UPDATE attempts SET head_sha = ?2, commits = ?3 WHERE id = ?1")?
        .execute(params![attempt_id, stats.sha, commits])?;
    changes.emit(
        conn,
        act,
        NewEvent {
            kind: "attempt.progress",
            thread: attempt.thread,
            run: Some(&attempt.run),
            task: Some(&attempt.task),
            attempt: Some(attempt_id.0),
            data: Some(json!({
                "sha": stats.sha, "subject": stats.subject, "files_changed": stats.files_changed,
                "insertions": stats.insertions, "deletions": stats.deletions,
                "commits": commits, "source": source,
            })),
            ..NewEvent::default()
        },
    )?;
    Ok(true)
}

/// What a hook saw: its name, its first argument, and (post-rewrite) the rewritten pairs.
pub struct HookCall<'a> {
    pub name: &'a str,
    pub arg: Option<&'a str>,
    pub rewritten: Vec<serde_json::Value>,
}

/// Refuses a hook name git-orch installs no block for.
pub fn check_hook_name(name: &str) -> Result<()> {
    if crate::repo::HOOK_NAMES.contains(&name) {
        return Ok(());
    }
    Err(
        Error::new(Code::Usage, format!("unknown hook {name:?}")).hint(format!(
            "git-orch handles {}",
            crate::repo::HOOK_NAMES.join(", ")
        )),
    )
}

/// How long a hook waits for the write lock before it spools its record instead: well
/// inside the ~100 ms a commit may lose to us, with room for the two processes it starts.
pub const HOOK_LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// What a hook records, complete enough to be applied later from the spool: the
/// progress message and, for a live attempt of the marker's thread, its new head.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HookRecord {
    actor: String,
    leader: String,
    max_claims: i64,
    thread: i64,
    body: String,
    data: serde_json::Value,
    head: Option<HeadUpdate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeadUpdate {
    attempt: i64,
    commits: u64,
    stats: CommitStats,
}

/// `git inbox hook NAME` in an attempt worktree (SPEC §7): records HEAD as a `progress`
/// message on the attempt's thread and, when the marker names a live attempt of that
/// thread, the attempt's new head and commit count, in one transaction. Commits are
/// counted before it, so no git work happens inside the write. When another process
/// holds the write lock past [`HOOK_LOCK_WAIT`], the record goes to the spool
/// (`crate::store::spool`) and the next write takes it in; returns the spool key then.
pub fn record_hook(
    repo: &Repo,
    store: &mut Store,
    cfg: &inbox::Config,
    actor: &str,
    marker: &AttemptMarker,
    call: &HookCall<'_>,
) -> Result<Option<String>> {
    check_hook_name(call.name)?;
    let Some(head) = repo.head_sha()? else {
        return Ok(None);
    };
    let stats = repo.commit_stats(&head)?;
    let body = format!(
        "{} {}",
        &stats.sha[..12.min(stats.sha.len())],
        stats.subject
    );
    let mut data = serde_json::to_value(&stats)?;
    data["hook"] = json!(call.name);
    if let Some(arg) = call.arg {
        // post-rewrite: amend|rebase; post-merge: 1 for a squash merge.
        data["hook_arg"] = json!(arg);
    }
    if !call.rewritten.is_empty() {
        data["rewritten"] = serde_json::Value::Array(call.rewritten.clone());
    }
    // A read never waits on a writer in WAL mode.
    let attempt = store.read(|tx| match get_attempt(tx, AttemptId(marker.attempt)) {
        Ok(a) => Ok(Some(a)),
        Err(err) if err.code == Code::NotFound => Ok(None),
        Err(err) => Err(err),
    })?;
    // Only a live attempt of the marker's own thread takes the head; else only the
    // message is kept.
    let head = match attempt {
        Some(a) if a.status.is_live() && a.thread == Some(marker.thread) => {
            let commits = match &a.base_sha {
                Some(base) => repo.count_commits(&head, base)?,
                None => 0,
            };
            Some(HeadUpdate {
                attempt: a.id.0,
                commits,
                stats,
            })
        }
        _ => None,
    };
    let record = HookRecord {
        actor: actor.to_owned(),
        leader: cfg.leader.clone(),
        max_claims: cfg.max_claims,
        thread: marker.thread,
        body,
        data,
        head,
    };
    store.set_busy_timeout(HOOK_LOCK_WAIT)?;
    match store.write(|tx| apply_hook_record(tx, cfg, &record)) {
        Err(err) if err.code == Code::Busy => {
            let value = json!({ "kind": "hook", "hook": record });
            Ok(Some(crate::store::spool::put(store.state_dir(), &value)?))
        }
        other => other.map(|()| None),
    }
}

fn apply_hook_record(tx: &Connection, cfg: &inbox::Config, record: &HookRecord) -> Result<()> {
    let posted = inbox::progress(
        tx,
        cfg,
        &record.actor,
        record.thread,
        &record.body,
        &record.data,
    )?;
    if let Some(head) = &record.head {
        // The progress message names who committed: the thread's holder.
        let act = Act::now(&posted.message.author);
        let mut changes = Changes::default();
        record_head(
            tx,
            &act,
            &mut changes,
            AttemptId(head.attempt),
            &head.stats,
            head.commits,
            "hook",
        )?;
    }
    Ok(())
}

/// The [`crate::store::SpoolHandler`] for what orch spools: hook records.
pub fn take_in_spooled(tx: &Connection, record: &serde_json::Value) -> Result<()> {
    match record.get("kind").and_then(|k| k.as_str()) {
        Some("hook") => {
            let hook: HookRecord = serde_json::from_value(record["hook"].clone())
                .map_err(|e| Error::invalid_input(format!("a spooled hook record: {e}")))?;
            let cfg = inbox::Config {
                leader: hook.leader.clone(),
                max_claims: hook.max_claims,
                ..inbox::Config::default()
            };
            apply_hook_record(tx, &cfg, &hook)
        }
        other => Err(Error::invalid_input(format!(
            "a spooled record of unknown kind {other:?}"
        ))),
    }
}
