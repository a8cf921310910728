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

/// What trying a lock file that may be gone came to: the lock (the open file, or what a
/// caller wraps it in), held by another process, or no such file (its last holder
/// removed it, or it was never made).
pub enum Tried<L = File> {
    Taken(L),
    Held,
    Gone,
}

impl Tried {
    /// The taken file wrapped as the caller's lock type.
    pub fn map<L>(self, wrap: impl FnOnce(File) -> L) -> Tried<L> {
        match self {
            Tried::Taken(file) => Tried::Taken(wrap(file)),
            Tried::Held => Tried::Held,
            Tried::Gone => Tried::Gone,
        }
    }
}

/// Takes the lock at `path` when the file exists and nobody holds it. Never creates it:
/// a holder that removes its lock file when done leaves nothing to take, and a file
/// made only to be taken and removed again costs an inode each time.
pub fn try_existing(path: &Path) -> Result<Tried> {
    let file = match File::options().read(true).write(true).open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Tried::Gone),
        Err(e) => return Err(Error::io(format!("opening {}", path.display()), e)),
    };
    Ok(if try_lock(&file, path)? {
        Tried::Taken(file)
    } else {
        Tried::Held
    })
}
