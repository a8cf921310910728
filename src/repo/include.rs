//! `.worktreeinclude`: ignored files of the main worktree (a `.env`, local config) that a
//! new attempt worktree gets a copy of, so an agent's build and tests run there as they
//! do at home. The file holds gitignore patterns; a file is copied when it is ignored by
//! the repository's own rules *and* matches one of them, so nothing tracked, and nothing
//! merely untracked, is ever copied by accident.
//!
//! Copies never overwrite (a tracked file of the worktree wins) and never go through a
//! symlink that leaves either tree: a source whose real path is outside the main worktree
//! is skipped, and so is a destination under a symlinked folder of the new worktree.

use super::git::git;
use super::Repo;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};

pub const INCLUDE_FILE: &str = ".worktreeinclude";

/// What one copy pass did, paths relative to the worktree.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Included {
    pub copied: Vec<String>,
    /// Matched but left alone: already in the worktree, a symlink out, not a file.
    pub skipped: Vec<String>,
}

impl Repo {
    /// Copies into `worktree` the ignored files of the main worktree that
    /// `.worktreeinclude` names. Nothing to do without a main worktree or that file.
    pub fn copy_worktree_includes(&self, worktree: &Path) -> Result<Included> {
        let Some(main) = self.main_worktree()? else {
            return Ok(Included::default());
        };
        let patterns = main.join(INCLUDE_FILE);
        if !patterns.is_file() {
            return Ok(Included::default());
        }
        let list = |extra: &[&std::ffi::OsStr]| -> Result<BTreeSet<PathBuf>> {
            let out = git(&main)
                .args(["ls-files", "-z", "--others", "--ignored"])
                .args(extra)
                .run()?;
            Ok(out
                .stdout
                .split(|b| *b == 0)
                .filter(|p| !p.is_empty())
                .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
                .collect())
        };
        let ignored = list(&["--exclude-standard".as_ref()])?;
        let mut exclude_from = std::ffi::OsString::from("--exclude-from=");
        exclude_from.push(&patterns);
        let named = list(&[exclude_from.as_os_str()])?;
        let worktree = worktree
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", worktree.display()), e))?;
        let mut done = Included::default();
        for rel in ignored.intersection(&named) {
            let shown = crate::paths::lossy(rel);
            if !is_plain_relative(rel) {
                done.skipped.push(shown);
                continue;
            }
            match copy_one(&main, &worktree, rel) {
                Ok(true) => done.copied.push(shown),
                Ok(false) => done.skipped.push(shown),
                Err(e) => {
                    return Err(Error::io(
                        format!("copying {shown} (named by {INCLUDE_FILE}) into the worktree"),
                        e,
                    ))
                }
            }
        }
        Ok(done)
    }
}

fn is_plain_relative(rel: &Path) -> bool {
    rel.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Copies one file; false when it is left alone.
fn copy_one(main: &Path, worktree: &Path, rel: &Path) -> io::Result<bool> {
    let source = match main.join(rel).canonicalize() {
        Ok(real) if real.starts_with(main) => real,
        // A symlink (or a symlinked folder) out of the repository, or gone meanwhile.
        _ => return Ok(false),
    };
    let meta = std::fs::metadata(&source)?;
    if !meta.is_file() {
        return Ok(false);
    }
    // Make the folders one by one, refusing to go through anything that is not a plain
    // folder: a tracked symlink in the worktree could point anywhere.
    let mut dir = worktree.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in parents {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::create_dir(&dir)?,
            Err(e) => return Err(e),
        }
    }
    let dest = worktree.join(rel);
    // create_new: never overwrites, and does not follow a symlink at the destination.
    let mut out = match File::options().write(true).create_new(true).open(&dest) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e),
    };
    io::copy(&mut File::open(&source)?, &mut out)?;
    out.set_permissions(meta.permissions())?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use crate::repo::testing::TempRepo;
    use crate::repo::AttemptName;
    use std::os::unix::fs::symlink;

    #[test]
    fn copies_ignored_named_files_and_nothing_else() {
        let repo = TempRepo::new();
        let root = repo.path().to_path_buf();
        std::fs::write(
            root.join(".gitignore"),
            ".env\nlocal/\nsecret.txt\nout.txt\nlinked\n",
        )
        .unwrap();
        std::fs::write(root.join(INCLUDE), ".env\nlocal/\nlinked\ntracked.txt\n").unwrap();
        std::fs::write(root.join("tracked.txt"), "tracked\n").unwrap();
        repo.git(&["add", ".gitignore", INCLUDE, "tracked.txt"]);
        repo.git(&["commit", "-qm", "ignore rules"]);
        std::fs::write(root.join(".env"), "KEY=1\n").unwrap();
        std::fs::create_dir_all(root.join("local/deep")).unwrap();
        std::fs::write(root.join("local/deep/conf"), "x\n").unwrap();
        std::fs::write(root.join("secret.txt"), "ignored but not named\n").unwrap();
        std::fs::write(root.join("untracked.txt"), "named? no: not ignored\n").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("target"), "outside\n").unwrap();
        symlink(outside.path().join("target"), root.join("linked")).unwrap();

        let opened = repo.open();
        let name = AttemptName::new("r1", "a", 1).unwrap();
        let head = repo.git(&["rev-parse", "HEAD"]);
        let guard = opened.create_attempt_worktree(&name, head.trim()).unwrap();
        let wt = guard.keep();
        let env = std::fs::read_to_string(wt.path.join(".env")).unwrap();
        assert_eq!(env, "KEY=1\n");
        assert_eq!(
            std::fs::read_to_string(wt.path.join("local/deep/conf")).unwrap(),
            "x\n"
        );
        assert!(!wt.path.join("secret.txt").exists(), "ignored, not named");
        assert!(!wt.path.join("untracked.txt").exists(), "named nowhere");
        assert!(
            !wt.path.join("linked").exists(),
            "a symlink out of the repository is not followed"
        );
        assert_eq!(
            std::fs::read_to_string(wt.path.join("tracked.txt")).unwrap(),
            "tracked\n"
        );
    }

    #[test]
    fn never_overwrites_and_never_writes_through_a_symlinked_folder() {
        let repo = TempRepo::new();
        let root = repo.path().to_path_buf();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(root.join(".gitignore"), "conf/.env\nnotes\n").unwrap();
        std::fs::write(root.join(INCLUDE), "conf/.env\nnotes\n").unwrap();
        // The attempt's base has `conf` as a symlink out of the repository, and `notes`
        // tracked; the main worktree has moved on to a real `conf/` folder.
        symlink(outside.path(), root.join("conf")).unwrap();
        std::fs::write(root.join("notes"), "tracked\n").unwrap();
        repo.git(&["add", "-f", ".gitignore", INCLUDE, "conf", "notes"]);
        repo.git(&["commit", "-qm", "a symlinked folder"]);
        let base = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["rm", "-q", "--cached", "conf", "notes"]);
        repo.git(&["commit", "-qm", "conf is local now"]);
        std::fs::remove_file(root.join("conf")).unwrap();
        std::fs::create_dir(root.join("conf")).unwrap();
        std::fs::write(root.join("conf/.env"), "KEY=1\n").unwrap();
        std::fs::write(root.join("notes"), "mine, ignored now\n").unwrap();

        let name = AttemptName::new("r1", "a", 1).unwrap();
        let guard = repo
            .open()
            .create_attempt_worktree(&name, base.trim())
            .unwrap();
        let wt = guard.keep();
        assert_eq!(
            std::fs::read_to_string(wt.path.join("notes")).unwrap(),
            "tracked\n",
            "a tracked file of the worktree is never overwritten"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written through the worktree's symlinked folder"
        );
    }

    const INCLUDE: &str = super::INCLUDE_FILE;
}
