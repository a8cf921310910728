//! What a land holds while it runs: a lock file per run (one land of a run at a time;
//! the kernel drops it when the process dies) and at most one temporary worktree for the
//! check. Reconcile takes back the worktree of a land whose lock nobody holds. A leaf
//! over the repository, so that reconcile can call it without looking up at landing.

use crate::error::{Code, Error, Result};
use crate::repo::Repo;
use crate::store::lockfile;
use std::fs::File;
use std::path::{Path, PathBuf};

/// `<state>/land/<run>.lock`, held for the whole land.
pub struct LandLock {
    path: PathBuf,
    _file: File,
}

fn lock_path(state_dir: &Path, run: &str) -> PathBuf {
    state_dir.join("land").join(format!("{run}.lock"))
}

impl LandLock {
    /// Takes the run's land lock; `None` while another land of the run holds it.
    pub fn try_acquire(state_dir: &Path, run: &str) -> Result<Option<LandLock>> {
        let path = lock_path(state_dir, run);
        let file = lockfile::open(&path)?;
        Ok(lockfile::try_lock(&file, &path)?.then(|| LandLock { path, _file: file }))
    }

    /// The same, refusing with `conflict` when another land of the run is at work.
    pub fn acquire(state_dir: &Path, run: &str) -> Result<LandLock> {
        Self::try_acquire(state_dir, run)?.ok_or_else(|| {
            Error::new(
                Code::Conflict,
                format!("another `git orch land` of run {run} is at work"),
            )
            .hint("wait for it to finish; landing is one at a time per run")
            .detail("run", run)
        })
    }
}

impl Drop for LandLock {
    fn drop(&mut self) {
        // Removed while still held: a file left behind means a land died.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Where the check of run `run` gets its worktree: `<root>/<run>/.land-check` (a name no
/// task can have, so it never meets an attempt's worktree).
pub fn check_worktree_path(repo: &Repo, run: &str) -> Result<PathBuf> {
    Ok(repo.worktree_root()?.join(run).join(".land-check"))
}

/// Takes back the check worktrees of lands that died: every run with a lock file that
/// nobody holds. Returns the paths removed.
pub fn reclaim(repo: &Repo, state_dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(state_dir.join("land")) else {
        return Ok(Vec::new());
    };
    let runs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Some(e.file_name().to_str()?.strip_suffix(".lock")?.to_owned()))
        .filter(|run| crate::names::is_valid_name(run))
        .collect();
    let mut removed = Vec::new();
    for run in runs {
        let Some(lock) = LandLock::try_acquire(state_dir, &run)? else {
            continue;
        };
        let path = check_worktree_path(repo, &run)?;
        if path.exists() || repo.registered_worktrees()?.contains(&path) {
            repo.remove_temp_worktree(&path)?;
            removed.push(path);
        }
        drop(lock);
    }
    Ok(removed)
}
