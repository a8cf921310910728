//! Adding one task, and importing a whole plan all or nothing.

use super::load::{load, load_one, Select};
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
/// or pending, with an event per task.
fn write_new(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    tasks: &[Checked<'_>],
) -> Result<()> {
    for task in tasks {
        insert(conn, run, task, TaskStatus::Pending, act.now)?;
    }
    for task in tasks {
        for dep in &task.after {
            insert_dep(conn, run, &task.spec.key, dep)?;
        }
    }
    for task in tasks {
        // A new task is never done, so only dependencies on existing tasks can all be done.
        let status = waiting_status(conn, run, &task.spec.key)?;
        if status != TaskStatus::Pending {
            conn.prepare_cached("UPDATE tasks SET status = ?3 WHERE run = ?1 AND key = ?2")?
                .execute(params![run, task.spec.key, status])?;
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
    Ok(())
}

/// Imports a whole plan: every name, duplicate, unknown dependency and cycle is checked
/// before the first row is written; then all of it is written in this transaction.
pub fn import(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &RunRow,
    plan: &Plan,
) -> Result<Vec<Task>> {
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
    let act = Act::now(&cfg.leader);
    write_new(conn, &act, changes, &run.name, &checked)?;
    let keys: HashSet<&str> = index_of.keys().copied().collect();
    let mut tasks = load(conn, &run.name, Select::All)?;
    tasks.retain(|t| keys.contains(t.key.as_str()));
    Ok(tasks)
}
