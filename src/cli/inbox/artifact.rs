//! `git inbox artifact get`: stored bytes to a file (see `outfile`) or stdout.

use crate::cli::ctx::Ctx;
use crate::cli::outfile::OutputFile;
use crate::cli::output::write_stdout_bytes;
use crate::cli::output::Out;
use crate::cli::render::escape_path;
use crate::error::{Code, Error, Result};
use crate::inbox::{self, artifacts};
use clap::Subcommand;
use serde_json::json;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ArtifactCommand {
    /// Write an artifact's bytes to PATH or stdout
    Get {
        id: i64,
        /// Write to PATH instead of stdout (into PATH under the artifact's name when PATH is a directory)
        #[arg(short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

pub fn run(ctx: &mut Ctx, out: &Out, command: ArtifactCommand) -> Result<()> {
    match command {
        ArtifactCommand::Get { id, output } => get(ctx, out, id, output),
    }
}

pub fn get(ctx: &mut Ctx, out: &Out, id: i64, output: Option<PathBuf>) -> Result<()> {
    let meta = ctx.store()?.read(|tx| inbox::artifact(tx, id))?;
    let path = artifacts::blob_path(ctx.store()?.state_dir(), &meta.sha256);
    let read_blob =
        || File::open(&path).map_err(|e| Error::io(format!("reading {}", escape_path(&path)), e));
    match output {
        Some(dest) => {
            // Like cp: into a directory, under the artifact's own name.
            let dest = if dest.is_dir() {
                dest.join(&meta.name)
            } else {
                dest
            };
            let file = OutputFile::prepare(&dest)?;
            let mut blob = read_blob()?;
            file.write_with(|w| io::copy(&mut blob, w).map(drop))?;
            let data = json!({"artifact": meta, "path": crate::paths::lossy(&dest)});
            out.success(&data, || {
                format!(
                    "Wrote {} ({} bytes) to {}",
                    meta.name,
                    meta.size,
                    escape_path(&dest)
                )
            })
        }
        None if out.json => Err(Error::new(
            Code::Usage,
            "artifact bytes cannot share stdout with --json",
        )
        .hint("write them to a file with -o PATH")),
        None => {
            let mut bytes = Vec::new();
            read_blob()?
                .read_to_end(&mut bytes)
                .map_err(|e| Error::io(format!("reading {}", escape_path(&path)), e))?;
            write_stdout_bytes(&bytes)
        }
    }
}
