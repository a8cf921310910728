//! Tasks and their dependency DAG: adding, importing a plan all or nothing, dependencies
//! with cycle refusal, status changes, cancelling, and reading tasks as JSON.

use super::attempts::{attempt_and_activity, attempt_from_row, ATTEMPT_COLUMNS};
use super::changes::{Act, Changes};
use super::model::{Attempt, Task};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::names::{check_name, Address};
use crate::repo::check_ref_text;
use crate::store::events::NewEvent;
use crate::time::rfc3339;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

pub const DEFAULT_TO: &str = "@workers";
pub const DEFAULT_KIND: &str = "code";
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// More attempts than this is a typo, not a plan.
pub const MAX_MAX_ATTEMPTS: i64 = 100;
/// A plan larger than this is refused before anything is parsed into rows.
pub const MAX_PLAN_TASKS: usize = 100_000;

/// One task as given by `task add` or in a plan file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub key: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub max_attempts: Option<i64>,
    #[serde(default)]
    pub base: Option<String>,
}

/// A plan file: `{"tasks": [TaskSpec…]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub tasks: Vec<TaskSpec>,
}

impl Plan {
    pub fn parse(text: &str) -> Result<Plan> {
        serde_json::from_str(text).map_err(|e| {
            Error::invalid_input(format!("the plan is not valid: {e}"))
                .hint(r#"a plan is {"tasks": [{"key": "lexer", "title": "…", "after": ["spec"]}]}"#)
                .detail("line", e.line())
                .detail("column", e.column())
        })
    }
}

/// A spec after validation, with defaults filled in.
struct Checked<'a> {
    spec: &'a TaskSpec,
    kind: &'a str,
    to: String,
    priority: i64,
    max_attempts: i64,
    after: Vec<&'a str>,
}

fn check_spec(spec: &TaskSpec) -> Result<Checked<'_>> {
    check_name("task", &spec.key)?;
    inbox::check_subject(&spec.title).map_err(|e| e.detail("field", "title"))?;
    inbox::check_body(&spec.body).map_err(|e| e.detail("field", "body"))?;
    let kind = spec.kind.as_deref().unwrap_or(DEFAULT_KIND);
    if !matches!(kind, "code" | "review" | "chore") {
        return Err(Error::invalid_input(format!("unknown task kind {kind:?}"))
            .hint("use code, review or chore")
            .detail("field", "kind"));
    }
    let to = Address::parse(spec.to.as_deref().unwrap_or(DEFAULT_TO))?.to_stored();
    let max_attempts = spec.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(Error::invalid_input(format!(
            "max_attempts is {max_attempts}; it must be between 1 and {MAX_MAX_ATTEMPTS}"
        ))
        .hint("e.g. --max-attempts 3")
        .detail("field", "max_attempts"));
    }
    if let Some(base) = &spec.base {
        check_ref_text(base)?;
    }
    let mut after: Vec<&str> = Vec::with_capacity(spec.after.len());
    for dep in &spec.after {
        check_name("task", dep)?;
        if dep == &spec.key {
            return Err(Error::new(
                Code::Cycle,
                format!("task {} cannot depend on itself", spec.key),
            )
            .hint("remove it from its own --after list")
            .detail("cycle", vec![spec.key.clone(), spec.key.clone()]));
        }
        if !after.contains(&dep.as_str()) {
            after.push(dep);
        }
    }
    Ok(Checked {
        spec,
        kind,
        to,
        priority: spec.priority.unwrap_or(0),
        max_attempts,
        after,
    })
}

// ---------------------------------------------------------------------------------------
// Rows.

/// The stored task row, for decisions (the JSON form is [`Task`]).
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub run: String,
    pub key: String,
    pub title: String,
    pub body: String,
    pub kind: String,
    pub to: String,
    pub base: Option<String>,
    pub status: String,
    pub max_attempts: i64,
    pub attempts: i64,
    pub current_attempt: Option<i64>,
    pub blocked_reason: Option<String>,
}

impl TaskRow {
    /// Blocked because its dependencies' heads conflict: dispatchable again.
    pub fn is_base_conflict(&self) -> bool {
        self.status == "blocked" && self.blocked_reason.as_deref() == Some("base_conflict")
    }
}

pub fn find_row(conn: &Connection, run: &str, key: &str) -> Result<Option<TaskRow>> {
    Ok(conn
        .prepare_cached(
            "SELECT run, key, title, body, kind, to_addr, base, status, max_attempts, attempts, current_attempt,
                    blocked_reason
             FROM tasks WHERE run = ?1 AND key = ?2",
        )?
        .query_row(params![run, key], |r| {
            Ok(TaskRow {
                run: r.get(0)?,
                key: r.get(1)?,
                title: r.get(2)?,
                body: r.get(3)?,
                kind: r.get(4)?,
                to: r.get(5)?,
                base: r.get(6)?,
                status: r.get(7)?,
                max_attempts: r.get(8)?,
                attempts: r.get(9)?,
                current_attempt: r.get(10)?,
                blocked_reason: r.get(11)?,
            })
        })
        .optional()?)
}

pub fn get_row(conn: &Connection, run: &str, key: &str) -> Result<TaskRow> {
    check_name("task", key)?;
    find_row(conn, run, key)?.ok_or_else(|| {
        Error::not_found(format!("task {key} does not exist in run {run}"))
            .hint("list the run's tasks with `git orch task list`")
            .detail("run", run)
            .detail("task", key)
    })
}

/// Whether every dependency of `key` is done.
pub fn deps_done(conn: &Connection, run: &str, key: &str) -> Result<bool> {
    Ok(!conn
        .prepare_cached(
            "SELECT 1 FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.depends_on
             WHERE d.run = ?1 AND d.task = ?2 AND t.status <> 'done' LIMIT 1",
        )?
        .exists(params![run, key])?)
}

/// What a task waiting for its turn is: `ready` when its dependencies are done.
pub fn waiting_status(conn: &Connection, run: &str, key: &str) -> Result<&'static str> {
    Ok(if deps_done(conn, run, key)? {
        "ready"
    } else {
        "pending"
    })
}

/// Moves a task to `to` (with why it is blocked, if it is) and records the event.
#[allow(clippy::too_many_arguments)]
pub(crate) fn set_status(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    key: &str,
    from: &str,
    to: &str,
    attempt: Option<i64>,
    blocked: Option<(&str, &Value)>,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE tasks SET status = ?3, blocked_reason = ?4, blocked_detail = ?5, updated_at = ?6
         WHERE run = ?1 AND key = ?2",
    )?
    .execute(params![
        run,
        key,
        to,
        blocked.map(|(reason, _)| reason),
        blocked.map(|(_, detail)| detail.to_string()),
        act.now
    ])?;
    if from != to {
        changes.emit(
            conn,
            act,
            NewEvent {
                kind: "task.status",
                run: Some(run),
                task: Some(key),
                attempt,
                from: Some(from),
                to: Some(to),
                ..NewEvent::default()
            },
        )?;
    }
    Ok(())
}

/// After `key` is done: every pending dependent whose dependencies are now all done
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
                conn, act, changes, run, &dependent, "pending", "ready", None, None,
            )?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Adding and importing.

fn insert(conn: &Connection, run: &str, task: &Checked<'_>, status: &str, now: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO tasks (run, key, title, body, kind, to_addr, priority, max_attempts, base, status,
                            created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
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
        status,
        now
    ])?;
    Ok(())
}

fn insert_dep(conn: &Connection, run: &str, task: &str, depends_on: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("INSERT OR IGNORE INTO deps (run, task, depends_on) VALUES (?1, ?2, ?3)")?
        .execute(params![run, task, depends_on])?
        == 1)
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
    run: &super::runs::RunRow,
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
        insert(conn, run, task, "pending", act.now)?;
    }
    for task in tasks {
        for dep in &task.after {
            insert_dep(conn, run, &task.spec.key, dep)?;
        }
    }
    for task in tasks {
        // A new task is never done, so only dependencies on existing tasks can all be done.
        let status = waiting_status(conn, run, &task.spec.key)?;
        if status != "pending" {
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
                to: Some(status),
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
    run: &super::runs::RunRow,
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

fn cycle_error(path: Vec<String>) -> Error {
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

// ---------------------------------------------------------------------------------------
// Dependencies.

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
    run: &super::runs::RunRow,
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
    if added && task.status == "ready" && !deps_done(conn, &run.name, key)? {
        let act = Act::now(&cfg.leader);
        set_status(
            conn, &act, changes, &run.name, key, "ready", "pending", None, None,
        )?;
    }
    Ok((load_one(conn, &run.name, key)?, added))
}

pub fn dep_rm(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    run: &super::runs::RunRow,
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
    if task.status == "pending" && deps_done(conn, &run.name, key)? {
        let act = Act::now(&cfg.leader);
        set_status(
            conn, &act, changes, &run.name, key, "pending", "ready", None, None,
        )?;
    }
    load_one(conn, &run.name, key)
}

// ---------------------------------------------------------------------------------------
// Reading tasks as JSON.

/// Which tasks of a run to read, and in what order.
#[derive(Debug, Clone, Copy)]
pub enum Select<'a> {
    /// Every task, oldest first.
    All,
    /// Tasks in one status, oldest first.
    Status(&'a str),
    /// Ready tasks: priority high first, then oldest.
    Ready,
    /// One task.
    Key(&'a str),
}

const TASK_COLUMNS: &str = "t.run, t.key, t.title, t.body, t.kind, t.status, t.to_addr, t.priority, \
     t.max_attempts, t.attempts, t.blocked_reason, t.blocked_detail, t.base, t.created_at, t.updated_at";
const TASK_COLUMN_COUNT: usize = 15;

/// Tasks with their current attempts and dependencies, in three queries whatever their
/// number (no query per task).
pub fn load(conn: &Connection, run: &str, select: Select<'_>) -> Result<Vec<Task>> {
    let (filter, order) = match select {
        Select::All => ("", "t.id"),
        Select::Status(_) => ("AND t.status = ?2", "t.id"),
        Select::Ready => ("AND t.status = 'ready'", "t.priority DESC, t.id"),
        Select::Key(_) => ("AND t.key = ?2", "t.id"),
    };
    let sql = format!(
        "SELECT {TASK_COLUMNS}, {ATTEMPT_COLUMNS} FROM tasks t
         LEFT JOIN attempts a ON a.id = t.current_attempt
         WHERE t.run = ?1 {filter} ORDER BY {order}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let row_to_task = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Task> {
        let detail: Option<String> = r.get(11)?;
        let updated_ms: i64 = r.get(14)?;
        let updated_at = rfc3339(updated_ms);
        let current = attempt_and_activity(r, TASK_COLUMN_COUNT)?;
        let (mut last_activity_at, mut last_activity_ms) = (updated_at.clone(), updated_ms);
        if let Some((_, Some((seen, seen_ms)))) = &current {
            // RFC 3339 with fixed width compares like the times it names.
            if *seen > last_activity_at {
                last_activity_at = seen.clone();
                last_activity_ms = *seen_ms;
            }
        }
        Ok(Task {
            run: r.get(0)?,
            key: r.get(1)?,
            title: r.get(2)?,
            body: r.get(3)?,
            kind: r.get(4)?,
            status: r.get(5)?,
            to: r.get(6)?,
            after: Vec::new(),
            priority: r.get(7)?,
            max_attempts: r.get(8)?,
            attempts: r.get(9)?,
            current_attempt: current.map(|(a, _)| a),
            blocked_reason: r.get(10)?,
            blocked_detail: detail
                .and_then(|d| serde_json::from_str(&d).ok())
                .unwrap_or(Value::Null),
            base: r.get(12)?,
            created_at: rfc3339(r.get(13)?),
            updated_at,
            last_activity_at,
            last_activity_ms,
        })
    };
    let mut tasks: Vec<Task> = match select {
        Select::All | Select::Ready => stmt.query_map([run], row_to_task)?,
        Select::Status(value) | Select::Key(value) => {
            stmt.query_map(params![run, value], row_to_task)?
        }
    }
    .collect::<rusqlite::Result<_>>()?;
    if tasks.is_empty() {
        return Ok(tasks);
    }
    let mut after = match select {
        Select::Key(key) => {
            let deps: Vec<String> = conn
                .prepare_cached(
                    "SELECT depends_on FROM deps WHERE run = ?1 AND task = ?2 ORDER BY depends_on",
                )?
                .query_map(params![run, key], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            HashMap::from([(key.to_owned(), deps)])
        }
        Select::All => deps_where(conn, run, "", None)?,
        Select::Status(status) => deps_where(conn, run, "AND t.status = ?2", Some(status))?,
        Select::Ready => deps_where(conn, run, "AND t.status = 'ready'", None)?,
    };
    for task in &mut tasks {
        if let Some(deps) = after.remove(&task.key) {
            task.after = deps;
        }
    }
    Ok(tasks)
}

fn deps_where(
    conn: &Connection,
    run: &str,
    filter: &str,
    status: Option<&str>,
) -> Result<HashMap<String, Vec<String>>> {
    let sql = if filter.is_empty() {
        "SELECT d.task, d.depends_on FROM deps d WHERE d.run = ?1 ORDER BY d.task, d.depends_on"
            .to_owned()
    } else {
        // CROSS JOIN keeps the selected tasks outside: otherwise SQLite may walk every
        // dependency of the run in key order to spare itself a sort.
        format!(
            "SELECT d.task, d.depends_on FROM tasks t CROSS JOIN deps d ON d.run = t.run AND d.task = t.key
             WHERE t.run = ?1 {filter}"
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    let mut add = |row: rusqlite::Result<(String, String)>| -> Result<()> {
        let (task, dep) = row?;
        map.entry(task).or_default().push(dep);
        Ok(())
    };
    let pair = |r: &rusqlite::Row<'_>| Ok((r.get(0)?, r.get(1)?));
    match status {
        Some(status) => {
            for row in stmt.query_map(params![run, status], pair)? {
                add(row)?;
            }
        }
        None => {
            for row in stmt.query_map([run], pair)? {
                add(row)?;
            }
        }
    }
    for deps in map.values_mut() {
        deps.sort_unstable();
    }
    Ok(map)
}

pub fn load_one(conn: &Connection, run: &str, key: &str) -> Result<Task> {
    check_name("task", key)?;
    load(conn, run, Select::Key(key))?.pop().ok_or_else(|| {
        Error::not_found(format!("task {key} does not exist in run {run}"))
            .hint("list the run's tasks with `git orch task list`")
            .detail("run", run)
            .detail("task", key)
    })
}

/// Every attempt of a task, first to last.
pub fn attempts(conn: &Connection, run: &str, key: &str) -> Result<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts a WHERE a.run = ?1 AND a.task = ?2 ORDER BY a.n"
    ))?;
    let rows = stmt
        .query_map(params![run, key], |r| attempt_from_row(r, 0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows.into_iter().flatten().collect())
}

/// Why a task is blocked by a question: the open question on its thread.
pub(crate) fn question_detail(conn: &Connection, thread: i64) -> Result<Value> {
    let messages = inbox::thread_messages(conn, thread)?;
    Ok(match messages.iter().rev().find(|m| m.kind == "ask") {
        Some(ask) => json!({
            "question": ask.body, "message": ask.id, "thread": thread,
            "asked_by": ask.author, "asked_at": ask.created_at,
        }),
        None => json!({"thread": thread}),
    })
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
