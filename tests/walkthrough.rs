//! `docs/walkthrough.md` is the README walked by the real binaries: regenerate it here
//! and compare, so a README step that stops working (or prints something else) fails.

#[path = "../xtask/src/walkthrough.rs"]
#[allow(dead_code)]
mod generator;

use std::path::Path;

#[test]
fn the_walkthrough_in_docs_is_what_the_readme_prints() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_git-orch")).parent().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let walked = generator::transcript(&readme, bin_dir, &scratch.path().join("walk"))
        .unwrap_or_else(|e| panic!("walking the README failed: {e}"));
    assert!(
        !walked.contains("[exit "),
        "a README step failed:\n{walked}"
    );
    let stored = std::fs::read_to_string(generator::doc_path(root)).unwrap_or_default();
    if !generator::same(&walked, &stored) {
        let wrote = root.join("target/walkthrough.md.new");
        let _ = std::fs::write(&wrote, &walked);
        panic!(
            "docs/walkthrough.md is not what the README prints now (new version in {}); \
             run `cargo xtask walkthrough` and review the diff",
            wrote.display()
        );
    }
}
