//! The environment every test gives git and our binaries, in one list for both harnesses:
//! the unit tests' `src/repo/testing.rs` and the integration tests' `tests/common/mod.rs`
//! (which includes this file by path), so the two cannot drift apart.
//!
//! Std only: the integration tests do not link the library.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// Inherited variables a test must not pass on: `GIT_*` (a hook's `GIT_DIR`, a shell's
/// `GIT_CONFIG_*`, an author date) and `ORCH_*` (our own identity and crash switches).
pub fn inherited_to_remove() -> Vec<OsString> {
    std::env::vars_os()
        .map(|(key, _)| key)
        .filter(|key| {
            let key = key.to_string_lossy();
            key.starts_with("GIT_") || key.starts_with("ORCH_")
        })
        .collect()
}

/// What replaces them: a home of the test's own, no system or global git config, fixed
/// identities and dates so commits are reproducible, and the C locale for git's messages.
pub fn hermetic_vars(home: &Path) -> Vec<(&'static str, OsString)> {
    let os = |s: &str| OsStr::new(s).to_owned();
    vec![
        ("HOME", home.as_os_str().to_owned()),
        ("XDG_CONFIG_HOME", home.join(".config").into_os_string()),
        ("GIT_CONFIG_NOSYSTEM", os("1")),
        (
            "GIT_CONFIG_GLOBAL",
            home.join(".gitconfig").into_os_string(),
        ),
        ("GIT_AUTHOR_NAME", os("Test Author")),
        ("GIT_AUTHOR_EMAIL", os("author@example.com")),
        ("GIT_COMMITTER_NAME", os("Test Committer")),
        ("GIT_COMMITTER_EMAIL", os("committer@example.com")),
        ("GIT_AUTHOR_DATE", os("2026-01-01T00:00:00Z")),
        ("GIT_COMMITTER_DATE", os("2026-01-01T00:00:00Z")),
        ("LC_ALL", os("C")),
        ("NO_COLOR", os("1")),
    ]
}
