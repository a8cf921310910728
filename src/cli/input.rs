//! What commands read besides their flags: text and JSON from flags, files or stdin, and
//! durations.

use crate::cli::render::escape_path;
use crate::error::{Code, Error, Result};
use serde_json::Value;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

// `--body TEXT` or `--body-file FILE`, as every command that posts text takes them. Not a
// doc comment: clap makes that the `about` of each subcommand flattening this, and with
// subcommands deferred it is applied after (so over) the subcommand's own.
#[derive(clap::Args, Debug)]
pub struct BodyArgs {
    /// The text
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,
    /// Read the text from FILE (- for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "body")]
    pub body_file: Option<PathBuf>,
}

impl BodyArgs {
    /// `--body`, `--body-file F` or `--body-file -` (stdin); empty when neither is given.
    pub fn read(self) -> Result<String> {
        match (self.body, self.body_file.as_deref()) {
            (Some(_), Some(_)) => Err(Error::new(
                Code::Usage,
                "give --body or --body-file, not both",
            )),
            (Some(body), None) => Ok(body),
            (None, Some(path)) => read_text_input(path, "body"),
            (None, None) => Ok(String::new()),
        }
    }
}

/// Reads a file (or stdin for `-`) as UTF-8 text, refusing more than `limit` bytes early.
/// Anything that can be read from is taken (a FIFO, `/dev/fd/N` of a process
/// substitution, a device); a directory is the caller's mistake, not an I/O failure.
pub fn read_text_input(path: &Path, what: &str) -> Result<String> {
    const LIMIT: u64 = 4 * 1024 * 1024;
    let mut bytes = Vec::new();
    let shown = || escape_path(path);
    let outcome = if path == Path::new("-") {
        io::stdin().lock().take(LIMIT + 1).read_to_end(&mut bytes)
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            let code = if e.kind() == io::ErrorKind::NotFound {
                Code::NotFound
            } else {
                Code::Io
            };
            Error::new(code, format!("cannot read {what} file {}: {e}", shown()))
        })?;
        // Linux opens a directory for reading and fails only at the first read.
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::invalid_input(format!(
                "cannot read {what} file {}: it is a directory",
                shown()
            ))
            .hint("name a file, or - for stdin")
            .detail("path", path.to_string_lossy().into_owned()));
        }
        file.take(LIMIT + 1).read_to_end(&mut bytes)
    };
    outcome.map_err(|e| Error::io(format!("reading {}", shown()), e))?;
    if bytes.len() as u64 > LIMIT {
        return Err(Error::new(
            Code::TooLarge,
            format!("the {what} is larger than the limit of 4 MiB"),
        )
        .detail("limit_bytes", LIMIT));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::invalid_input(format!("the {what} in {} is not UTF-8 text", shown()))
            .hint("attach binary files with --attach instead")
    })
}

/// `--data JSON` or `--data-file F`.
pub fn read_json_arg(
    what: &str,
    text: Option<String>,
    file: Option<&Path>,
) -> Result<Option<Value>> {
    let text = match (text, file) {
        (Some(_), Some(_)) => {
            return Err(Error::new(
                Code::Usage,
                format!("give --{what} or --{what}-file, not both"),
            ))
        }
        (Some(text), None) => text,
        (None, Some(path)) => read_text_input(path, what)?,
        (None, None) => return Ok(None),
    };
    crate::inbox::parse_json(what, &text).map(Some)
}

/// `--timeout D` as a deadline from now; none without the flag.
pub fn deadline(timeout: Option<&str>) -> Result<Option<Instant>> {
    timeout
        .map(|t| Ok(Instant::now() + crate::time::parse_duration(t)?))
        .transpose()
}
