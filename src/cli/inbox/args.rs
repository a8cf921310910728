//! What several inbox commands take or share: data and attachments, a thread id that
//! defaults to the worktree's, and waiting with a deadline.

use crate::cli::ctx::Ctx;
use crate::error::{Code, Error, Result};
use crate::inbox::artifacts;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// A JSON object to carry
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Read the JSON object from FILE (- for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub data_file: Option<PathBuf>,
    /// Attach a file (repeatable); stored by content hash under its base name
    #[arg(long, value_name = "PATH")]
    pub attach: Vec<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct ThreadArg {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
}

/// `--wait`/`--timeout` text to a deadline; `--wait` without a value waits forever, an
/// empty value (`--wait=`, `--timeout=`) is refused like any other bad duration.
pub fn deadline(text: Option<&str>) -> Result<Option<Instant>> {
    crate::cli::input::deadline(text)
}

pub fn timeout_error(what: &str) -> Error {
    Error::new(Code::Timeout, format!("timed out waiting for {what}"))
        .hint("wait longer with a larger timeout")
}

/// Hashes and stores attachments before any transaction; refuses bad ones first.
pub fn stage_attachments(
    ctx: &mut Ctx,
    paths: &[PathBuf],
) -> Result<Vec<artifacts::StagedArtifact>> {
    for path in paths {
        artifacts::check(path)?;
    }
    let state_dir = ctx.store()?.state_dir().to_path_buf();
    paths
        .iter()
        .map(|p| artifacts::stage(&state_dir, p))
        .collect()
}
