//! Launching agents (SPEC §11): profiles and presets, the brief, and one supervisor
//! process per launched attempt.
//!
//! A launched attempt is dispatched like any other, with three differences: its thread
//! is addressed to its own agent `<profile>-<attempt id>` (so nobody else can take it),
//! a `launches` row is written with the attempt row, and once the thread exists the
//! dispatching process starts a detached supervisor (`git orch supervise ID`) before
//! the attempt leaves `preparing`. The supervisor's lock file
//! `<common>/orch/agents/<attempt id>.lock` is taken by the dispatcher and handed to the
//! supervisor as its stdin, so it is held without a gap from before the attempt is
//! `dispatched` until the supervisor exits; reconcile fails a launched attempt whose
//! lock nobody holds and whose thread is still open (`supervisor_lost`).

pub mod brief;
pub mod mcp;
pub mod preset;
pub mod process;
pub mod profile;
pub mod supervisor;
pub mod template;

use super::attempts::{attempt_from_row, get_attempt, ATTEMPT_COLUMNS, ATTEMPT_WIDTH};
pub use super::model::Launch;
use super::status::LIVE_ATTEMPT_SQL;
use super::{Attempt, AttemptId, Step, Workspace, Workspaces};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Note, ThreadStatus};
use crate::orch::dispatch::Prepared;
use crate::store::events::{self, Event, NewEvent};
use crate::store::lockfile;
use crate::store::Store;
use crate::time::rfc3339;
use profile::Profile;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Failure reasons a supervisor (or reconcile, for a dead one) gives a thread.
pub const AGENT_EXITED: &str = "agent_exited";
pub const AGENT_TIMEOUT: &str = "agent_timeout";
pub const SUPERVISOR_LOST: &str = "supervisor_lost";
pub const AGENT_FAILED_TO_START: &str = "agent_failed_to_start";
pub const SETUP_FAILED: &str = "setup_failed";

/// `<common>/orch/logs/<run>/<task>-<n>.log`.
pub fn log_path(state_dir: &Path, run: &str, task: &str, n: i64) -> PathBuf {
    state_dir
        .join("logs")
        .join(run)
        .join(format!("{task}-{n}.log"))
}

/// The supervisor's lock file of attempt `id`.
fn lock_path(state_dir: &Path, id: AttemptId) -> PathBuf {
    state_dir.join("agents").join(format!("{id}.lock"))
}

/// The lock a supervisor holds while it lives. The kernel drops it with the process.
pub struct AgentLock {
    path: PathBuf,
    file: Option<File>,
}

impl AgentLock {
    /// Takes the lock of a new launch (nobody else knows of it yet).
    pub fn acquire(state_dir: &Path, id: AttemptId) -> Result<AgentLock> {
        let path = lock_path(state_dir, id);
        let file = lockfile::open(&path)?;
        lockfile::lock(&file, &path)?;
        Ok(AgentLock {
            path,
            file: Some(file),
        })
    }

    /// The lock of a launch whose supervisor may be alive; `None` while it holds it, or
    /// when its file is gone and the launch has ended: a supervisor removes its lock
    /// file only after recording its end.
    fn take_if_lost(
        store: &mut Store,
        state_dir: &Path,
        id: AttemptId,
    ) -> Result<Option<AgentLock>> {
        let path = lock_path(state_dir, id);
        let ended = || {
            store.read(|tx| {
                Ok(tx
                    .prepare_cached(
                        "SELECT ended_at IS NOT NULL FROM launches WHERE attempt_id = ?1",
                    )?
                    .query_row([id], |r| r.get::<_, bool>(0))
                    .optional()?
                    .unwrap_or(true))
            })
        };
        let file = lockfile::try_lock_unless_finished(&path, ended)?;
        Ok(file.map(|file| AgentLock {
            path,
            file: Some(file),
        }))
    }

    /// Hands the locked file over (as a child's stdin): the lock stays held by the open
    /// file, and the file stays on disk for its new holder to remove.
    fn hand_over(mut self) -> File {
        self.file.take().expect("held until handed over")
    }
}

impl Drop for AgentLock {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Removes the lock file of attempt `id` (by the supervisor that holds it, at exit).
pub fn remove_lock(state_dir: &Path, id: AttemptId) {
    let _ = std::fs::remove_file(lock_path(state_dir, id));
}

/// Which profile each launched attempt of one dispatch uses: the task's own, else the
/// one given (`--launch P`), else `orch.launch`. Profiles are resolved and their
/// programs checked before anything is dispatched.
#[derive(Debug)]
pub struct Plan {
    pub given: Option<String>,
    pub default: Option<String>,
    pub state_dir: PathBuf,
    profiles: BTreeMap<String, Result<Profile>>,
}

/// A task's own profile (`task add --agent-profile`, plan field `profile`).
pub fn task_profile(conn: &Connection, run: &str, key: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT profile FROM tasks WHERE run = ?1 AND key = ?2")?
        .query_row(params![run, key], |r| r.get::<_, Option<String>>(0))
        .optional()?
        .flatten())
}

/// Every profile the tasks of `run` name.
pub fn task_profiles(conn: &Connection, run: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT DISTINCT profile FROM tasks WHERE run = ?1 AND profile IS NOT NULL",
        )?
        .query_map([run], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

impl Plan {
    /// `resolve` reads one profile and checks its program.
    pub fn new(
        given: Option<String>,
        default: Option<String>,
        state_dir: PathBuf,
        names: impl IntoIterator<Item = String>,
        resolve: impl Fn(&str) -> Result<Profile>,
    ) -> Plan {
        let mut profiles = BTreeMap::new();
        for name in names
            .into_iter()
            .chain(given.clone())
            .chain(default.clone())
        {
            if let std::collections::btree_map::Entry::Vacant(slot) = profiles.entry(name) {
                let resolved = resolve(slot.key());
                slot.insert(resolved);
            }
        }
        Plan {
            given,
            default,
            state_dir,
            profiles,
        }
    }

    /// Refuses a plan with a profile that cannot launch (unknown, or its program
    /// missing): for callers that make their tasks after the check, like a council.
    pub fn check(&self) -> Result<()> {
        match self.profiles.values().find_map(|p| p.as_ref().err()) {
            Some(err) => Err(err.clone()),
            None if self.given.is_none() && self.default.is_none() => Err(Error::new(
                Code::Usage,
                "no launch profile",
            )
            .hint(
                "name one with --launch PROFILE, or set a default: git config orch.launch claude",
            )),
            None => Ok(()),
        }
    }

    /// The profile task `key` launches with; refuses a task it cannot launch.
    pub fn profile_for(&self, conn: &Connection, run: &str, key: &str) -> Result<&Profile> {
        let name = task_profile(conn, run, key)?
            .or_else(|| self.given.clone())
            .or_else(|| self.default.clone())
            .ok_or_else(|| {
                Error::new(Code::Usage, format!("no launch profile for task {key}"))
                    .hint("name one with --launch PROFILE, or set a default: git config orch.launch claude")
                    .detail("task", key)
            })?;
        match self.profiles.get(&name) {
            Some(Ok(profile)) => Ok(profile),
            Some(Err(err)) => Err(err.clone().detail("task", key)),
            None => Err(Error::internal(format!("profile {name} was not resolved"))),
        }
    }

    /// Allocation hook: addresses attempt `id` to its launched agent and records the
    /// launch in the same transaction; returns the agent's name.
    pub(crate) fn record(
        &self,
        conn: &Connection,
        run: &str,
        key: &str,
        n: i64,
        id: AttemptId,
    ) -> Result<String> {
        let profile = self.profile_for(conn, run, key)?;
        let agent = profile.agent_name(id)?;
        conn.prepare_cached("UPDATE attempts SET agent = ?2, to_addr = ?2 WHERE id = ?1")?
            .execute(params![id, agent])?;
        let log = log_path(&self.state_dir, run, key, n);
        conn.prepare_cached(
            "INSERT INTO launches (attempt_id, profile, agent, log, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            id,
            profile.name,
            agent,
            log.to_string_lossy(),
            crate::time::now_ms()
        ])?;
        Ok(agent)
    }
}

/// The dispatch workspaces plus the launch: once an attempt's thread exists (and its
/// marker is written) a supervisor is started for it, before the attempt is handed over.
pub struct Launching<'a> {
    pub inner: &'a dyn Workspaces,
    /// The git-orch binary, run as `EXE -C DIR supervise ID`.
    pub exe: PathBuf,
    pub dir: PathBuf,
    pub state_dir: PathBuf,
    /// The supervisors started, for a long-lived caller to reap.
    pub children: RefCell<Vec<Child>>,
}

impl Launching<'_> {
    fn spawn(&self, attempt: &Prepared) -> Result<Child> {
        let lock = AgentLock::acquire(&self.state_dir, attempt.attempt)?;
        let log = log_path(&self.state_dir, &attempt.run, &attempt.task, attempt.n);
        let out = open_log(&log)?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        Command::new(&self.exe)
            .arg("-C")
            .arg(&self.dir)
            .arg("supervise")
            .arg(attempt.attempt.to_string())
            .stdin(Stdio::from(lock.hand_over()))
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| {
                remove_lock(&self.state_dir, attempt.attempt);
                Error::io(format!("starting the supervisor {}", self.exe.display()), e)
            })
    }
}

/// Opens (creating its folder) an agent log for appending.
pub fn open_log(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    File::options()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))
}

impl Workspaces for Launching<'_> {
    fn prepare(&self, attempt: &Prepared) -> Result<Workspace> {
        self.inner.prepare(attempt)
    }

    fn attach(&self, attempt: &Prepared, workspace: &Workspace, thread: i64) -> Result<()> {
        self.inner.attach(attempt, workspace, thread)?;
        let child = self.spawn(attempt)?;
        self.children.borrow_mut().push(child);
        Ok(())
    }

    fn undo(&self, attempt: &Prepared, workspace: &Workspace) -> Result<()> {
        self.inner.undo(attempt, workspace)
    }

    fn reached(&self, step: Step) {
        self.inner.reached(step)
    }
}

/// Ends thread `id` for a launched agent that can no longer report: claimed as the
/// agent if it lapsed to open, then failed retryably with `reason` (and `detail` as an
/// update before, when given). A thread already closed is left alone: false.
pub(crate) fn fail_for_agent(
    conn: &Connection,
    cfg: &inbox::Config,
    agent: &str,
    id: i64,
    reason: &str,
    detail: Option<&str>,
) -> Result<bool> {
    let thread = inbox::get_thread(conn, id)?;
    if thread.is_closed() {
        return Ok(false);
    }
    if thread.status == ThreadStatus::Claimed && thread.claimed_by.as_deref() != Some(agent) {
        // Not ours to fail: someone else holds it, so withdraw it as the leader.
        inbox::cancel(conn, cfg, &cfg.leader, id, reason)?;
        return Ok(true);
    }
    if thread.status != ThreadStatus::Claimed {
        inbox::claim(conn, cfg, agent, id, None)?;
    }
    if let Some(detail) = detail.filter(|d| !d.trim().is_empty()) {
        let body: String = detail.chars().take(4000).collect();
        inbox::update(
            conn,
            cfg,
            agent,
            id,
            Note {
                body: &body,
                ..Note::default()
            },
        )?;
    }
    inbox::fail(conn, cfg, agent, id, reason, true)?;
    Ok(true)
}

/// Appends a launch event, by the agent's supervisor (or reconcile, for a lost one).
pub(crate) fn emit(
    conn: &Connection,
    attempt: &Attempt,
    actor: &str,
    kind: &str,
    data: Value,
) -> Result<Event> {
    let now = crate::time::now_ms();
    let event = NewEvent {
        kind,
        thread: attempt.thread,
        run: Some(&attempt.run),
        task: Some(&attempt.task),
        attempt: Some(attempt.id.0),
        actor: Some(actor),
        data: Some(data),
        ..NewEvent::default()
    };
    let id = events::append(conn, now, &event)?;
    Ok(Event {
        id,
        at: rfc3339(now),
        kind: kind.to_owned(),
        thread: attempt.thread,
        run: Some(attempt.run.clone()),
        task: Some(attempt.task.clone()),
        attempt: Some(attempt.id.0),
        from: None,
        to: None,
        actor: Some(actor.to_owned()),
        data: event.data.unwrap_or(Value::Null),
    })
}

/// Launched attempts in flight.
fn live_launched(conn: &Connection) -> Result<Vec<AttemptId>> {
    launched_where(
        conn,
        "a.status IN ('dispatched', 'running', 'blocked') AND a.thread_id IS NOT NULL",
    )
}

/// Launched attempts (`a`, joined with their launch `l`) that meet `condition`: only
/// their ids, since every turn of drive asks and almost every supervisor is alive.
fn launched_where(conn: &Connection, condition: &str) -> Result<Vec<AttemptId>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT a.id FROM attempts a JOIN launches l ON l.attempt_id = a.id
         WHERE {condition} ORDER BY a.id"
    ))?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Reconcile's part for launches: a launched attempt whose supervisor's lock nobody
/// holds and whose thread is still open lost its supervisor. Its thread is failed,
/// retryable, `supervisor_lost`, and what is left of its agent's process group is killed.
/// A launch whose supervisor died without recording its end (its thread already closed
/// by the agent, or the attempt ended by the leader) has its leftovers killed too and is
/// marked ended, so no agent outlives its supervisor past the next reconcile.
/// Returns the events written (the thread's failure is mapped by the caller's reconcile).
pub fn reap_lost(store: &mut Store, cfg: &inbox::Config) -> Result<Vec<Event>> {
    let state_dir = store.state_dir().to_owned();
    let (live, unended) = store.read(|tx| Ok((live_launched(tx)?, unended_launches(tx)?)))?;
    let mut out = Vec::new();
    for id in live {
        let Some(lock) = AgentLock::take_if_lost(store, &state_dir, id)? else {
            continue;
        };
        // Read under the lock: what the supervisor recorded before it died.
        let attempt = store.read(|tx| get_attempt(tx, id))?;
        let (Some(launch), Some(thread)) = (&attempt.launch, attempt.thread) else {
            continue;
        };
        let event = store.write(|tx| {
            let detail = "the agent's supervisor is gone; its process group was ended";
            if !fail_for_agent(
                tx,
                cfg,
                &launch.agent,
                thread,
                SUPERVISOR_LOST,
                Some(detail),
            )? {
                return Ok(None);
            }
            mark_ended(tx, attempt.id)?;
            let data = json!({"reason": SUPERVISOR_LOST, "pid": launch.pid,
                              "supervisor_pid": launch.supervisor_pid});
            emit(tx, &attempt, &cfg.leader, "agent.lost", data).map(Some)
        })?;
        if launch.ended_at.is_none() {
            end_leftovers(launch);
        }
        out.extend(event);
        drop(lock);
    }
    for id in unended {
        let Some(lock) = AgentLock::take_if_lost(store, &state_dir, id)? else {
            continue;
        };
        let attempt = store.read(|tx| get_attempt(tx, id))?;
        let Some(launch) = &attempt.launch else {
            continue;
        };
        let left = end_leftovers(launch);
        let event = store.write(|tx| {
            if mark_ended(tx, attempt.id)? == 0 {
                return Ok(None);
            }
            let data = json!({"reason": SUPERVISOR_LOST, "pid": launch.pid,
                              "supervisor_pid": launch.supervisor_pid,
                              "attempt_status": attempt.status, "processes_left": left});
            emit(tx, &attempt, &cfg.leader, "agent.lost", data).map(Some)
        })?;
        out.extend(event);
        drop(lock);
    }
    Ok(out)
}

/// Kills what is left of a launch whose supervisor is dead; true when anything was.
fn end_leftovers(launch: &Launch) -> bool {
    let Some(sid) = launch.supervisor_pid else {
        // It died before it claimed the thread, so before it started anything.
        return false;
    };
    let mut left = process::kill_orphaned_session(sid);
    if let Some(pid) = launch.pid {
        left |= process::kill_orphaned_group(pid, sid);
    }
    left
}

fn mark_ended(conn: &Connection, id: AttemptId) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "UPDATE launches SET ended_at = coalesce(ended_at, ?2) WHERE attempt_id = ?1 AND ended_at IS NULL",
        )?
        .execute(params![id, crate::time::now_ms()])?)
}

/// Launched attempts that ended while their launch never recorded an end.
fn unended_launches(conn: &Connection) -> Result<Vec<AttemptId>> {
    launched_where(
        conn,
        &format!("l.ended_at IS NULL AND a.status NOT IN {LIVE_ATTEMPT_SQL}"),
    )
}

/// One line of `git orch agents`.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    pub task: String,
    pub attempt: AttemptId,
    pub n: i64,
    pub profile: String,
    pub agent: String,
    pub pid: Option<i64>,
    /// `starting`, `running`, `stalled`, `exited`, `killed` or `lost`.
    pub state: String,
    pub attempt_status: crate::orch::AttemptStatus,
    pub started_at: Option<String>,
    pub ended_at: Option<String>,
    pub exit_code: Option<i64>,
    pub signal: Option<String>,
    /// Milliseconds the agent ran (so far, while it runs).
    pub running_ms: Option<i64>,
    /// The newest of the log's last write and the thread's last change.
    pub last_activity_at: Option<String>,
    pub log: String,
}

fn mtime_ms(path: &Path) -> Option<i64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let since = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(since.as_millis() as i64)
}

/// The launched agents of `run`, newest attempt first.
pub fn agents(conn: &Connection, run: &str) -> Result<Vec<AgentView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS}, l.started_at, l.ended_at, a.seen_updated_ms
         FROM attempts a JOIN launches l ON l.attempt_id = a.id
         WHERE a.run = ?1 ORDER BY a.id DESC"
    ))?;
    let width = ATTEMPT_WIDTH;
    let now = crate::time::now_ms();
    let rows = stmt
        .query_map([run], |r| {
            Ok((
                attempt_from_row(r, 0)?,
                r.get::<_, Option<i64>>(width)?,
                r.get::<_, Option<i64>>(width + 1)?,
                r.get::<_, Option<i64>>(width + 2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(attempt, started, ended, seen)| {
            let attempt = attempt?;
            let launch = attempt.launch.clone()?;
            let state = match (&launch.started_at, &launch.ended_at) {
                (_, Some(_)) if launch.signal.is_some() => "killed",
                (_, Some(_)) if launch.exit_code.is_some() => "exited",
                (_, Some(_)) => "lost",
                (None, None) => "starting",
                (Some(_), None) if launch.stalled => "stalled",
                (Some(_), None) => "running",
            };
            let activity = [mtime_ms(Path::new(&launch.log)), seen]
                .into_iter()
                .flatten()
                .max();
            Some(AgentView {
                task: attempt.task.clone(),
                attempt: attempt.id,
                n: attempt.n,
                profile: launch.profile.clone(),
                agent: launch.agent.clone(),
                pid: launch.pid,
                state: state.to_owned(),
                attempt_status: attempt.status,
                started_at: launch.started_at.clone(),
                ended_at: launch.ended_at.clone(),
                exit_code: launch.exit_code,
                signal: launch.signal.clone(),
                running_ms: started.map(|s| ended.unwrap_or(now) - s),
                last_activity_at: activity.map(rfc3339),
                log: launch.log,
            })
        })
        .collect())
}
