//! git-orch: a git-native orchestrator for AI coding agents working on one repository.
//!
//! Layers look only down: `repo` (git) and `store` (SQLite) at the bottom, `inbox` above
//! them, `orch` above the inbox, `cli` on top. The two binaries only call [`cli::inbox_main`] and [`cli::orch_main`].

pub mod cli;
// The config table is documentation, checked by its tests and rendered into the reference.
#[cfg(test)]
mod config_keys;
pub mod council;
pub(crate) mod error;
#[cfg(test)]
mod fuzz;
pub(crate) mod inbox;
pub(crate) mod names;
pub(crate) mod orch;
pub(crate) mod paths;
pub mod reference;
pub(crate) mod repo;
pub(crate) mod store;
pub(crate) mod time;
