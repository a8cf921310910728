//! Rescuing uncommitted work before a worktree is removed by force: a commit of
//! everything (tracked and untracked, not ignored) under `refs/orch/rescue/…`, built in
//! a temporary index so the worktree itself is left exactly as it was.

use super::git::git;
use super::{AttemptName, Repo};
use crate::error::{Code, Error, Result};
use std::path::Path;

/// What a rescue saved: the ref and the commit it points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rescue {
    #[serde(rename = "ref")]
    pub ref_name: String,
    pub sha: String,
}

impl Repo {
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
            name.run(),
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

    /// [`Repo::identity_args`] for what git-orch writes in-process (a commit object, a
    /// reflog line): `found` is gix's author or committer, as git resolves it from the
    /// environment and config; without one, `git-orch <git-orch@localhost>`.
    pub(super) fn signature_or_fallback<E: std::fmt::Display>(
        found: Option<std::result::Result<gix::actor::SignatureRef<'_>, E>>,
    ) -> Result<gix::actor::Signature> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(Code::GitFailed, format!("reading the identity: {e}"))
        };
        match found {
            Some(Ok(sig)) => sig.to_owned().map_err(|e| failed(&e)),
            Some(Err(e)) => Err(failed(&e)),
            None => Ok(gix::actor::Signature {
                name: "git-orch".into(),
                email: "git-orch@localhost".into(),
                time: gix::date::Time::now_local_or_utc(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::repo::testing::{assert_repo_healthy, git_in, write_file, TempRepo};
    use crate::repo::AttemptName;
    use std::path::Path;

    fn name(task: &str, n: u32) -> AttemptName {
        AttemptName::new("r1", task, n).unwrap()
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

    fn worktree_dirty_paths_for(path: &Path) -> Vec<String> {
        crate::repo::worktree_dirty_paths(path, crate::repo::Untracked::Include).unwrap()
    }
}
