use super::scan::{blank_comments_and_strings, blank_test_items, file_modules, named_paths};
use super::*;

/// A source tree in a temp dir: `(relative path, contents)`.
fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (rel, text) in files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

const LAYERED: &[(&str, &str)] = &[
    ("lib.rs", "pub mod store;\npub mod orch;\npub mod cli;\n"),
    ("store.rs", "pub fn open() {}\n"),
    ("cli.rs", "use crate::orch::run;\npub fn main() { run() }\n"),
    (
        "orch/mod.rs",
        "mod a;\nmod b;\npub use a::run;\npub use self::b::Thing;\n",
    ),
    (
        "orch/a.rs",
        "use crate::store;\npub fn run() { store::open() }\n",
    ),
    ("orch/b.rs", "pub struct Thing;\n"),
];

#[test]
fn a_layered_tree_passes() {
    let dir = tree(LAYERED);
    let report = check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.modules, 6);
    // cli -> orch, orch -> store (top level); nothing between a and b.
    assert_eq!(report.edges, 2);
}

#[test]
fn a_planted_cycle_and_upward_import_fail_by_name() {
    let mut files = LAYERED.to_vec();
    files[1] = ("store.rs", "pub fn open() { crate::cli::main() }\n");
    // b reaches a through the parent's re-export, a reaches b by `super::`.
    files[4] = ("orch/a.rs", "use super::b::Thing;\npub fn run() {}\n");
    files[5] = ("orch/b.rs", "use crate::orch::run;\npub struct Thing;\n");
    let dir = tree(&files);
    let report = check(dir.path()).unwrap();
    let all = report.problems.join("\n");
    assert_eq!(report.problems.len(), 2, "{all}");
    assert!(
        all.contains("upward import: crate::store uses crate::cli at src/store.rs:1"),
        "{all}"
    );
    assert!(all.contains("cycle in crate::orch: a -> b -> a"), "{all}");
    assert!(all.contains("src/orch/a.rs:1 `super::b::Thing`"), "{all}");
    assert!(all.contains("src/orch/b.rs:1 `crate::orch::run`"), "{all}");
}

#[test]
fn test_code_comments_and_strings_do_not_count() {
    let mut files = LAYERED.to_vec();
    files[1] = (
        "store.rs",
        "// crate::cli::main()\n/* use crate::cli; */\npub fn open() { let _ = \"crate::cli\"; }\n\
         #[cfg(test)]\nmod tests { use crate::cli::main; }\n#[cfg(test)]\nmod more;\n",
    );
    let dir = tree(&files);
    let report = check(dir.path()).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn a_cycle_through_three_siblings_fails_with_its_whole_path() {
    let mut files = LAYERED.to_vec();
    files[0] = ("lib.rs", "pub mod store;\npub mod orch;\npub mod cli;\n");
    files[3] = ("orch/mod.rs", "mod a;\nmod b;\nmod c;\npub use a::run;\n");
    files[4] = ("orch/a.rs", "use super::b::f;\npub fn run() {}\n");
    files[5] = ("orch/b.rs", "pub fn f() { super::c::g() }\n");
    files.push(("orch/c.rs", "pub fn g() { crate::orch::run() }\n"));
    let dir = tree(&files);
    let report = check(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("cycle in crate::orch: a -> b -> c -> a"),
        "{:?}",
        report.problems
    );
    assert!(report.problems[0].contains("the tangle is {a b c}"));
}

/// The crate itself: what `cargo xtask lint` checks, run by `cargo test` too, so that a
/// cycle or an upward import fails the ordinary test suite.
#[test]
fn the_crate_is_layered_and_acyclic() {
    let report = check(&crate::util::workspace_root().join("src")).unwrap();
    assert!(report.problems.is_empty(), "{}", report.problems.join("\n"));
    assert!(report.modules > 50, "{} modules", report.modules);
}

#[test]
fn an_unplaced_top_level_module_is_an_error() {
    let mut files = LAYERED.to_vec();
    files[0] = (
        "lib.rs",
        "pub mod store;\npub mod orch;\npub mod cli;\nmod gadget;\n",
    );
    files.push(("gadget.rs", "use crate::store::open;\n"));
    let dir = tree(&files);
    let report = check(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].contains("crate::gadget has no layer"));
}

#[test]
fn use_trees_expand_to_one_path_per_leaf() {
    let code = "pub(crate) use crate::{a::{self, b as c}, d::*, e};\nuse super::super::f;";
    let got: Vec<(String, Option<String>)> = named_paths(code)
        .into_iter()
        .map(|n| (n.segments.join("::"), n.binds))
        .collect();
    let want = [
        ("crate::a", Some("a")),
        ("crate::a::b", Some("c")),
        ("crate::d", None),
        ("crate::e", Some("e")),
        ("super::super::f", Some("f")),
    ];
    let want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(p, b)| ((*p).to_owned(), b.map(str::to_owned)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn blanking_keeps_lines_and_lifetimes() {
    let src = "fn f<'a>(x: &'a str) -> char { 'x' }\nlet s = r#\"crate::x\"#; // crate::y\nc";
    let out = blank_comments_and_strings(src);
    assert_eq!(out.lines().count(), src.lines().count());
    assert!(out.contains("<'a>") && !out.contains("'x'"));
    assert!(!out.contains("crate::"));
    let tests = blank_test_items("a\n#[cfg(test)]\nfn g(x: [u8; 2]) { h(); }\nb");
    assert_eq!(tests.split_whitespace().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn only_file_modules_are_followed() {
    let code = "pub mod a;\nmod b { }\n#[allow(dead_code)] mod c;\npub(crate) mod d;";
    assert_eq!(file_modules(code), ["a", "c", "d"]);
}
