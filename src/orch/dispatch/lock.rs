//! The dispatch lock: how a reconcile tells a `preparing` attempt still being dispatched
//! from one whose dispatcher died.

use crate::error::{Error, Result};
use crate::orch::model::AttemptId;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Held by the process carrying a `preparing` attempt through the pipeline: a lock file
/// `<state>/dispatch/<attempt>.lock`. The kernel drops the lock when the process dies,
/// so a reconcile that can take it knows the attempt was abandoned mid-dispatch.
pub(crate) struct DispatchLock {
    path: PathBuf,
    _file: File,
}

impl DispatchLock {
    fn path(state_dir: &Path, attempt: AttemptId) -> PathBuf {
        state_dir.join("dispatch").join(format!("{attempt}.lock"))
    }

    fn open(state_dir: &Path, attempt: AttemptId) -> Result<(PathBuf, File)> {
        let path = Self::path(state_dir, attempt);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok((path, file))
    }

    /// Takes the lock of a new attempt (nobody else knows its id yet).
    pub(crate) fn acquire(state_dir: &Path, attempt: AttemptId) -> Result<DispatchLock> {
        let (path, file) = Self::open(state_dir, attempt)?;
        file.lock()
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(DispatchLock { path, _file: file })
    }

    /// The lock of an attempt another process may still be dispatching; `None` while
    /// that process holds it.
    pub(crate) fn try_acquire(
        state_dir: &Path,
        attempt: AttemptId,
    ) -> Result<Option<DispatchLock>> {
        let (path, file) = Self::open(state_dir, attempt)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DispatchLock { path, _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(format!("locking {}", path.display()), e))
            }
        }
    }
}

impl Drop for DispatchLock {
    fn drop(&mut self) {
        // Removed while still held: whoever opens it after us finds the attempt settled.
        let _ = std::fs::remove_file(&self.path);
    }
}
