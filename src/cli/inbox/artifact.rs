//! `git inbox artifact get`: stored bytes to a file or stdout.

use crate::cli::ctx::Ctx;
use crate::cli::output::write_stdout_bytes;
use crate::cli::output::Out;
use crate::error::{Code, Error, Result};
use crate::inbox::{self, artifacts};
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
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
    match output {
        Some(dest) => {
            // Like cp: into a directory, under the artifact's own name.
            let dest = if dest.is_dir() {
                dest.join(&meta.name)
            } else {
                dest
            };
            copy_atomically(&path, &dest)?;
            let data = json!({"artifact": meta, "path": crate::paths::lossy(&dest)});
            out.success(&data, || {
                format!(
                    "Wrote {} ({} bytes) to {}",
                    meta.name,
                    meta.size,
                    dest.display()
                )
            })
        }
        None if out.json => Err(Error::new(
            Code::Usage,
            "artifact bytes cannot share stdout with --json",
        )
        .hint("write them to a file with -o PATH")),
        None => {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
            write_stdout_bytes(&bytes)
        }
    }
}

fn copy_atomically(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(format!("writing into {}", dir.display()), e))?;
    std::fs::copy(from, temp.path())
        .map_err(|e| Error::io(format!("copying {}", from.display()), e))?;
    temp.persist(to)
        .map_err(|e| Error::io(format!("writing {}", to.display()), e.error))?;
    Ok(())
}
