//! The README, walked: every command of its walkthrough sections run as written, in
//! order, in one shell, in a scratch repository, with what each printed.
//! `cargo xtask walkthrough` writes the transcript to `docs/walkthrough.md`; an
//! integration test (which includes this file) regenerates it and compares, so the
//! README cannot drift from what the binaries do. Only `std` is used, for that reason.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The README sections that are walked, in README order.
pub const SECTIONS: &[&str] = &[
    "Install",
    "A two-minute inbox walkthrough",
    "Running a plan with your own agents",
];

/// What is shown but not run: the walkthrough's binaries come from this build.
const NOT_RUN: &[&str] = &["cargo install"];

/// The whole walk may take this long before it counts as hung.
const TIME_LIMIT: Duration = Duration::from_secs(240);

/// One shell command of a README block: its lines (with continuations and heredocs).
struct Step {
    text: String,
    run: bool,
}

struct Block {
    section: String,
    steps: Vec<Step>,
}

/// The ```sh blocks of the walked sections, split into commands.
fn blocks(readme: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut section = String::new();
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if let Some(title) = line.strip_prefix("## ") {
            section = title.trim().to_owned();
            continue;
        }
        if line.trim() != "```sh" || !SECTIONS.contains(&section.as_str()) {
            continue;
        }
        let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
        blocks.push(Block {
            section: section.clone(),
            steps: steps(&body),
        });
    }
    blocks
}

fn steps(body: &[&str]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let mut text = body[i].to_owned();
        let mut heredoc = heredoc_end(body[i]);
        while text.ends_with('\\') && i + 1 < body.len() {
            i += 1;
            text.push('\n');
            text.push_str(body[i]);
            heredoc = heredoc.or_else(|| heredoc_end(body[i]));
        }
        if let Some(end) = heredoc {
            while i + 1 < body.len() {
                i += 1;
                text.push('\n');
                text.push_str(body[i]);
                if body[i].trim() == end {
                    break;
                }
            }
        }
        let trimmed = text.trim_start();
        let run = !trimmed.is_empty()
            && !trimmed.starts_with('#')
            && !NOT_RUN.iter().any(|p| trimmed.starts_with(p));
        steps.push(Step { text, run });
        i += 1;
    }
    steps
}

/// `cmd <<'EOF'` → `EOF`.
fn heredoc_end(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let word: String = line[at + 2..]
        .trim_start_matches('-')
        .trim_start()
        .chars()
        .take_while(|c| !c.is_whitespace())
        .filter(|c| *c != '\'' && *c != '"')
        .collect();
    (!word.is_empty()).then_some(word)
}

const MARK: &str = "@@walkthrough-step";

/// Walks the README with the binaries in `bin_dir`, in a scratch directory under
/// `scratch` (made empty first), and returns the transcript as markdown.
pub fn transcript(readme: &str, bin_dir: &Path, scratch: &Path) -> Result<String, String> {
    let err = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if scratch.exists() {
        std::fs::remove_dir_all(scratch).map_err(|e| err("emptying the scratch dir", e))?;
    }
    let home = scratch.join("home");
    let repo = home.join("your-repo");
    let bin = home.join(".cargo/bin");
    std::fs::create_dir_all(&repo).map_err(|e| err("making the scratch repo", e))?;
    std::fs::create_dir_all(&bin).map_err(|e| err("making ~/.cargo/bin", e))?;
    // What `cargo install` would do, with the binaries of this build.
    for name in ["git-orch", "git-inbox"] {
        let (from, to) = (bin_dir.join(name), bin.join(name));
        std::fs::hard_link(&from, &to)
            .or_else(|_| std::fs::copy(&from, &to).map(drop))
            .map_err(|e| err(&format!("installing {}", from.display()), e))?;
    }
    let blocks = blocks(readme);
    // The README starts with `cd your-repo`: the shell starts in its parent.
    let mut script = String::from("exec 2>&1\ncd \"$HOME\"\n");
    script.push_str("(cd your-repo && git init -q -b main && echo '# calc' > README.md && git add README.md && git commit -qm 'Initial commit') || exit 1\n");
    let mut n = 0;
    for block in &blocks {
        for step in block.steps.iter().filter(|s| s.run) {
            writeln!(script, "echo '{MARK} {n}'").unwrap();
            script.push_str(&step.text);
            script.push('\n');
            writeln!(script, "echo \"{MARK} {n} exit $?\"").unwrap();
            n += 1;
        }
    }
    let output = run_script(&script, &home, &bin)?;
    let outputs = split_outputs(&output, n)?;

    let mut md = String::from(
        "# The README, walked\n\n\
         Every command of the README's walkthrough sections, run as written, top to bottom, in one\n\
         shell, in a fresh repository `~/your-repo` (branch `main`, one commit), with what each\n\
         printed. `cargo install` is shown but not run: the binaries of the build are put in\n\
         `~/.cargo/bin` instead. Times, ages, the scratch path and the number of man pages\n\
         are normalised.\n\
         Regenerate with `cargo xtask walkthrough`; a test checks that this file is current.\n",
    );
    let mut outputs = outputs.into_iter();
    let mut section = "";
    for block in &blocks {
        if block.section != section {
            write!(md, "\n## {}\n", block.section).unwrap();
            section = &block.section;
        }
        md.push_str("\n```console\n");
        for step in &block.steps {
            if step.text.trim().is_empty() {
                continue;
            }
            for (i, line) in step.text.lines().enumerate() {
                let prompt = if i == 0 && step.run { "$ " } else { "" };
                writeln!(md, "{prompt}{line}").unwrap();
            }
            if !step.run {
                continue;
            }
            let (text, status) = outputs.next().ok_or("fewer outputs than steps")?;
            let text = normalise(&text, scratch, &home);
            md.push_str(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                md.push('\n');
            }
            if status != 0 {
                writeln!(md, "[exit {status}]").unwrap();
            }
        }
        md.push_str("```\n");
    }
    Ok(md)
}

fn run_script(script: &str, home: &Path, bin: &Path) -> Result<String, String> {
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display());
    let mut cmd = Command::new("bash");
    cmd.arg("--noprofile")
        .arg("--norc")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("HOME", home)
        .env("PATH", path)
        .env("LC_ALL", "C")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        // Fixed dates make every commit id the same from one walk to the next.
        .env("GIT_AUTHOR_DATE", "2026-12-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-12-01T12:00:00Z")
        .current_dir(home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().map_err(|e| format!("starting bash: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut text).map(|_| text)
    });
    let started = Instant::now();
    loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(_) => break,
            None if started.elapsed() > TIME_LIMIT => {
                let _ = child.kill();
                let _ = child.wait();
                let text = reader.join().ok().and_then(Result::ok).unwrap_or_default();
                return Err(format!(
                    "the walkthrough hung for {TIME_LIMIT:?}; its output so far:\n{}",
                    String::from_utf8_lossy(&text)
                ));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    let text = reader
        .join()
        .map_err(|_| "the reader thread panicked".to_owned())?
        .map_err(|e| format!("reading the output: {e}"))?;
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// The output of each step, and its exit status.
fn split_outputs(output: &str, n: usize) -> Result<Vec<(String, i32)>, String> {
    let mut outputs = Vec::with_capacity(n);
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix(MARK) {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [_] => current = Some(String::new()),
                [_, "exit", status] => {
                    let text = current.take().ok_or("an exit without its step")?;
                    outputs.push((text, status.parse().map_err(|_| "a bad exit status")?));
                }
                _ => return Err(format!("a garbled marker: {line}")),
            }
        } else if let Some(text) = current.as_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    if outputs.len() != n {
        return Err(format!(
            "{} of {n} steps finished; the shell's output was:\n{output}",
            outputs.len()
        ));
    }
    Ok(outputs)
}

/// Paths, RFC 3339 times and ages differ from one walk to the next; nothing else may.
pub fn normalise(text: &str, scratch: &Path, home: &Path) -> String {
    let mut text = text.replace(&home.display().to_string(), "~");
    text = text.replace(&scratch.display().to_string(), "~");
    let text = replace_times(&text);
    replace_man_count(&replace_ages(&text))
}

/// Every new subcommand adds a man page; the count says nothing about the README.
fn replace_man_count(text: &str) -> String {
    text.lines()
        .map(|line| match line.strip_prefix("Installed ") {
            Some(rest) if rest.contains(" man pages in ") => {
                let (_, tail) = rest.split_once(' ').unwrap_or_default();
                format!("Installed N {tail}")
            }
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

fn replace_times(text: &str) -> String {
    const TIME: &str = "2026-12-01T12:00:00.000Z";
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if let Some(len) = time_at(&bytes[i..]) {
            out.push_str(TIME);
            i += len;
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The length of an RFC 3339 UTC time (`2026-11-25T15:09:20.123Z`) at the start of `b`.
fn time_at(b: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 1 {
        return None;
    }
    for (x, s) in b.iter().zip(shape) {
        let ok = if *s == b'd' {
            x.is_ascii_digit()
        } else {
            x == s
        };
        if !ok {
            return None;
        }
    }
    let mut i = shape.len();
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    (b.get(i) == Some(&b'Z')).then_some(i + 1)
}

/// `12s ago` → `1s ago`, keeping the width so tables stay aligned where they can.
fn replace_ages(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(" ago") {
        let (head, tail) = rest.split_at(at);
        let unit_ok = head.ends_with(['s', 'm', 'h', 'd']);
        let digits = head[..head.len().saturating_sub(1)]
            .bytes()
            .rev()
            .take_while(u8::is_ascii_digit)
            .count();
        if unit_ok && digits > 0 {
            let keep = head.len() - 1 - digits;
            out.push_str(&head[..keep]);
            out.push_str(&" ".repeat(digits - 1));
            out.push_str("1s");
        } else {
            out.push_str(head);
        }
        out.push_str(" ago");
        rest = &tail[" ago".len()..];
    }
    out.push_str(rest);
    out
}

/// Two transcripts are the same when they differ at most in how many spaces align a
/// column (an age of `9s` against `10s` widens a table by one).
pub fn same(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    squeeze(a) == squeeze(b)
}

/// Where the transcript lives, relative to the workspace root.
pub fn doc_path(root: &Path) -> PathBuf {
    root.join("docs/walkthrough.md")
}
