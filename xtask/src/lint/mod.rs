//! `cargo xtask lint`: the layering of ARCHITECTURE.md as a check, not a promise.
//!
//! It reads the library's non-test code under `src/` (following `mod` declarations from
//! `lib.rs`), resolves every `use` and every `crate::…`/`super::…` path to the module it
//! names (through `use` re-exports), and fails on
//! - an import that looks up a layer: store, repo and the leaves error/time/names at the
//!   bottom, then inbox, orch, council, cli (a module under cli, such as mcp, is cli);
//! - a cycle between sibling modules (children of one parent), reported as a path.
//!
//! There is no allow-list: the module graph is a DAG, and a new cycle is taken apart
//! (the shared piece moved into a leaf of its own) rather than recorded.

mod scan;

use anyhow::{bail, Context, Result};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

/// The layers, bottom first. A top-level module not listed here is an error, so a new
/// one gets a place on purpose.
const LAYERS: &[(&str, u8)] = &[
    ("store", 0),
    ("repo", 0),
    ("error", 0),
    ("time", 0),
    ("names", 0),
    ("paths", 0),
    ("config_keys", 0),
    ("inbox", 1),
    ("orch", 2),
    ("council", 3),
    ("cli", 4),
    ("mcp", 4),
    ("reference", 4),
];

pub fn run(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask lint");
    }
    let root = crate::util::workspace_root();
    let report = check(&root.join("src"))?;
    if !report.problems.is_empty() {
        for problem in &report.problems {
            eprintln!("lint: {problem}");
        }
        bail!("layering: {} problem(s)", report.problems.len());
    }
    println!(
        "lint: layering ok ({} modules, {} sibling edges, no cycle)",
        report.modules, report.edges
    );
    Ok(())
}

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<String>,
    pub modules: usize,
    pub edges: usize,
}

type ModPath = Vec<String>;

struct Module {
    file: PathBuf,
    code: String,
}

/// Where one module depends on another: the first site is enough to find it.
#[derive(Clone)]
struct Site {
    file: PathBuf,
    line: usize,
    text: String,
}

/// Runs both checks over the crate rooted at `src/lib.rs`.
pub fn check(src: &Path) -> Result<Report> {
    let modules = load(src)?;
    let mut report = Report {
        modules: modules.len(),
        ..Report::default()
    };
    // parent -> (from child, to child) -> first site
    let mut edges: BTreeMap<ModPath, BTreeMap<(String, String), Site>> = BTreeMap::new();
    for (path, module) in &modules {
        for named in scan::named_paths(&module.code) {
            let Some(target) = resolve(&modules, path, &named.segments, named.is_use, 0) else {
                continue;
            };
            let common = path.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common == path.len() || common == target.len() {
                continue; // an ancestor or a descendant, not a sibling
            }
            let site = Site {
                file: module
                    .file
                    .strip_prefix(src)
                    .unwrap_or(&module.file)
                    .to_owned(),
                line: named.line,
                text: named.segments.join("::"),
            };
            edges
                .entry(path[..common].to_vec())
                .or_default()
                .entry((path[common].clone(), target[common].clone()))
                .or_insert(site);
        }
    }
    report.edges = edges.values().map(BTreeMap::len).sum();
    upward_imports(edges.get(&Vec::new()), &mut report);
    cycles(&edges, &mut report);
    Ok(report)
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|&(_, l)| l)
}

fn upward_imports(top: Option<&BTreeMap<(String, String), Site>>, report: &mut Report) {
    let mut unknown = BTreeSet::new();
    for ((from, to), site) in top.into_iter().flatten() {
        match (layer(from), layer(to)) {
            (Some(a), Some(b)) if a < b => report.problems.push(format!(
                "upward import: crate::{from} uses crate::{to} at src/{}:{} (`{}`); \
                 {from} is below {to}",
                site.file.display(),
                site.line,
                site.text
            )),
            (Some(_), Some(_)) => {}
            _ => {
                for name in [from, to] {
                    if layer(name).is_none() {
                        unknown.insert(name.clone());
                    }
                }
            }
        }
    }
    for name in unknown {
        report.problems.push(format!(
            "crate::{name} has no layer: give it one in LAYERS (xtask/src/lint/mod.rs)"
        ));
    }
}

fn cycles(edges: &BTreeMap<ModPath, BTreeMap<(String, String), Site>>, report: &mut Report) {
    for (parent, graph) in edges {
        let parent_name = display_parent(parent);
        for component in strongly_connected(graph) {
            let path = shortest_cycle(graph, &component);
            let sites: Vec<String> = path
                .windows(2)
                .map(|w| {
                    let site = &graph[&(w[0].clone(), w[1].clone())];
                    format!("src/{}:{} `{}`", site.file.display(), site.line, site.text)
                })
                .collect();
            let members: Vec<&str> = component.iter().map(String::as_str).collect();
            report.problems.push(format!(
                "cycle in {parent_name}: {} ({}); the tangle is {{{}}}",
                path.join(" -> "),
                sites.join("; "),
                members.join(" ")
            ));
        }
    }
}

fn display_parent(parent: &[String]) -> String {
    std::iter::once("crate")
        .chain(parent.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("::")
}

/// Components of more than one module (Tarjan's algorithm, iterative enough for a
/// handful of siblings: recursion depth is bounded by the number of children).
fn strongly_connected(graph: &BTreeMap<(String, String), Site>) -> Vec<BTreeSet<String>> {
    let nodes: BTreeSet<&String> = graph.keys().flat_map(|(a, b)| [a, b]).collect();
    let nodes: Vec<&String> = nodes.into_iter().collect();
    let index_of = |n: &String| nodes.iter().position(|m| *m == n).unwrap_or(0);
    let mut out_edges = vec![Vec::new(); nodes.len()];
    for (a, b) in graph.keys() {
        out_edges[index_of(a)].push(index_of(b));
    }
    struct Tarjan<'a> {
        out: &'a [Vec<usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        stack: Vec<usize>,
        on_stack: Vec<bool>,
        next: usize,
        found: Vec<Vec<usize>>,
    }
    fn visit(t: &mut Tarjan<'_>, v: usize) {
        t.index[v] = Some(t.next);
        t.low[v] = t.next;
        t.next += 1;
        t.stack.push(v);
        t.on_stack[v] = true;
        for &w in &t.out[v] {
            match t.index[w] {
                None => {
                    visit(t, w);
                    t.low[v] = t.low[v].min(t.low[w]);
                }
                Some(iw) if t.on_stack[w] => t.low[v] = t.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(t.low[v]) == t.index[v] {
            let mut component = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            t.found.push(component);
        }
    }
    let n = nodes.len();
    let mut t = Tarjan {
        out: &out_edges,
        index: vec![None; n],
        low: vec![0; n],
        stack: Vec::new(),
        on_stack: vec![false; n],
        next: 0,
        found: Vec::new(),
    };
    for v in 0..n {
        if t.index[v].is_none() {
            visit(&mut t, v);
        }
    }
    t.found
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|c| c.into_iter().map(|i| nodes[i].clone()).collect())
        .collect()
}

/// The shortest cycle through the component's first module, as a path that ends where
/// it starts.
fn shortest_cycle(
    graph: &BTreeMap<(String, String), Site>,
    component: &BTreeSet<String>,
) -> Vec<String> {
    let Some(start) = component.iter().next() else {
        return Vec::new();
    };
    let mut came_from: BTreeMap<&String, &String> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(at) = queue.pop_front() {
        for (a, b) in graph.keys() {
            if a != at || !component.contains(b) {
                continue;
            }
            if b == start {
                let mut path = vec![start.clone()];
                let mut node = at;
                while node != start {
                    path.push(node.clone());
                    node = came_from[node];
                }
                path[1..].reverse();
                path.push(start.clone());
                return path;
            }
            if !came_from.contains_key(b) && b != start {
                came_from.insert(b, at);
                queue.push_back(b);
            }
        }
    }
    vec![start.clone()]
}

/// The module a path names, from inside `from`: `crate::`, `super::`, `self::` and (in a
/// `use`) a child's name start it; the longest run of modules wins, and a name a module
/// re-exports with `use` leads to where it comes from.
fn resolve(
    modules: &BTreeMap<ModPath, Module>,
    from: &ModPath,
    segments: &[String],
    is_use: bool,
    depth: usize,
) -> Option<ModPath> {
    if depth > 8 {
        return None;
    }
    let mut base = from.clone();
    let mut rest = segments;
    match segments.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &segments[1..];
        }
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        Some("self") => rest = &segments[1..],
        Some(first) if is_use && modules.contains_key(&child(from, first)) => {}
        _ => return None,
    }
    let mut target = base;
    for segment in rest {
        let next = child(&target, segment);
        if modules.contains_key(&next) {
            target = next;
            continue;
        }
        if let Some(via) = reexport(modules, &target, segment, depth) {
            target = via;
        }
        break;
    }
    Some(target)
}

/// Where a name that `module` brings in with `use` lives (when it is one of ours).
fn reexport(
    modules: &BTreeMap<ModPath, Module>,
    module: &ModPath,
    name: &str,
    depth: usize,
) -> Option<ModPath> {
    let code = &modules.get(module)?.code;
    scan::named_paths(code)
        .into_iter()
        .filter(|n| n.is_use && n.binds.as_deref() == Some(name))
        .find_map(|n| resolve(modules, module, &n.segments, true, depth + 1))
        .filter(|target| target != module)
}

fn child(parent: &ModPath, name: &str) -> ModPath {
    let mut path = parent.clone();
    path.push(name.to_owned());
    path
}

/// Every file module reachable from `lib.rs`, with its code blanked of comments,
/// strings and test items.
fn load(src: &Path) -> Result<BTreeMap<ModPath, Module>> {
    let mut modules = BTreeMap::new();
    let mut todo = vec![(Vec::new(), src.join("lib.rs"))];
    while let Some((path, file)) = todo.pop() {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let code = scan::blank_test_items(&scan::blank_comments_and_strings(&text));
        let dir = match file.file_name().and_then(|f| f.to_str()) {
            Some("lib.rs" | "mod.rs") => file.parent().unwrap_or(src).to_owned(),
            _ => file.with_extension(""),
        };
        for name in scan::file_modules(&code) {
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let found = if flat.exists() { flat } else { nested };
            todo.push((child(&path, &name), found));
        }
        modules.insert(path, Module { file, code });
    }
    Ok(modules)
}

#[cfg(test)]
mod tests;
