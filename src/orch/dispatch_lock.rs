//! The dispatch lock: how a reconcile tells a `preparing` attempt still being dispatched
//! from one whose dispatcher died.

use crate::error::Result;
use crate::orch::model::AttemptId;
use crate::store::lockfile;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Held by the process carrying a `preparing` attempt through the pipeline: a lock file
/// `<state>/dispatch/<attempt>.lock`. The kernel drops the lock when the process dies,
/// so a reconcile that can take it knows the attempt was abandoned mid-dispatch.
pub(crate) struct DispatchLock {
    path: PathBuf,
    file: Arc<File>,
}

impl DispatchLock {
    fn path(state_dir: &Path, attempt: AttemptId) -> PathBuf {
        state_dir.join("dispatch").join(format!("{attempt}.lock"))
    }

    /// Takes the lock of a new attempt (nobody else knows its id yet).
    pub(crate) fn acquire(state_dir: &Path, attempt: AttemptId) -> Result<DispatchLock> {
        let path = Self::path(state_dir, attempt);
        let file = lockfile::open(&path)?;
        lockfile::lock(&file, &path)?;
        Ok(DispatchLock {
            path,
            file: Arc::new(file),
        })
    }

    /// The open lock file, for a child process that must hold the lock while it lives.
    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// The lock of an attempt another process may still be dispatching; `None` while
    /// that process holds it.
    pub(crate) fn try_acquire(
        state_dir: &Path,
        attempt: AttemptId,
    ) -> Result<Option<DispatchLock>> {
        let path = Self::path(state_dir, attempt);
        let file = lockfile::open(&path)?;
        Ok(lockfile::try_lock(&file, &path)?.then(|| DispatchLock {
            path,
            file: Arc::new(file),
        }))
    }

    /// [`DispatchLock::try_acquire`] without making a lock file its dispatcher removed
    /// on finishing, unless `finished` (asked only then) says the attempt is still
    /// being dispatched: a dispatcher that could not undo.
    pub(crate) fn try_acquire_unless_finished(
        state_dir: &Path,
        attempt: AttemptId,
        finished: impl FnOnce() -> Result<bool>,
    ) -> Result<Option<DispatchLock>> {
        let path = Self::path(state_dir, attempt);
        let file = lockfile::try_lock_unless_finished(&path, finished)?;
        Ok(file.map(|file| DispatchLock {
            path,
            file: Arc::new(file),
        }))
    }
}

impl Drop for DispatchLock {
    fn drop(&mut self) {
        // Removed while still held: whoever opens it after us finds the attempt settled.
        let _ = std::fs::remove_file(&self.path);
    }
}
