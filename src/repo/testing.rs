//! Real repositories in temp dirs for the unit tests of this module, made with the `git`
//! binary in the same hermetic environment as the integration tests
//! ([`super::test_env`]), so a developer's `~/.gitconfig` cannot change what they see.

use super::test_env;
use super::Repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

/// A home nobody can have made: git and gix find no user config, ignore or attributes
/// file there, and a test that tried to write one would fail loudly.
const NO_HOME: &str = "/nonexistent/git-orch-unit-tests";

/// The code under test starts git through the runner and reads config through gix, both
/// from this process's environment, so unlike the integration tests (which set each
/// child's environment) the unit tests must clean the process's own, once, before the
/// first repository exists. Every test that touches git makes a `TempRepo` first and
/// waits here; std serialises its own environment reads against these writes.
fn hermetic_process() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for key in test_env::inherited_to_remove() {
            std::env::remove_var(key);
        }
        for (key, value) in test_env::hermetic_vars(Path::new(NO_HOME)) {
            std::env::set_var(key, value);
        }
    });
}

pub struct TempRepo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    path: PathBuf,
}

impl TempRepo {
    /// `root/repo` with one commit of `README.md`.
    pub fn new() -> TempRepo {
        hermetic_process();
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical tempdir");
        let path = root.join("repo");
        std::fs::create_dir_all(&path).expect("mkdir");
        let repo = TempRepo {
            _tmp: tmp,
            root,
            path,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.commit_file("README.md", "hello\n", "initial");
        repo
    }

    /// The temp dir holding the repository (worktree roots go beside it).
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn open(&self) -> Repo {
        Repo::discover(&self.path).expect("discover")
    }

    pub fn write(&self, rel: &str, text: &str) {
        write_file(&self.path, rel, text);
    }

    /// Runs git in the repository; panics on failure; returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        git_in(&self.path, args)
    }

    pub fn commit_file(&self, rel: &str, text: &str, message: &str) -> String {
        self.write(rel, text);
        self.git(&["add", "--", rel]);
        self.git(&["commit", "-q", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Branch `name` off main with one commit writing `file`; back on main after.
    /// Returns the commit.
    pub fn branch(&self, name: &str, file: &str, text: &str) -> String {
        self.git(&["checkout", "-q", "-b", name, "main"]);
        let sha = self.commit_file(file, text, &format!("{name} work"));
        self.git(&["checkout", "-q", "main"]);
        sha
    }
}

pub fn write_file(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Runs git in `dir` in the hermetic environment; panics on failure; returns trimmed stdout.
pub fn git_in(dir: &Path, args: &[&str]) -> String {
    hermetic_process();
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The repository has no broken object and no stale worktree left behind.
pub fn assert_repo_healthy(t: &TempRepo) {
    let fsck = git_in(t.path(), &["fsck", "--no-dangling"]);
    assert!(fsck.is_empty(), "fsck: {fsck}");
    let prune = git_in(t.path(), &["worktree", "prune", "--dry-run", "-v"]);
    assert!(prune.is_empty(), "stale worktrees: {prune}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_sees_only_the_repositorys_own_config() {
        let t = TempRepo::new();
        let origins = t.git(&["config", "--list", "--show-scope"]);
        let foreign: Vec<&str> = origins
            .lines()
            .filter(|l| !l.starts_with("local\t"))
            .collect();
        assert!(
            foreign.is_empty(),
            "config from outside the repo: {foreign:?}"
        );
        assert_eq!(std::env::var("HOME").unwrap(), NO_HOME);
        assert!(std::env::var_os("ORCH_AGENT").is_none());
    }
}
