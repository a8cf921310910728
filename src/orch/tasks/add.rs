//! Adding one task, and importing a whole plan all or nothing.

use super::load::{load_one, Select};
use super::row::waiting_status;
use super::spec::{check_spec, Checked, Plan, TaskSpec, MAX_PLAN_TASKS};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::orch::changes::{Act, Changes};
use crate::orch::deps::{cycle_error, find_cycle, insert_dep};
use crate::orch::model::Task;
use crate::orch::runs::RunRow;
use crate::orch::status::TaskStatus;
use crate::store::events::NewEvent;
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

fn insert(
    conn: &Connection,
    run: &str,
    task: &Checked<'_>,
    status: TaskStatus,
    now: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tasks (run, key, title, body, kind, to_addr, priority, max_attempts, base, profile,
                            status, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12)",
    )?
    .execute(params![
        run,
        task.spec.key,
        task.spec.title,
        task.spec.body,
        task.kind,
        task.to,
        task.priority,
        task.max_attempts,
        task.spec.base,
        task.spec.profile,
        status,
        now
    ])?;
    Ok(())
}

fn task_exists(conn: &Connection, run: &str, key: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM tasks WHERE run = ?1 AND key = ?2")?
        .exists(params![run, key])?)
}

fn exists_error(run: &str, key: &str) -> Error {
    Error::new(
        Code::Exists,
        format!("task {key} already exists in run {run}"),
    )
    .hint("pick another key, or see it with `git orch task show KEY`")
    .detail("run", run)
    .detail("task", key)
}

fn unknown_dep(run: &str, key: &str, dep: &str) -> Error {
    Error::not_found(format!(
        "task {key} depends on {dep}, which does not exist in run {run}"
    ))
    .hint("add the dependency first, or fix the key in --after")
    .detail("task", key)
    .detail("depends_on", dep)
}

pub fn add(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &RunRow,
    spec: &TaskSpec,
) -> Result<Task> {
    let task = check_spec(spec)?;
    run.require_active()?;
    if task_exists(conn, &run.name, &spec.key)? {
        return Err(exists_error(&run.name, &spec.key));
    }
    for dep in &task.after {
        if !task_exists(conn, &run.name, dep)? {
            return Err(unknown_dep(&run.name, &spec.key, dep));
        }
    }
    let act = Act::now(&cfg.leader);
    write_new(conn, &act, changes, &run.name, &[task])?;
    load_one(conn, &run.name, &spec.key)
}

/// Inserts validated tasks (dependencies among them or on existing tasks), each as ready
/// or pending, with an event per task; returns how many are ready.
fn write_new(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    tasks: &[Checked<'_>],
) -> Result<usize> {
    let new: HashSet<&str> = tasks.iter().map(|t| t.spec.key.as_str()).collect();
    // A new task is never done: a task waiting for one of them is pending, one with no
    // dependencies is ready, and only one that waits for existing tasks alone needs a look.
    let known = |task: &Checked<'_>| match task.after.as_slice() {
        [] => Some(TaskStatus::Ready),
        after if after.iter().any(|d| new.contains(d)) => Some(TaskStatus::Pending),
        _ => None,
    };
    let mut ready = 0;
    for task in tasks {
        let status = known(task).unwrap_or(TaskStatus::Pending);
        insert(conn, run, task, status, act.now)?;
    }
    for task in tasks {
        // In order, so the row's copy of them (`after_keys`, appended by a trigger) is
        // too, and readers seldom have to sort it.
        let mut after = task.after.clone();
        after.sort_unstable();
        for dep in after {
            insert_dep(conn, run, &task.spec.key, dep)?;
        }
    }
    for task in tasks {
        let status = match known(task) {
            Some(status) => status,
            None => {
                let status = waiting_status(conn, run, &task.spec.key)?;
                if status != TaskStatus::Pending {
                    conn.prepare_cached(
                        "UPDATE tasks SET status = ?3 WHERE run = ?1 AND key = ?2",
                    )?
                    .execute(params![run, task.spec.key, status])?;
                }
                status
            }
        };
        if status == TaskStatus::Ready {
            ready += 1;
        }
        changes.emit(
            conn,
            act,
            NewEvent {
                kind: "task.status",
                run: Some(run),
                task: Some(&task.spec.key),
                to: Some(status.as_str()),
                ..NewEvent::default()
            },
        )?;
    }
    Ok(ready)
}

/// Imports a whole plan: every name, duplicate, unknown dependency and cycle is checked
/// before the first row is written; then all of it is written in this transaction.
pub fn import(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &RunRow,
    plan: &Plan,
) -> Result<Imported> {
    if plan.tasks.len() > MAX_PLAN_TASKS {
        return Err(Error::new(
            Code::TooLarge,
            format!(
                "the plan has {} tasks; at most {MAX_PLAN_TASKS}",
                plan.tasks.len()
            ),
        )
        .hint("split it into several runs"));
    }
    let mut checked = Vec::with_capacity(plan.tasks.len());
    let mut index_of: HashMap<&str, usize> = HashMap::with_capacity(plan.tasks.len());
    for (i, spec) in plan.tasks.iter().enumerate() {
        let task =
            check_spec(spec).map_err(|e| e.detail("index", i).detail("task", spec.key.clone()))?;
        if index_of.insert(spec.key.as_str(), i).is_some() {
            return Err(Error::new(
                Code::Exists,
                format!("task {} appears twice in the plan", spec.key),
            )
            .hint("give every task its own key")
            .detail("index", i)
            .detail("task", spec.key.clone()));
        }
        checked.push(task);
    }
    run.require_active()?;
    for task in &checked {
        if task_exists(conn, &run.name, &task.spec.key)? {
            return Err(exists_error(&run.name, &task.spec.key));
        }
    }
    for task in &checked {
        for dep in &task.after {
            if !index_of.contains_key(dep) && !task_exists(conn, &run.name, dep)? {
                return Err(unknown_dep(&run.name, &task.spec.key, dep));
            }
        }
    }
    // Existing tasks never depend on new ones, so a cycle can only lie within the plan.
    let graph: Vec<Vec<usize>> = checked
        .iter()
        .map(|t| {
            t.after
                .iter()
                .filter_map(|d| index_of.get(d).copied())
                .collect()
        })
        .collect();
    if let Some(cycle) = find_cycle(&graph) {
        let path: Vec<String> = cycle.iter().map(|&i| checked[i].spec.key.clone()).collect();
        return Err(cycle_error(path));
    }
    // Ids only grow (AUTOINCREMENT), so what this transaction writes is the range above
    // the largest id now: the plan can be read back without the rest of the run.
    let max_id = || -> Result<i64> {
        Ok(conn
            .prepare_cached("SELECT coalesce(max(id), 0) FROM tasks")?
            .query_row([], |r| r.get(0))?)
    };
    let after = max_id()?;
    let act = Act::now(&cfg.leader);
    let ready = write_new(conn, &act, changes, &run.name, &checked)?;
    Ok(Imported {
        select: Select::Ids {
            after,
            last: max_id()?,
        },
        tasks: checked.len(),
        ready,
    })
}

/// What an import wrote: its tasks (read them back with `select`, after the commit),
/// how many, and how many of them are ready.
#[derive(Debug)]
pub struct Imported {
    pub select: Select<'static>,
    pub tasks: usize,
    pub ready: usize,
}
