//! `cargo xtask …`: benchmarks, end-to-end scenarios and the demo, run against release
//! builds of the real binaries.

mod agents;
mod bench;
mod crash;
mod crash_launch;
mod demo;
mod e2e;
mod endpoint;
mod land;
mod lint;
mod mcp;
mod soak;
mod util;
mod walkthrough;

use anyhow::{bail, Result};

const USAGE: &str = "usage: cargo xtask demo [--dir DIR] [--release]\n       cargo xtask test\n       cargo xtask lint\n       cargo xtask docs\n       cargo xtask walkthrough [--check]\n       cargo xtask e2e [mcp|land] [--release] | e2e agents [NAME…] [--no-netns]\n       cargo xtask crash [--kills N] [--only ROW] [--release]\n       cargo xtask fuzz [--cases N]\n       cargo xtask bench [inbox|throughput|hooks|orch|scale|worktree|council|drive|land|all] [--quick]\n       cargo xtask soak [--workers N] [--threads M] [--seconds S] [--small] [--debug]\n       cargo xtask agents install [--only NAME,…] | smoke [NAME|NAME-mcp…] [--mcp]\n       cargo xtask endpoint [--port P] [--scenario worker|quiet-worker|exit-without-done|hang|mcp-worker] [--expect TEXT]… [--log FILE]";

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
        Some("crash") => crash_cmd(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("walkthrough") => write_walkthrough(&args[1..]),
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
            "reference::render::tests::docs_reference_is_generated_from_the_code",
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

/// `cargo xtask walkthrough [--check]`: walks the README with the debug binaries and
/// writes `docs/walkthrough.md` (with `--check`, fails if it would change instead).
fn write_walkthrough(args: &[String]) -> Result<()> {
    let check = match args {
        [] => false,
        [flag] if flag == "--check" => true,
        _ => bail!("usage: cargo xtask walkthrough [--check]"),
    };
    let bins = util::build(false)?;
    let root = util::workspace_root();
    let readme = std::fs::read_to_string(root.join("README.md"))?;
    let scratch = bins.dir.join("walkthrough");
    let text = walkthrough::transcript(&readme, &bins.dir, &scratch).map_err(anyhow::Error::msg)?;
    let _ = std::fs::remove_dir_all(&scratch);
    let path = walkthrough::doc_path(&root);
    if check {
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        if !walkthrough::same(&text, &stored) {
            bail!(
                "{} is not what the README prints now: run `cargo xtask walkthrough`",
                path.display()
            );
        }
        println!("{} is current", path.display());
    } else {
        std::fs::write(&path, text)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

/// The one test command: the layering check, the cargo test suite, then the e2e
/// scenarios, Claude Code and Codex under drive, Claude Code's MCP smoke and a small
/// soak against the same debug binaries.
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
    match crash::crash_matrix(&bins, CI_KILLS, None) {
        Ok(summary) => {
            println!("crash matrix ok: {summary}");
            passed += 1;
        }
        Err(err) => {
            println!("crash matrix FAIL: {err:#}");
            failed += 1;
        }
    }
    // Real agent CLIs under `git orch drive`: Claude Code and Codex each through a plan,
    // Claude through the ways an agent ends badly; the other three on demand
    // (`cargo xtask e2e agents`), to keep CI well under its 30 minutes.
    let started = std::time::Instant::now();
    match agents_e2e(&bins) {
        Ok(rows) => {
            agents::e2e::print_table(&rows);
            let secs = started.elapsed().as_secs_f64();
            println!("e2e agents claude codex: PASS in {secs:.1} s");
            passed += 1;
        }
        Err(err) => {
            println!("e2e agents: FAIL {err:#}");
            failed += 1;
        }
    }
    // The same CLI with every inbox step through the MCP server, which the drive plans
    // above do not cover (about 6 s).
    match agents::smoke::claude_mcp(&bins) {
        Ok(line) => {
            println!("claude-mcp smoke: PASS {line}");
            passed += 1;
        }
        Err(err) => {
            println!("claude-mcp smoke: FAIL {err:#}");
            failed += 1;
        }
    }
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

/// `cargo xtask agents install --only claude,codex`, then `e2e agents claude codex`.
fn agents_e2e(bins: &util::Bins) -> Result<Vec<agents::e2e::Row>> {
    let clis = agents::clis::select(&["claude".to_owned(), "codex".to_owned()])?;
    for cli in &clis {
        agents::install::install(cli)?;
    }
    // A folder of its own, so runs from several checkouts at once do not meet; kept
    // when something failed, since the error names the logs in it.
    let tmp = tempfile::Builder::new()
        .prefix("git-orch-agents-e2e-")
        .tempdir()?;
    let rows = agents::e2e::run_all(bins, &clis, true, tmp.path());
    if rows.is_err() {
        let _ = tmp.keep();
    }
    rows
}

/// Kills per command of the crash matrix in `cargo xtask test`; `cargo xtask crash` runs more.
const CI_KILLS: usize = 10;

/// The value after `flag`, parsed, or `default`.
fn flag_value(args: &[String], flag: &str, default: usize) -> Result<usize> {
    match args.iter().position(|a| a == flag) {
        None => Ok(default),
        Some(i) => match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(n) => Ok(n),
            None => bail!("{flag} takes a number\n{USAGE}"),
        },
    }
}

/// `cargo xtask crash [--kills N] [--only ROW] [--release]`: the crash matrix, N kills
/// per command (100), of every row or of those whose name starts with ROW.
fn crash_cmd(args: &[String]) -> Result<()> {
    let kills = flag_value(args, "--kills", 100)?;
    let only = match args.iter().position(|a| a == "--only") {
        None => None,
        Some(i) => Some(args.get(i + 1).map(String::as_str).ok_or_else(|| {
            anyhow::anyhow!(
                "--only takes a row name (answer, cleanup, supervisor, drive, …)\n{USAGE}"
            )
        })?),
    };
    let bins = util::build(args.iter().any(|a| a == "--release"))?;
    println!(
        "crash matrix ok: {}",
        crash::crash_matrix(&bins, kills, only)?
    );
    Ok(())
}

/// `cargo xtask fuzz [--cases N]`: the property tests of every parser with N cases each
/// (20000); `cargo test` runs them with proptest's default 256.
fn fuzz(args: &[String]) -> Result<()> {
    let cases = flag_value(args, "--cases", 20_000)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(&cargo)
        .args(["test", "--lib", "fuzz::", "--", "--nocapture"])
        .env("PROPTEST_CASES", cases.to_string())
        .current_dir(util::workspace_root())
        .status()?;
    if !status.success() {
        bail!("fuzzing found a failure (proptest printed the minimal case above)");
    }
    println!("fuzz: every target ran with PROPTEST_CASES={cases}");
    Ok(())
}
