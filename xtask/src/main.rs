//! `cargo xtask …`: benchmarks, end-to-end scenarios and the demo, run against release
//! builds of the real binaries.

mod agents;
mod bench;
mod demo;
mod e2e;
mod endpoint;
mod land;
mod lint;
mod mcp;
mod soak;
mod util;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask demo [--dir DIR] [--release]\n       cargo xtask test\n       cargo xtask lint\n       cargo xtask docs\n       cargo xtask e2e [mcp|land] [--release]\n       cargo xtask bench [inbox|hooks|orch|worktree|council|land|all]\n       cargo xtask soak [--workers N] [--threads M] [--seconds S] [--small] [--debug]\n       cargo xtask agents install [--only NAME,…] | smoke [NAME…]\n       cargo xtask endpoint [--port P] [--scenario worker|exit-without-done|hang|mcp-worker] [--expect TEXT]… [--log FILE]";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::run(&args[1..]),
        Some("soak") => soak::run(&args[1..]),
        Some("test") => test(),
        Some("demo") => demo::run(&args[1..]),
        Some("e2e") => e2e::run(&args[1..]),
        Some("agents") => agents::run(&args[1..]),
        Some("endpoint") => endpoint::run(&args[1..]),
        Some("lint") => lint::run(&args[1..]),
        Some("docs") => docs(),
        _ => bail!("{USAGE}"),
    }
}

/// Rewrites docs/reference.md from the code, through the test that checks it.
fn docs() -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["test", "--quiet", "--package", "git-orch", "--lib"])
        .args([
            "--",
            "--exact",
            "reference::tests::docs_reference_is_generated_from_the_code",
        ])
        .env("UPDATE_REFERENCE", "1")
        .current_dir(util::workspace_root())
        .status()?;
    if !status.success() {
        bail!("generating docs/reference.md failed");
    }
    println!("docs/reference.md is up to date");
    Ok(())
}

/// The one test command: the layering check, the cargo test suite, then the e2e
/// scenarios and a small soak against the same debug binaries.
fn test() -> Result<()> {
    lint::run(&[])?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["test", "--workspace"])
        .current_dir(util::workspace_root())
        .status()?;
    if !status.success() {
        bail!("cargo test failed");
    }
    let bins = util::build(false)?;
    let (mut passed, mut failed) = e2e::run_all(&bins)?;
    let small = soak::SoakArgs::parse(&["--small".to_owned()])?;
    match soak::soak_run(&bins, &small) {
        Ok(figures) => {
            println!("{figures}");
            passed += 1;
        }
        Err(err) => {
            println!("soak FAIL: {err:#}");
            failed += 1;
        }
    }
    println!("xtask test: {passed} passed, {failed} failed");
    if failed > 0 {
        bail!("{failed} scenarios failed");
    }
    Ok(())
}
