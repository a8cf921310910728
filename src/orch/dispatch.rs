//! Dispatch: one new attempt per task, as a pipeline of explicit steps (SPEC §6, §7):
//!
//! 1. `allocate`: the attempt row in `preparing` (one transaction; refuses a task that is
//!    not ready, or that has an attempt in flight), with the base to start from chosen
//!    but not yet resolved. A file lock held from here to the end tells a concurrent
//!    reconcile that this `preparing` attempt is in progress, not crashed.
//! 2. `worktree`: [`Workspaces::prepare`], outside any transaction: the base resolved,
//!    and for a `code` task the branch and worktree made.
//! 3. `thread`: the inbox thread of kind `task` (its data names the workspace), and the
//!    workspace stored on the attempt (one transaction).
//! 4. `marker`: [`Workspaces::attach`] writes the attempt marker into the worktree.
//! 5. `store`: the attempt and the task `dispatched` (one transaction).
//!
//! No git work happens inside a transaction. A step that fails undoes the ones before it:
//! before the thread exists nothing is left (no attempt, branch or worktree); once the
//! thread exists (workers may have seen it) the attempt and its thread end `cancelled`
//! and the workspace is removed without losing work. A process killed between steps
//! leaves a `preparing` attempt that reconcile repairs (see [`super::repair`]).

use super::attempts::{end_attempt, get_attempt, set_attempt_status, AttemptRef};
use super::cancel;
use super::changes::{Act, Changes};
use super::facade::Orch;
use super::model::{invalid_transition, is_live_attempt, Attempt, Task, LIVE_ATTEMPT_SQL};
use super::runs::{self, RunRow};
use super::tasks::{self, Select};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Thread};
use crate::names::Address;
use crate::repo::check_ref_text;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};
use std::fs::File;
use std::path::{Path, PathBuf};

/// Where an attempt works: its worktree, branch and resolved base, when it has them.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    pub worktree: Option<PathBuf>,
    pub branch: Option<String>,
    pub base_ref: Option<String>,
    pub base_sha: Option<String>,
    /// The worktree's private git dir, where the attempt marker goes.
    pub git_dir: Option<PathBuf>,
    /// `refs/orch/bases/…` when the base is a merge of several dependencies.
    pub bases_ref: Option<String>,
}

/// Where an attempt starts from, in SPEC §7's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseChoice {
    /// `--base` on dispatch, or the task's base: a revspec as given.
    Given(String),
    /// The results of the code tasks a code task depends on (done ones, by key).
    Deps(Vec<DepHead>),
    /// The run's base.
    Run(String),
    /// Nothing named one: `HEAD`, where strict mode applies.
    Head,
}

/// A dependency's result: its succeeded attempt's branch and the head recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepHead {
    pub task: String,
    pub branch: Option<String>,
    pub sha: String,
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
    /// The base as given: `--base` > the task's > the run's; `None` for the
    /// dependencies' results or `HEAD`.
    pub base_ref: Option<String>,
    pub base: BaseChoice,
    /// The task's status when the attempt was allocated, checked again at hand-over.
    pub task_status: String,
    /// Extra fields for the thread's data.
    pub extra: Map<String, Value>,
}

impl Prepared {
    /// The agent the attempt is addressed to; `None` for a queue.
    pub fn agent(&self) -> Option<&str> {
        match &self.to {
            Address::Agent(agent) => Some(agent),
            Address::Queue(_) => None,
        }
    }
}

/// The steps of the pipeline, named for crash tests (`ORCH_TEST_CRASH_AFTER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Allocate,
    Worktree,
    Thread,
    Marker,
    Store,
}

impl Step {
    pub const ALL: [Step; 5] = [
        Step::Allocate,
        Step::Worktree,
        Step::Thread,
        Step::Marker,
        Step::Store,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Step::Allocate => "allocate",
            Step::Worktree => "worktree",
            Step::Thread => "thread",
            Step::Marker => "marker",
            Step::Store => "store",
        }
    }

    pub fn parse(text: &str) -> Result<Step> {
        Step::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                Error::invalid_input(format!("unknown dispatch step {text:?}"))
                    .hint("one of allocate, worktree, thread, marker, store")
            })
    }
}

/// The workspace steps of dispatch.
pub trait Workspaces {
    /// Resolves the base and makes the attempt's workspace. Runs outside any transaction.
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace>;
    /// Once the thread exists: ties the workspace to it (the attempt marker).
    fn attach(&self, _attempt: &Prepared, _workspace: &Workspace, _thread: i64) -> Result<()> {
        Ok(())
    }
    /// Undoes [`Workspaces::prepare`] after a later step failed, without losing work.
    fn undo(&self, attempt: &Prepared, workspace: &Workspace) -> Result<()>;
    /// Called after each step has taken effect (crash injection in tests).
    fn reached(&self, _step: Step) {}
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

    fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) -> Result<()> {
        Ok(())
    }
}

/// Held by the process carrying a `preparing` attempt through the pipeline: a lock file
/// `<state>/dispatch/<attempt>.lock`. The kernel drops the lock when the process dies,
/// so a reconcile that can take it knows the attempt was abandoned mid-dispatch.
pub(crate) struct DispatchLock {
    path: PathBuf,
    _file: File,
}

impl DispatchLock {
    fn path(state_dir: &Path, attempt: i64) -> PathBuf {
        state_dir.join("dispatch").join(format!("{attempt}.lock"))
    }

    fn open(state_dir: &Path, attempt: i64) -> Result<(PathBuf, File)> {
        let path = Self::path(state_dir, attempt);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
        Ok((path, file))
    }

    /// Takes the lock of a new attempt (nobody else knows its id yet).
    pub(crate) fn acquire(state_dir: &Path, attempt: i64) -> Result<DispatchLock> {
        let (path, file) = Self::open(state_dir, attempt)?;
        file.lock()
            .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(DispatchLock { path, _file: file })
    }

    /// The lock of an attempt another process may still be dispatching; `None` while
    /// that process holds it.
    pub(crate) fn try_acquire(state_dir: &Path, attempt: i64) -> Result<Option<DispatchLock>> {
        let (path, file) = Self::open(state_dir, attempt)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DispatchLock { path, _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(Error::io(format!("locking {}", path.display()), e))
            }
        }
    }
}

impl Drop for DispatchLock {
    fn drop(&mut self) {
        // Removed while still held: whoever opens it after us finds the attempt settled.
        let _ = std::fs::remove_file(&self.path);
    }
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

/// Whether `task` may get a new attempt now; the error says what to do instead. A task
/// blocked by a base conflict may be dispatched again (with `--base`, usually).
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
    if task.status == "ready" || task.is_base_conflict() || force {
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

/// The results of the done code tasks `key` depends on, by key: each one's latest
/// succeeded attempt, its branch and its head (its base when it made no commits).
fn dep_heads(conn: &Connection, run: &str, key: &str) -> Result<Vec<DepHead>> {
    let rows = conn
        .prepare_cached(
            "SELECT t.key, a.branch, coalesce(a.head_sha, a.base_sha)
             FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.depends_on
             JOIN attempts a ON a.run = t.run AND a.task = t.key
             WHERE d.run = ?1 AND d.task = ?2 AND t.kind = 'code' AND t.status = 'done'
               AND a.n = (SELECT max(n) FROM attempts
                          WHERE run = t.run AND task = t.key AND status = 'succeeded')
             ORDER BY t.key",
        )?
        .query_map(params![run, key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(task, branch, sha)| sha.map(|sha| DepHead { task, branch, sha }))
        .collect())
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
    let given = req.base.map(str::to_owned).or_else(|| task.base.clone());
    let base = match given {
        Some(given) => BaseChoice::Given(given),
        None => {
            let deps = if task.kind == "code" {
                dep_heads(conn, &run.name, &task.key)?
            } else {
                Vec::new()
            };
            match (deps.is_empty(), &run.base_ref) {
                (false, _) => BaseChoice::Deps(deps),
                (true, Some(base)) => BaseChoice::Run(base.clone()),
                (true, None) => BaseChoice::Head,
            }
        }
    };
    let base_ref = match &base {
        BaseChoice::Given(text) | BaseChoice::Run(text) => Some(text.clone()),
        BaseChoice::Deps(_) | BaseChoice::Head => None,
    };
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
        base,
        task_status: task.status,
        extra: req.extra.clone(),
    })
}

/// Step 3: the thread, its data naming the workspace, and the workspace on the attempt
/// (still `preparing`: reconcile leaves it alone until step 5).
fn send_thread(
    conn: &Connection,
    cfg: &inbox::Config,
    prepared: &Prepared,
    workspace: &Workspace,
) -> Result<Thread> {
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
        if let Some(bases) = &workspace.bases_ref {
            object.insert("bases_ref".into(), json!(bases));
        }
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
    conn.prepare_cached(
        "UPDATE attempts SET thread_id = ?2, worktree = ?3, branch = ?4, base_ref = ?5, base_sha = ?6,
                data = CASE WHEN ?7 IS NULL THEN data ELSE json_set(data, '$.bases_ref', ?7) END
         WHERE id = ?1",
    )?
    .execute(params![
        prepared.attempt,
        posted.thread.id,
        worktree,
        workspace.branch,
        workspace.base_ref,
        workspace.base_sha,
        workspace.bases_ref,
    ])?;
    Ok(posted.thread)
}

/// Step 5: a `preparing` attempt whose thread exists becomes `dispatched`, and its task
/// too. Also how reconcile finishes a dispatch whose process died after step 3. (A task
/// cancelled meanwhile cancelled the attempt too: then this refuses with `conflict`.)
pub(crate) fn store(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    attempt_id: i64,
) -> Result<Attempt> {
    let attempt = get_attempt(conn, attempt_id)?;
    let Some(thread_id) = attempt.thread.filter(|_| attempt.status == "preparing") else {
        return Err(Error::new(
            Code::Conflict,
            format!(
                "attempt {} of task {} was {} while it was being dispatched",
                attempt.n, attempt.task, attempt.status
            ),
        )
        .hint("see it with `git orch task show KEY`")
        .detail("task", attempt.task.clone()));
    };
    let act = Act::now(&cfg.leader);
    let refs = AttemptRef {
        id: attempt.id,
        run: attempt.run.clone(),
        task: attempt.task.clone(),
        thread: Some(thread_id),
    };
    let task = tasks::get_row(conn, &attempt.run, &attempt.task)?;
    let thread = inbox::get_thread(conn, thread_id)?;
    // Seen as it stands only while untouched; otherwise reconcile maps it right below.
    let untouched = thread.status == "open" && thread.claim_count == 0;
    set_attempt_status(
        conn,
        &act,
        changes,
        &refs,
        "preparing",
        "dispatched",
        untouched.then_some(&thread),
    )?;
    conn.prepare_cached(
        "UPDATE tasks SET attempts = ?3, current_attempt = ?4 WHERE run = ?1 AND key = ?2",
    )?
    .execute(params![attempt.run, attempt.task, attempt.n, attempt.id])?;
    tasks::set_status(
        conn,
        &act,
        changes,
        &attempt.run,
        &attempt.task,
        &task.status,
        "dispatched",
        Some(attempt.id),
        None,
    )?;
    if !untouched {
        super::reconcile::reconcile_tx(conn, cfg, changes)?;
    }
    get_attempt(conn, attempt.id)
}

/// Ends a `preparing` attempt whose thread exists: the thread and the attempt are
/// cancelled (the task is left as it was).
pub(crate) fn abandon_tx(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    attempt_id: i64,
    reason: &str,
) -> Result<()> {
    let attempt = get_attempt(conn, attempt_id)?;
    if attempt.status != "preparing" {
        return Ok(());
    }
    let act = Act::now(&cfg.leader);
    end_attempt(conn, cfg, &act, changes, &attempt, "cancelled", reason)
}

/// Undoes step 1: the attempt row goes (it never had a thread; a task cancelled
/// meanwhile cancelled it, and it goes all the same).
pub(crate) fn discard_tx(conn: &Connection, attempt_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM attempts WHERE id = ?1 AND thread_id IS NULL
                                    AND status IN ('preparing', 'cancelled')",
        )?
        .execute([attempt_id])?
        == 1)
}

fn discard(orch: &mut Orch<'_>, prepared: &Prepared) {
    let _ = orch.store.write(|tx| discard_tx(tx, prepared.attempt));
}

/// The task could not start because its dependencies' heads conflict: it goes `blocked`
/// with `blocked_reason: base_conflict`, the paths and the heads.
fn block_on_conflict(orch: &mut Orch<'_>, prepared: &Prepared, err: &Error) -> Result<Task> {
    let cfg = orch.cfg.clone();
    orch.store.write(|tx| {
        let task = tasks::get_row(tx, &prepared.run, &prepared.task)?;
        let deps: Vec<String> = match &prepared.base {
            BaseChoice::Deps(heads) => heads.iter().map(|h| h.task.clone()).collect(),
            _ => Vec::new(),
        };
        let detail = json!({
            "message": err.message,
            "paths": err.details.get("paths").cloned().unwrap_or(Value::Array(Vec::new())),
            "heads": err.details.get("heads").cloned().unwrap_or(Value::Array(Vec::new())),
            "deps": deps,
        });
        let act = Act::now(&cfg.leader);
        let mut changes = Changes::default();
        tasks::set_status(
            tx,
            &act,
            &mut changes,
            &prepared.run,
            &prepared.task,
            &task.status,
            "blocked",
            None,
            Some(("base_conflict", &detail)),
        )?;
        tasks::load_one(tx, &prepared.run, &prepared.task)
    })
}

/// What one task's dispatch came to.
enum Outcome {
    Dispatched(Box<Attempt>),
    Blocked(Box<(Task, Error)>),
}

fn dispatch_outcome(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run: &RunRow,
    req: &Request<'_>,
) -> Result<Outcome> {
    let state_dir = orch.store.state_dir().to_owned();
    let (prepared, lock) = orch.write(|tx, _, _| {
        let prepared = allocate(tx, run, req)?;
        // Taken before the row commits, so nobody sees it `preparing` and unlocked.
        let lock = DispatchLock::acquire(&state_dir, prepared.attempt)?;
        Ok((prepared, lock))
    })?;
    workspaces.reached(Step::Allocate);

    let workspace = match workspaces.prepare(&prepared) {
        Ok(workspace) => workspace,
        Err(err) => {
            discard(orch, &prepared);
            drop(lock);
            if err.code == Code::BaseConflict {
                let task = block_on_conflict(orch, &prepared, &err)?;
                return Ok(Outcome::Blocked(Box::new((task, err))));
            }
            return Err(err);
        }
    };
    workspaces.reached(Step::Worktree);

    let cfg = orch.cfg.clone();
    let thread = match orch
        .store
        .write(|tx| send_thread(tx, &cfg, &prepared, &workspace))
    {
        Ok(thread) => thread,
        Err(err) => {
            // Left `preparing` when the undo fails: reconcile finishes the job.
            if workspaces.undo(&prepared, &workspace).is_ok() {
                discard(orch, &prepared);
            }
            return Err(err);
        }
    };
    workspaces.reached(Step::Thread);

    let finished = workspaces
        .attach(&prepared, &workspace, thread.id)
        .and_then(|()| {
            workspaces.reached(Step::Marker);
            orch.store.write(|tx| {
                let mut changes = Changes::default();
                store(tx, &cfg, &mut changes, prepared.attempt)
            })
        });
    let attempt = match finished {
        Ok(attempt) => attempt,
        Err(err) => {
            let reason = format!("dispatch failed: {}", err.message);
            let abandoned = orch.store.write(|tx| {
                let mut changes = Changes::default();
                abandon_tx(tx, &cfg, &mut changes, prepared.attempt, &reason)
            });
            if abandoned.is_ok() {
                let _ = workspaces.undo(&prepared, &workspace);
            }
            return Err(err);
        }
    };
    drop(lock);
    workspaces.reached(Step::Store);
    Ok(Outcome::Dispatched(Box::new(attempt)))
}

/// Dispatches one task through the steps. A base conflict is `base_conflict` (exit 6),
/// after the task went `blocked`.
pub fn dispatch_one(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run: &RunRow,
    req: &Request<'_>,
) -> Result<Attempt> {
    match dispatch_outcome(orch, workspaces, run, req)? {
        Outcome::Dispatched(attempt) => Ok(*attempt),
        Outcome::Blocked(blocked) => Err(blocked.1),
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

/// What a dispatch of several tasks did: the attempts it started, and the tasks that
/// went `blocked` on a base conflict instead.
#[derive(Debug, Default)]
pub struct Dispatched {
    pub attempts: Vec<Attempt>,
    pub blocked: Vec<Task>,
}

/// Dispatches the named tasks and/or every ready one (priority, then age), at most
/// `max`. Named tasks are checked before the first is dispatched.
pub fn dispatch(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    opts: &Options<'_>,
) -> Result<Vec<Attempt>> {
    dispatch_tasks(orch, workspaces, run_name, opts).map(|d| d.attempts)
}

/// [`dispatch`], also reporting the tasks a base conflict blocked; the others go on.
pub fn dispatch_tasks(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    opts: &Options<'_>,
) -> Result<Dispatched> {
    if opts.keys.is_empty() && !opts.all_ready {
        return Err(Error::new(
            Code::Usage,
            "nothing to dispatch: name tasks or pass --all-ready",
        )
        .hint("e.g. git orch dispatch lexer, or git orch dispatch --all-ready --max 4"));
    }
    if let Some(base) = opts.base {
        check_ref_text(base)?;
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
    let mut out = Dispatched::default();
    for key in keys.iter().take(limit) {
        let req = Request {
            key,
            to: opts.to,
            base: opts.base,
            force: opts.force,
            extra: Map::new(),
        };
        match dispatch_outcome(orch, workspaces, &run, &req)? {
            Outcome::Dispatched(attempt) => out.attempts.push(*attempt),
            Outcome::Blocked(blocked) => out.blocked.push(blocked.0),
        }
    }
    Ok(out)
}

/// A new attempt for a failed or cancelled task (or one that went back to ready after
/// a failure, or one blocked by a base conflict), past its `max_attempts` if need be:
/// the leader asked for it. A code task gets a new worktree.
pub fn retry(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: Option<&Address>,
    base: Option<&str>,
) -> Result<Attempt> {
    if let Some(base) = base {
        check_ref_text(base)?;
    }
    // Also repairs a dispatch of this task that died half-way.
    orch.reconcile()?;
    let run = orch.write(|tx, _, _| {
        let run = runs::resolve(tx, run_name)?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let after_failure = task.status == "ready"
            && task
                .current_attempt
                .map(|id| get_attempt(tx, id))
                .transpose()?
                .is_some_and(|a| matches!(a.status.as_str(), "failed" | "lost"));
        if !matches!(task.status.as_str(), "failed" | "cancelled")
            && !after_failure
            && !task.is_base_conflict()
        {
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

/// Cancels the task's attempt in flight and dispatches a new one to `to`, starting from
/// the old attempt's branch head unless `fresh` (then as a new dispatch would).
pub fn reassign(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    run_name: Option<&str>,
    key: &str,
    to: &Address,
    fresh: bool,
) -> Result<Attempt> {
    // Also finishes a dispatch of this task that died after sending its thread.
    orch.reconcile()?;
    let (run, old) = orch.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, run_name)?;
        run.require_active()?;
        let task = tasks::get_row(tx, &run.name, key)?;
        let Some(old) = task
            .current_attempt
            .map(|id| get_attempt(tx, id))
            .transpose()?
            .filter(|a| is_live_attempt(&a.status) && a.status != "preparing")
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
        let act = Act::now(&cfg.leader);
        let reason = format!("reassigned to {}", to.to_stored());
        cancel::cancel_attempts(tx, cfg, &act, changes, &task, &reason)?;
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
        // The old attempt's branch names its head, uncommitted work aside; once the
        // branch is gone, the head it was last seen at.
        let branch = match (&old.branch, orch.repo) {
            (Some(branch), Some(repo)) if repo.branch_tip(branch)?.is_some() => {
                Some(branch.clone())
            }
            _ => None,
        };
        branch
            .or(old.head_sha.clone())
            .or(old.base_sha.clone())
            .or(old.base_ref.clone())
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

        fn undo(&self, _attempt: &Prepared, _workspace: &Workspace) -> Result<()> {
            self.undone.set(self.undone.get() + 1);
            Ok(())
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
