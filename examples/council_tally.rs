//! Tallies reviewer results without a repository: the council's pure core on files.
//! Used by `cargo xtask bench council` (built with `cargo build --release --example
//! council_tally`) and handy to try the grouping on real reviews.
//!
//! ```text
//! council_tally [--threshold X] [--topic T] [--council NAME] [--missing NAME]…
//!               [--report] [--time] REVIEWER.json…
//! ```
//! Each file is one reviewer's result (`{"recommendations": […]}`), named by its file stem;
//! `--missing NAME` adds a reviewer that did not respond. Prints the tally as JSON, or the
//! markdown report with `--report`. `--time` prints the tally's own time on stderr, in
//! microseconds, so a benchmark can tell it from process start-up and file reading.

use git_orch::council::{self, ReviewerResult, TallyInput};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("council_tally: {message}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let mut threshold = council::DEFAULT_THRESHOLD;
    let mut topic = String::from("(no topic)");
    let mut name = String::from("council");
    let mut markdown = false;
    let mut time = false;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut results: Vec<ReviewerResult> = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .and_then(|v| v.into_string().ok())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.to_str() {
            Some("--threshold") => {
                threshold =
                    council::parse_threshold(&value("--threshold")?).map_err(|e| e.message)?
            }
            Some("--topic") => topic = value("--topic")?,
            Some("--council") => name = value("--council")?,
            Some("--missing") => results.push(ReviewerResult::missing(value("--missing")?)),
            Some("--report") => markdown = true,
            Some("--time") => time = true,
            Some(flag) if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
            _ => files.push(PathBuf::from(arg)),
        }
    }
    for path in &files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
        let recommendations = council::validate_review(&value).map_err(|e| {
            format!(
                "{}: {} (at {})",
                path.display(),
                e.message,
                e.details
                    .get("pointer")
                    .map(|p| p.to_string())
                    .unwrap_or_default()
            )
        })?;
        let reviewer = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        results.push(ReviewerResult::responded(reviewer, recommendations));
    }
    let input = TallyInput {
        council: name,
        topic,
        results,
        threshold,
    };
    let start = Instant::now();
    let tally = council::tally(&input);
    let elapsed = start.elapsed();
    if time {
        eprintln!("tally_us {}", elapsed.as_micros());
    }
    if markdown {
        print!("{}", council::report(&tally));
    } else {
        let json = serde_json::to_string(&tally).map_err(|e| e.to_string())?;
        println!("{json}");
    }
    Ok(())
}
