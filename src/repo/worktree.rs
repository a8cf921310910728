//! Attempt worktrees (docs/git-layer.md): a branch `orch/<run>/<task>-<n>` and a linked worktree at
//! `<root>/<run>/<task>-<n>`, the attempt marker in its private git dir, removal, undo,
//! and rescuing uncommitted work before a forced removal.
//!
//! Every mutation goes through the `git` binary; repository config is never touched.

use super::git::git;
use super::revs::parse_sha;
use super::{AttemptMarker, Repo, ATTEMPT_MARKER};
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
    pub fn write_marker(&self, marker: &AttemptMarker) -> Result<()> {
        write_attempt_marker(&self.git_dir, marker)
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
    let removed = remove_worktree_at(run_dir, &wt.path, true);
    let deleted = delete_ref_at(
        run_dir,
        &format!("refs/heads/{}", wt.branch),
        None,
        "git-orch: undo attempt branch",
    );
    removed.and(deleted).map(|_| ())
}

/// What a rescue saved: the ref and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rescue {
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
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
    pub fn create_attempt_worktree(
        &self,
        name: &AttemptName,
        base_sha: &str,
    ) -> Result<WorktreeGuard> {
        parse_sha(base_sha)?;
        let path = self.attempt_worktree_path(name)?;
        let branch = name.branch();
        if path.symlink_metadata().is_ok() {
            return Err(
                worktree_exists(format!("{} already exists", path.display()))
                    .hint("remove it, or run `git orch cleanup` for ended attempts")
                    .detail("path", path.to_string_lossy().into_owned()),
            );
        }
        if self
            .gix()
            .try_find_reference(format!("refs/heads/{branch}").as_str())
            .map_err(|e| Error::new(Code::GitFailed, format!("reading {branch}: {e}")))?
            .is_some()
        {
            return Err(worktree_exists(format!("branch {branch} already exists"))
                .hint(format!("delete it if it is stale: git branch -D {branch}"))
                .detail("branch", branch));
        }
        if self.registered_worktrees()?.contains(&path) {
            return Err(
                worktree_exists(format!("git still has a worktree at {}", path.display()))
                    .hint("its folder is gone; `git worktree prune` forgets it")
                    .detail("path", path.to_string_lossy().into_owned()),
            );
        }

        let run_dir = self.run_dir().to_owned();
        // An empty old value makes the update fail if the branch appeared meanwhile.
        git(&run_dir)
            .args(["update-ref", "-m", "git-orch: attempt branch", "--"])
            .arg(format!("refs/heads/{branch}"))
            .args([base_sha, ""])
            .run()?;
        let added = git(&run_dir)
            .args(["worktree", "add", "--quiet", "--"])
            .arg(&path)
            .arg(&branch)
            .run();
        if let Err(err) = added {
            let _ = delete_ref_at(
                &run_dir,
                &format!("refs/heads/{branch}"),
                Some(base_sha),
                "git-orch: undo attempt branch",
            );
            return Err(err);
        }
        let mut guard = WorktreeGuard {
            run_dir,
            worktree: Some(AttemptWorktree {
                name: name.clone(),
                path: path.clone(),
                branch,
                git_dir: PathBuf::new(),
                base_sha: base_sha.to_owned(),
            }),
        };
        let opened = Repo::open_worktree(&path)?;
        let (path, git_dir) = (
            opened
                .workdir()
                .map(Path::to_owned)
                .unwrap_or(path)
                .canonicalize()
                .map_err(|e| Error::io("resolving the new worktree", e))?,
            opened.git_dir().to_owned(),
        );
        if let Some(wt) = guard.worktree.as_mut() {
            wt.path = path;
            wt.git_dir = git_dir;
        }
        Ok(guard)
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

    /// Deletes a full ref (`refs/orch/bases/…`), only if it still points at `expected`
    /// when given. Returns whether it existed.
    pub fn delete_ref(&self, full_name: &str, expected: Option<&str>) -> Result<bool> {
        if self.ref_target(full_name)?.is_none() {
            return Ok(false);
        }
        delete_ref_at(self.run_dir(), full_name, expected, "git-orch: delete")?;
        Ok(true)
    }

    /// Commits everything uncommitted in the worktree at `path` (tracked changes and
    /// untracked files, not ignored ones) to `refs/orch/rescue/<run>/<task>-<n>`, with the
    /// worktree's HEAD as parent. The worktree's own index, HEAD and files stay as they
    /// were: the commit is built in a temporary index. `None` when there was nothing to save.
    pub fn rescue_worktree(&self, path: &Path, name: &AttemptName) -> Result<Option<Rescue>> {
        let worktree = Repo::open_worktree(path)?;
        let dir = worktree
            .workdir()
            .ok_or_else(|| Error::invalid_input(format!("{} has no work tree", path.display())))?
            .to_owned();
        let head = worktree.head_sha()?;
        let index = tempfile::Builder::new()
            .prefix("orch-rescue-index")
            .tempfile_in(worktree.git_dir())
            .map_err(|e| Error::io("creating a temporary index", e))?;
        let real_index = worktree.git_dir().join("index");
        if real_index.exists() {
            // Starting from the real index keeps its stat cache: `add -A` then hashes only what changed.
            std::fs::copy(&real_index, index.path())
                .map_err(|e| Error::io("copying the index", e))?;
        } else {
            std::fs::remove_file(index.path()).map_err(|e| Error::io("preparing the index", e))?;
        }
        git(&dir)
            .args(["add", "--all", "--", ":/"])
            .env("GIT_INDEX_FILE", index.path())
            .run()?;
        let tree = git(&dir)
            .arg("write-tree")
            .env("GIT_INDEX_FILE", index.path())
            .run()?
            .text();
        let head_tree = match &head {
            Some(head) => Some(
                git(&dir)
                    .args(["rev-parse", "--verify", "--end-of-options"])
                    .arg(format!("{head}^{{tree}}"))
                    .run()?
                    .text(),
            ),
            None => None,
        };
        if head_tree.as_deref() == Some(tree.as_str()) {
            return Ok(None);
        }
        let message = format!(
            "git-orch rescue of {}/{}\n\nUncommitted work (tracked and untracked files) found in\n{}\nwhen its worktree was removed.\n",
            name.run,
            name.slug(),
            dir.display()
        );
        let mut commit = git(&dir).args(self.identity_args()).arg("commit-tree");
        if let Some(head) = &head {
            commit = commit.args(["-p", head]);
        }
        let sha = commit.args(["-m", &message, &tree]).run()?.text();
        let ref_name = name.rescue_ref();
        git(&dir)
            .args(["update-ref", "-m", "git-orch: rescue", "--"])
            .args([&ref_name, &sha])
            .run()?;
        Ok(Some(Rescue { ref_name, sha }))
    }

    /// `-c user.name=… -c user.email=…` for commits git-orch makes itself, only where the
    /// user configured none (the environment, like `GIT_COMMITTER_NAME`, still wins).
    pub(super) fn identity_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.config_string("user.name").is_none() {
            args.extend(["-c".to_owned(), "user.name=git-orch".to_owned()]);
        }
        if self.config_string("user.email").is_none() {
            args.extend(["-c".to_owned(), "user.email=git-orch@localhost".to_owned()]);
        }
        args
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

/// Writes the attempt marker into a worktree's private git dir, atomically (a reader
/// sees the old marker or the new one, never half of one).
pub fn write_attempt_marker(git_dir: &Path, marker: &AttemptMarker) -> Result<()> {
    let mut text = serde_json::to_vec(marker)?;
    text.push(b'\n');
    let tmp = tempfile::Builder::new()
        .prefix(".orch-attempt")
        .tempfile_in(git_dir)
        .map_err(|e| {
            Error::io(
                format!("writing the attempt marker in {}", git_dir.display()),
                e,
            )
        })?;
    std::fs::write(tmp.path(), &text).map_err(|e| Error::io("writing the attempt marker", e))?;
    tmp.persist(git_dir.join(ATTEMPT_MARKER))
        .map_err(|e| Error::io("writing the attempt marker", e.error))?;
    Ok(())
}

/// Removes the marker (the worktree is no longer an attempt's); whether there was one.
pub fn remove_attempt_marker(git_dir: &Path) -> Result<bool> {
    match std::fs::remove_file(git_dir.join(ATTEMPT_MARKER)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("removing the attempt marker", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::read_attempt_marker;
    use crate::repo::testing::{git_in, write_file, TempRepo};

    fn name(task: &str, n: u32) -> AttemptName {
        AttemptName::new("r1", task, n).unwrap()
    }

    fn assert_repo_healthy(t: &TempRepo) {
        let fsck = git_in(t.path(), &["fsck", "--no-dangling"]);
        assert!(fsck.is_empty(), "fsck: {fsck}");
        let prune = git_in(t.path(), &["worktree", "prune", "--dry-run", "-v"]);
        assert!(prune.is_empty(), "stale worktrees: {prune}");
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
        // A file where the run folder should be makes `git worktree add` fail after the branch exists.
        std::fs::create_dir_all(t.root().join("repo.worktrees")).unwrap();
        std::fs::write(t.root().join("repo.worktrees/r1"), "in the way").unwrap();
        let err = repo
            .create_attempt_worktree(&name("fails", 1), &base)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "git_failed");
        assert!(repo.branch_tip("orch/r1/fails-1").unwrap().is_none());
        assert_repo_healthy(&t);
    }

    #[test]
    fn marker_round_trip_in_the_private_git_dir() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo
            .create_attempt_worktree(&name("m", 1), &base)
            .unwrap()
            .keep();
        let marker = AttemptMarker {
            run: "r1".into(),
            task: "m".into(),
            attempt: 7,
            thread: 12,
            agent: None,
        };
        wt.write_marker(&marker).unwrap();
        assert_eq!(
            read_attempt_marker(&wt.git_dir).unwrap(),
            Some(marker.clone())
        );
        // Seen from inside the worktree, as `git inbox` discovers it.
        let inside = Repo::discover(&wt.path).unwrap();
        assert_eq!(inside.attempt_marker().unwrap(), Some(marker));
        // Nothing shows in the worktree or the main one.
        assert!(git_in(&wt.path, &["status", "--porcelain", "--ignored"]).is_empty());
        assert!(t.open().attempt_marker().unwrap().is_none());

        assert!(remove_attempt_marker(&wt.git_dir).unwrap());
        assert!(!remove_attempt_marker(&wt.git_dir).unwrap());
        assert!(read_attempt_marker(&wt.git_dir).unwrap().is_none());
    }

    #[test]
    fn rescue_keeps_tracked_and_untracked_work_and_touches_nothing() {
        let t = TempRepo::new();
        t.write(".gitignore", "*.log\n");
        t.git(&["add", ".gitignore"]);
        t.git(&["commit", "-q", "-m", "ignore logs"]);
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let n = name("rescue", 1);
        let wt = repo.create_attempt_worktree(&n, &base).unwrap().keep();
        write_file(&wt.path, "committed.txt", "c\n");
        git_in(&wt.path, &["add", "committed.txt"]);
        git_in(&wt.path, &["commit", "-q", "-m", "work"]);
        let head = git_in(&wt.path, &["rev-parse", "HEAD"]);

        write_file(&wt.path, "README.md", "modified\n");
        write_file(&wt.path, "staged.txt", "staged\n");
        git_in(&wt.path, &["add", "staged.txt"]);
        write_file(&wt.path, "new/untracked.txt", "untracked\n");
        write_file(&wt.path, "build.log", "ignored\n");
        let status_before = git_in(&wt.path, &["status", "--porcelain"]);

        assert_eq!(
            worktree_dirty_paths_for(&wt.path),
            ["README.md", "new/", "staged.txt"]
        );

        let rescue = repo.rescue_worktree(&wt.path, &n).unwrap().unwrap();
        assert_eq!(rescue.ref_name, "refs/orch/rescue/r1/rescue-1");
        assert_eq!(t.git(&["rev-parse", &rescue.ref_name]), rescue.sha);
        assert_eq!(t.git(&["rev-parse", &format!("{}^", rescue.sha)]), head);
        let files = t.git(&["ls-tree", "-r", "--name-only", &rescue.sha]);
        let files: Vec<&str> = files.lines().collect();
        assert_eq!(
            files,
            [
                ".gitignore",
                "README.md",
                "committed.txt",
                "new/untracked.txt",
                "staged.txt"
            ]
        );
        assert_eq!(
            t.git(&["show", &format!("{}:README.md", rescue.sha)]),
            "modified"
        );
        // The worktree itself is as it was.
        assert_eq!(git_in(&wt.path, &["rev-parse", "HEAD"]), head);
        assert_eq!(git_in(&wt.path, &["status", "--porcelain"]), status_before);

        repo.remove_worktree(&wt.path, true).unwrap();
        assert!(!wt.path.exists());
        assert_repo_healthy(&t);
        assert!(t
            .git(&["log", "--format=%s", "-1", &rescue.ref_name])
            .starts_with("git-orch rescue of r1/rescue-1"));
    }

    #[test]
    fn rescue_of_a_clean_worktree_saves_nothing() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let n = name("clean", 1);
        let wt = repo.create_attempt_worktree(&n, &base).unwrap().keep();
        assert!(repo.rescue_worktree(&wt.path, &n).unwrap().is_none());
        assert!(repo.ref_target(&n.rescue_ref()).unwrap().is_none());
        repo.remove_worktree(&wt.path, false).unwrap();
        assert_repo_healthy(&t);
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

    fn worktree_dirty_paths_for(path: &Path) -> Vec<String> {
        crate::repo::worktree_dirty_paths(path, crate::repo::Untracked::Include).unwrap()
    }
}
