//! One integration-test binary that links once (it matters on 2 cores); each module is
//! one area of the product, driven through the real binaries.

mod common;

mod council_commands;
mod council_review;
mod discovery;
mod hardening;
mod inbox_basics;
mod inbox_commands;
mod inbox_concurrency;
mod inbox_errors;
mod mcp;
mod orch_dispatch;
mod orch_plan;
mod orch_wait;
mod orch_worktrees;
mod repo_hooks;
