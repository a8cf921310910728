//! Content-addressed artifact files under `<common>/orch/artifacts/`. Files are hashed and
//! stored before the message's transaction (no file I/O under the write lock); a file whose
//! transaction then fails is an unreferenced blob, never a half-written message.

use crate::error::{Code, Error, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const MAX_ARTIFACT_BYTES: u64 = 100 * 1024 * 1024;

/// An artifact as listed on a message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ArtifactRef {
    pub id: i64,
    pub name: String,
    pub sha256: String,
    pub size: i64,
}

/// A file already stored by content, waiting for its message row.
#[derive(Debug, Clone)]
pub struct StagedArtifact {
    pub name: String,
    pub sha256: String,
    pub size: u64,
}

/// Where the blob with `sha256` lives.
pub fn blob_path(state_dir: &Path, sha256: &str) -> PathBuf {
    state_dir.join("artifacts").join(&sha256[..2]).join(sha256)
}

/// Checks `source` (name and size) without reading it, so a bad attachment is refused
/// before anything is written.
pub fn check(source: &Path) -> Result<String> {
    let file_name = source.file_name().ok_or_else(|| {
        Error::invalid_input(format!(
            "cannot attach {}: it names no file",
            source.display()
        ))
        .hint("attach a file, e.g. --attach target/test.log")
    })?;
    let name = file_name
        .to_str()
        .filter(|n| !n.is_empty() && n.len() <= 255 && !n.chars().any(char::is_control))
        .ok_or_else(|| {
            Error::invalid_input(format!(
                "cannot attach {}: its file name must be UTF-8 text",
                source.display()
            ))
            .hint("rename the file, or attach a copy with a plain name")
        })?
        .to_owned();
    let meta = std::fs::metadata(source).map_err(|e| {
        Error::new(
            Code::NotFound,
            format!("cannot attach {}: {e}", source.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(Error::invalid_input(format!(
            "cannot attach {}: not a regular file",
            source.display()
        )));
    }
    if meta.len() > MAX_ARTIFACT_BYTES {
        return Err(too_large(source, meta.len()));
    }
    Ok(name)
}

fn too_large(source: &Path, size: u64) -> Error {
    Error::new(
        Code::TooLarge,
        format!(
            "{} is {size} bytes; an artifact may be at most 100 MiB",
            source.display()
        ),
    )
    .hint("attach a compressed or trimmed copy")
    .detail("size", size)
    .detail("limit", MAX_ARTIFACT_BYTES)
}

/// Copies `source` into the store under its SHA-256 (temp file, fsync, rename), enforcing
/// the size limit on the bytes actually read.
pub fn stage(state_dir: &Path, source: &Path) -> Result<StagedArtifact> {
    let name = check(source)?;
    let dir = state_dir.join("artifacts");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut input =
        File::open(source).map_err(|e| Error::io(format!("opening {}", source.display()), e))?;
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(format!("creating a temp file in {}", dir.display()), e))?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", source.display()), e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MAX_ARTIFACT_BYTES {
            return Err(too_large(source, size));
        }
        hasher.update(&buf[..n]);
        temp.write_all(&buf[..n])
            .map_err(|e| Error::io("writing artifact", e))?;
    }
    let sha256 = format!("{:x}", hasher.finalize());
    let dest = blob_path(state_dir, &sha256);
    if !dest.exists() {
        temp.as_file()
            .sync_all()
            .map_err(|e| Error::io("syncing artifact", e))?;
        let parent = dest.parent().expect("blob path has a parent");
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        temp.persist(&dest)
            .map_err(|e| Error::io(format!("storing {}", dest.display()), e.error))?;
    }
    Ok(StagedArtifact { name, sha256, size })
}

/// Stores `bytes` made by the program itself (a report) under `name`.
pub fn stage_bytes(state_dir: &Path, name: &str, bytes: &[u8]) -> Result<StagedArtifact> {
    let dir = state_dir.join("artifacts");
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let mut temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(format!("creating a temp file in {}", dir.display()), e))?;
    temp.write_all(bytes)
        .map_err(|e| Error::io("writing artifact", e))?;
    let staged = stage(state_dir, temp.path())?;
    Ok(StagedArtifact {
        name: name.to_owned(),
        ..staged
    })
}
