//! `cargo xtask bench inbox`: start-up cost, wake-up latency, idle cost, claim throughput.

use crate::util::{Bins, Row};
use anyhow::Result;

pub fn run(_bins: &Bins) -> Result<Vec<Row>> {
    Ok(Vec::new())
}
