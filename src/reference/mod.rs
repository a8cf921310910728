//! `docs/reference.md`, generated from the code: the clap command trees, the JSON each
//! command prints (the registry in [`json`]), the error codes and the config table, so
//! the user's reference cannot drift from what the binaries do.
//! `cargo xtask docs` rewrites the file; a test fails while it differs.
//!
//! The registry of JSON objects ([`json`]) is in every build: the integration tests check
//! the binaries' output against it. The renderer is built for tests only.

mod inbox_objects;
pub mod json;
mod objects;
mod orch_objects;
#[cfg(test)]
mod render;
mod schema;
