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
        let mut platform = repo
            .status(gix::progress::Discard)
            .map_err(status_failed)?
            .index_worktree_rewrites(None)
            .tree_index_track_renames(gix::status::tree_index::TrackRenames::Disabled)
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
            .into_iter(Vec::<gix::bstr::BString>::new())
            .map_err(status_failed)?;
        let mut paths = Vec::new();
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

/// The path an item of gix's status makes dirty, if it does.
fn dirty_item_path(item: &gix::status::Item) -> Option<String> {
    use gix::status::index_worktree::Item as Worktree;
    use gix::status::plumbing::index_as_worktree::EntryStatus;
    match item {
        gix::status::Item::TreeIndex(change) => Some(change.location().to_str_lossy().into_owned()),
        gix::status::Item::IndexWorktree(Worktree::Modification {
            rela_path, status, ..
        }) => match status {
            // Only the stat data changed, the content did not.
            EntryStatus::NeedsUpdate(_) => None,
            EntryStatus::Change(_) | EntryStatus::Conflict { .. } | EntryStatus::IntentToAdd => {
                Some(rela_path.to_str_lossy().into_owned())
            }
        },
        gix::status::Item::IndexWorktree(Worktree::DirectoryContents { entry, .. }) => {
            match entry.status {
                gix::dir::entry::Status::Untracked => {
                    let mut path = entry.rela_path.to_str_lossy().into_owned();
                    if entry.disk_kind == Some(gix::dir::entry::Kind::Directory) {
                        path.push('/');
                    }
                    Some(path)
                }
                _ => None,
            }
        }
        gix::status::Item::IndexWorktree(Worktree::Rewrite { dirwalk_entry, .. }) => {
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
