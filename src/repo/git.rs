//! The one process runner for the `git` binary: an argument vector (never a shell),
//! `-C <dir>`, stdin from /dev/null, `LC_ALL=C`, and an environment without the variables
//! that tie a git process to one repository.

use crate::error::{Code, Error, Result};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What `git rev-parse --local-env-vars` prints (git 2.47; the list has been stable since
/// GIT_COMMON_DIR joined it). Inside a hook git sets some of these (`GIT_DIR`,
/// `GIT_INDEX_FILE`, `GIT_PREFIX`) for *its* worktree; a git we start for another
/// worktree must not inherit them.
pub const LOCAL_ENV_VARS: &[&str] = &[
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_CONFIG",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY",
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_IMPLICIT_WORK_TREE",
    "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE",
    "GIT_NO_REPLACE_OBJECTS",
    "GIT_REPLACE_REF_BASE",
    "GIT_PREFIX",
    "GIT_SHALLOW_FILE",
    "GIT_COMMON_DIR",
];

/// A `git` invocation being built. Start one with [`git`].
#[must_use]
pub struct Git {
    dir: PathBuf,
    args: Vec<OsString>,
    env: Vec<(&'static str, OsString)>,
    stdin: Option<std::fs::File>,
}

/// What a finished `git` process left behind.
#[derive(Debug)]
pub struct GitOutput {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl GitOutput {
    /// stdout as text without the trailing newline (object ids, paths git prints).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout)
            .trim_end_matches(['\n', '\r'])
            .to_owned()
    }
}

/// `git -C <dir> …`.
pub fn git(dir: &Path) -> Git {
    Git {
        dir: dir.to_owned(),
        args: Vec::new(),
        env: Vec::new(),
        stdin: None,
    }
}

impl Git {
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets a variable after the clean-up, e.g. `GIT_INDEX_FILE` for a temporary index.
    pub fn env(mut self, key: &'static str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    /// The process gets `file` as its stdin instead of /dev/null. Given a lock file,
    /// git holds that lock as long as it lives (a `flock` belongs to the open file,
    /// which the child shares), so whoever takes the lock to find the caller dead also
    /// finds this git gone: it cannot write after an undo.
    pub fn stdin_file(mut self, file: std::fs::File) -> Self {
        self.stdin = Some(file);
        self
    }

    /// Runs and requires exit status 0.
    pub fn run(self) -> Result<GitOutput> {
        self.run_allowing(&[0])
    }

    /// Runs and accepts any of `ok` as success (`merge-tree` exits 1 on conflicts).
    pub fn run_allowing(mut self, ok: &[i32]) -> Result<GitOutput> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(&self.dir).args(&self.args);
        for key in LOCAL_ENV_VARS {
            cmd.env_remove(key);
        }
        cmd.env("LC_ALL", "C")
            // A pager or a credential prompt would hang a command nobody watches.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_PAGER", "cat");
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        let stdin = match self.stdin.take() {
            Some(file) => Stdio::from(file),
            None => Stdio::null(),
        };
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = cmd.output().map_err(|err| {
            Error::new(Code::GitFailed, format!("cannot run git: {err}"))
                .hint("install git (2.38 or newer) and make sure it is on PATH")
                .detail("args", self.arg_strings())
        })?;
        // A signal leaves no code; -1 is never in `ok`.
        let status = output.status.code().unwrap_or(-1);
        let out = GitOutput {
            status,
            stdout: output.stdout,
            stderr: output.stderr,
        };
        if ok.contains(&status) {
            return Ok(out);
        }
        Err(self.failure(&out))
    }

    fn arg_strings(&self) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn failure(&self, out: &GitOutput) -> Error {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        let subcommand = self
            .args
            .iter()
            .map(|a| a.to_string_lossy())
            .find(|a| !a.starts_with('-'))
            .unwrap_or_default()
            .into_owned();
        let first_line = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no message");
        Error::new(
            Code::GitFailed,
            format!("git {subcommand} failed: {first_line}"),
        )
        .hint("the git command and its full message are in the error details")
        .detail("args", self.arg_strings())
        .detail("dir", self.dir.to_string_lossy().into_owned())
        .detail("status", out.status)
        .detail("stderr", stderr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::TempRepo;

    #[test]
    fn runs_git_and_reports_failures_with_stderr() {
        let repo = TempRepo::new();
        let head = git(repo.path()).args(["rev-parse", "HEAD"]).run().unwrap();
        assert_eq!(head.text().len(), 40);

        let err = git(repo.path())
            .args(["rev-parse", "--verify", "--quiet", "--", "no-such-ref"])
            .run()
            .unwrap_err();
        assert_eq!(err.code, Code::GitFailed);
        assert_eq!(err.code.exit_status(), 6);
        assert!(err.details.contains_key("stderr"));
        assert_eq!(err.details["status"], 1);
    }

    #[test]
    fn the_cleaned_variables_are_what_git_lists() {
        let repo = TempRepo::new();
        let listed = git(repo.path())
            .args(["rev-parse", "--local-env-vars"])
            .run()
            .unwrap()
            .text();
        let mut listed: Vec<&str> = listed.lines().collect();
        let mut ours = LOCAL_ENV_VARS.to_vec();
        listed.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, listed);
    }

    #[test]
    fn explicit_variables_survive_the_clean_up() {
        // That is how a temporary index reaches `git add`.
        let repo = TempRepo::new();
        let other = TempRepo::new();
        repo.write("only-here.txt", "x\n");
        repo.git(&["add", "only-here.txt"]);
        let index = repo.path().join(".git/index");
        let out = git(other.path())
            .args(["ls-files", "--stage"])
            .env("GIT_INDEX_FILE", &index)
            .run()
            .unwrap();
        assert!(out.text().contains("only-here.txt"), "{}", out.text());
    }
}
