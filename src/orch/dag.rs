//! The dependency DAG as commands: `dep add` (refusing a cycle with its path), `dep rm`,
//! and promoting dependents once a task is done. The primitives that `tasks` shares (the
//! row insert and the cycle check `import` runs on a plan) are [`super::deps`]'s.

use super::changes::{Act, Changes};
use super::deps::{cycle_error, insert_dep};
use super::model::Task;
use super::runs::RunRow;
use super::status::TaskStatus;
use super::tasks::load::load_one;
use super::tasks::row::{deps_done, get_row, set_status, Transition};
use crate::error::{Error, Result};
use crate::inbox;
use crate::names::check_name;
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

/// becomes ready.
pub(crate) fn promote_dependents(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    key: &str,
) -> Result<()> {
    let dependents: Vec<String> = conn
        .prepare_cached(
            "SELECT t.key FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.task
             WHERE d.run = ?1 AND d.depends_on = ?2 AND t.status = 'pending' ORDER BY t.id",
        )?
        .query_map(params![run, key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for dependent in dependents {
        if deps_done(conn, run, &dependent)? {
            set_status(
                conn,
                act,
                changes,
                run,
                &dependent,
                Transition::new(TaskStatus::Pending, TaskStatus::Ready),
            )?;
        }
    }
    Ok(())
}

/// The path `from -> … -> to` along "depends on" edges, if `from` depends on `to`.
fn dependency_path(
    conn: &Connection,
    run: &str,
    from: &str,
    to: &str,
) -> Result<Option<Vec<String>>> {
    let mut stmt =
        conn.prepare_cached("SELECT depends_on FROM deps WHERE run = ?1 AND task = ?2")?;
    let mut parent: HashMap<String, String> = HashMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_owned()]);
    let mut seen: HashSet<String> = HashSet::from([from.to_owned()]);
    while let Some(node) = queue.pop_front() {
        if node == to {
            let mut path = vec![node.clone()];
            let mut at = node;
            while let Some(p) = parent.get(&at) {
                path.push(p.clone());
                at = p.clone();
            }
            path.reverse();
            return Ok(Some(path));
        }
        let next: Vec<String> = stmt
            .query_map(params![run, node], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for dep in next {
            if seen.insert(dep.clone()) {
                parent.insert(dep.clone(), node.clone());
                queue.push_back(dep);
            }
        }
    }
    Ok(None)
}

/// `key` runs after `depends_on`. Refuses a cycle with its path; a ready task whose new
/// dependency is not done goes back to pending.
pub fn dep_add(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &RunRow,
    key: &str,
    depends_on: &str,
) -> Result<(Task, bool)> {
    run.require_active()?;
    let task = get_row(conn, &run.name, key)?;
    get_row(conn, &run.name, depends_on)?;
    if key == depends_on {
        return Err(cycle_error(vec![key.to_owned(), key.to_owned()]));
    }
    if let Some(path) = dependency_path(conn, &run.name, depends_on, key)? {
        let mut cycle = vec![key.to_owned()];
        cycle.extend(path);
        return Err(cycle_error(cycle));
    }
    let added = insert_dep(conn, &run.name, key, depends_on)?;
    if added && task.status == TaskStatus::Ready && !deps_done(conn, &run.name, key)? {
        let act = Act::now(&cfg.leader);
        set_status(
            conn,
            &act,
            changes,
            &run.name,
            key,
            Transition::new(TaskStatus::Ready, TaskStatus::Pending),
        )?;
    }
    Ok((load_one(conn, &run.name, key)?, added))
}

pub fn dep_rm(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &RunRow,
    key: &str,
    depends_on: &str,
) -> Result<Task> {
    run.require_active()?;
    let task = get_row(conn, &run.name, key)?;
    check_name("task", depends_on)?;
    let removed = conn
        .prepare_cached("DELETE FROM deps WHERE run = ?1 AND task = ?2 AND depends_on = ?3")?
        .execute(params![run.name, key, depends_on])?;
    if removed == 0 {
        return Err(
            Error::not_found(format!("task {key} does not depend on {depends_on}"))
                .hint("see its dependencies with `git orch task show KEY`")
                .detail("task", key)
                .detail("depends_on", depends_on),
        );
    }
    if task.status == TaskStatus::Pending && deps_done(conn, &run.name, key)? {
        let act = Act::now(&cfg.leader);
        set_status(
            conn,
            &act,
            changes,
            &run.name,
            key,
            Transition::new(TaskStatus::Pending, TaskStatus::Ready),
        )?;
    }
    load_one(conn, &run.name, key)
}
