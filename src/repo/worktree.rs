//! Attempt worktrees (docs/git-layer.md): a branch `orch/<run>/<task>-<n>` and a linked worktree at
//! `<root>/<run>/<task>-<n>`, the attempt marker in its private git dir, removal, undo,
//! and rescuing uncommitted work before a forced removal.
//!
//! Every mutation goes through the `git` binary; repository config is never touched.

use super::git::git;
use super::revs::parse_sha;
use super::worktree_add::{branch_exists, path_exists, Added};
use super::Repo;
use crate::error::{Code, Error, Result};
use std::path::{Path, PathBuf};

/// Which attempt a branch, worktree or ref belongs to: `<run>/<task>-<n>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AttemptName {
    run: String,
    task: String,
    n: u32,
}

impl AttemptName {
    /// Checks the names (see `crate::names`) so they are safe as ref names, paths and argv.
    pub fn new(run: &str, task: &str, n: u32) -> Result<AttemptName> {
        crate::names::check_name("run", run)?;
        crate::names::check_name("task", task)?;
        if n == 0 {
            return Err(Error::invalid_input("attempt numbers start at 1"));
        }
        Ok(AttemptName {
            run: run.to_owned(),
            task: task.to_owned(),
            n,
        })
    }

    pub fn run(&self) -> &str {
        &self.run
    }

    pub fn task(&self) -> &str {
        &self.task
    }

    pub fn n(&self) -> u32 {
        self.n
    }

    /// `<task>-<n>`: the worktree's folder name and the last ref component.
    pub fn slug(&self) -> String {
        format!("{}-{}", self.task, self.n)
    }

    /// `orch/<run>/<task>-<n>` (a branch name, without `refs/heads/`).
    pub fn branch(&self) -> String {
        format!("orch/{}/{}", self.run, self.slug())
    }

    /// `refs/orch/bases/<run>/<task>-<n>`: the merge commit of several dependencies.
    pub fn bases_ref(&self) -> String {
        format!("refs/orch/bases/{}/{}", self.run, self.slug())
    }

    /// `refs/orch/rescue/<run>/<task>-<n>`: uncommitted work saved by a forced cleanup.
    pub fn rescue_ref(&self) -> String {
        format!("refs/orch/rescue/{}/{}", self.run, self.slug())
    }
}

/// A created attempt worktree: what dispatch stores on the attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptWorktree {
    pub name: AttemptName,
    /// The worktree's top directory, absolute.
    pub path: PathBuf,
    /// `orch/<run>/<task>-<n>`.
    pub branch: String,
    /// Its private git dir (`<common>/worktrees/<id>`), where the marker lives.
    pub git_dir: PathBuf,
    pub base_sha: String,
}

impl AttemptWorktree {
    #[cfg(test)]
    pub fn write_marker(&self, marker: &super::AttemptMarker) -> Result<()> {
        super::write_attempt_marker(&self.git_dir, marker)
    }
}

/// Undoes a fresh attempt worktree (worktree and branch) when dropped, unless
/// [`WorktreeGuard::keep`] is called: dispatch creates the worktree, then writes the
/// marker and the database, and any `?` in between leaves nothing behind.
/// Owns everything it needs, so it borrows nothing while the caller uses the store.
#[must_use = "dropping the guard removes the worktree again"]
pub struct WorktreeGuard {
    run_dir: PathBuf,
    worktree: Option<AttemptWorktree>,
}

impl WorktreeGuard {
    #[cfg(test)]
    pub fn worktree(&self) -> &AttemptWorktree {
        self.worktree
            .as_ref()
            .expect("present until kept or dropped")
    }

    /// The worktree stays; the guard is spent.
    pub fn keep(mut self) -> AttemptWorktree {
        self.worktree.take().expect("present until kept or dropped")
    }

    /// Undoes now and reports how that went (dropping undoes too, silently).
    #[cfg(test)]
    pub fn undo(mut self) -> Result<()> {
        match self.worktree.take() {
            Some(wt) => undo_worktree(&self.run_dir, &wt),
            None => Ok(()),
        }
    }
}

impl Drop for WorktreeGuard {
    fn drop(&mut self) {
        if let Some(wt) = self.worktree.take() {
            let _ = undo_worktree(&self.run_dir, &wt);
        }
    }
}

fn undo_worktree(run_dir: &Path, wt: &AttemptWorktree) -> Result<()> {
    undo_at(run_dir, &wt.path, &wt.branch)
}

fn undo_at(run_dir: &Path, path: &Path, branch: &str) -> Result<()> {
    let removed = remove_worktree_at(run_dir, path, true);
    let deleted = delete_ref_at(
        run_dir,
        &format!("refs/heads/{branch}"),
        None,
        "git-orch: undo attempt branch",
    );
    removed.and(deleted).map(|_| ())
}

fn registered_but_gone(path: &Path) -> Error {
    worktree_exists(format!("git still has a worktree at {}", path.display()))
        .hint("its folder is gone; `git worktree prune` forgets it")
        .detail("path", path.to_string_lossy().into_owned())
}

fn worktree_exists(message: String) -> Error {
    Error::new(Code::WorktreeExists, message)
}

impl Repo {
    /// The main worktree's top directory (`None` for a bare repository).
    pub fn main_worktree(&self) -> Result<Option<PathBuf>> {
        let main = self
            .gix()
            .main_repo()
            .map_err(|e| Error::new(Code::GitFailed, format!("opening the main worktree: {e}")))?;
        Ok(match main.workdir() {
            Some(dir) => Some(
                std::fs::canonicalize(dir)
                    .map_err(|e| Error::io(format!("resolving {}", dir.display()), e))?,
            ),
            None => None,
        })
    }

    /// Where attempt worktrees go: `orch.worktreeRoot` (relative to the main worktree's
    /// parent folder when relative), else the sibling folder `<main-worktree-name>.worktrees`.
    pub fn worktree_root(&self) -> Result<PathBuf> {
        // Bare repositories have no main worktree; their git dir stands in for it.
        let anchor = match self.main_worktree()? {
            Some(dir) => dir,
            None => self.common_dir().to_owned(),
        };
        let parent = anchor.parent().unwrap_or(Path::new("/")).to_owned();
        match self.config_string("orch.worktreeRoot") {
            Some(root) if !root.trim().is_empty() => Ok(parent.join(root.trim())),
            _ => {
                let mut name = anchor
                    .file_name()
                    .map(|n| n.to_owned())
                    .unwrap_or_else(|| "repo".into());
                name.push(".worktrees");
                Ok(parent.join(name))
            }
        }
    }

    /// `<root>/<run>/<task>-<n>`. The path is stored on the attempt and shown in JSON, so
    /// it must be UTF-8: a root that is not is refused before anything is made.
    pub fn attempt_worktree_path(&self, name: &AttemptName) -> Result<PathBuf> {
        let root = self.worktree_root()?;
        if !crate::paths::is_utf8(&root) {
            return Err(Error::invalid_input(format!(
                "the attempt worktree root {} is not UTF-8",
                root.display()
            ))
            .hint("attempt worktrees are stored by path; point orch.worktreeRoot at a UTF-8 path: git config orch.worktreeRoot /tmp/trees")
            .detail("path", crate::paths::lossy(&root)));
        }
        Ok(root.join(&name.run).join(name.slug()))
    }

    /// Creates branch `orch/<run>/<task>-<n>` at `base_sha` and a linked worktree for it.
    /// Refuses with `worktree_exists` (exit 6) when the path or the branch exists already
    /// or git still has a worktree registered there. The guard undoes both unless kept.
    #[cfg(test)]
    pub fn create_attempt_worktree(
        &self,
        name: &AttemptName,
        base_sha: &str,
    ) -> Result<WorktreeGuard> {
        self.create_attempt_worktree_holding(name, base_sha, None)
    }

    /// [`Repo::create_attempt_worktree`], with the git that checks the worktree out
    /// holding `lock` (the dispatch lock) while it runs, so that a reconcile that finds
    /// the dispatcher dead never races it.
    pub fn create_attempt_worktree_holding(
        &self,
        name: &AttemptName,
        base_sha: &str,
        lock: Option<&std::fs::File>,
    ) -> Result<WorktreeGuard> {
        parse_sha(base_sha)?;
        let path = self.attempt_worktree_path(name)?;
        let branch = name.branch();
        if path.symlink_metadata().is_ok() {
            return Err(path_exists(&path));
        }
        if self
            .gix()
            .try_find_reference(format!("refs/heads/{branch}").as_str())
            .map_err(|e| Error::new(Code::GitFailed, format!("reading {branch}: {e}")))?
            .is_some()
        {
            return Err(branch_exists(&branch));
        }

        let added = match self.direct_worktree_add() {
            Ok(()) if self.registered_at(&path) => return Err(registered_but_gone(&path)),
            Ok(()) => self.add_worktree_directly(&path, &branch, base_sha, lock)?,
            Err(_) => self.git_worktree_add(&path, &branch, base_sha)?,
        };
        let guard = WorktreeGuard {
            run_dir: self.run_dir().to_owned(),
            worktree: Some(AttemptWorktree {
                name: name.clone(),
                path: added.path.clone(),
                branch,
                git_dir: added.git_dir,
                base_sha: base_sha.to_owned(),
            }),
        };
        // Before the guard is handed out: a copy that fails undoes the worktree too.
        self.copy_worktree_includes(&added.path)?;
        Ok(guard)
    }

    /// `git update-ref` and `git worktree add`: where the direct add does not apply.
    fn git_worktree_add(&self, path: &Path, branch: &str, base_sha: &str) -> Result<Added> {
        let run_dir = self.run_dir().to_owned();
        // An empty old value makes the update fail if the branch appeared meanwhile.
        git(&run_dir)
            .args(["update-ref", "-m", "git-orch: attempt branch", "--"])
            .arg(format!("refs/heads/{branch}"))
            .args([base_sha, ""])
            .run()?;
        let added = git(&run_dir)
            .args(["worktree", "add", "--quiet", "--"])
            .arg(path)
            .arg(branch)
            .run();
        if let Err(err) = added {
            let _ = delete_ref_at(
                &run_dir,
                &format!("refs/heads/{branch}"),
                Some(base_sha),
                "git-orch: undo attempt branch",
            );
            // Git (≥ 2.38) refuses a path it still has registered, its folder gone; only
            // then is it worth a `git worktree list` to say so (one process less for
            // every dispatch that succeeds).
            if self.registered_worktrees()?.iter().any(|p| p == path) {
                return Err(registered_but_gone(path));
            }
            return Err(err);
        }
        let resolved = Repo::open_worktree(path).and_then(|opened| {
            let top = opened
                .workdir()
                .map(Path::to_owned)
                .unwrap_or_else(|| path.to_owned())
                .canonicalize()
                .map_err(|e| Error::io("resolving the new worktree", e))?;
            Ok(Added {
                path: top,
                git_dir: opened.git_dir().to_owned(),
            })
        });
        if resolved.is_err() {
            let _ = undo_at(&run_dir, path, branch);
        }
        resolved
    }

    /// The worktrees git has registered (the main one first), as git records them.
    pub fn registered_worktrees(&self) -> Result<Vec<PathBuf>> {
        let out = git(self.run_dir())
            .args(["worktree", "list", "--porcelain", "-z"])
            .run()?;
        Ok(out
            .stdout
            .split(|b| *b == 0)
            .filter_map(|field| field.strip_prefix(b"worktree "))
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect())
    }

    /// Why git has the worktree at `path` locked (`initializing` while `git worktree add`
    /// is still at work), if it is registered and locked.
    pub fn worktree_lock_reason(&self, path: &Path) -> Result<Option<String>> {
        let out = git(self.run_dir())
            .args(["worktree", "list", "--porcelain", "-z"])
            .run()?;
        let mut current: Option<PathBuf> = None;
        for field in out.stdout.split(|b| *b == 0) {
            if let Some(p) = field.strip_prefix(b"worktree ") {
                current = Some(PathBuf::from(String::from_utf8_lossy(p).into_owned()));
            } else if (field == b"locked" || field.starts_with(b"locked "))
                && current.as_deref() == Some(path)
            {
                let reason = field.strip_prefix(b"locked ").unwrap_or_default();
                return Ok(Some(String::from_utf8_lossy(reason).into_owned()));
            }
        }
        Ok(None)
    }

    /// Forgets worktrees whose folders are gone (`git worktree prune`), locked ones
    /// included once unlocked here; for an `add` that died half-way.
    pub fn forget_worktree(&self, path: &Path) -> Result<()> {
        let _ = git(self.run_dir())
            .args(["worktree", "unlock", "--"])
            .arg(path)
            .run();
        git(self.run_dir()).args(["worktree", "prune"]).run()?;
        Ok(())
    }

    /// Removes a linked worktree and forgets it (`git worktree remove`, then `prune`).
    /// Without `force` git refuses a worktree with changes or untracked files
    /// (`git_failed`); check with [`super::worktree_dirty_paths`] and [`Repo::rescue_worktree`]
    /// first. A folder already deleted by hand is only pruned. The `<run>` folder above it
    /// goes too once empty.
    pub fn remove_worktree(&self, path: &Path, force: bool) -> Result<()> {
        remove_worktree_at(self.run_dir(), path, force)
    }

    /// Deletes a branch (`orch/r1/lexer-1`), only if it still points at `expected` when
    /// given. Returns whether it existed.
    pub fn delete_branch(&self, branch: &str, expected: Option<&str>) -> Result<bool> {
        self.delete_ref(&format!("refs/heads/{branch}"), expected)
    }

    /// Removes the lock files a killed `git update-ref` left on these full refs, which
    /// otherwise refuse every later write ("File exists"). Only for refs whose one writer
    /// is known to be dead: the caller holds that writer's lock. Returns those removed.
    pub fn remove_stale_ref_locks(&self, full_names: &[&str]) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for name in full_names {
            let lock = self.common_dir().join(format!("{name}.lock"));
            match std::fs::remove_file(&lock) {
                Ok(()) => removed.push((*name).to_owned()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("removing {}", lock.display()), e)),
            }
        }
        Ok(removed)
    }

    /// Deletes a full ref (`refs/orch/bases/…`), only if it still points at `expected`
    /// when given. Returns whether it existed.
    pub fn delete_ref(&self, full_name: &str, expected: Option<&str>) -> Result<bool> {
        if self.ref_target(full_name)?.is_none() {
            return Ok(false);
        }
        delete_ref_at(self.run_dir(), full_name, expected, "git-orch: delete")?;
        Ok(true)
    }
}

pub(super) fn remove_worktree_at(run_dir: &Path, path: &Path, force: bool) -> Result<()> {
    if path.exists() {
        let mut remove = git(run_dir).args(["worktree", "remove"]);
        if force {
            remove = remove.arg("--force");
        }
        remove.arg("--").arg(path).run()?;
    }
    git(run_dir).args(["worktree", "prune"]).run()?;
    if let Some(parent) = path.parent() {
        // Only succeeds when empty, which is the point.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(())
}

fn delete_ref_at(run_dir: &Path, full_name: &str, expected: Option<&str>, why: &str) -> Result<()> {
    let mut delete = git(run_dir)
        .args(["update-ref", "-m", why, "-d", "--"])
        .arg(full_name);
    if let Some(expected) = expected {
        delete = delete.arg(expected);
    }
    delete.run().map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{assert_repo_healthy, git_in, write_file, TempRepo};

    fn name(task: &str, n: u32) -> AttemptName {
        AttemptName::new("r1", task, n).unwrap()
    }

    #[test]
    fn attempt_names_refuse_what_cannot_be_a_ref_or_path() {
        assert!(AttemptName::new("r1", "../x", 1).is_err());
        assert!(AttemptName::new("-r", "x", 1).is_err());
        assert!(AttemptName::new("r1", "x", 0).is_err());
        let n = name("lexer", 2);
        assert_eq!(n.branch(), "orch/r1/lexer-2");
        assert_eq!(n.bases_ref(), "refs/orch/bases/r1/lexer-2");
        assert_eq!(n.rescue_ref(), "refs/orch/rescue/r1/lexer-2");
    }

    #[test]
    fn creates_a_linked_worktree_on_a_new_branch_and_removes_it() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let config_before = std::fs::read(t.path().join(".git/config")).unwrap();

        let wt = repo
            .create_attempt_worktree(&name("lexer", 1), &base)
            .unwrap()
            .keep();
        assert_eq!(wt.path, t.root().join("repo.worktrees/r1/lexer-1"));
        assert_eq!(wt.branch, "orch/r1/lexer-1");
        assert!(wt.git_dir.starts_with(t.path().join(".git/worktrees")));
        assert_eq!(git_in(&wt.path, &["rev-parse", "HEAD"]), base);
        assert_eq!(
            git_in(&wt.path, &["symbolic-ref", "HEAD"]),
            "refs/heads/orch/r1/lexer-1"
        );
        assert_eq!(
            Path::new(&git_in(&wt.path, &["rev-parse", "--absolute-git-dir"])),
            wt.git_dir
        );
        assert!(git_in(&wt.path, &["status", "--porcelain"]).is_empty());
        assert!(t.git(&["worktree", "list"]).contains("[orch/r1/lexer-1]"));
        assert_eq!(
            std::fs::read(t.path().join(".git/config")).unwrap(),
            config_before
        );
        assert_repo_healthy(&t);

        repo.remove_worktree(&wt.path, false).unwrap();
        assert!(!wt.path.exists());
        assert!(!t.root().join("repo.worktrees/r1").exists());
        assert!(!t.git(&["worktree", "list"]).contains("lexer-1"));
        assert!(repo.delete_branch(&wt.branch, Some(&base)).unwrap());
        assert!(!repo.delete_branch(&wt.branch, None).unwrap());
        assert_repo_healthy(&t);
    }

    #[test]
    fn worktree_root_follows_config() {
        let t = TempRepo::new();
        t.git(&["config", "orch.worktreeRoot", "trees"]);
        let repo = t.open();
        assert_eq!(repo.worktree_root().unwrap(), t.root().join("trees"));
        let abs = t.root().join("abs-root");
        t.git(&["config", "orch.worktreeRoot", abs.to_str().unwrap()]);
        let repo = t.open();
        assert_eq!(repo.worktree_root().unwrap(), abs);
        let sha = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo.create_attempt_worktree(&name("a", 1), &sha).unwrap();
        assert_eq!(wt.worktree().path, abs.join("r1/a-1"));
    }

    #[test]
    fn existing_path_or_branch_is_worktree_exists() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;

        t.git(&["branch", "orch/r1/taken-1"]);
        let err = repo
            .create_attempt_worktree(&name("taken", 1), &base)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "worktree_exists");
        assert_eq!(err.code.exit_status(), 6);
        assert_eq!(err.details["branch"], "orch/r1/taken-1");

        let blocked = t.root().join("repo.worktrees/r1/path-1");
        std::fs::create_dir_all(&blocked).unwrap();
        let err = repo
            .create_attempt_worktree(&name("path", 1), &base)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "worktree_exists");
        // Nothing was created for the refused attempt.
        assert!(repo.branch_tip("orch/r1/path-1").unwrap().is_none());
        assert_repo_healthy(&t);
    }

    #[test]
    fn a_registered_worktree_whose_folder_is_gone_is_worktree_exists() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let first = repo
            .create_attempt_worktree(&name("gone", 1), &base)
            .unwrap()
            .keep();
        std::fs::remove_dir_all(&first.path).unwrap();
        t.git(&["update-ref", "-d", "refs/heads/orch/r1/gone-1"]);
        let err = repo
            .create_attempt_worktree(&name("gone", 1), &base)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "worktree_exists");
        assert!(
            err.message.contains("still has a worktree"),
            "{}",
            err.message
        );
        // The refused attempt's branch is gone again.
        assert!(repo.branch_tip("orch/r1/gone-1").unwrap().is_none());
    }

    #[test]
    fn dropping_the_guard_leaves_no_branch_or_worktree() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let path = {
            let guard = repo
                .create_attempt_worktree(&name("undo", 1), &base)
                .unwrap();
            assert!(guard.worktree().path.is_dir());
            guard.worktree().path.clone()
            // A later dispatch step failed here: the guard goes out of scope.
        };
        assert!(!path.exists());
        assert!(repo.branch_tip("orch/r1/undo-1").unwrap().is_none());
        assert_eq!(repo.registered_worktrees().unwrap().len(), 1);
        assert_repo_healthy(&t);

        // Explicit undo reports; the same attempt can then be created again.
        let guard = repo
            .create_attempt_worktree(&name("undo", 1), &base)
            .unwrap();
        guard.undo().unwrap();
        let again = repo
            .create_attempt_worktree(&name("undo", 1), &base)
            .unwrap();
        assert!(again.keep().path.is_dir());
    }

    #[test]
    fn a_failed_worktree_add_deletes_the_new_branch() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        // A file where the run folder should be fails the add, on either path: after the
        // branch exists (`git worktree add`) or after the admin dir is reserved (direct).
        std::fs::create_dir_all(t.root().join("repo.worktrees")).unwrap();
        std::fs::write(t.root().join("repo.worktrees/r1"), "in the way").unwrap();
        for (setup, code) in [(None, "io"), (Some("core.sparseCheckout"), "git_failed")] {
            if let Some(key) = setup {
                t.git(&["config", key, "true"]);
            }
            let repo = t.open();
            let err = repo
                .create_attempt_worktree(&name("fails", 1), &base)
                .err()
                .unwrap();
            assert_eq!(err.code.as_str(), code, "{err:?}");
            assert!(repo.branch_tip("orch/r1/fails-1").unwrap().is_none());
            assert!(!t.root().join("repo/.git/worktrees/fails-1").exists());
            assert_repo_healthy(&t);
        }
    }

    #[test]
    fn removing_a_dirty_worktree_without_force_fails() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo
            .create_attempt_worktree(&name("dirty", 1), &base)
            .unwrap()
            .keep();
        write_file(&wt.path, "README.md", "changed\n");
        let err = repo.remove_worktree(&wt.path, false).unwrap_err();
        assert_eq!(err.code.as_str(), "git_failed");
        assert!(wt.path.exists());
        // A folder deleted by hand is just pruned.
        std::fs::remove_dir_all(&wt.path).unwrap();
        repo.remove_worktree(&wt.path, false).unwrap();
        assert_repo_healthy(&t);
    }
}
