//! The attempt marker: a small JSON file in a linked worktree's private git dir that
//! says which attempt the worktree is, so hooks and `git inbox` know without a query.
//! It never shows in the worktree (git does not track its own dir).

use crate::error::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Name of the attempt marker file in a linked worktree's private git dir.
pub const ATTEMPT_MARKER: &str = "orch-attempt";

/// What an attempt worktree knows about itself, without a database query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AttemptMarker {
    pub run: String,
    pub task: String,
    pub attempt: i64,
    pub thread: i64,
    pub agent: Option<String>,
}

pub fn read_attempt_marker(git_dir: &Path) -> Result<Option<AttemptMarker>> {
    let path = git_dir.join(ATTEMPT_MARKER);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            Error::new(
                Code::InvalidInput,
                format!("unreadable attempt marker {}: {err}", path.display()),
            )
            .hint("the marker is written by `git orch dispatch`; run `git orch reconcile`")
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io(format!("reading {}", path.display()), err)),
    }
}

/// Writes the attempt marker into a worktree's private git dir, atomically (a reader
/// sees the old marker or the new one, never half of one).
pub fn write_attempt_marker(git_dir: &Path, marker: &AttemptMarker) -> Result<()> {
    let mut text = serde_json::to_vec(marker)?;
    text.push(b'\n');
    let tmp = tempfile::Builder::new()
        .prefix(".orch-attempt")
        .tempfile_in(git_dir)
        .map_err(|e| {
            Error::io(
                format!("writing the attempt marker in {}", git_dir.display()),
                e,
            )
        })?;
    std::fs::write(tmp.path(), &text).map_err(|e| Error::io("writing the attempt marker", e))?;
    tmp.persist(git_dir.join(ATTEMPT_MARKER))
        .map_err(|e| Error::io("writing the attempt marker", e.error))?;
    Ok(())
}

/// Removes the marker (the worktree is no longer an attempt's); whether there was one.
#[cfg(test)]
pub fn remove_attempt_marker(git_dir: &Path) -> Result<bool> {
    match std::fs::remove_file(git_dir.join(ATTEMPT_MARKER)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("removing the attempt marker", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::testing::{git_in, TempRepo};
    use crate::repo::{AttemptName, Repo};

    fn name(task: &str, n: u32) -> AttemptName {
        AttemptName::new("r1", task, n).unwrap()
    }

    #[test]
    fn marker_round_trip_in_the_private_git_dir() {
        let t = TempRepo::new();
        let repo = t.open();
        let base = repo.resolve_commit("HEAD").unwrap().sha;
        let wt = repo
            .create_attempt_worktree(&name("m", 1), &base)
            .unwrap()
            .keep();
        let marker = AttemptMarker {
            run: "r1".into(),
            task: "m".into(),
            attempt: 7,
            thread: 12,
            agent: None,
        };
        wt.write_marker(&marker).unwrap();
        assert_eq!(
            read_attempt_marker(&wt.git_dir).unwrap(),
            Some(marker.clone())
        );
        // Seen from inside the worktree, as `git inbox` discovers it.
        let inside = Repo::discover(&wt.path).unwrap();
        assert_eq!(inside.attempt_marker().unwrap(), Some(marker));
        // Nothing shows in the worktree or the main one.
        assert!(git_in(&wt.path, &["status", "--porcelain", "--ignored"]).is_empty());
        assert!(t.open().attempt_marker().unwrap().is_none());

        assert!(remove_attempt_marker(&wt.git_dir).unwrap());
        assert!(!remove_attempt_marker(&wt.git_dir).unwrap());
        assert!(read_attempt_marker(&wt.git_dir).unwrap().is_none());
    }
}
