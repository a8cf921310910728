//! git-orch: a git-native orchestrator for AI coding agents working on one repository.
//!
//! Layers look only down: `repo` (git) and `store` (SQLite) at the bottom, `inbox` above
//! them, `orch` above the inbox, `cli` on top. The two binaries only call [`cli::inbox_main`] and [`cli::orch_main`].

pub mod cli;
pub mod config_keys;
pub mod council;
pub mod error;
#[cfg(test)]
mod fuzz;
pub mod inbox;
pub mod names;
pub mod orch;
pub mod paths;
pub mod reference;
pub mod repo;
pub mod store;
pub mod time;
