//! Real repositories in temp dirs for the unit tests of this module, made with the `git`
//! binary and a fixed identity so commits are reproducible.

use super::Repo;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct TempRepo {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    path: PathBuf,
}

impl TempRepo {
    /// `root/repo` with one commit of `README.md`.
    pub fn new() -> TempRepo {
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
        repo.git(&["config", "user.name", "Test"]);
        repo.git(&["config", "user.email", "test@example.com"]);
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
}

pub fn write_file(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

pub fn git_in(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    for key in super::git::LOCAL_ENV_VARS {
        cmd.env_remove(key);
    }
    let out = cmd
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LC_ALL", "C")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
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
