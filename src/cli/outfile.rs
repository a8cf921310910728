//! Files a user names as output (`artifact get -o`, `council report -o`): written so that
//! what the path points at is never destroyed.
//!
//! - a missing path or a regular file is replaced atomically: a temp file in the same
//!   directory, synced, renamed over it, with the old file's mode (a new one gets
//!   `0666` less the umask, as `>` would);
//! - a FIFO, a character device or a terminal is opened and written into, as a shell
//!   redirection would (`-o /dev/null`, `-o /dev/stdout`, `-o >(gzip > x.gz)`);
//! - a symbolic link is followed: the file it points at is written by the rules above and
//!   the link stays a link; a dangling link makes its target;
//! - a directory, a block device or a socket is `invalid_input`, checked before the
//!   command writes anything else.

use crate::cli::render::escape_path;
use crate::error::{Error, Result};
use std::fs::{self, Permissions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where a command will write: checked by [`OutputFile::prepare`] before the command acts,
/// written by [`OutputFile::write_with`] after.
#[derive(Debug)]
pub struct OutputFile {
    target: PathBuf,
    how: How,
}

#[derive(Debug, PartialEq)]
enum How {
    /// A new file, or a regular file replaced; `Some` keeps the old file's mode.
    Replace(Option<Permissions>),
    /// A FIFO, a character device or a terminal: written into, never replaced.
    Stream,
}

/// The most links followed, like the kernel's `ELOOP` limit.
const MAX_LINKS: usize = 40;

impl OutputFile {
    /// Looks at `path` without writing: follows links, refuses what must not be written.
    pub fn prepare(path: &Path) -> Result<OutputFile> {
        let (target, meta) = follow_links(path)?;
        let Some(meta) = meta else {
            if target.as_os_str().as_bytes().ends_with(b"/") {
                return Err(refused(path, "it names a directory that does not exist"));
            }
            return Ok(OutputFile {
                target,
                how: How::Replace(None),
            });
        };
        let kind = meta.file_type();
        let how = if kind.is_file() {
            How::Replace(Some(meta.permissions()))
        } else if kind.is_fifo() || kind.is_char_device() {
            How::Stream
        } else if kind.is_dir() {
            return Err(
                refused(path, "it is a directory").hint("name a file in it, e.g. -o DIR/out")
            );
        } else if kind.is_block_device() {
            return Err(refused(path, "it is a block device"));
        } else {
            return Err(refused(
                path,
                "it is not a file, a FIFO or a character device",
            ));
        };
        Ok(OutputFile { target, how })
    }

    /// Writes what `write` produces: into a temp file renamed over the target, or straight
    /// into a FIFO or device. A failure leaves a replaced file as it was.
    pub fn write_with(&self, write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
        let shown = escape_path(&self.target);
        match &self.how {
            How::Stream => {
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .open(&self.target)
                    .map_err(|e| Error::io(format!("opening {shown}"), e))?;
                write(&mut file)
                    .and_then(|()| file.flush())
                    .map_err(|e| Error::io(format!("writing {shown}"), e))
            }
            How::Replace(mode) => {
                let dir = match self.target.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let mut builder = tempfile::Builder::new();
                builder.prefix(".git-orch-").suffix(".tmp");
                // The kernel applies the umask to this mode, as it does for `>`.
                builder.permissions(Permissions::from_mode(0o666));
                let mut temp = builder
                    .tempfile_in(dir)
                    .map_err(|e| Error::io(format!("writing into {}", escape_path(dir)), e))?;
                if let Some(mode) = mode {
                    fs::set_permissions(temp.path(), mode.clone())
                        .map_err(|e| Error::io(format!("writing {shown}"), e))?;
                }
                write(temp.as_file_mut())
                    .and_then(|()| temp.as_file_mut().flush())
                    .and_then(|()| temp.as_file().sync_all())
                    .map_err(|e| Error::io(format!("writing {shown}"), e))?;
                temp.persist(&self.target)
                    .map_err(|e| Error::io(format!("writing {shown}"), e.error))?;
                Ok(())
            }
        }
    }
}

/// `path` with every symbolic link in its last component followed, and what is there
/// (`None`: nothing yet). Links in the directories above are the kernel's to follow.
fn follow_links(path: &Path) -> Result<(PathBuf, Option<fs::Metadata>)> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((current, None)),
            Err(e) => return Err(Error::io(format!("looking at {}", escape_path(path)), e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok((current, Some(meta)));
        }
        let link = fs::read_link(&current)
            .map_err(|e| Error::io(format!("reading the link {}", escape_path(&current)), e))?;
        current = match current.parent() {
            Some(dir) if link.is_relative() => dir.join(link),
            _ => link,
        };
    }
    Err(refused(path, "too many levels of symbolic links"))
}

fn refused(path: &Path, why: &str) -> Error {
    Error::invalid_input(format!("cannot write {}: {why}", escape_path(path)))
        .detail("path", path.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;
    use std::os::unix::fs::{symlink, MetadataExt};

    fn write(path: &Path, text: &str) -> Result<()> {
        OutputFile::prepare(path)?.write_with(|w| w.write_all(text.as_bytes()))
    }

    #[test]
    fn a_new_file_is_made_with_the_mode_a_redirection_gives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.md");
        write(&path, "hello").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "hello");
        let plain = dir.path().join("plain");
        fs::File::create(&plain).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(mode(&path), mode(&plain));
        // No temp file is left beside it.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_regular_file_is_replaced_keeping_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.md");
        fs::write(&path, "old text, longer than the new").unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o640)).unwrap();
        let before = fs::metadata(&path).unwrap().ino();
        write(&path, "new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let after = fs::metadata(&path).unwrap();
        assert_ne!(
            after.ino(),
            before,
            "replaced by a rename, not rewritten in place"
        );
        assert_eq!(after.mode() & 0o7777, 0o640);
    }

    #[test]
    fn a_failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.md");
        fs::write(&path, "precious").unwrap();
        let err = OutputFile::prepare(&path)
            .unwrap()
            .write_with(|w| {
                w.write_all(b"half")?;
                Err(io::Error::other("the source broke"))
            })
            .unwrap_err();
        assert_eq!(err.code, Code::Io);
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_link_is_followed_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.md");
        fs::write(&real, "old").unwrap();
        let link = dir.path().join("link.md");
        symlink("real.md", &link).unwrap();
        write(&link, "new").unwrap();
        assert!(fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");

        // A dangling link makes its target, as `>` does; a chain is followed to its end.
        let chain = dir.path().join("chain");
        symlink("dangling", &chain).unwrap();
        symlink("sub/made.md", dir.path().join("dangling")).unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        write(&chain, "made").unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("sub/made.md")).unwrap(),
            "made"
        );

        let looped = dir.path().join("loop");
        symlink("loop", &looped).unwrap();
        assert_eq!(write(&looped, "x").unwrap_err().code, Code::InvalidInput);
    }

    #[test]
    fn a_directory_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let err = OutputFile::prepare(dir.path()).unwrap_err();
        assert_eq!(err.code, Code::InvalidInput);
        let missing = dir.path().join("nope/");
        assert_eq!(
            OutputFile::prepare(&missing).unwrap_err().code,
            Code::InvalidInput
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
