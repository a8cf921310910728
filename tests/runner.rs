//! One integration-test binary that links once (it matters on 2 cores); each module is
//! one area of the product, driven through the real binaries.

mod common;

mod inbox_basics;
mod repo_hooks;
