//! The refs orch keeps an eye on: attempt branches (`refs/heads/orch/<run>/<task>-<n>`)
//! and the worktrees they are checked out in, whether a branch holds commits found on no
//! other ref, and keeping a tip under a ref of its own before a branch goes.

use super::git::git;
use super::revs::parse_sha;
use super::{AttemptName, Repo};
use crate::error::{Code, Error, Result};
use std::path::PathBuf;

/// One branch under `refs/heads/orch/` that looks like an attempt's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptBranch {
    pub name: AttemptName,
    /// `orch/<run>/<task>-<n>`, without `refs/heads/`.
    pub branch: String,
    pub tip: String,
}

/// A linked worktree as `git worktree list` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedWorktree {
    pub path: PathBuf,
    /// The branch checked out there (without `refs/heads/`), if any.
    pub branch: Option<String>,
}

impl AttemptName {
    /// Reads `<run>/<task>-<n>` back from an attempt branch name (`orch/…`), if it is one.
    pub fn from_branch(branch: &str) -> Option<AttemptName> {
        let rest = branch.strip_prefix("orch/")?;
        let (run, slug) = rest.split_once('/')?;
        let (task, n) = slug.rsplit_once('-')?;
        let n: u32 = n.parse().ok()?;
        AttemptName::new(run, task, n).ok()
    }
}

impl Repo {
    /// Every branch that is named like an attempt's, with its tip (gix, no process).
    pub fn attempt_branches(&self) -> Result<Vec<AttemptBranch>> {
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(Code::GitFailed, format!("listing branches: {e}"))
        };
        let platform = self.gix().references().map_err(|e| failed(&e))?;
        let mut out = Vec::new();
        for reference in platform.local_branches().map_err(|e| failed(&e))? {
            let mut reference = reference.map_err(|e| failed(&e))?;
            let full = reference.name().as_bstr().to_string();
            let Some(branch) = full.strip_prefix("refs/heads/") else {
                continue;
            };
            let Some(name) = AttemptName::from_branch(branch) else {
                continue;
            };
            let Ok(tip) = reference.peel_to_id() else {
                continue;
            };
            out.push(AttemptBranch {
                name,
                branch: branch.to_owned(),
                tip: tip.to_string(),
            });
        }
        out.sort_by(|a, b| a.branch.cmp(&b.branch));
        Ok(out)
    }

    /// Linked worktrees with their branches (the main worktree is not listed).
    pub fn linked_worktrees(&self) -> Result<Vec<LinkedWorktree>> {
        let out = git(self.run_dir())
            .args(["worktree", "list", "--porcelain", "-z"])
            .run()?;
        let mut list: Vec<LinkedWorktree> = Vec::new();
        for field in out.stdout.split(|b| *b == 0) {
            let text = String::from_utf8_lossy(field);
            if let Some(path) = text.strip_prefix("worktree ") {
                list.push(LinkedWorktree {
                    path: PathBuf::from(path),
                    branch: None,
                });
            } else if let Some(branch) = text.strip_prefix("branch refs/heads/") {
                if let Some(last) = list.last_mut() {
                    last.branch = Some(branch.to_owned());
                }
            }
        }
        if !list.is_empty() && self.main_worktree()?.is_some() {
            list.remove(0);
        }
        Ok(list)
    }

    /// How many commits of `full_name` no other ref reaches (`git rev-list --count
    /// <ref> --not --exclude=<ref> --all`): zero means deleting it loses nothing.
    pub fn unique_commits(&self, full_name: &str) -> Result<u64> {
        let Some(tip) = self.ref_target(full_name)? else {
            return Ok(0);
        };
        let out = git(self.run_dir())
            .args(["rev-list", "--count", &tip, "--not"])
            .arg(format!("--exclude={full_name}"))
            .arg("--all")
            .run()?;
        out.text().trim().parse().map_err(|_| {
            Error::new(
                Code::GitFailed,
                format!("git rev-list printed {:?}", out.text()),
            )
        })
    }

    /// Points a new ref at `sha`: `<prefix>`, or `<prefix>.2`, `<prefix>.3`, … when taken
    /// (refs that keep work are never overwritten). Returns the ref written.
    pub fn keep_under_ref(&self, prefix: &str, sha: &str, why: &str) -> Result<String> {
        parse_sha(sha)?;
        for k in 1..=1000u32 {
            let name = if k == 1 {
                prefix.to_owned()
            } else {
                format!("{prefix}.{k}")
            };
            match self.ref_target(&name)? {
                Some(existing) if existing == sha => return Ok(name),
                Some(_) => continue,
                None => {}
            }
            // An empty old value: fails rather than overwrite a ref made meanwhile.
            git(self.run_dir())
                .args(["update-ref", "-m", why, "--"])
                .args([name.as_str(), sha, ""])
                .run()?;
            return Ok(name);
        }
        Err(Error::new(
            Code::Conflict,
            format!("too many refs named {prefix}.*"),
        ))
    }

    /// The main worktree opened on its own (for its HEAD and its dirt), or `None` for a
    /// bare repository.
    pub fn open_main_worktree(&self) -> Result<Option<Repo>> {
        match self.main_worktree()? {
            Some(path) => Repo::open_worktree(&path).map(Some),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{git_in, TempRepo};

    #[test]
    fn attempt_names_read_back_from_branches() {
        let name = AttemptName::from_branch("orch/r1/lexer-v2-12").unwrap();
        assert_eq!((name.run(), name.task(), name.n()), ("r1", "lexer-v2", 12));
        for other in ["main", "orch/r1", "orch/r1/x", "orch/r1/x-0", "orch/R/x-1"] {
            assert!(AttemptName::from_branch(other).is_none(), "{other}");
        }
    }

    #[test]
    fn lists_attempt_branches_and_their_worktrees() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        t.git(&["branch", "orch/r1/a-1"]);
        t.git(&["branch", "feature"]);
        let wt = repo
            .create_attempt_worktree(&AttemptName::new("r1", "b", 2).unwrap(), &base)
            .unwrap()
            .keep();
        let branches = repo.attempt_branches().unwrap();
        let names: Vec<&str> = branches.iter().map(|b| b.branch.as_str()).collect();
        assert_eq!(names, ["orch/r1/a-1", "orch/r1/b-2"]);
        assert!(branches.iter().all(|b| b.tip == base));
        let linked = repo.linked_worktrees().unwrap();
        assert_eq!(
            linked,
            [LinkedWorktree {
                path: wt.path.clone(),
                branch: Some("orch/r1/b-2".into())
            }]
        );
    }

    #[test]
    fn unique_commits_and_keeping_a_tip() {
        let t = TempRepo::new();
        let repo = t.open();
        t.git(&["branch", "orch/r1/a-1"]);
        assert_eq!(repo.unique_commits("refs/heads/orch/r1/a-1").unwrap(), 0);
        t.git(&["checkout", "-q", "orch/r1/a-1"]);
        let tip = t.commit_file("a.txt", "a\n", "work");
        t.git(&["checkout", "-q", "main"]);
        assert_eq!(repo.unique_commits("refs/heads/orch/r1/a-1").unwrap(), 1);
        let kept = repo
            .keep_under_ref("refs/orch/orphans/r1/a-1", &tip, "test")
            .unwrap();
        assert_eq!(kept, "refs/orch/orphans/r1/a-1");
        assert_eq!(repo.unique_commits("refs/heads/orch/r1/a-1").unwrap(), 0);
        // Same tip: the same ref; another tip: a new one beside it.
        assert_eq!(
            repo.keep_under_ref("refs/orch/orphans/r1/a-1", &tip, "test")
                .unwrap(),
            kept
        );
        let main = git_in(t.path(), &["rev-parse", "main"]);
        assert_eq!(
            repo.keep_under_ref("refs/orch/orphans/r1/a-1", &main, "test")
                .unwrap(),
            "refs/orch/orphans/r1/a-1.2"
        );
        assert_eq!(repo.unique_commits("refs/heads/orch/r1/none-1").unwrap(), 0);
    }
}
