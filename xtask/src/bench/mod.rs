//! Benchmarks: each prints figures and ratios against a baseline measured in the same run,
//! with the goal beside it, as rows of one markdown table, and writes them to
//! `target/bench.json` so the next run can show what moved.

mod council;
mod drive;
mod inbox;
mod orch;
mod scale;
mod throughput;
mod worktree;

use crate::util::{print_table, Row};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// What every benchmark may be told.
#[derive(Clone, Copy)]
pub struct Opts {
    /// Fewer runs and smaller data: for iterating, not for the report.
    pub quick: bool,
}

impl Opts {
    /// `full` runs, or `quick` ones in quick mode.
    pub fn runs(self, full: usize, quick: usize) -> usize {
        if self.quick {
            quick
        } else {
            full
        }
    }
}

pub fn run(args: &[String]) -> Result<()> {
    let opts = Opts {
        quick: args.iter().any(|a| a == "--quick"),
    };
    let which: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| *a != "--quick")
        .collect();
    let which = match which.as_slice() {
        [] => "all",
        [one] => one,
        _ => bail!("one benchmark at a time; {}", crate::USAGE),
    };
    let bins = crate::util::build_release()?;
    let load_before = loadavg();
    let mut rows: Vec<Row> = Vec::new();
    match which {
        "inbox" => rows.extend(inbox::run(&bins, opts)?),
        "throughput" => rows.extend(throughput::run(&bins, opts)?),
        "hooks" => rows.extend(worktree::run(&bins, worktree::Part::Commits)?),
        "orch" => rows.extend(orch::run(&bins)?),
        "scale" => rows.extend(scale::run(&bins, opts)?),
        "council" => rows.extend(council::run(&bins)?),
        "drive" => rows.extend(drive::run(&bins, opts.quick)?),
        "worktree" => rows.extend(worktree::run(&bins, worktree::Part::All)?),
        "land" => rows.extend(crate::land::bench(&bins)?),
        "all" => {
            rows.extend(inbox::run(&bins, opts)?);
            rows.extend(throughput::run(&bins, opts)?);
            rows.extend(orch::run(&bins)?);
            rows.extend(scale::run(&bins, opts)?);
            rows.extend(worktree::run(&bins, worktree::Part::All)?);
            rows.extend(council::run(&bins)?);
            rows.extend(drive::run(&bins, opts.quick)?);
            rows.extend(crate::land::bench(&bins)?);
        }
        other => bail!("unknown benchmark {other:?}; {}", crate::USAGE),
    }
    let load_after = loadavg();
    let path = crate::util::workspace_root().join("target/bench.json");
    let previous = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    print_table(&rows, previous.as_ref());
    println!(
        "\nload average (1 min) {load_before} before, {load_after} after, on {} cores{}",
        std::thread::available_parallelism().map_or(0, usize::from),
        if opts.quick { "; --quick" } else { "" }
    );
    let doc = json!({
        "which": which,
        "quick": opts.quick,
        "at_unix_s": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "rows": rows.iter().map(Row::to_json).collect::<Vec<_>>(),
    });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

/// The 1-minute load average: how busy the machine was while we measured.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
