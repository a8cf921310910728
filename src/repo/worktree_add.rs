//! Adding a linked worktree by writing its admin files, the way `git worktree add` lays
//! them out (gitrepository-layout(5), git's builtin/worktree.c): the branch is written
//! in-process, and one `git read-tree -u` in the new worktree writes its index and files.
//!
//! Why: `git worktree add` reads the admin files of every registered worktree and starts
//! child gits for the ref and for `reset --hard`; with a few hundred attempt worktrees
//! that was 11–20 ms of CPU per dispatch, the largest share of drive's cost per task.
//! Written directly it is one git process that reads nothing of the other worktrees.
//! `read-tree` rather than `checkout -b`: a checkout also clears the branch state of the
//! worktree (`AUTO_MERGE`, `MERGE_HEAD`, …), creating and deleting two lock files each
//! time, and moves `HEAD` by lock file and rename. On a file system that scans recently
//! freed inodes before it hands out a new one (ext4 without a journal, which CI runs on)
//! every file freed makes every file created in the next seconds dearer.
//!
//! Only where the result is the same as git's: any configuration under which
//! `git worktree add` does more (another ref storage, per-worktree config, sparse
//! checkout, recursive submodules, a bare repository, a `post-checkout` hook, which
//! git would call with a null old head) keeps the `git worktree add` path.

use super::git::git;
use super::Repo;
use crate::error::{Code, Error, Result};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// A worktree just added (either way): its top directory and private git dir, canonical.
pub(super) struct Added {
    pub path: PathBuf,
    pub git_dir: PathBuf,
}

/// Why the direct path was not taken (the caller runs `git worktree add` instead).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fallback {
    Config(&'static str),
    Hook,
    Bare,
}

impl Repo {
    /// Whether this repository's worktrees can be added by writing admin files; the
    /// config is read from the snapshot gix already holds, so no process is started.
    pub(super) fn direct_worktree_add(&self) -> std::result::Result<(), Fallback> {
        match self.config_string("extensions.refStorage") {
            Some(v) if !v.eq_ignore_ascii_case("files") => {
                return Err(Fallback::Config("extensions.refStorage"))
            }
            _ => {}
        }
        for key in [
            "extensions.worktreeConfig",
            "core.sparseCheckout",
            "submodule.recurse",
            "core.bare",
        ] {
            // A value that is not a boolean: let git decide what it means.
            if !matches!(self.config_bool(key), Ok(None | Some(false))) {
                return Err(Fallback::Config(key));
            }
        }
        if self.workdir().is_none() {
            return Err(Fallback::Bare);
        }
        let hooks = match self.config_string("core.hooksPath") {
            Some(dir) => {
                let dir = PathBuf::from(dir);
                // Relative to wherever the hook runs: not worth second-guessing.
                if !dir.is_absolute() {
                    return Err(Fallback::Config("core.hooksPath"));
                }
                dir
            }
            None => self.common_dir().join("hooks"),
        };
        if hooks.join("post-checkout").exists() {
            return Err(Fallback::Hook);
        }
        Ok(())
    }

    /// Registers `path` as a linked worktree on the new branch `branch` at `base_sha`.
    /// The caller has checked that neither exists; a branch made meanwhile is refused as
    /// `worktree_exists`. On any failure nothing it made is left.
    pub(super) fn add_worktree_directly(
        &self,
        path: &Path,
        branch: &str,
        base_sha: &str,
        lock: Option<&fs::File>,
    ) -> Result<Added> {
        let common = fs::canonicalize(self.common_dir())
            .map_err(|e| Error::io("resolving the git dir", e))?;
        let slug = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::internal("an attempt worktree path without a name"))?;
        // The branch first: wherever git can see the worktree, its branch exists.
        let full_name = format!("refs/heads/{branch}");
        let base = super::revs::parse_sha(base_sha)?;
        self.create_branch(&full_name, branch, base)?;
        let mut made = Made {
            repo: self.gix(),
            branch: Some((full_name.clone(), base)),
            admin: None,
            folder: None,
        };
        let admin = reserve_admin_dir(&common.join("worktrees"), slug)?;
        made.admin = Some(admin.clone());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        fs::create_dir(path).map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => path_exists(path),
            _ => Error::io(format!("creating {}", path.display()), e),
        })?;
        let folder =
            fs::canonicalize(path).map_err(|e| Error::io("resolving the new worktree", e))?;
        made.folder = Some(folder.clone());
        // `gitdir` last: until it exists git skips the entry (`worktree list`) or forgets
        // it (`worktree prune`), while an entry with `gitdir` but no `commondir` makes
        // every `git worktree list` die. A dispatcher killed before the end leaves an
        // entry git ignores. Git's own `locked` file is not written: one left by a killed
        // dispatcher would hold reconcile off for a minute (it takes a young lock for a
        // live `git worktree add`). A prune in the instant before `gitdir` exists takes
        // the entry, and this add fails cleanly on its next write.
        // Paths as bytes, as git writes them (a git dir need not be UTF-8).
        write(&admin.join("commondir"), b"../..\n")?;
        write(
            &admin.join("HEAD"),
            format!("ref: {full_name}\n").as_bytes(),
        )?;
        write(&folder.join(".git"), &line("gitdir: ", &admin))?;
        write(&admin.join("gitdir"), &line("", &folder.join(".git")))?;
        // `--reset`, as a forced checkout: the folder is new, so nothing is overwritten.
        let mut read_tree = git(&folder).args(["read-tree", "--reset", "-u", base_sha]);
        if let Some(lock) = lock {
            // A dispatcher killed now leaves this git running; holding the dispatch lock,
            // it keeps reconcile from undoing the attempt until it has finished writing.
            let held = lock
                .try_clone()
                .map_err(|e| Error::io("sharing the dispatch lock", e))?;
            read_tree = read_tree.stdin_file(held);
        }
        read_tree.run()?;
        made.keep();
        Ok(Added {
            path: folder,
            git_dir: admin,
        })
    }

    /// Creates `full_name` at `base` with a reflog entry as `git branch` writes it; one
    /// that exists already (made since the caller looked) is `worktree_exists`.
    fn create_branch(&self, full_name: &str, branch: &str, base: gix::ObjectId) -> Result<()> {
        use gix::refs::transaction::{Change, PreviousValue, RefEdit};
        let repo = self.gix();
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(Code::GitFailed, format!("creating branch {branch}: {e}"))
        };
        let name = full_name.try_into().map_err(|e| failed(&e))?;
        let edit = RefEdit::update(
            name,
            base,
            PreviousValue::MustNotExist,
            format!("branch: Created from {base}"),
        );
        // Git too writes a reflog without a configured identity.
        let committer = Repo::signature_or_fallback(repo.committer())?;
        let mut time = gix::date::parse::TimeBuf::default();
        let committer = committer.to_ref(&mut time);
        let edits = match repo.edit_references_as(Some(edit), Some(committer)) {
            Ok(edits) => edits,
            Err(_) if repo.try_find_reference(full_name).ok().flatten().is_some() => {
                return Err(branch_exists(branch))
            }
            Err(e) => return Err(failed(&e)),
        };
        // gix lets a create through when the ref is already at the new value, and then
        // reports the value it found under the lock: such a branch is not ours (it got
        // only a reflog line).
        let existed = edits.iter().any(|e| {
            matches!(
                e.change,
                Change::Update {
                    expected: PreviousValue::MustExistAndMatch(_),
                    ..
                }
            )
        });
        if existed {
            return Err(branch_exists(branch));
        }
        Ok(())
    }

    /// Whether git has a worktree registered at `path` (its folder may be gone). Git names
    /// an admin dir after the worktree's folder, plus a number when that name is taken,
    /// so only those entries are read, not every worktree's.
    pub(super) fn registered_at(&self, path: &Path) -> bool {
        let Some(slug) = path.file_name().and_then(|n| n.to_str()) else {
            return false;
        };
        // The folder may be gone; its parent, where attempt folders live, is resolved.
        let wanted = match path.parent().map(fs::canonicalize) {
            Some(Ok(parent)) => parent.join(slug).join(".git"),
            _ => path.join(".git"),
        };
        let Ok(entries) = fs::read_dir(self.common_dir().join("worktrees")) else {
            return false;
        };
        entries.flatten().any(|entry| {
            let name = entry.file_name();
            let same_stem = name.to_str().is_some_and(|n| {
                n.strip_prefix(slug)
                    .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
            });
            same_stem
                && fs::read_to_string(entry.path().join("gitdir"))
                    .is_ok_and(|gitdir| Path::new(gitdir.trim_end()) == wanted)
        })
    }
}

/// The attempt's folder exists already (`worktree_exists`, like the other refusals).
pub(super) fn path_exists(path: &Path) -> Error {
    Error::new(
        Code::WorktreeExists,
        format!("{} already exists", path.display()),
    )
    .hint("remove it, or run `git orch cleanup` for ended attempts")
    .detail("path", path.to_string_lossy().into_owned())
}

/// The attempt's branch exists already.
pub(super) fn branch_exists(branch: &str) -> Error {
    Error::new(
        Code::WorktreeExists,
        format!("branch {branch} already exists"),
    )
    .hint(format!("delete it if it is stale: git branch -D {branch}"))
    .detail("branch", branch.to_owned())
}

/// `<worktrees>/<slug>`, or `<slug>1`, `<slug>2`, … when taken, as git numbers them;
/// `mkdir` is the reservation, so two processes never get the same one.
fn reserve_admin_dir(worktrees: &Path, slug: &str) -> Result<PathBuf> {
    fs::create_dir_all(worktrees)
        .map_err(|e| Error::io(format!("creating {}", worktrees.display()), e))?;
    for n in 0..10_000u32 {
        let name = if n == 0 {
            slug.to_owned()
        } else {
            format!("{slug}{n}")
        };
        let dir = worktrees.join(name);
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(format!("creating {}", dir.display()), e)),
        }
    }
    Err(Error::internal(format!(
        "no free worktree name for {slug} in {}",
        worktrees.display()
    )))
}

fn line(prefix: &str, path: &Path) -> Vec<u8> {
    let mut out = prefix.as_bytes().to_vec();
    out.extend_from_slice(path.as_os_str().as_encoded_bytes());
    out.push(b'\n');
    out
}

fn write(path: &Path, text: &[u8]) -> Result<()> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// What a direct add has made so far; dropped before [`Made::keep`], it takes it back.
struct Made<'a> {
    repo: &'a gix::Repository,
    /// The new branch, and where it was made.
    branch: Option<(String, gix::ObjectId)>,
    admin: Option<PathBuf>,
    folder: Option<PathBuf>,
}

impl Made<'_> {
    fn keep(mut self) {
        self.branch = None;
        self.folder = None;
        self.admin = None;
    }
}

impl Drop for Made<'_> {
    fn drop(&mut self) {
        // Only what this add created: a folder that did not exist before it, the admin
        // dir it reserved, and the branch while it is still where this add made it.
        if let Some(folder) = &self.folder {
            let _ = fs::remove_dir_all(folder);
        }
        if let Some(admin) = &self.admin {
            let _ = fs::remove_dir_all(admin);
        }
        if let Some((name, base)) = self.branch.take() {
            use gix::refs::transaction::{PreviousValue, RefEdit};
            use gix::refs::Target;
            if let Ok(name) = name.as_str().try_into() {
                let expected = PreviousValue::MustExistAndMatch(Target::Object(base));
                let _ = self.repo.edit_reference(RefEdit::delete(name, expected));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{assert_repo_healthy, git_in, TempRepo};
    use crate::repo::AttemptName;

    fn attempt(run: &str, task: &str) -> AttemptName {
        AttemptName::new(run, task, 1).unwrap()
    }

    #[test]
    fn a_plain_repository_adds_directly_and_git_sees_an_ordinary_worktree() {
        let t = TempRepo::new();
        let repo = t.open();
        assert_eq!(repo.direct_worktree_add(), Ok(()));
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo
            .create_attempt_worktree(&attempt("r1", "lexer"), &base)
            .unwrap()
            .keep();
        assert!(!wt.git_dir.join("locked").exists());
        assert_eq!(
            fs::read_to_string(wt.git_dir.join("HEAD")).unwrap(),
            "ref: refs/heads/orch/r1/lexer-1\n"
        );
        let list = t.git(&["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!("worktree {}", wt.path.display())),
            "{list}"
        );
        assert!(list.contains("branch refs/heads/orch/r1/lexer-1"), "{list}");
        // The branch has a reflog, like one `git branch` makes.
        assert!(!t.git(&["reflog", "show", "orch/r1/lexer-1"]).is_empty());
        // A commit in it moves only its branch; prune keeps it; remove takes it away.
        std::fs::write(wt.path.join("new.txt"), "x\n").unwrap();
        git_in(&wt.path, &["add", "new.txt"]);
        git_in(&wt.path, &["commit", "-q", "-m", "in the attempt"]);
        assert_ne!(t.git(&["rev-parse", "orch/r1/lexer-1"]), base);
        assert_eq!(t.git(&["rev-parse", "HEAD"]), base);
        assert!(t.git(&["worktree", "prune", "--dry-run", "-v"]).is_empty());
        t.git(&["worktree", "remove", wt.path.to_str().unwrap()]);
        assert!(!wt.path.exists() && !wt.git_dir.exists());
        assert_repo_healthy(&t);
    }

    #[test]
    fn the_same_folder_name_in_two_runs_gets_numbered_admin_dirs_concurrently() {
        let t = TempRepo::new();
        let base = t.open().resolve_commit("HEAD").unwrap().sha;
        let runs: Vec<String> = (0..6).map(|i| format!("run{i}")).collect();
        let made: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = runs
                .iter()
                .map(|run| {
                    let (t, base) = (&t, &base);
                    s.spawn(move || {
                        t.open()
                            .create_attempt_worktree(&attempt(run, "lexer"), base)
                            .unwrap()
                            .keep()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut admin: Vec<_> = made.iter().map(|wt| wt.git_dir.clone()).collect();
        admin.sort();
        admin.dedup();
        assert_eq!(admin.len(), runs.len());
        for wt in &made {
            assert_eq!(
                Path::new(&git_in(&wt.path, &["rev-parse", "--absolute-git-dir"])),
                wt.git_dir
            );
            assert!(git_in(&wt.path, &["status", "--porcelain"]).is_empty());
        }
        assert_eq!(t.git(&["worktree", "list"]).lines().count(), runs.len() + 1);
        assert_repo_healthy(&t);
    }

    #[test]
    fn a_branch_made_meanwhile_is_worktree_exists_and_nothing_stays() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        t.git(&["branch", "orch/r1/raced-1"]);
        let path = t.root().join("trees/raced-1");
        let err = repo
            .add_worktree_directly(&path, "orch/r1/raced-1", &base, None)
            .err()
            .unwrap();
        assert_eq!(err.code.as_str(), "worktree_exists", "{err:?}");
        assert!(!path.exists());
        assert!(!t.path().join(".git/worktrees/raced-1").exists());
        assert_repo_healthy(&t);
    }

    #[test]
    fn what_git_worktree_add_does_more_keeps_git_worktree_add() {
        let t = TempRepo::new();
        for key in ["core.sparseCheckout", "submodule.recurse"] {
            t.git(&["config", key, "true"]);
            assert_eq!(t.open().direct_worktree_add(), Err(Fallback::Config(key)));
            t.git(&["config", "--unset", key]);
        }
        t.git(&["config", "core.hooksPath", "hooks-in-tree"]);
        assert_eq!(
            t.open().direct_worktree_add(),
            Err(Fallback::Config("core.hooksPath"))
        );
        t.git(&["config", "--unset", "core.hooksPath"]);

        // A post-checkout hook: git calls it with a null old head for a new worktree, so
        // the worktree is made by git, and the hook sees what git always showed it.
        let hook = t.path().join(".git/hooks/post-checkout");
        let log = t.root().join("hook.log");
        fs::write(
            &hook,
            format!("#!/bin/sh\necho \"$1\" >> '{}'\n", log.display()),
        )
        .unwrap();
        let mut perms = fs::metadata(&hook).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        fs::set_permissions(&hook, perms).unwrap();
        let repo = t.open();
        assert_eq!(repo.direct_worktree_add(), Err(Fallback::Hook));
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo
            .create_attempt_worktree(&attempt("r1", "hooked"), &base)
            .unwrap()
            .keep();
        assert!(wt.path.is_dir());
        assert_eq!(fs::read_to_string(&log).unwrap().trim(), "0".repeat(40));
        assert_repo_healthy(&t);
    }
}
