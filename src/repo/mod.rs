//! The one seam for git: discovery and config through gix, and (where gix cannot mutate
//! reliably) the `git` binary run with an argument vector and a clean environment.

use crate::error::{Code, Error, Result};
use std::path::{Path, PathBuf};

mod bases;
mod config;
pub mod git;
pub mod hooks;
mod include;
mod land;
mod marker;
mod refs;
mod rescue;
mod revs;
mod status;
#[cfg(test)]
mod test_env;
#[cfg(test)]
pub(crate) mod testing;
mod worktree;
mod worktree_add;

pub use hooks::{HooksReport, HOOK_NAMES};
pub use land::{fast_forward_files, rewind_files, Merged, Swap};
#[cfg(test)]
pub use marker::ATTEMPT_MARKER;
pub use marker::{read_attempt_marker, write_attempt_marker, AttemptMarker};
pub use refs::LinkedWorktree;
pub use revs::{check_ref_text, CommitStats};
pub use status::{worktree_dirty_paths, Untracked};
pub use worktree::AttemptName;

/// A discovered repository: where its git dirs and work tree are, and its config.
pub struct Repo {
    repo: gix::Repository,
    git_dir: PathBuf,
    common_dir: PathBuf,
}

impl Repo {
    /// Finds the repository like git does: `GIT_DIR`/`GIT_WORK_TREE` when set (hooks),
    /// else upwards from `start`.
    pub fn discover(start: &Path) -> Result<Repo> {
        let repo = gix::ThreadSafeRepository::discover_with_environment_overrides(start)
            .map_err(|err| {
                Error::new(
                    Code::NotFound,
                    format!("not a git repository: {}", start.display()),
                )
                .hint("run this inside a git repository, or pass -C <dir>")
                .detail("reason", err.to_string())
            })?
            .to_thread_local();
        Self::from_gix(repo)
    }

    /// Opens the worktree (or repository) at `path` itself, ignoring `GIT_DIR` and
    /// friends: for acting on an attempt worktree from anywhere, hooks included.
    pub fn open_worktree(path: &Path) -> Result<Repo> {
        use gix::sec::trust::DefaultForLevel;
        // Plain `discover` still honours GIT_INDEX_FILE and GIT_OBJECT_DIRECTORY, which
        // inside a hook describe the hook's worktree, not this one.
        let options = |level| {
            let mut permissions = gix::open::Permissions::default_for_level(level);
            permissions.env.git_prefix = gix::sec::Permission::Deny;
            permissions.env.objects = gix::sec::Permission::Deny;
            gix::open::Options::default_for_level(level).permissions(permissions)
        };
        let trust_map = gix::sec::trust::Mapping {
            full: options(gix::sec::Trust::Full),
            reduced: options(gix::sec::Trust::Reduced),
        };
        let repo = gix::ThreadSafeRepository::discover_opts(path, Default::default(), trust_map)
            .map_err(|err| {
                Error::new(
                    Code::NotFound,
                    format!("not a git worktree: {}", path.display()),
                )
                .hint(
                    "the worktree may have been deleted; `git worktree list` shows what git knows",
                )
                .detail("reason", err.to_string())
            })?
            .to_thread_local();
        Self::from_gix(repo)
    }

    fn from_gix(repo: gix::Repository) -> Result<Repo> {
        // gix hands back paths like `.git/worktrees/x/../..`; state must have one name.
        let canonical = |p: &Path| {
            std::fs::canonicalize(p).map_err(|e| Error::io(format!("resolving {}", p.display()), e))
        };
        let git_dir = canonical(repo.git_dir())?;
        let common_dir = canonical(repo.common_dir())?;
        Ok(Repo {
            repo,
            git_dir,
            common_dir,
        })
    }

    /// The worktree-private git dir (`git rev-parse --git-dir`).
    pub fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    /// The shared git dir (`git rev-parse --git-common-dir`): where all state lives.
    pub fn common_dir(&self) -> &Path {
        &self.common_dir
    }

    /// `<common>/orch`.
    pub fn state_dir(&self) -> PathBuf {
        self.common_dir.join("orch")
    }

    pub fn workdir(&self) -> Option<&Path> {
        self.repo.workdir()
    }

    /// Where `git` runs for this repository: the work tree, or the git dir when bare.
    fn run_dir(&self) -> &Path {
        self.repo.workdir().unwrap_or(&self.git_dir)
    }

    /// The gix handle, for the other files of this module only.
    fn gix(&self) -> &gix::Repository {
        &self.repo
    }

    /// A config value as git would resolve it (all scopes, last one wins).
    /// A boolean config value as git reads one (`true`/`yes`/`on`/`1`, a bare key, …);
    /// `invalid_input` for a value git would refuse too.
    pub fn config_bool(&self, key: &str) -> Result<Option<bool>> {
        self.repo.config_snapshot().try_boolean(key).map_err(|err| {
            Error::invalid_input(format!("{key} is not a boolean: {err}"))
                .hint(format!("set true or false: git config {key} true"))
        })
    }

    pub fn config_string(&self, key: &str) -> Option<String> {
        self.repo
            .config_snapshot()
            .string(key)
            .map(|v| v.to_string())
    }

    /// The attempt marker of the worktree we stand in, if it is an attempt worktree.
    pub fn attempt_marker(&self) -> Result<Option<AttemptMarker>> {
        read_attempt_marker(&self.git_dir)
    }
}
