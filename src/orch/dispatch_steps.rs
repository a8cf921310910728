//! The transaction steps of dispatch, each one short transaction: `allocate`,
//! `send_thread`, `hand_over`, and the undoing ones `abandon_tx` and `discard_tx`; and
//! `block_on_conflict` for a task whose dependencies' heads conflict.

use super::base::{dep_heads, BaseChoice};
use super::workspace::{Prepared, Workspace};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Thread, ThreadStatus};
use crate::names::Address;
use crate::orch::attempts::{end_attempt, get_attempt, set_attempt_status, AttemptRef};
use crate::orch::changes::{Act, Changes};
use crate::orch::model::{invalid_transition, Attempt, AttemptId, Task};
use crate::orch::reconcile;
use crate::orch::runs::RunRow;
use crate::orch::status::{AttemptStatus, TaskStatus, LIVE_ATTEMPT_SQL};
use crate::orch::tasks;
use crate::orch::tasks::Transition;
use crate::store::Store;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Map, Value};

/// One task to dispatch.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub key: &'a str,
    pub to: Option<&'a Address>,
    pub base: Option<&'a str>,
    /// Dispatch even when the task is not `ready` (never when an attempt is in flight).
    pub force: bool,
    pub extra: Map<String, Value>,
    /// Launch an agent for the attempt (SPEC §11): addressed to it, recorded with it.
    pub launch: Option<&'a crate::orch::launch::Plan>,
}

fn live_attempt(conn: &Connection, run: &str, key: &str) -> Result<Option<(i64, AttemptStatus)>> {
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
pub(crate) fn check_dispatchable(
    conn: &Connection,
    task: &tasks::TaskRow,
    force: bool,
) -> Result<()> {
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
    if task.status == TaskStatus::Ready || task.is_base_conflict() || task.is_land_rework() || force
    {
        return Ok(());
    }
    let hint = match task.status {
        TaskStatus::Pending => format!(
            "its dependencies are not done (see `git orch task show {}`); dispatch it anyway with --force",
            task.key
        ),
        TaskStatus::Failed | TaskStatus::Cancelled => {
            format!("start a new attempt with `git orch retry {}`", task.key)
        }
        TaskStatus::Done => "it is done; dispatch it again only with --force".to_owned(),
        _ => format!("see `git orch task show {}`", task.key),
    };
    Err(
        invalid_transition(format!("task {} is {}, not ready", task.key, task.status))
            .hint(hint)
            .detail("task", task.key.clone())
            .detail("status", task.status),
    )
}

/// Step 1: the attempt row, in `preparing`.
pub(crate) fn allocate(conn: &Connection, run: &RunRow, req: &Request<'_>) -> Result<Prepared> {
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
    let rework = task.land_rework();
    let given = req
        .base
        .or(rework.map(|(base, _)| base))
        .map(str::to_owned)
        .or_else(|| task.base.clone());
    let body = match rework {
        Some((_, note)) if task.body.is_empty() => note.to_owned(),
        Some((_, note)) => format!("{}\n\n{note}", task.body),
        None => task.body.clone(),
    };
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
    let attempt = AttemptId(conn.last_insert_rowid());
    // Launch hook: a launched attempt's thread goes to its own agent only.
    let to = match req.launch {
        Some(plan) => Address::Agent(plan.record(conn, &run.name, &task.key, n, attempt)?),
        None => to,
    };
    Ok(Prepared {
        dispatch_lock: None,
        attempt,
        run: run.name.clone(),
        task: task.key,
        kind: task.kind,
        n,
        to,
        title: task.title,
        body,
        base_ref,
        base,
        task_status: task.status,
        extra: req.extra.clone(),
    })
}

/// Step 3: the thread, its data naming the workspace, and the workspace on the attempt
/// (still `preparing`: reconcile leaves it alone until step 5).
pub(crate) fn send_thread(
    conn: &Connection,
    cfg: &inbox::Config,
    prepared: &Prepared,
    workspace: &Workspace,
) -> Result<Thread> {
    let status: Option<AttemptStatus> = conn
        .prepare_cached("SELECT status FROM attempts WHERE id = ?1")?
        .query_row([prepared.attempt], |r| r.get(0))
        .optional()?;
    let task = tasks::get_row(conn, &prepared.run, &prepared.task)?;
    if status != Some(AttemptStatus::Preparing) || task.status != prepared.task_status {
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
pub(crate) fn hand_over(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    attempt_id: AttemptId,
) -> Result<Attempt> {
    let attempt = get_attempt(conn, attempt_id)?;
    let Some(thread_id) = attempt
        .thread
        .filter(|_| attempt.status == AttemptStatus::Preparing)
    else {
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
    let untouched = thread.status == ThreadStatus::Open && thread.claim_count == 0;
    set_attempt_status(
        conn,
        &act,
        changes,
        &refs,
        AttemptStatus::Preparing,
        AttemptStatus::Dispatched,
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
        Transition::new(task.status, TaskStatus::Dispatched).by(Some(attempt.id)),
    )?;
    if !untouched {
        reconcile::reconcile_tx(conn, cfg, changes)?;
    }
    get_attempt(conn, attempt.id)
}

/// Ends a `preparing` attempt whose thread exists: the thread and the attempt are
/// cancelled (the task is left as it was).
pub(crate) fn abandon_tx(
    conn: &Connection,
    cfg: &inbox::Config,
    changes: &mut Changes,
    attempt_id: AttemptId,
    reason: &str,
) -> Result<()> {
    let attempt = get_attempt(conn, attempt_id)?;
    if attempt.status != AttemptStatus::Preparing {
        return Ok(());
    }
    let act = Act::now(&cfg.leader);
    end_attempt(
        conn,
        cfg,
        &act,
        changes,
        &attempt,
        AttemptStatus::Cancelled,
        reason,
    )
}

/// Undoes step 1: the attempt row goes (it never had a thread; a task cancelled
/// meanwhile cancelled it, and it goes all the same).
pub(crate) fn discard_tx(conn: &Connection, attempt_id: AttemptId) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM attempts WHERE id = ?1 AND thread_id IS NULL
                                    AND status IN ('preparing', 'cancelled')",
        )?
        .execute([attempt_id])?
        == 1)
}

/// The task could not start because its dependencies' heads conflict: it goes `blocked`
/// with `blocked_reason: base_conflict`, the paths and the heads.
pub(crate) fn block_on_conflict(
    store: &mut Store,
    cfg: &inbox::Config,
    prepared: &Prepared,
    err: &Error,
) -> Result<Task> {
    store.write(|tx| {
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
            Transition::new(task.status, TaskStatus::Blocked).blocked("base_conflict", &detail),
        )?;
        tasks::load_one(tx, &prepared.run, &prepared.task)
    })
}
