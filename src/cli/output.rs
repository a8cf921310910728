//! Where output goes: one JSON document (or one object per line for streams) on stdout,
//! or text for people, with control characters escaped (`render::escape_lines`); errors
//! as the wire format of SPEC §3.

use crate::cli::render::escape_lines;
use crate::error::{Error, Kind, Result};
use serde::Serialize;
use serde_json::json;
use std::io::{self, Write};
use std::process::ExitCode;

/// Where output goes: one JSON document, or text for people.
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints a command's result: `{"ok": true, "data": …}` or the human text.
    pub fn success(&self, data: &impl Serialize, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            // Serialized straight from `data`: no intermediate `Value` tree, which for a
            // large status is most of the command's time.
            #[derive(Serialize)]
            struct Doc<'a, T: Serialize> {
                ok: bool,
                data: &'a T,
            }
            // Written as it is serialized: a large status is never held twice more in
            // memory (as a string, then as the line with its newline).
            let mut stdout = io::BufWriter::with_capacity(64 * 1024, io::stdout().lock());
            serde_json::to_writer(&mut stdout, &Doc { ok: true, data })
                .map_err(|e| Error::output(e.into()))?;
            stdout
                .write_all(b"\n")
                .and_then(|()| stdout.flush())
                .map_err(Error::output)
        } else {
            let text = human();
            if text.is_empty() {
                return Ok(());
            }
            print_text(&escape_lines(&text))
        }
    }

    /// [`Out::success`] for a document written as it is produced (JSON mode): `data`
    /// writes the value under `"data"`, piece by piece. For documents too large to hold,
    /// such as the tasks of a 100k-task run.
    pub fn success_streamed(&self, data: impl FnOnce(&mut JsonSink) -> Result<()>) -> Result<()> {
        let mut sink = JsonSink {
            stdout: io::BufWriter::with_capacity(64 * 1024, unbuffered_stdout()?),
        };
        // The envelope `success` serializes, byte for byte.
        sink.raw(r#"{"ok":true,"data":"#)?;
        data(&mut sink)?;
        sink.raw("}\n")?;
        sink.stdout.flush().map_err(Error::output)
    }

    /// Text for people written as it is produced, line by line, each escaped as a page
    /// is: a table of a 100k-task run never sits in memory whole.
    pub fn text_stream(&self, write: impl FnOnce(&mut TextSink<'_>) -> Result<()>) -> Result<()> {
        let mut sink = TextSink {
            stdout: io::BufWriter::with_capacity(64 * 1024, io::stdout().lock()),
        };
        write(&mut sink)?;
        sink.stdout.flush().map_err(Error::output)
    }

    /// A warning for people, on stderr whatever the mode: stdout stays one document.
    /// Escaped like errors: warnings quote paths and file names.
    pub fn warn(&self, text: &str) {
        let _ = writeln!(io::stderr().lock(), "warning: {}", escape_lines(text));
    }

    /// One line of a stream (`watch`, `log --follow`).
    pub fn stream_item(&self, item: &impl Serialize, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            print_line(&serde_json::to_string(item)?)
        } else {
            print_text(&escape_lines(&human()))
        }
    }
}

/// Stdout without the standard library's line buffer, for output written in large
/// blocks: every block written through `io::Stdout` is searched for its last newline
/// (4% of a 100k-task `status --json`, 52 MB). A second descriptor for the same file,
/// so nothing needs `unsafe`; whatever `io::Stdout` holds is flushed first.
fn unbuffered_stdout() -> Result<BlockStdout> {
    use std::os::fd::AsFd;
    let stdout = io::stdout();
    stdout.lock().flush().map_err(Error::output)?;
    let fd = stdout
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("duplicating stdout", e))?;
    Ok(BlockStdout {
        file: std::fs::File::from(fd),
        written: 0,
    })
}

/// [`unbuffered_stdout`]: the file, and how much was written to it.
struct BlockStdout {
    file: std::fs::File,
    written: usize,
}

/// A document longer than this (more than one buffer) raises its pipe's buffer to
/// [`PIPE_SIZE`].
const LONG_DOCUMENT: usize = 64 * 1024;
/// Linux's default limit for a pipe an unprivileged process grows (`pipe-max-size`).
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 1024 * 1024;

impl Write for BlockStdout {
    fn write(&mut self, block: &[u8]) -> io::Result<usize> {
        if self.written <= LONG_DOCUMENT && self.written.saturating_add(block.len()) > LONG_DOCUMENT
        {
            // With the default 64 KiB the writer waits for the reader after every block
            // (a 52 MB status: 800 hand-overs, a sixth of its time through a pipe). Not
            // a pipe, or over the limit: nothing changes, and nothing needs to.
            #[cfg(target_os = "linux")]
            let _ = rustix::pipe::fcntl_setpipe_size(&self.file, PIPE_SIZE);
        }
        let n = self.file.write(block)?;
        self.written = self.written.saturating_add(n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Where [`Out::success_streamed`] writes.
pub struct JsonSink {
    stdout: io::BufWriter<BlockStdout>,
}

impl JsonSink {
    /// JSON text as it is: the punctuation and keys between values.
    pub fn raw(&mut self, json: &str) -> Result<()> {
        self.stdout
            .write_all(json.as_bytes())
            .map_err(Error::output)
    }

    /// One value, serialized.
    pub fn value(&mut self, value: &impl Serialize) -> Result<()> {
        serde_json::to_writer(&mut self.stdout, value).map_err(|e| Error::output(e.into()))
    }

    /// The writer, for a value something else writes as JSON.
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.stdout
    }
}

/// Where [`Out::text_stream`] writes.
pub struct TextSink<'a> {
    stdout: io::BufWriter<io::StdoutLock<'a>>,
}

impl TextSink<'_> {
    /// Writes `text` (one line or several) and a newline.
    pub fn line(&mut self, text: &str) -> Result<()> {
        self.stdout
            .write_all(escape_lines(text).as_bytes())
            .and_then(|()| self.stdout.write_all(b"\n"))
            .map_err(Error::output)
    }
}

fn write_stdout(text: &str) -> Result<()> {
    write_stdout_bytes(text.as_bytes())
}

/// Writes raw bytes (an artifact) to stdout; a reader that left is [`Kind::BrokenPipe`].
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Error::output)
}

pub fn print_line(line: &str) -> Result<()> {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    write_stdout(&text)
}

pub fn print_text(text: &str) -> Result<()> {
    if text.ends_with('\n') {
        write_stdout(text)
    } else {
        print_line(text)
    }
}

/// Prints `err` (JSON on stdout under `--json`, text on stderr otherwise) and returns
/// the exit status.
pub fn report_error(err: &Error, json_mode: bool) -> ExitCode {
    if err.kind() == Kind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    if json_mode {
        let doc = json!({"ok": false, "error": {
            "code": err.code.as_str(), "message": err.message, "hint": err.hint, "details": err.details,
        }});
        // Streams end with this line too, so it always goes to stdout.
        let _ = print_line(&doc.to_string());
    } else {
        let mut stderr = io::stderr().lock();
        // Messages quote what the user gave (a path, a value), which may hold anything.
        let message = escape_lines(&err.message);
        let _ = writeln!(stderr, "error: {message} [{}]", err.code.as_str());
        if let Some(hint) = &err.hint {
            let _ = writeln!(stderr, "hint: {}", escape_lines(hint));
        }
    }
    ExitCode::from(err.code.exit_status())
}
