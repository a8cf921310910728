//! `cargo xtask agents install [--only NAME…]`: the pinned CLIs, installed by the
//! registries' own clients into `target/agents/<name>/`, each from its own lock.
//!
//! Idempotent: a CLI is reinstalled only when its lock file differs from the copy kept
//! beside the install after the last successful one.

use super::clis::{Cli, Kind};
use crate::util::workspace_root;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// Where the CLIs are installed: `target/agents/`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
        .join("agents")
}

/// The lock files of a CLI in the repository, the first one being the one compared.
fn locks(cli: &Cli) -> Vec<PathBuf> {
    let root = workspace_root().join("xtask/agents");
    match cli.kind {
        Kind::Npm { .. } => {
            let dir = root.join("npm").join(cli.name);
            vec![dir.join("package-lock.json"), dir.join("package.json")]
        }
        Kind::Pypi { .. } => vec![root.join("pypi/requirements.txt")],
    }
}

/// The install folder of a CLI and the stamp proving it matches the lock.
fn stamp(cli: &Cli) -> PathBuf {
    cache_dir().join(cli.name).join(".installed-lock")
}

pub fn is_current(cli: &Cli) -> bool {
    let Ok(lock) = std::fs::read(&locks(cli)[0]) else {
        return false;
    };
    std::fs::read(stamp(cli)).is_ok_and(|s| s == lock) && cli.program().exists()
}

pub struct Installed {
    pub name: &'static str,
    pub skipped: bool,
    pub seconds: f64,
    pub disk_mb: f64,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut only = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--only" => {
                let v = it.next().context("--only needs a name")?;
                only.extend(v.split(',').map(str::to_owned));
            }
            name if !name.starts_with('-') && only.is_empty() => only.push(name.to_owned()),
            other => bail!("unknown agents install argument {other:?}"),
        }
    }
    let clis = super::clis::select(&only)?;
    let mut rows = Vec::new();
    for cli in clis {
        rows.push(install(cli)?);
    }
    println!();
    println!("| CLI | install | disk |");
    println!("| --- | --- | --- |");
    for r in rows {
        let how = if r.skipped {
            "up to date".to_owned()
        } else {
            format!("{:.1} s", r.seconds)
        };
        println!("| {} | {how} | {:.0} MB |", r.name, r.disk_mb);
    }
    Ok(())
}

pub fn install(cli: &'static Cli) -> Result<Installed> {
    let dir = cache_dir().join(cli.name);
    if is_current(cli) {
        println!("{}: up to date in {}", cli.name, dir.display());
        return Ok(Installed {
            name: cli.name,
            skipped: true,
            seconds: 0.0,
            disk_mb: disk_mb(&dir),
        });
    }
    let started = Instant::now();
    // A partial or stale install is removed whole: npm ci does the same to node_modules,
    // and a venv from another lock may hold packages the lock no longer names.
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;
    let lock = &locks(cli)[0];
    match cli.kind {
        Kind::Npm { .. } => {
            for file in locks(cli) {
                let name = file.file_name().context("lock file name")?;
                std::fs::copy(&file, dir.join(name))
                    .with_context(|| format!("copying {}", file.display()))?;
            }
            // npm 11 skips the packages' install scripts unless allowed; none is needed:
            // the native binaries come as platform optionalDependencies.
            step(
                cli.name,
                Command::new("npm")
                    .args(["ci", "--no-audit", "--no-fund", "--prefer-offline"])
                    .current_dir(&dir),
            )?;
        }
        Kind::Pypi { .. } => {
            step(
                cli.name,
                Command::new("python3")
                    .args(["-m", "venv"])
                    .arg(dir.join("venv")),
            )?;
            step(
                cli.name,
                Command::new(dir.join("venv/bin/pip"))
                    .args(["install", "--quiet", "--disable-pip-version-check"])
                    .args([
                        "--require-hashes",
                        "--no-deps",
                        "--only-binary",
                        ":all:",
                        "-r",
                    ])
                    .arg(lock),
            )?;
        }
    }
    if !cli.program().exists() {
        bail!(
            "{}: installed, but {} is missing",
            cli.name,
            cli.program().display()
        );
    }
    std::fs::copy(lock, stamp(cli))?;
    let seconds = started.elapsed().as_secs_f64();
    let disk_mb = disk_mb(&dir);
    println!(
        "{}: installed in {seconds:.1} s, {disk_mb:.0} MB in {}",
        cli.name,
        dir.display()
    );
    Ok(Installed {
        name: cli.name,
        skipped: false,
        seconds,
        disk_mb,
    })
}

fn step(name: &str, cmd: &mut Command) -> Result<()> {
    println!("{name}: running {cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {cmd:?}"))?;
    if !status.success() {
        bail!("{name}: {cmd:?} failed ({status})");
    }
    Ok(())
}

fn disk_mb(dir: &Path) -> f64 {
    let out = Command::new("du").arg("-sk").arg(dir).output();
    out.ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .next()
                .and_then(|k| k.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
