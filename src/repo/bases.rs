//! Stacked bases (docs/git-layer.md): a task that depends on several code tasks starts from a
//! merge of their heads, written as a commit and kept under `refs/orch/bases/…`.

use super::git::git;
use super::land::Merged;
use super::revs::parse_sha;
use super::{AttemptName, Repo};
use crate::error::{Code, Error, Result};

/// Where the merged base went.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MergedBase {
    /// The commit to start the attempt from.
    pub sha: String,
    /// `refs/orch/bases/<run>/<task>-<n>` when a merge commit was written; `None` when
    /// the heads came down to one commit (it is used as is).
    #[serde(rename = "ref")]
    pub ref_name: Option<String>,
}

impl Repo {
    /// Merges the dependencies' heads into one commit (parents: the heads, in order) with
    /// git's own merge (`git merge-tree --write-tree`, git ≥ 2.38), and keeps it under
    /// `refs/orch/bases/<run>/<task>-<n>`. Heads that are already contained in another
    /// head add nothing and are dropped first; if one head remains it is the base itself
    /// and no ref is written. Conflicts are `base_conflict` (exit 6) with
    /// `details.paths` (the conflicting files) and `details.heads`; nothing is written then.
    pub fn merge_bases(&self, name: &AttemptName, heads: &[String]) -> Result<MergedBase> {
        let mut unique: Vec<String> = Vec::new();
        for head in heads {
            parse_sha(head)?;
            if !unique.contains(head) {
                unique.push(head.clone());
            }
        }
        if unique.is_empty() {
            return Err(Error::invalid_input("no heads to merge"));
        }
        let needed = self.drop_contained_heads(&unique)?;
        if let [only] = needed.as_slice() {
            return Ok(MergedBase {
                sha: only.clone(),
                ref_name: None,
            });
        }

        let dir = self.run_dir();
        let mut merged = needed[0].clone();
        for (i, head) in needed.iter().enumerate().skip(1) {
            let old_git = "stacked bases need git 2.38 or newer (`git merge-tree --write-tree`)";
            let tree = match self.write_merge_tree(&merged, head, old_git)? {
                Merged::Clean(tree) => tree,
                Merged::Conflict(paths) => {
                    return Err(Error::new(
                        Code::BaseConflict,
                        format!(
                            "the dependencies' heads conflict in {} file{}",
                            paths.len(),
                            if paths.len() == 1 { "" } else { "s" }
                        ),
                    )
                    .hint("merge the dependency branches by hand and pass the result with --base")
                    .detail("paths", paths)
                    .detail("heads", needed.clone()))
                }
            };
            let last = i + 1 == needed.len();
            let mut commit = git(dir).args(self.identity_args()).arg("commit-tree");
            // Intermediate merges only feed the next step; the final one records every head.
            let parents: Vec<&String> = if last {
                needed.iter().collect()
            } else {
                vec![&merged, head]
            };
            for parent in parents {
                commit = commit.args(["-p", parent]);
            }
            let message = format!(
                "git-orch base for {}/{}\n\nMerge of the dependencies' heads:\n{}\n",
                name.run(),
                name.slug(),
                needed.join("\n")
            );
            merged = commit.args(["-m", &message, &tree]).run()?.text();
        }
        let ref_name = name.bases_ref();
        git(dir)
            .args(["update-ref", "-m", "git-orch: stacked base", "--"])
            .args([&ref_name, &merged])
            .run()?;
        Ok(MergedBase {
            sha: merged,
            ref_name: Some(ref_name),
        })
    }

    /// The heads that are not ancestors of another head, in their original order.
    fn drop_contained_heads(&self, heads: &[String]) -> Result<Vec<String>> {
        let mut kept = Vec::new();
        for (i, head) in heads.iter().enumerate() {
            let mut contained = false;
            for (j, other) in heads.iter().enumerate() {
                // The heads are distinct, so no commits over `other` means an ancestor of it.
                if i != j && self.count_commits(head, other)? == 0 {
                    contained = true;
                    break;
                }
            }
            if !contained {
                kept.push(head.clone());
            }
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{git_in, TempRepo};

    fn attempt() -> AttemptName {
        AttemptName::new("r1", "join", 1).unwrap()
    }

    #[test]
    fn two_heads_become_one_merge_commit_under_the_bases_ref() {
        let t = TempRepo::new();
        let a = t.branch("a", "a.txt", "a\n");
        let b = t.branch("b", "b.txt", "b\n");
        let repo = t.open();
        let merged = repo
            .merge_bases(&attempt(), &[a.clone(), b.clone()])
            .unwrap();
        assert_eq!(
            merged.ref_name.as_deref(),
            Some("refs/orch/bases/r1/join-1")
        );
        assert_eq!(
            t.git(&["rev-parse", "refs/orch/bases/r1/join-1"]),
            merged.sha
        );
        assert_eq!(
            t.git(&["rev-list", "--parents", "-n1", &merged.sha]),
            format!("{} {a} {b}", merged.sha)
        );
        let files = t.git(&["ls-tree", "--name-only", &merged.sha]);
        assert_eq!(
            files.lines().collect::<Vec<_>>(),
            ["README.md", "a.txt", "b.txt"]
        );
        let fsck = git_in(t.path(), &["fsck", "--no-dangling"]);
        assert!(fsck.is_empty(), "{fsck}");
    }

    #[test]
    fn three_heads_merge_with_all_of_them_as_parents() {
        let t = TempRepo::new();
        let heads: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|n| t.branch(n, &format!("{n}.txt"), "x\n"))
            .collect();
        let merged = t.open().merge_bases(&attempt(), &heads).unwrap();
        let parents = t.git(&["rev-list", "--parents", "-n1", &merged.sha]);
        assert_eq!(parents, format!("{} {}", merged.sha, heads.join(" ")));
        assert_eq!(
            t.git(&["ls-tree", "--name-only", &merged.sha])
                .lines()
                .count(),
            4
        );
    }

    #[test]
    fn conflicting_heads_give_the_paths_and_write_nothing() {
        let t = TempRepo::new();
        t.git(&["checkout", "-q", "-b", "a"]);
        t.write("same.txt", "from a\n");
        t.write("README.md", "a\n");
        t.write("only-a.txt", "a\n");
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "a"]);
        let a = t.git(&["rev-parse", "HEAD"]);
        t.git(&["checkout", "-q", "-b", "b", "main"]);
        t.write("same.txt", "from b\n");
        t.write("README.md", "b\n");
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "b"]);
        let b = t.git(&["rev-parse", "HEAD"]);

        let err = t.open().merge_bases(&attempt(), &[a, b]).unwrap_err();
        assert_eq!(err.code.as_str(), "base_conflict");
        assert_eq!(err.code.exit_status(), 6);
        assert_eq!(
            err.details["paths"],
            serde_json::json!(["README.md", "same.txt"])
        );
        assert_eq!(err.details["heads"].as_array().unwrap().len(), 2);
        assert!(t
            .open()
            .ref_target("refs/orch/bases/r1/join-1")
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_head_contained_in_another_is_not_merged() {
        let t = TempRepo::new();
        let a = t.branch("a", "a.txt", "a\n");
        t.git(&["checkout", "-q", "a"]);
        let a2 = t.commit_file("a2.txt", "more\n", "more a");
        t.git(&["checkout", "-q", "main"]);
        let repo = t.open();
        let merged = repo
            .merge_bases(&attempt(), &[a.clone(), a2.clone(), a.clone()])
            .unwrap();
        assert_eq!(
            merged,
            MergedBase {
                sha: a2,
                ref_name: None
            }
        );
        assert!(repo.merge_bases(&attempt(), &[]).is_err());
    }
}
