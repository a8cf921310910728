//! Lock files under the state dir. A lock is held by an open file, so the kernel drops
//! it when the process dies: whoever can take one knows its last holder is gone. What
//! the file is named, and whether it is removed, is each holder's business.

use crate::error::{Error, Result};
use std::fs::{File, TryLockError};
use std::path::Path;

/// Opens the lock file at `path`, creating it and its folder. Never truncated, so what a
/// holder wrote into it stays readable; readable, so it can be handed to a child as stdin.
pub fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

/// Takes the lock of `file` (opened from `path`), waiting while another holds it.
pub fn lock(file: &File, path: &Path) -> Result<()> {
    file.lock()
        .map_err(|e| Error::io(format!("locking {}", path.display()), e))
}

/// Takes the lock of `file` (opened from `path`) when it is free; false while another
/// process holds it.
pub fn try_lock(file: &File, path: &Path) -> Result<bool> {
    match file.try_lock() {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

/// Takes the lock at `path` when nobody holds it, for a holder that removes its lock
/// file when it is done. A missing file is made again (and taken) only when
/// `holder_finished` says no: a file made only to be taken and removed again costs an
/// inode every time, and a holder that died before it could finish left its file.
pub fn try_lock_unless_finished(
    path: &Path,
    holder_finished: impl FnOnce() -> Result<bool>,
) -> Result<Option<File>> {
    let file = match File::options().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if holder_finished()? {
                return Ok(None);
            }
            open(path)?
        }
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    Ok(try_lock(&file, path)?.then_some(file))
}
