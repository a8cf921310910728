//! Benchmarks: each prints figures and ratios against a baseline measured in the same run,
//! with the goal beside it, as rows of one markdown table.

mod council;
mod inbox;
mod orch;
mod worktree;

use crate::util::{print_table, Row};
use anyhow::{bail, Result};

pub fn run(args: &[String]) -> Result<()> {
    let which = args.first().map(String::as_str).unwrap_or("all");
    let bins = crate::util::build_release()?;
    let mut rows: Vec<Row> = Vec::new();
    match which {
        "inbox" => rows.extend(inbox::run(&bins)?),
        "hooks" => rows.extend(worktree::run(&bins, worktree::Part::Commits)?),
        "orch" => rows.extend(orch::run(&bins)?),
        "council" => rows.extend(council::run(&bins)?),
        "worktree" => rows.extend(worktree::run(&bins, worktree::Part::All)?),
        "land" => rows.extend(crate::land::bench(&bins)?),
        "all" => {
            rows.extend(inbox::run(&bins)?);
            rows.extend(orch::run(&bins)?);
            rows.extend(worktree::run(&bins, worktree::Part::All)?);
            rows.extend(council::run(&bins)?);
            rows.extend(crate::land::bench(&bins)?);
        }
        other => bail!("unknown benchmark {other:?}; {}", crate::USAGE),
    }
    print_table(&rows);
    Ok(())
}
