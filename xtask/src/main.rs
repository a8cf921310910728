//! `cargo xtask …`: benchmarks, end-to-end scenarios and the demo, run against release
//! builds of the real binaries.

mod bench;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask bench [inbox|hooks|orch|worktree|council|all]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        _ => bail!("{USAGE}"),
    }
}
