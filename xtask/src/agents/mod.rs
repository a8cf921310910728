//! `cargo xtask agents install|smoke`: the real agent CLIs, pinned in `xtask/agents/`,
//! installed offline-safe into `target/agents/`, and driven against the scripted endpoint.

pub mod clis;
pub mod e2e;
pub mod install;
pub mod launched;
pub mod mcp;
pub mod smoke;

use anyhow::{bail, Result};

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("install") => install::run(&args[1..]),
        Some("smoke") => smoke::run(&args[1..]),
        // Internal: what `smoke` runs inside `unshare -n`.
        Some("netns-exec") => smoke::netns_exec(&args[1..]),
        _ => bail!(
            "usage: cargo xtask agents install [--only NAME,…]\n       cargo xtask agents smoke [NAME|NAME-mcp…] [--mcp] [--timeout SECS] [--no-netns]"
        ),
    }
}
