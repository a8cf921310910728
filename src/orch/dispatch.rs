//! Dispatch: one new attempt per task, as a pipeline of explicit steps, each undone when a
//! later one fails (SPEC §6, §7):
//!
//! 1. allocate: the attempt row in `preparing` (one transaction; refuses a task that is
//!    not ready, or that has an attempt in flight);
//! 2. prepare the workspace: [`Workspaces::prepare`], outside any transaction (this is
//!    where the worktree of a `code` task is made; [`NoWorkspaces`] makes none);
//! 3. hand over: the inbox thread of kind `task` and the attempt `dispatched` (one
//!    transaction).
//!
//! No git work happens inside a transaction, and a failure leaves no attempt, thread or
//! workspace behind.

use super::runs::{self, RunRow};
use super::tasks::{self, Select};
use super::{get_attempt, invalid_transition, Act, Attempt, Changes, Orch, LIVE_ATTEMPT_SQL};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::names::Address;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// Where an attempt works: its worktree, branch and resolved base, when it has them.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
}

/// An attempt allocated in `preparing`: everything the later steps need.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub attempt: i64,
    pub run: String,
    pub task: String,
    pub kind: String,
    pub n: i64,
    pub to: Address,
    pub title: String,
    pub body: String,
    /// The base as given: `--base` > the task's > the run's; `None` for "HEAD".
    pub base_ref: Option<String>,
    /// The task's status when the attempt was allocated, checked again at hand-over.
    pub task_status: String,
    /// Extra fields for the thread's data.
    pub extra: Map<String, Value>,
}

/// The workspace step of dispatch.
pub trait Workspaces {
    /// Makes the attempt's workspace. Runs outside any transaction.
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace>;
    /// Undoes [`Workspaces::prepare`] after a later step failed; best effort.
    fn undo(&self, attempt: &Prepared, workspace: &Workspace);
}

/// Every attempt is worktree-less: the base is recorded as given, nothing is made.
pub struct NoWorkspaces;

impl Workspaces for NoWorkspaces {
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace> {
        Ok(Workspace {
            base_ref: attempt.base_ref.clone(),
            ..Workspace::default()
        })
    }

    fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) {}
}

/// One task to dispatch.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub key: &'a str,
    pub to: Option<&'a Address>,
    pub base: Option<&'a str>,
    /// Dispatch even when the task is not `ready` (never when an attempt is in flight).
    pub force: bool,
    pub extra: Map<String, Value>,
}

fn live_attempt(conn: &Connection, run: &str, key: &str) -> Result<Option<(i64, String)>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT n, status FROM attempts WHERE run = ?1 AND task = ?2 AND status IN {LIVE_ATTEMPT_SQL}
             ORDER BY n DESC LIMIT 1"
        ))?
        .query_row(params![run, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Whether `task` may get a new attempt now; the error says what to do instead.
fn check_dispatchable(conn: &Connection, task: &tasks::TaskRow, force: bool) -> Result<()> {
    if let Some((n, status)) = live_attempt(conn, &task.run, &task.key)? {
        return Err(Error::new(
            Code::Conflict,
            format!("task {} has attempt {n} in flight ({status})", task.key),
        )
        .hint(format!(
            "move it to another agent with `git orch reassign {} --to AGENT`, or cancel it with `git orch cancel {}`",
            task.key, task.key
        ))
        .detail("task", task.key.clone())
        .detail("attempt_n", n));
    }
    if task.status == "ready" || force {
        return Ok(());
    }
    let hint = match task.status.as_str() {
        "pending" => format!(
            "its dependencies are not done (see `git orch task show {}`); dispatch it anyway with --force",
            task.key
        ),
        "failed" | "cancelled" => format!("start a new attempt with `git orch retry {}`", task.key),
        "done" => "it is done; dispatch it again only with --force".to_owned(),
        _ => format!("see `git orch task show {}`", task.key),
    };
    Err(
        invalid_transition(format!("task {} is {}, not ready", task.key, task.status))
            .hint(hint)
            .detail("task", task.key.clone())
            .detail("status", task.status.clone()),
    )
}

/// Step 1: the attempt row, in `preparing`.
fn allocate(conn: &Connection, run: &RunRow, req: &Request<'_>) -> Result<Prepared> {
    run.require_active()?;
    let task = tasks::get_row(conn, &run.name, req.key)?;
    check_dispatchable(conn, &task, req.force)?;
    let n: i64 = conn
        .prepare_cached(
            "SELECT coalesce(max(n), 0) + 1 FROM attempts WHERE run = ?1 AND task = ?2",
        )?
        .query_row(params![run.name, task.key], |r| r.get(0))?;
    let to = match req.to {
        Some(to) => to.clone(),
        None => Address::parse(&task.to)?,
    };
    let base_ref = req
        .base
        .map(str::to_owned)
        .or_else(|| task.base.clone())
        .or_else(|| run.base_ref.clone());
    let agent = match &to {
        Address::Agent(agent) => Some(agent.as_str()),
        Address::Queue(_) => None,
    };
    let now = crate::time::now_ms();
    conn.prepare_cached(
        "INSERT INTO attempts (run, task, n, agent, to_addr, status, base_ref, started_at, data)
         VALUES (?1, ?2, ?3, ?4, ?5, 'preparing', ?6, ?7, ?8)",
    )?
    .execute(params![
        run.name,
        task.key,
        n,
        agent,
        to.to_stored(),
        base_ref,
        now,
        Value::Object(req.extra.clone()).to_string()
    ])?;
    Ok(Prepared {
        attempt: conn.last_insert_rowid(),
        run: run.name.clone(),
        task: task.key,
        kind: task.kind,
        n,
        to,
        title: task.title,
        body: task.body,
        base_ref,
        task_status: task.status,
        extra: req.extra.clone(),
    })
}

/// Step 3: the thread, and the attempt and task `dispatched`.
fn hand_over(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    prepared: &Prepared,
    workspace: &Workspace,
) -> Result<Attempt> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM attempts WHERE id = ?1")?
        .query_row([prepared.attempt], |r| r.get(0))
        .optional()?;
    let task = tasks::get_row(conn, &prepared.run, &prepared.task)?;
    if status.as_deref() != Some("preparing") || task.status != prepared.task_status {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "task {} changed while it was being dispatched",
                prepared.task
            ),
        )
        .hint("see it with `git orch task show KEY` and dispatch again if still wanted")
        .detail("task", prepared.task.clone()));
    }
    let worktree = workspace
        .worktree
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let mut data = json!({
        "run": prepared.run, "task": prepared.task, "attempt": prepared.attempt, "n": prepared.n,
        "kind": prepared.kind, "title": prepared.title, "worktree": worktree,
        "branch": workspace.branch, "base_ref": workspace.base_ref, "base_sha": workspace.base_sha,
    });
    if let Some(object) = data.as_object_mut() {
        for (key, value) in &prepared.extra {
            object.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let posted = inbox::send(
        conn,
        cfg,
        &cfg.leader,
        inbox::NewThread {
            to: &prepared.to,
            subject: &prepared.title,
            kind: "task",
            body: &prepared.body,
            data: Some(&data),
            artifacts: &[],
        },
    )?;
    let act = Act {
        now: crate::time::now_ms(),
        leader: &cfg.leader,
    };
    conn.prepare_cached(
        "UPDATE attempts SET thread_id = ?2, worktree = ?3, branch = ?4, base_ref = ?5, base_sha = ?6,
                started_at = ?7 WHERE id = ?1",
    )?
    .execute(params![
        prepared.attempt,
        posted.thread.id,
        worktree,
        workspace.branch,
        workspace.base_ref,
        workspace.base_sha,
        act.now
    ])?;
    let attempt = super::reconcile::AttemptRef {
        id: prepared.attempt,
        run: prepared.run.clone(),
        task: prepared.task.clone(),
        thread: Some(posted.thread.id),
    };
    super::reconcile::set_attempt_status(
        conn,
        &act,
        changes,
        &attempt,
        "preparing",
        "dispatched",
        Some(&posted.thread),
    )?;
    conn.prepare_cached(
        "UPDATE tasks SET attempts = ?3, current_attempt = ?4 WHERE run = ?1 AND key = ?2",
    )?
    .execute(params![
        prepared.run,
        prepared.task,
        prepared.n,
        prepared.attempt
    ])?;
    tasks::set_status(
        conn,
        &act,
        changes,
        &prepared.run,
        &prepared.task,
        &task.status,
        "dispatched",
        Some(prepared.attempt),
        None,
    )?;
    get_attempt(conn, prepared.attempt)
}

/// Undoes step 1: the attempt row goes (it never had a thread).
fn discard(orch: &mut Orch<'_>, prepared: &Prepared) {
    let _ = orch.store.write(|tx| {
        tx.prepare_cached("DELETE FROM attempts WHERE id = ?1 AND thread_id IS NULL")?
            .execute([prepared.attempt])?;
        Ok(())
    });
}

/// Dispatches one task through the three steps.
pub fn dispatch_one(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run: &RunRow,
    req: &Request<'_>,
) -> Result<Attempt> {
    let prepared = orch.write(|tx, _, _| allocate(tx, run, req))?;
    let workspace = match workspaces.prepare(&prepared) {
        Ok(workspace) => workspace,
        Err(err) => {
            discard(orch, &prepared);
            return Err(err);
        }
    };
    let cfg = orch.cfg.clone();
    let handed = orch.store.write(|tx| {
        let mut changes = Changes::default();
        hand_over(tx, &cfg, &mut changes, &prepared, &workspace)
    });
    match handed {
        Ok(attempt) => Ok(attempt),
        Err(err) => {
            workspaces.undo(&prepared, &workspace);
            discard(orch, &prepared);
            Err(err)
        }
    }
}

/// What `git orch dispatch` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    pub keys: &'a [String],
    pub all_ready: bool,
    pub max: Option<usize>,
    pub to: Option<&'a Address>,
    pub base: Option<&'a str>,
    pub force: bool,
}

/// Dispatches the named tasks and/or every ready one (priority, then age), at most
/// `max`. Named tasks are checked before the first is dispatched.
pub fn dispatch(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    opts: &Options<'_>,
) -> Result<Vec<Attempt>> {
    if opts.keys.is_empty() && !opts.all_ready {
        return Err(Error::new(
            Code::Usage,
            "nothing to dispatch: name tasks or pass --all-ready",
        )
        .hint("e.g. git orch dispatch lexer, or git orch dispatch --all-ready --max 4"));
    }
    if let Some(base) = opts.base {
        runs::check_ref_text(base)?;
    }
    orch.reconcile()?;
    let (run, keys) = orch.read(|tx| {
        let run = runs::resolve(tx, run_name)?;
        run.require_active()?;
        let mut keys: Vec<String> = Vec::new();
        for key in opts.keys {
            let task = tasks::get_row(tx, &run.name, key)?;
            check_dispatchable(tx, &task, opts.force)?;
            if !keys.contains(key) {
                keys.push(key.clone());
            }
        }
        if opts.all_ready {
            for task in tasks::load(tx, &run.name, Select::Ready)? {
                if !keys.contains(&task.key) {
                    keys.push(task.key);
                }
            }
        }
        Ok((run, keys))
    })?;
    let limit = opts.max.unwrap_or(usize::MAX);
    let mut attempts = Vec::new();
    for key in keys.iter().take(limit) {
        let req = Request {
            key,
            to: opts.to,
            base: opts.base,
            force: opts.force,
            extra: Map::new(),
        };
        attempts.push(dispatch_one(orch, workspaces, &run, &req)?);
    }
    Ok(attempts)
}

/// A new attempt for a failed or cancelled task (or one that went back to ready after
/// a failure), past its `max_attempts` if need be: the leader asked for it.
pub fn retry(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: Option<&Address>,
    base: Option<&str>,
) -> Result<Attempt> {
    if let Some(base) = base {
        runs::check_ref_text(base)?;
    }
    let run = orch.write(|tx, _, _| {
        let run = runs::resolve(tx, run_name)?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let after_failure = task.status == "ready"
            && task
                .current_attempt
                .map(|id| get_attempt(tx, id))
                .transpose()?
                .is_some_and(|a| matches!(a.status.as_str(), "failed" | "lost"));
        if !matches!(task.status.as_str(), "failed" | "cancelled") && !after_failure {
            return Err(invalid_transition(format!(
                "task {key} is {}; only a failed, lost or cancelled task is retried",
                task.status
            ))
            .hint(match task.status.as_str() {
                "ready" | "pending" => format!("dispatch it with `git orch dispatch {key}`"),
                "done" => "a done task stays done".to_owned(),
                _ => format!("move it to another agent with `git orch reassign {key} --to AGENT`"),
            })
            .detail("task", key)
            .detail("status", task.status));
        }
        Ok(run)
    })?;
    let req = Request {
        key,
        to,
        base,
        force: true,
        extra: Map::new(),
    };
    dispatch_one(orch, workspaces, &run, &req)
}

/// Cancels the task's attempt in flight and dispatches a new one to `to`, based on the
/// old attempt's head (or its base while there are no worktrees) unless `fresh`.
pub fn reassign(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: &Address,
    fresh: bool,
) -> Result<Attempt> {
    let (run, old) = orch.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, run_name)?;
        run.require_active()?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let Some(old) = task
            .current_attempt
            .map(|id| get_attempt(tx, id))
            .transpose()?
            .filter(|a| super::is_live_attempt(&a.status) && a.status != "preparing")
        else {
            return Err(invalid_transition(format!(
                "task {key} has no attempt in flight ({})",
                task.status
            ))
            .hint(format!(
                "start one with `git orch dispatch {key} --to {}` or `git orch retry {key} --to {}`",
                to.to_stored(),
                to.to_stored()
            ))
            .detail("task", key)
            .detail("status", task.status));
        };
        let act = Act {
            now: crate::time::now_ms(),
            leader: &cfg.leader,
        };
        let reason = format!("reassigned to {}", to.to_stored());
        tasks::cancel_attempts(tx, cfg, &act, changes, &task, &reason)?;
        let waiting = tasks::waiting_status(tx, &run.name, key)?;
        tasks::set_status(
            tx,
            &act,
            changes,
            &run.name,
            key,
            &task.status,
            waiting,
            Some(old.id),
            None,
        )?;
        Ok((run, old))
    })?;
    let base = if fresh {
        None
    } else {
        old.head_sha.clone().or(old.base_ref.clone())
    };
    let mut extra = Map::new();
    extra.insert("reassigned_from".into(), json!(old.id));
    let req = Request {
        key,
        to: Some(to),
        base: base.as_deref(),
        force: true,
        extra,
    };
    dispatch_one(orch, workspaces, &run, &req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orch::runs::NewRun;
    use crate::orch::tasks::TaskSpec;
    use crate::store::{Durability, Store};
    use std::cell::Cell;

    fn setup(dir: &std::path::Path) -> Store {
        let (mut store, _) = Store::init(dir, Durability::Normal).unwrap();
        let cfg = inbox::Config::default();
        store
            .write(|tx| {
                let mut changes = Changes::default();
                let new = NewRun {
                    name: Some("r1"),
                    title: "Run",
                    base_ref: None,
                    kind: "plan",
                };
                let run = runs::create(tx, &cfg, &mut changes, &new)?;
                let run = runs::get(tx, &run.name)?;
                let spec = TaskSpec {
                    key: "a".into(),
                    title: "A".into(),
                    ..TaskSpec::default()
                };
                tasks::add(tx, &cfg, &mut changes, &run, &spec).map(drop)
            })
            .unwrap();
        store
    }

    fn counts(store: &mut Store) -> (i64, i64, String) {
        store
            .read(|tx| {
                let attempts = tx.query_row("SELECT count(*) FROM attempts", [], |r| r.get(0))?;
                let threads = inbox::list(
                    tx,
                    &inbox::ListFilter {
                        limit: 100,
                        ..Default::default()
                    },
                )?
                .len() as i64;
                let status = tasks::get_row(tx, "r1", "a")?.status;
                Ok((attempts, threads, status))
            })
            .unwrap()
    }

    /// Fails to prepare, or (with a store path) cancels the task meanwhile, so that the
    /// hand-over fails; counts its undos.
    struct Flaky {
        fail: bool,
        cancel_in: Option<std::path::PathBuf>,
        undone: Cell<u32>,
    }

    impl Workspaces for Flaky {
        fn prepare(&self, _attempt: &Prepared) -> Result<Workspace> {
            if self.fail {
                return Err(Error::new(Code::GitFailed, "no worktree today"));
            }
            if let Some(dir) = &self.cancel_in {
                let mut other = Store::open(dir, Durability::Normal)?;
                let cfg = inbox::Config::default();
                other.write(|tx| {
                    let task = tasks::get_row(tx, "r1", "a")?;
                    let mut changes = Changes::default();
                    crate::orch::cancel_task(tx, &cfg, &mut changes, &task, "meanwhile").map(drop)
                })?;
            }
            Ok(Workspace::default())
        }

        fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) {
            self.undone.set(self.undone.get() + 1);
        }
    }

    #[test]
    fn a_failed_step_leaves_no_attempt_thread_or_workspace() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("orch");
        let mut store = setup(&dir);
        let req = Request {
            key: "a",
            ..Request::default()
        };

        let failing = Flaky {
            fail: true,
            cancel_in: None,
            undone: Cell::new(0),
        };
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let run = orch.read(|tx| runs::get(tx, "r1")).unwrap();
        let err = dispatch_one(&mut orch, &failing, &run, &req).unwrap_err();
        assert_eq!(err.code, Code::GitFailed);
        assert_eq!(counts(&mut store), (0, 0, "ready".into()));

        let racing = Flaky {
            fail: false,
            cancel_in: Some(dir.clone()),
            undone: Cell::new(0),
        };
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let err = dispatch_one(&mut orch, &racing, &run, &req).unwrap_err();
        assert_eq!(err.code, Code::Conflict);
        assert_eq!(racing.undone.get(), 1);
        assert_eq!(counts(&mut store), (0, 0, "cancelled".into()));

        // And when every step works: one attempt, one thread.
        let mut orch = Orch::new(&mut store, inbox::Config::default());
        let forced = Request {
            key: "a",
            force: true,
            ..Request::default()
        };
        let attempt = dispatch_one(&mut orch, &NoWorkspaces, &run, &forced).unwrap();
        assert_eq!(attempt.status, "dispatched");
        assert_eq!(counts(&mut store), (1, 1, "dispatched".into()));
    }
}
