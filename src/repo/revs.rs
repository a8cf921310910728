//! Reading commits through gix: revspecs to shas, branch tips, commit counts and the
//! per-commit numbers a progress message carries.

use super::Repo;
use crate::error::{Code, Error, Result};
use gix::bstr::ByteSlice;
use gix::ObjectId;
use serde::Serialize;

/// A base as the user named it and the commit it resolved to (both are stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseRef {
    /// The revspec as given: `main`, `v1.2^`, `HEAD~3`, a sha.
    pub given: String,
    /// The full hex sha of the commit it names.
    pub sha: String,
}

/// One commit as a progress message describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CommitStats {
    pub sha: String,
    /// The first line of the message.
    pub subject: String,
    pub files_changed: u64,
    pub insertions: u64,
    pub deletions: u64,
}

fn bad_ref(given: &str, reason: impl std::fmt::Display) -> Error {
    Error::new(
        Code::BadRef,
        format!("{given:?} does not name a commit in this repository"),
    )
    .hint("give a branch, tag or sha that `git rev-parse --verify REV^{commit}` accepts")
    .detail("ref", given)
    .detail("reason", reason.to_string())
}

fn gix_failed(what: &str, err: impl std::fmt::Display) -> Error {
    Error::new(Code::GitFailed, format!("{what}: {err}"))
}

/// A revision as typed by the user: resolved when a worktree is made; here only refused
/// when it could never be one (a leading `-` would read as an option to git).
pub fn check_ref_text(text: &str) -> Result<()> {
    if text.is_empty() || text.starts_with('-') || text.chars().any(char::is_control) {
        return Err(
            Error::new(Code::BadRef, format!("invalid revision {text:?}"))
                .hint("give a branch, tag or commit, e.g. --base main"),
        );
    }
    Ok(())
}

pub(crate) fn parse_sha(sha: &str) -> Result<ObjectId> {
    ObjectId::from_hex(sha.as_bytes()).map_err(|e| {
        Error::invalid_input(format!("{sha:?} is not a full object id: {e}"))
            .hint("pass the 40-hex sha that resolve_commit returned")
    })
}

impl Repo {
    /// Resolves any revspec git accepts to the commit it names, keeping the text as given.
    /// Tags are peeled; anything that is not a commit is `bad_ref` (exit 6).
    pub fn resolve_commit(&self, given: &str) -> Result<BaseRef> {
        if given.trim().is_empty() {
            return Err(bad_ref(given, "empty revision"));
        }
        let spec = self
            .gix()
            .rev_parse(given.as_bytes().as_bstr())
            .map_err(|e| bad_ref(given, e))?;
        // A base is one commit: `HEAD^!`, `A..B`, `A...B` and `^A` name sets of commits,
        // and taking one end of them would silently start from somewhere else.
        let id = match spec.detach() {
            gix::revision::plumbing::Spec::Include(id) => id,
            _ => {
                return Err(bad_ref(
                    given,
                    "names a range or set of commits, not one commit",
                ))
            }
        };
        let commit = self
            .gix()
            .find_object(id)
            .map_err(|e| bad_ref(given, e))?
            .peel_to_commit()
            .map_err(|e| bad_ref(given, e))?;
        Ok(BaseRef {
            given: given.to_owned(),
            sha: commit.id.to_string(),
        })
    }

    /// The commit HEAD points at in the worktree this `Repo` was opened for; `None` on an
    /// unborn branch.
    pub fn head_sha(&self) -> Result<Option<String>> {
        let mut head = self
            .gix()
            .head()
            .map_err(|e| gix_failed("reading HEAD", e))?;
        if head.is_unborn() {
            return Ok(None);
        }
        let commit = head
            .peel_to_commit()
            .map_err(|e| gix_failed("reading HEAD", e))?;
        Ok(Some(commit.id.to_string()))
    }

    /// The commit a branch (`orch/r1/lexer-1`, without `refs/heads/`) points at, or
    /// `None` when there is no such branch.
    pub fn branch_tip(&self, branch: &str) -> Result<Option<String>> {
        self.ref_target(&format!("refs/heads/{branch}"))
    }

    /// Whether `branch` points straight at `sha`, read from the ref alone: reconcile asks
    /// this of every live attempt at every turn, and peeling reads the commit object.
    /// False when the branch is gone, symbolic, or points elsewhere.
    pub fn branch_is_at(&self, branch: &str, sha: &str) -> bool {
        let Ok(want) = parse_sha(sha) else {
            return false;
        };
        let Ok(Some(reference)) = self
            .gix()
            .try_find_reference(format!("refs/heads/{branch}").as_str())
        else {
            return false;
        };
        reference.target().try_id() == Some(want.as_ref())
    }

    /// The commit a full ref name points at, or `None` when the ref does not exist.
    pub fn ref_target(&self, full_name: &str) -> Result<Option<String>> {
        let reference = self
            .gix()
            .try_find_reference(full_name)
            .map_err(|e| gix_failed(&format!("reading {full_name}"), e))?;
        match reference {
            None => Ok(None),
            Some(mut reference) => {
                let commit = reference
                    .peel_to_commit()
                    .map_err(|e| gix_failed(&format!("reading {full_name}"), e))?;
                Ok(Some(commit.id.to_string()))
            }
        }
    }

    /// How many commits `tip` has that `base` does not (`git rev-list --count base..tip`):
    /// the commits an attempt made on its branch.
    pub fn count_commits(&self, tip: &str, base: &str) -> Result<u64> {
        let (tip, base) = (parse_sha(tip)?, parse_sha(base)?);
        if tip == base {
            return Ok(0);
        }
        let walk = self
            .gix()
            .rev_walk([tip])
            .with_hidden([base])
            .all()
            .map_err(|e| gix_failed("walking commits", e))?;
        let mut count = 0;
        for info in walk {
            info.map_err(|e| gix_failed("walking commits", e))?;
            count += 1;
        }
        Ok(count)
    }

    /// Subject and diff numbers of one commit against its first parent (the empty tree
    /// for a root commit), like `git diff --shortstat --no-renames sha^ sha`: a binary
    /// file counts as changed with no lines.
    pub fn commit_stats(&self, sha: &str) -> Result<CommitStats> {
        let repo = self.gix();
        let id = parse_sha(sha)?;
        let fail = |e: &dyn std::fmt::Display| gix_failed(&format!("reading commit {sha}"), e);
        let commit = repo.find_commit(id).map_err(|e| fail(&e))?;
        let message = commit.message_raw_sloppy();
        let subject = message
            .lines()
            .map(|l| l.trim())
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_str_lossy()
            .into_owned();
        let new_tree = commit.tree().map_err(|e| fail(&e))?;
        let old_tree = match commit.parent_ids().next() {
            Some(parent) => repo
                .find_commit(parent)
                .and_then(|p| p.tree())
                .map_err(|e| fail(&e))?,
            None => repo.empty_tree(),
        };
        let mut cache = repo
            .diff_resource_cache_for_tree_diff()
            .map_err(|e| fail(&e))?;
        let (mut files_changed, mut insertions, mut deletions) = (0u64, 0u64, 0u64);
        let mut changes = old_tree.changes().map_err(|e| fail(&e))?;
        changes.options(|opts| {
            opts.track_rewrites(None);
        });
        changes
            .for_each_to_obtain_tree(&new_tree, |change| {
                use gix::object::tree::diff::Change;
                let is_tree = match change {
                    Change::Modification {
                        previous_entry_mode,
                        entry_mode,
                        ..
                    } => previous_entry_mode.is_tree() && entry_mode.is_tree(),
                    _ => change.entry_mode().is_tree(),
                };
                if is_tree {
                    return Ok(std::ops::ControlFlow::Continue(()));
                }
                files_changed += 1;
                if let Some(counts) = change
                    .diff(&mut cache)
                    .ok()
                    .and_then(|mut platform| platform.line_counts().ok())
                    .flatten()
                {
                    insertions += u64::from(counts.insertions);
                    deletions += u64::from(counts.removals);
                }
                cache.clear_resource_cache_keep_allocation();
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .map_err(|e| fail(&e))?;
        Ok(CommitStats {
            sha: commit.id.to_string(),
            subject,
            files_changed,
            insertions,
            deletions,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::repo::testing::TempRepo;

    #[test]
    fn resolves_revspecs_and_keeps_the_given_text() {
        let t = TempRepo::new();
        let first = t.git(&["rev-parse", "HEAD"]);
        let second = t.commit_file("a.txt", "a\n", "second");
        t.git(&["tag", "-a", "v1", "-m", "annotated", &first]);
        let repo = t.open();
        for (given, sha) in [
            ("main", &second),
            ("HEAD~1", &first),
            ("v1", &first),
            (&first[..10], &first),
            ("main^{commit}", &second),
        ] {
            let base = repo.resolve_commit(given).unwrap();
            assert_eq!(base.given, given);
            assert_eq!(&base.sha, sha, "{given}");
        }
    }

    #[test]
    fn unresolvable_revspecs_are_bad_ref() {
        let t = TempRepo::new();
        let repo = t.open();
        let tree = t.git(&["rev-parse", "HEAD^{tree}"]);
        for given in ["nope", "main~5", "", "--all", &tree] {
            let err = repo.resolve_commit(given).unwrap_err();
            assert_eq!(err.code.as_str(), "bad_ref", "{given:?}");
            assert_eq!(err.code.exit_status(), 6);
            assert!(err.hint.is_some());
            assert_eq!(err.details["ref"], given);
        }
    }

    #[test]
    fn counts_commits_and_reads_tips() {
        let t = TempRepo::new();
        let base = t.git(&["rev-parse", "HEAD"]);
        t.git(&["checkout", "-q", "-b", "orch/r1/lexer-1"]);
        t.commit_file("a", "1\n", "one");
        let tip = t.commit_file("b", "2\n", "two");
        let repo = t.open();
        assert_eq!(
            repo.branch_tip("orch/r1/lexer-1").unwrap(),
            Some(tip.clone())
        );
        assert_eq!(repo.branch_tip("orch/r1/none-1").unwrap(), None);
        assert_eq!(repo.count_commits(&tip, &base).unwrap(), 2);
        assert_eq!(repo.count_commits(&base, &base).unwrap(), 0);
        assert_eq!(repo.count_commits(&base, &tip).unwrap(), 0);
        assert_eq!(repo.head_sha().unwrap(), Some(tip));
    }

    #[test]
    fn commit_stats_match_git_shortstat() {
        let t = TempRepo::new();
        t.write("src/lib.rs", "one\ntwo\nthree\n");
        t.write("docs/a.md", "a\n");
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "add files\n\nbody line"]);
        t.write("src/lib.rs", "one\n2\nthree\nfour\n");
        t.git(&["rm", "-q", "README.md"]);
        std::fs::write(t.path().join("bin.dat"), [0u8, 1, 2, 0, 3]).unwrap();
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "  Change things  "]);
        let repo = t.open();
        let sha = t.git(&["rev-parse", "HEAD"]);
        let stats = repo.commit_stats(&sha).unwrap();
        assert_eq!(stats.subject, "Change things");
        assert_eq!(stats.sha, sha);
        let git = t.git(&["diff", "--shortstat", "--no-renames", "HEAD^", "HEAD"]);
        assert_eq!(
            git,
            format!(
                "{} files changed, {} insertions(+), {} deletions(-)",
                stats.files_changed, stats.insertions, stats.deletions
            )
        );
        assert_eq!(
            (stats.files_changed, stats.insertions, stats.deletions),
            (3, 2, 2)
        );

        let root = t.git(&["rev-list", "--max-parents=0", "HEAD"]);
        let root_stats = repo.commit_stats(&root).unwrap();
        assert_eq!((root_stats.files_changed, root_stats.insertions), (1, 1));
        assert_eq!(root_stats.subject, "initial");
    }
}
