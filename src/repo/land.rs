//! What landing needs from git (SPEC §13): merges without a work tree
//! (`git merge-tree --write-tree`), commits written in-process, a compare-and-swap on a
//! branch (`git update-ref <ref> <new> <old>`), which worktree has a branch checked out,
//! fast-forwarding such a worktree's files, and detached temporary worktrees for checks.

use super::git::git;
use super::revs::parse_sha;
use super::worktree::remove_worktree_at;
use super::Repo;
use crate::error::{Code, Error, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What merging one commit onto another came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// The merged tree.
    Clean(String),
    /// The paths that conflict, sorted and unique.
    Conflict(Vec<String>),
}

/// Whether a compare-and-swap moved the ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    Moved,
    /// Someone else moved it first: it points here now (`None`: deleted).
    Lost(Option<String>),
}

/// A worktree (the main one included) and the branch checked out there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedOut {
    pub path: PathBuf,
    pub main: bool,
}

impl Repo {
    /// Merges `theirs` onto `ours` with git's own merge, writing only objects. `base`,
    /// when the caller knows it is their one merge base, spares git the search for it
    /// (`--merge-base`, git ≥ 2.40; an older git searches as usual).
    pub fn merge_tree(&self, ours: &str, theirs: &str, base: Option<&str>) -> Result<Merged> {
        parse_sha(ours)?;
        parse_sha(theirs)?;
        self.merge_tree_with(
            ours,
            theirs,
            base,
            "landing needs git 2.38 or newer (`git merge-tree --write-tree`)",
        )
    }

    /// `git merge-tree --write-tree` of two commits known to be shas; `old_git` is the
    /// hint when git is too old for it. Stacked bases merge with it too.
    pub(super) fn write_merge_tree(
        &self,
        ours: &str,
        theirs: &str,
        old_git: &str,
    ) -> Result<Merged> {
        self.merge_tree_with(ours, theirs, None, old_git)
    }

    fn merge_tree_with(
        &self,
        ours: &str,
        theirs: &str,
        base: Option<&str>,
        old_git: &str,
    ) -> Result<Merged> {
        let merge = |base: Option<&str>| {
            let mut cmd = git(self.run_dir()).args([
                "merge-tree",
                "--write-tree",
                "--name-only",
                "-z",
                "--no-messages",
            ]);
            if let Some(base) = base {
                cmd = cmd.arg(format!("--merge-base={base}"));
            }
            cmd.args([ours, theirs]).run_allowing(&[0, 1])
        };
        let out = match base.map(parse_sha).transpose()? {
            Some(base) => merge(Some(&base.to_string())).or_else(|_| merge(None)),
            None => merge(None),
        }
        .map_err(|e| e.hint(old_git))?;
        let mut fields = out.stdout.split(|b| *b == 0);
        let tree = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
        if out.status == 0 {
            parse_sha(&tree)?;
            return Ok(Merged::Clean(tree));
        }
        let mut paths: Vec<String> = fields
            .filter(|f| !f.is_empty())
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect();
        paths.sort();
        paths.dedup();
        Ok(Merged::Conflict(paths))
    }

    /// Writes a commit object (no ref moves) in-process: a landing writes one per
    /// candidate, and a `git commit-tree` process each would double its cost. The
    /// identity is the repository's (environment and config, as git resolves them), else
    /// `git-orch <git-orch@localhost>`.
    pub fn write_commit(&self, tree: &str, parents: &[&str], message: &str) -> Result<String> {
        let repo = self.gix();
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(Code::GitFailed, format!("writing a commit: {e}"))
        };
        let commit = gix::objs::Commit {
            tree: parse_sha(tree)?,
            parents: parents
                .iter()
                .map(|p| parse_sha(p))
                .collect::<Result<_>>()?,
            author: Repo::signature_or_fallback(repo.author())?,
            committer: Repo::signature_or_fallback(repo.committer())?,
            encoding: None,
            message: message.into(),
            extra_headers: Vec::new(),
        };
        let id = repo.write_object(&commit).map_err(|e| failed(&e))?;
        Ok(id.to_string())
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: &str, descendant: &str) -> Result<bool> {
        Ok(self.count_commits(ancestor, descendant)? == 0)
    }

    /// The commits reachable from `heads` but not from `tip`, with their parents, from
    /// one walk: a land asks "is this head on the integration tip yet?" for every
    /// candidate, and one walk per candidate made that the dominant cost of a long queue.
    pub fn beyond(&self, heads: &[&str], tip: &str) -> Result<Beyond> {
        let tip = parse_sha(tip)?;
        let heads: Vec<gix::ObjectId> =
            heads.iter().map(|h| parse_sha(h)).collect::<Result<_>>()?;
        let failed = |e: &dyn std::fmt::Display| {
            Error::new(Code::GitFailed, format!("walking commits: {e}"))
        };
        let mut parents = HashMap::new();
        if !heads.is_empty() {
            let walk = self
                .gix()
                .rev_walk(heads)
                .with_hidden([tip])
                .all()
                .map_err(|e| failed(&e))?;
            for info in walk {
                let info = info.map_err(|e| failed(&e))?;
                parents.insert(info.id, info.parent_ids.iter().copied().collect());
            }
        }
        Ok(Beyond { parents })
    }

    /// The heads among `heads` that `tip` does not reach (one walk for them all).
    pub fn unreachable(&self, heads: &[&str], tip: &str) -> Result<Vec<String>> {
        let beyond = self.beyond(heads, tip)?;
        Ok(heads
            .iter()
            .filter(|h| !beyond.on_tip(h))
            .map(|h| (*h).to_owned())
            .collect())
    }

    /// Moves `full_name` from `old` to `new` only if it is still at `old` (git checks
    /// under the ref's lock). A lost race is [`Swap::Lost`], never an overwrite.
    pub fn swap_ref(&self, full_name: &str, new: &str, old: &str, why: &str) -> Result<Swap> {
        parse_sha(new)?;
        parse_sha(old)?;
        let moved = git(self.run_dir())
            .args(["update-ref", "-m", why, "--", full_name, new, old])
            .run();
        match moved {
            Ok(_) => Ok(Swap::Moved),
            Err(err) => match self.ref_target(full_name)? {
                Some(now) if now == old => Err(err),
                now => Ok(Swap::Lost(now)),
            },
        }
    }

    /// Points `full_name` at `new` whatever it held (for orch's own refs only).
    pub fn set_ref(&self, full_name: &str, new: &str, why: &str) -> Result<()> {
        parse_sha(new)?;
        git(self.run_dir())
            .args(["update-ref", "-m", why, "--", full_name, new])
            .run()
            .map(drop)
    }

    /// The worktree where `branch` is checked out, the main one included.
    pub fn checked_out(&self, branch: &str) -> Result<Option<CheckedOut>> {
        let out = git(self.run_dir())
            .args(["worktree", "list", "--porcelain", "-z"])
            .run()?;
        let want = format!("branch refs/heads/{branch}");
        let mut current: Option<PathBuf> = None;
        let mut first = true;
        let mut is_main = false;
        for field in out.stdout.split(|b| *b == 0) {
            if let Some(p) = field.strip_prefix(b"worktree ") {
                current = Some(PathBuf::from(String::from_utf8_lossy(p).into_owned()));
                is_main = first;
                first = false;
            } else if field == want.as_bytes() {
                if let Some(path) = current.take() {
                    return Ok(Some(CheckedOut {
                        path,
                        main: is_main,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// The name of the branch checked out in the main worktree (`None`: detached, or bare).
    pub fn main_branch(&self) -> Result<Option<String>> {
        let Some(main) = self.open_main_worktree()? else {
            return Ok(None);
        };
        let head = main
            .gix()
            .head_name()
            .map_err(|e| Error::new(Code::GitFailed, format!("reading HEAD: {e}")))?;
        Ok(head.and_then(|name| {
            name.as_bstr()
                .to_string()
                .strip_prefix("refs/heads/")
                .map(str::to_owned)
        }))
    }

    /// The oldest commit on `tip`'s first-parent line that contains `head`: where a
    /// branch head entered the target (its merge commit, or the head itself when it was
    /// fast-forwarded).
    pub fn entered_at(&self, head: &str, tip: &str) -> Result<String> {
        parse_sha(head)?;
        parse_sha(tip)?;
        let range = format!("{head}..{tip}");
        let line = git(self.run_dir())
            .args(["rev-list", "--first-parent", &range])
            .run()?
            .text();
        let descendants = git(self.run_dir())
            .args(["rev-list", "--ancestry-path", &range])
            .run()?
            .text();
        let descendants: std::collections::HashSet<&str> = descendants.lines().collect();
        let line: Vec<&str> = line.lines().collect();
        let oldest = line.iter().rev().find(|c| descendants.contains(*c));
        let first_parent = match oldest {
            Some(commit) => self.first_parent_of(commit)?,
            None => return Ok(head.to_owned()),
        };
        Ok(match (oldest, first_parent) {
            (Some(_), Some(parent)) if parent == head => head.to_owned(),
            (Some(commit), _) => (*commit).to_owned(),
            (None, _) => head.to_owned(),
        })
    }

    fn first_parent_of(&self, commit: &str) -> Result<Option<String>> {
        let id = parse_sha(commit)?;
        let commit = self
            .gix()
            .find_commit(id)
            .map_err(|e| Error::new(Code::GitFailed, format!("reading commit {id}: {e}")))?;
        let parent = commit.parent_ids().next().map(|p| p.to_string());
        Ok(parent)
    }
}

/// What [`Repo::beyond`] found: the commits some head has that the tip lacks, and their
/// parents, so that "is head X in head Y" needs no more walking.
pub struct Beyond {
    parents: HashMap<gix::ObjectId, Vec<gix::ObjectId>>,
}

impl Beyond {
    /// Whether `head` is on the tip the walk was made against (a sha it was given).
    pub fn on_tip(&self, head: &str) -> bool {
        parse_sha(head).is_ok_and(|id| !self.parents.contains_key(&id))
    }

    /// `head`'s commits beyond the tip, and the commits of the tip they grow from.
    fn part(&self, head: &str) -> (HashSet<gix::ObjectId>, HashSet<gix::ObjectId>) {
        let (mut part, mut roots) = (HashSet::new(), HashSet::new());
        let Ok(head) = parse_sha(head) else {
            return (part, roots);
        };
        let mut stack = vec![head];
        while let Some(id) = stack.pop() {
            match self.parents.get(&id) {
                Some(parents) => {
                    if part.insert(id) {
                        stack.extend(parents.iter().copied());
                    }
                }
                None => {
                    roots.insert(id);
                }
            }
        }
        (part, roots)
    }

    /// The merge base of `head` and the tip once `merged` (heads of the walk) were merged
    /// onto it, when it can be read off the walk: none of `head`'s commits beyond the tip
    /// is one of theirs, and they all grow from one commit of the tip. Every common
    /// ancestor is then an ancestor of that commit, so it is the one merge base. `None`:
    /// let git look for it.
    pub fn merge_base(&self, head: &str, merged: &[String]) -> Option<String> {
        let (part, roots) = self.part(head);
        if part.is_empty() || roots.len() != 1 {
            return None;
        }
        let shared = merged.iter().any(|m| {
            let (theirs, _) = self.part(m);
            !theirs.is_disjoint(&part)
        });
        match shared {
            true => None,
            false => roots.into_iter().next().map(|id| id.to_string()),
        }
    }

    /// Whether `from` (one of the walk's heads) reaches `head`, looking only at the
    /// commits beyond the tip: what the tip holds is [`Beyond::on_tip`]'s to answer.
    pub fn reaches(&self, from: &str, head: &str) -> bool {
        let (Ok(from), Ok(head)) = (parse_sha(from), parse_sha(head)) else {
            return false;
        };
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(id) = stack.pop() {
            if id == head {
                return true;
            }
            if let Some(parents) = self.parents.get(&id) {
                stack.extend(parents.iter().filter(|p| seen.insert(**p)));
            }
        }
        false
    }
}

/// Fast-forwards the files and index of the worktree at `path` from `old` to `new`
/// (`git read-tree -m -u`, git's own two-tree merge, as `git merge --ff-only` does): git
/// refuses, touching nothing, when a local change or an untracked file would be
/// overwritten. The branch itself is moved afterwards by the caller's compare-and-swap.
pub fn fast_forward_files(path: &Path, old: &str, new: &str) -> Result<()> {
    parse_sha(old)?;
    parse_sha(new)?;
    git(path)
        .args(["read-tree", "-m", "-u", old, new])
        .run()
        .map(drop)
}

/// Puts the files and index of the worktree at `path` back from `new` to `old` after a
/// lost compare-and-swap (nothing of the user's can be there: it was clean before).
pub fn rewind_files(path: &Path, new: &str, old: &str) -> Result<()> {
    fast_forward_files(path, new, old)
}

/// A detached linked worktree at `commit`, for running a check; removed (forced: it is
/// ours, and nothing in it is anyone's work) when dropped.
pub struct TempWorktree {
    run_dir: PathBuf,
    pub path: PathBuf,
}

impl Repo {
    pub fn temp_worktree(&self, path: &Path, commit: &str) -> Result<TempWorktree> {
        parse_sha(commit)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        // Left by a process that died: it is ours, take it back first.
        remove_temp_at(self.run_dir(), path)?;
        git(self.run_dir())
            .args(["worktree", "add", "--detach", "--quiet", "--"])
            .arg(path)
            .arg(commit)
            .run()?;
        Ok(TempWorktree {
            run_dir: self.run_dir().to_owned(),
            path: path.to_owned(),
        })
    }

    /// Removes a temporary worktree left behind (by a killed land) and forgets it.
    pub fn remove_temp_worktree(&self, path: &Path) -> Result<()> {
        remove_temp_at(self.run_dir(), path)
    }
}

/// Removes a temporary worktree whatever state a killed `git worktree add` left it in
/// (locked while initializing, a folder git does not know yet): it holds nobody's work.
fn remove_temp_at(run_dir: &Path, path: &Path) -> Result<()> {
    let _ = git(run_dir)
        .args(["worktree", "unlock", "--"])
        .arg(path)
        .run();
    if remove_worktree_at(run_dir, path, true).is_ok() {
        return Ok(());
    }
    remove_dir_while_written(path)?;
    git(run_dir).args(["worktree", "prune"]).run().map(drop)
}

/// How long a removal waits out a writer that outlived its `git orch land`.
const ORPHAN_WRITER_GRACE: Duration = Duration::from_secs(10);

/// `remove_dir_all`, tried again while the folder keeps filling: a land killed during
/// `git worktree add` leaves that git process checking files out into the folder, and
/// it ends on its own once the checkout is written.
fn remove_dir_while_written(path: &Path) -> Result<()> {
    let deadline = Instant::now() + ORPHAN_WRITER_GRACE;
    loop {
        match std::fs::remove_dir_all(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::DirectoryNotEmpty
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(Error::io(format!("removing {}", path.display()), e)),
        }
    }
}

impl Drop for TempWorktree {
    fn drop(&mut self) {
        let _ = remove_temp_at(&self.run_dir, &self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{git_in, TempRepo};

    #[test]
    fn merges_commits_and_swaps_the_ref() {
        let t = TempRepo::new();
        let a = t.branch("a", "a.txt", "a\n");
        let repo = t.open();
        let main = repo.branch_tip("main").unwrap().unwrap();
        let Merged::Clean(tree) = repo.merge_tree(&main, &a, None).unwrap() else {
            panic!("expected a clean merge");
        };
        let merge = repo.write_commit(&tree, &[&main, &a], "land a").unwrap();
        assert_eq!(
            t.git(&["rev-list", "--parents", "-n1", &merge]),
            format!("{merge} {main} {a}")
        );
        assert_eq!(t.git(&["log", "-1", "--format=%s", &merge]), "land a");
        // A stale old value loses and leaves the ref alone.
        assert_eq!(
            repo.swap_ref("refs/heads/main", &merge, &a, "t").unwrap(),
            Swap::Lost(Some(main.clone()))
        );
        assert_eq!(
            repo.swap_ref("refs/heads/main", &merge, &main, "t")
                .unwrap(),
            Swap::Moved
        );
        assert_eq!(repo.entered_at(&a, &merge).unwrap(), merge);
        assert!(repo.is_ancestor(&a, &merge).unwrap());
        assert!(!repo.is_ancestor(&merge, &a).unwrap());
        let fsck = git_in(t.path(), &["fsck", "--no-dangling"]);
        assert!(fsck.is_empty(), "{fsck}");
    }

    #[test]
    fn one_walk_answers_containment_and_merge_bases_for_a_queue() {
        let t = TempRepo::new();
        let main = t.git(&["rev-parse", "main"]);
        let a = t.branch("a", "a.txt", "a\n");
        let b = t.branch("b", "b.txt", "b\n");
        t.git(&["checkout", "-q", "-b", "c", "a"]);
        let c = t.commit_file("c.txt", "c\n", "c on a");
        t.git(&["checkout", "-q", "main"]);
        let repo = t.open();
        let beyond = repo.beyond(&[&a, &b, &c, &main], &main).unwrap();
        assert!(beyond.on_tip(&main));
        assert!(!beyond.on_tip(&a) && !beyond.on_tip(&c));
        assert!(beyond.reaches(&c, &a));
        assert!(!beyond.reaches(&a, &c) && !beyond.reaches(&b, &a));
        // Independent heads grow from main: that is their merge base, whatever was merged.
        assert_eq!(beyond.merge_base(&a, &[]), Some(main.clone()));
        assert_eq!(
            beyond.merge_base(&b, std::slice::from_ref(&a)),
            Some(main.clone())
        );
        // c shares a's commit: git must look for the base itself.
        assert_eq!(beyond.merge_base(&c, std::slice::from_ref(&a)), None);
        assert_eq!(
            beyond.merge_base(&c, std::slice::from_ref(&b)),
            Some(main.clone())
        );
        // Given the base, git's merge is the same as when it looks for it.
        let Merged::Clean(looked) = repo.merge_tree(&b, &a, None).unwrap() else {
            panic!("expected a clean merge");
        };
        assert_eq!(
            repo.merge_tree(&b, &a, Some(&main)).unwrap(),
            Merged::Clean(looked)
        );
        assert_eq!(
            repo.unreachable(&[&a, &main], &main).unwrap(),
            vec![a.clone()]
        );
    }

    #[test]
    fn conflicts_give_their_paths() {
        let t = TempRepo::new();
        let a = t.branch("a", "same.txt", "a\n");
        let b = t.branch("b", "same.txt", "b\n");
        let repo = t.open();
        assert_eq!(
            repo.merge_tree(&a, &b, None).unwrap(),
            Merged::Conflict(vec!["same.txt".into()])
        );
    }

    #[test]
    fn finds_where_a_branch_is_checked_out() {
        let t = TempRepo::new();
        let repo = t.open();
        let main = repo.checked_out("main").unwrap().unwrap();
        assert!(main.main);
        assert_eq!(repo.main_branch().unwrap().as_deref(), Some("main"));
        t.git(&["branch", "side"]);
        assert_eq!(repo.checked_out("side").unwrap(), None);
        let head = repo.branch_tip("main").unwrap().unwrap();
        let tmp = t.root().join("check");
        let wt = repo.temp_worktree(&tmp, &head).unwrap();
        assert!(wt.path.join("README.md").exists());
        drop(wt);
        assert!(!tmp.exists());
        assert_eq!(repo.registered_worktrees().unwrap().len(), 1);
    }
}
