//! What several inbox commands take or share: data and attachments, a thread id that
//! defaults to the worktree's, and waiting with a deadline.

use crate::cli::ctx::Ctx;
use crate::cli::input::{deadline, read_json_arg, BodyArgs};
use crate::error::{Code, Error, Result};
use crate::inbox::artifacts::{self, StagedArtifact};
use crate::inbox::Note;
use serde_json::Value;
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

/// `--wait[=D]`: none without the flag; with it, the deadline, none when `--wait` has no
/// value (wait forever). An empty value (`--wait=`) is refused like any bad duration.
pub fn wait_deadline(wait: Option<&Option<String>>) -> Result<Option<Option<Instant>>> {
    wait.map(|w| deadline(w.as_deref())).transpose()
}

pub fn timeout_error(what: &str) -> Error {
    Error::new(Code::Timeout, format!("timed out waiting for {what}"))
        .hint("wait longer with a larger timeout")
}

/// Hashes and stores attachments before any transaction; refuses bad ones first.
pub fn stage_attachments(ctx: &mut Ctx, paths: &[PathBuf]) -> Result<Vec<StagedArtifact>> {
    for path in paths {
        artifacts::check(path)?;
    }
    let state_dir = ctx.store()?.state_dir().to_path_buf();
    paths
        .iter()
        .map(|p| artifacts::stage(&state_dir, p))
        .collect()
}

/// A message's body, data and attachments as the command line gives them.
pub struct NoteInput {
    pub body: String,
    pub data: Option<Value>,
    pub staged: Vec<StagedArtifact>,
}

impl NoteInput {
    /// Reads the body and data and runs `check` on them before any attachment is
    /// stored, so that bad input never leaves a blob behind.
    pub fn read(
        ctx: &mut Ctx,
        body: BodyArgs,
        data: DataArgs,
        check: impl FnOnce(&Note<'_>) -> Result<()>,
    ) -> Result<Self> {
        let body = body.read()?;
        let value = read_json_arg("data", data.data, data.data_file.as_deref())?;
        check(&Note {
            body: &body,
            data: value.as_ref(),
            artifacts: &[],
        })?;
        let staged = stage_attachments(ctx, &data.attach)?;
        Ok(NoteInput {
            body,
            data: value,
            staged,
        })
    }

    pub fn note(&self) -> Note<'_> {
        Note {
            body: &self.body,
            data: self.data.as_ref(),
            artifacts: &self.staged,
        }
    }
}
