//! Paths are bytes: git-orch handles them as `Path`/`OsStr` and turns one into text only
//! where text is the output (JSON, an error's details), here, by one rule: bytes that are
//! not UTF-8 become U+FFFD, as `git` does with `core.quotePath=false`. A path that must be
//! stored and used again (an attempt worktree) has to be UTF-8 and is refused otherwise;
//! see `docs/robustness.md`.

use serde::Serializer;
use std::path::Path;

/// The text a path shows as in JSON and messages (lossy: invalid UTF-8 becomes U+FFFD).
pub fn lossy(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether [`lossy`] loses anything for this path.
pub fn is_utf8(path: &Path) -> bool {
    path.to_str().is_some()
}

/// `#[serde(serialize_with = "crate::paths::serialize_opt")]` for an `Option<PathBuf>`
/// field: serde's own impl fails on a non-UTF-8 path, which would turn a report into an
/// error.
pub fn serialize_opt<S, P>(path: &Option<P>, serializer: S) -> Result<S::Ok, S::Error>
where
    S: Serializer,
    P: AsRef<Path>,
{
    match path {
        Some(path) => serializer.serialize_some(&path.as_ref().to_string_lossy()),
        None => serializer.serialize_none(),
    }
}
