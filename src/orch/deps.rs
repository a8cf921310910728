//! The dependency graph's primitives, below both [`super::tasks`] (`import` checks a plan
//! and inserts its edges) and [`super::dag`] (`dep add` and `dep rm`): one `deps` row,
//! the cycle error with its path, and `find_cycle` over a plan held in memory.

use crate::error::{Code, Error, Result};
use rusqlite::{params, Connection};
use std::collections::HashMap;

pub(crate) fn insert_dep(
    conn: &Connection,
    run: &str,
    task: &str,
    depends_on: &str,
) -> Result<bool> {
    Ok(conn
        .prepare_cached("INSERT OR IGNORE INTO deps (run, task, depends_on) VALUES (?1, ?2, ?3)")?
        .execute(params![run, task, depends_on])?
        == 1)
}

pub(crate) fn cycle_error(path: Vec<String>) -> Error {
    Error::new(
        Code::Cycle,
        format!("dependencies would form a cycle: {}", path.join(" -> ")),
    )
    .hint("remove one of these dependencies; `a -> b` means a runs after b")
    .detail("cycle", path)
}

/// A cycle in a dependency graph (`graph[i]` = what `i` depends on), as the path
/// `[a, b, …, a]` where each depends on the next; `None` when it is a DAG.
pub fn find_cycle(graph: &[Vec<usize>]) -> Option<Vec<usize>> {
    // Kahn's algorithm on "depends on" edges: peel off tasks whose dependencies are all
    // peeled; what is left holds a cycle, and each leftover task has a leftover dependency.
    let n = graph.len();
    let mut unresolved: Vec<usize> = graph.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (task, deps) in graph.iter().enumerate() {
        for &dep in deps {
            dependents[dep].push(task);
        }
    }
    let mut queue: Vec<usize> = (0..n).filter(|&i| unresolved[i] == 0).collect();
    let mut peeled = vec![false; n];
    while let Some(i) = queue.pop() {
        peeled[i] = true;
        for &d in &dependents[i] {
            unresolved[d] -= 1;
            if unresolved[d] == 0 {
                queue.push(d);
            }
        }
    }
    let start = (0..n).find(|&i| !peeled[i])?;
    let mut position: HashMap<usize, usize> = HashMap::new();
    let mut path = Vec::new();
    let mut at = start;
    loop {
        if let Some(&p) = position.get(&at) {
            let mut cycle = path[p..].to_vec();
            cycle.push(at);
            return Some(cycle);
        }
        position.insert(at, path.len());
        path.push(at);
        at = *graph[at].iter().find(|&&d| !peeled[d])?;
    }
}

#[cfg(test)]
mod tests {
    use super::find_cycle;

    #[test]
    fn finds_cycles_as_paths() {
        assert_eq!(find_cycle(&[vec![], vec![0], vec![0, 1]]), None);
        // 0 -> 1 -> 2 -> 0, and 3 hangs off the cycle.
        let cycle = find_cycle(&[vec![1], vec![2], vec![0], vec![0]]).unwrap();
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
    }
}
