//! Is a worktree dirty, and where: gix status, with no process started.

use super::Repo;
use crate::error::{Code, Error, Result};
use gix::bstr::ByteSlice;
use std::path::Path;

/// Which changes count as dirty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Untracked {
    /// Only changes to tracked files, staged or not (the strict check's default).
    Ignore,
    /// Untracked files (not ignored ones) count too (`orch.strictUntracked=true`, cleanup).
    Include,
}

fn status_failed(err: impl std::fmt::Display) -> Error {
    Error::new(
        Code::GitFailed,
        format!("reading the worktree status: {err}"),
    )
    .hint("`git status` shows what is wrong with this worktree")
}

impl Repo {
    /// The repository-relative paths (with `/`) that make the worktree this `Repo` was
    /// opened for dirty: staged changes (HEAD against the index), unstaged changes to
    /// tracked files (index against the files), conflicts, and with
    /// [`Untracked::Include`] untracked files that are not ignored (a wholly untracked
    /// directory is listed once, as `dir/`). Sorted, without duplicates; empty when clean.
    /// Always the whole worktree, whatever the current directory is.
    pub fn dirty_paths(&self, untracked: Untracked) -> Result<Vec<String>> {
        let repo = self.gix();
        if repo.workdir().is_none() {
            return Ok(Vec::new());
        }
        // Read the index like git does, without checking its trailing checksum (git checks
        // it only in `fsck`): hashing a 5,000-file index cost a dispatch 9M instructions,
        // and gix's submodule lookup read it a second time. The index read here is the
        // one every handle of this repository shares, so the status below reuses it; the
        // handle that writes refreshed stats back still writes the checksum.
        let mut reader = repo.clone();
        reader
            .config_snapshot_mut()
            .set_value(&gix::config::tree::Index::SKIP_HASH, "true")
            .map_err(status_failed)?;
        let index = reader.index_or_empty().map_err(status_failed)?;
        let mut paths = staged_paths(repo, &index)?;
        let mut platform = repo
            .status(gix::progress::Discard)
            .map_err(status_failed)?
            .index(gix::worktree::IndexPersistedOrInMemory::Persisted(index))
            .index_worktree_rewrites(None)
            // A submodule counts when its commit moved, not for its own dirt.
            .index_worktree_submodules(gix::status::Submodule::Given {
                ignore: gix::submodule::config::Ignore::Dirty,
                check_dirty: false,
            });
        platform = match untracked {
            Untracked::Ignore => platform.untracked_files(gix::status::UntrackedFiles::None),
            Untracked::Include => platform
                .untracked_files(gix::status::UntrackedFiles::Collapsed)
                .dirwalk_options(|opts| opts.emit_ignored(None).empty_patterns_match_prefix(false)),
        };
        let mut iter = platform
            .into_index_worktree_iter(Vec::<gix::bstr::BString>::new())
            .map_err(status_failed)?;
        for item in iter.by_ref() {
            let item = item.map_err(status_failed)?;
            if let Some(path) = dirty_item_path(&item) {
                paths.push(path);
            }
        }
        // Like `git status`, store the refreshed file stats in the index, so the next
        // check need not hash every racily clean file again (a dispatch right after a
        // large checkout or commit otherwise re-reads them all, every time). Only stat
        // data changes; a failure (another git holds index.lock) just skips the saving.
        if let Some(outcome) = iter.outcome_mut() {
            if outcome.has_changes() {
                let _ = outcome.write_changes();
            }
        }
        paths.sort_unstable();
        paths.dedup();
        Ok(paths)
    }
}

/// Paths staged for the next commit: where HEAD's tree and the index differ. Git keeps
/// the tree each directory of the index amounts to (the cache-tree, written by every
/// commit, checkout and reset, dropped for a path that `add` or `rm` touches); when the
/// root's is valid and is HEAD's tree, nothing is staged and no tree need be read.
/// Otherwise the index is compared with HEAD's tree in full (17M instructions on 5,000
/// files, most of the old cost of a dispatch).
fn staged_paths(repo: &gix::Repository, index: &gix::index::File) -> Result<Vec<String>> {
    let head_tree = repo.head_tree_id_or_empty().map_err(status_failed)?;
    if index
        .tree()
        .is_some_and(|root| root.num_entries.is_some() && root.id == head_tree.detach())
    {
        return Ok(Vec::new());
    }
    let mut paths = Vec::new();
    repo.tree_index_status(
        &head_tree,
        index,
        None,
        gix::status::tree_index::TrackRenames::Disabled,
        |change, _, _| {
            paths.push(change.location().to_str_lossy().into_owned());
            Ok(std::ops::ControlFlow::Continue(()))
        },
    )
    .map_err(status_failed)?;
    Ok(paths)
}

/// The path an item of gix's index-to-worktree status makes dirty, if it does.
fn dirty_item_path(item: &gix::status::index_worktree::Item) -> Option<String> {
    use gix::status::index_worktree::Item as Worktree;
    use gix::status::plumbing::index_as_worktree::EntryStatus;
    match item {
        Worktree::Modification {
            rela_path, status, ..
        } => match status {
            // Only the stat data changed, the content did not.
            EntryStatus::NeedsUpdate(_) => None,
            EntryStatus::Change(_) | EntryStatus::Conflict { .. } | EntryStatus::IntentToAdd => {
                Some(rela_path.to_str_lossy().into_owned())
            }
        },
        Worktree::DirectoryContents { entry, .. } => match entry.status {
            gix::dir::entry::Status::Untracked => {
                let mut path = entry.rela_path.to_str_lossy().into_owned();
                if entry.disk_kind == Some(gix::dir::entry::Kind::Directory) {
                    path.push('/');
                }
                Some(path)
            }
            _ => None,
        },
        Worktree::Rewrite { dirwalk_entry, .. } => {
            Some(dirwalk_entry.rela_path.to_str_lossy().into_owned())
        }
    }
}

/// [`Repo::dirty_paths`] for the worktree at `path` (an attempt worktree, before cleanup).
pub fn worktree_dirty_paths(path: &Path, untracked: Untracked) -> Result<Vec<String>> {
    Repo::open_worktree(path)?.dirty_paths(untracked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::TempRepo;

    #[test]
    fn clean_repository_has_no_dirty_paths() {
        let t = TempRepo::new();
        let repo = t.open();
        assert!(repo.dirty_paths(Untracked::Ignore).unwrap().is_empty());
        assert!(repo.dirty_paths(Untracked::Include).unwrap().is_empty());
    }

    #[test]
    fn finds_unstaged_staged_and_untracked_paths() {
        let t = TempRepo::new();
        t.commit_file("src/keep.rs", "fn main() {}\n", "more");
        t.write(".gitignore", "target/\n*.log\n");
        t.git(&["add", ".gitignore"]);
        t.git(&["commit", "-q", "-m", "ignore"]);

        t.write("README.md", "changed\n"); // unstaged
        t.write("staged.txt", "new\n");
        t.git(&["add", "staged.txt"]); // staged
        t.write("notes/todo.txt", "untracked\n");
        t.write("loose.txt", "untracked\n");
        t.write("target/out.bin", "ignored\n");
        t.write("debug.log", "ignored\n");
        std::fs::remove_file(t.path().join("src/keep.rs")).unwrap(); // deleted, unstaged

        let repo = t.open();
        assert_eq!(
            repo.dirty_paths(Untracked::Ignore).unwrap(),
            ["README.md", "src/keep.rs", "staged.txt"]
        );
        assert_eq!(
            repo.dirty_paths(Untracked::Include).unwrap(),
            [
                "README.md",
                "loose.txt",
                "notes/",
                "src/keep.rs",
                "staged.txt"
            ]
        );
    }

    #[test]
    fn only_untracked_files_are_clean_unless_strict() {
        let t = TempRepo::new();
        t.write("new.txt", "x\n");
        let repo = t.open();
        assert!(repo.dirty_paths(Untracked::Ignore).unwrap().is_empty());
        assert_eq!(repo.dirty_paths(Untracked::Include).unwrap(), ["new.txt"]);
    }

    #[test]
    fn touching_a_file_without_changing_it_is_clean() {
        let t = TempRepo::new();
        t.write("README.md", "hello\n"); // same content, new mtime
        assert!(t.open().dirty_paths(Untracked::Include).unwrap().is_empty());
    }

    #[test]
    fn the_whole_worktree_counts_from_a_subdirectory() {
        let t = TempRepo::new();
        t.commit_file("sub/a.txt", "a\n", "sub");
        t.write("README.md", "changed\n");
        t.write("top-untracked.txt", "x\n");
        let repo = Repo::discover(&t.path().join("sub")).unwrap();
        assert_eq!(
            repo.dirty_paths(Untracked::Include).unwrap(),
            ["README.md", "top-untracked.txt"]
        );
    }

    #[test]
    fn one_change_among_five_thousand_files_is_found() {
        let t = TempRepo::new();
        for dir in 0..50 {
            for file in 0..100 {
                t.write(
                    &format!("d{dir:02}/f{file:03}.txt"),
                    &format!("{dir} {file}\n"),
                );
            }
        }
        t.git(&["add", "."]);
        t.git(&["commit", "-q", "-m", "five thousand files"]);
        let repo = t.open();
        assert!(repo.dirty_paths(Untracked::Include).unwrap().is_empty());
        t.write("d17/f042.txt", "changed\n");
        t.write("d49/new.txt", "new\n");
        assert_eq!(
            repo.dirty_paths(Untracked::Ignore).unwrap(),
            ["d17/f042.txt"]
        );
        assert_eq!(
            repo.dirty_paths(Untracked::Include).unwrap(),
            ["d17/f042.txt", "d49/new.txt"]
        );
    }

    /// Inside a hook git exports GIT_DIR and GIT_INDEX_FILE for the hook's worktree; a
    /// worktree opened by path must not see them. The check runs in a child process of
    /// this test binary, since the variables cannot be set safely in a threaded test.
    #[test]
    fn a_worktree_opened_by_path_ignores_hook_variables() {
        const PROBE: &str = "GIT_ORCH_TEST_OPEN_PROBE";
        if let Some(dir) = std::env::var_os(PROBE) {
            let dirty = worktree_dirty_paths(Path::new(&dir), Untracked::Include).unwrap();
            assert!(dirty.is_empty(), "saw the hook's worktree: {dirty:?}");
            return;
        }
        let t = TempRepo::new();
        let other = TempRepo::new();
        other.write("staged-elsewhere.txt", "x\n");
        other.git(&["add", "staged-elsewhere.txt"]);
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "repo::status::tests::a_worktree_opened_by_path_ignores_hook_variables",
                "--exact",
                "--test-threads=1",
            ])
            .env(PROBE, t.path())
            .env("GIT_DIR", other.path().join(".git"))
            .env("GIT_INDEX_FILE", other.path().join(".git/index"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        assert!(
            stdout.contains("1 passed"),
            "the probe did not run: {stdout}"
        );
    }

    #[test]
    fn staged_changes_count_when_the_index_tree_is_valid_but_not_heads() {
        // A soft reset keeps the commit's index, cache-tree and all: the index then
        // amounts to a valid tree that is not HEAD's, and the difference is staged.
        let t = TempRepo::new();
        t.commit_file("a.txt", "one\n", "add a");
        t.git(&["reset", "-q", "--soft", "HEAD~1"]);
        assert_eq!(t.open().dirty_paths(Untracked::Ignore).unwrap(), ["a.txt"]);
        // A fresh index from HEAD's tree (valid, HEAD's): nothing is staged.
        t.git(&["reset", "-q", "--mixed"]);
        t.git(&["read-tree", "HEAD"]);
        assert!(t.open().dirty_paths(Untracked::Ignore).unwrap().is_empty());
    }

    #[test]
    fn reverting_a_staged_change_in_the_files_still_counts() {
        // HEAD and the files agree, the index does not: `git commit` would change things.
        let t = TempRepo::new();
        t.write("README.md", "staged\n");
        t.git(&["add", "README.md"]);
        t.write("README.md", "hello\n");
        assert_eq!(
            t.open().dirty_paths(Untracked::Ignore).unwrap(),
            ["README.md"]
        );
    }
}
