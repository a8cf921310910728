//! `git orch drive`: the leader's loop as one call. Reconcile, dispatch ready tasks
//! (launching each) while fewer than `parallel` are in flight, sleep until another
//! process commits, report what changed as [`DriveEvent`]s, repeat.
//!
//! Nothing here is a daemon: the agents live under their own supervisors, so a drive
//! that stops (SIGINT, timeout, a crash) leaves them working, and the next drive reads
//! where things stand from the store and carries on. One drive per run at a time, by
//! a lock file whose holder's pid is inside it.

use super::drive_events::news;
pub use super::drive_events::DriveEvent;
use super::drive_pool::{reap, Dispatchers, Pool, Queue, MAX_WORKERS};
use super::facade::Orch;
use super::land;
use super::launch::{Launching, Plan};
use super::runs;
use super::status::TaskStatus;
use super::tasks::{self, Select};
use super::Task;
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::store::events;
use serde::Serialize;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often a sleeping drive looks at its stop flag: the bound on how long SIGINT takes.
const STOP_POLL: Duration = Duration::from_millis(200);

/// What the caller asked of one drive.
pub struct DriveOptions<'a> {
    pub run: &'a str,
    pub parallel: usize,
    /// Return as soon as every task in flight waits on a question.
    pub until_blocked: bool,
    pub deadline: Option<Instant>,
    pub plan: &'a Plan,
    /// `--land`: land each code task as it succeeds, with these options.
    pub land: Option<&'a land::Options<'a>>,
}

/// How a drive ended without an error (stuck and timeout are errors: exit 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    Done,
    Blocked,
    Interrupted,
}

/// Where the run stands, for the status line and the end conditions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Standing {
    pub total: usize,
    pub done: usize,
    pub ready: usize,
    pub in_flight: usize,
    /// In flight and waiting on a question.
    pub questions: usize,
    pub failed: usize,
    pub pending: usize,
    /// With `--land`: done code tasks whose result is on the target.
    pub landed: Option<usize>,
}

/// The one-drive-per-run lock: held by the open file, released by the kernel when the
/// drive exits however it exits.
pub struct DriveLock {
    path: PathBuf,
    _file: File,
}

impl DriveLock {
    pub fn path(state_dir: &Path, run: &str) -> PathBuf {
        state_dir.join("drive").join(format!("{run}.lock"))
    }

    /// Takes the lock of `run`, or `conflict` naming the pid of the drive holding it.
    pub fn acquire(state_dir: &Path, run: &str, pid: u32) -> Result<DriveLock> {
        let path = Self::path(state_dir, run);
        let io = |what: &str, e| Error::io(format!("{what} {}", path.display()), e);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io("creating the folder of", e))?;
        }
        let mut file = File::options()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder: Option<i64> = text.trim().parse().ok();
                return Err(Error::new(
                    Code::Conflict,
                    format!(
                        "run {run} is already driven by process {}",
                        holder.map_or("?".into(), |p| p.to_string())
                    ),
                )
                .hint("one drive per run: stop that one (Ctrl-C) or wait for it to end")
                .detail("run", run)
                .detail("pid", holder));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("locking", e)),
        }
        file.set_len(0).map_err(|e| io("writing", e))?;
        file.rewind().map_err(|e| io("writing", e))?;
        writeln!(file, "{pid}").map_err(|e| io("writing", e))?;
        Ok(DriveLock { path, _file: file })
    }
}

impl Drop for DriveLock {
    fn drop(&mut self) {
        // Emptied rather than removed: removing it would let a second drive lock a new
        // file while a third still waits on the old one.
        let _ = std::fs::write(&self.path, "");
    }
}

/// Checks, before anything is dispatched, that every task still to start has a profile.
pub fn check_profiles(orch: &mut Orch<'_>, run: &str, plan: &Plan) -> Result<()> {
    orch.read(|tx| {
        for task in tasks::load(tx, run, Select::All)? {
            if !task.status.is_final() && !task.status.is_in_flight() {
                plan.profile_for(tx, run, &task.key)?;
            }
        }
        Ok(())
    })
}

/// The loop. `stop` is polled between steps (SIGINT); `report` gets every event and the
/// standing after each batch. Ready tasks go to `dispatchers`' worker threads, so a task
/// whose dependency is done starts while other dispatches are still under way.
pub fn drive(
    orch: &mut Orch<'_>,
    launching: &Launching<'_>,
    dispatchers: &dyn Dispatchers,
    opts: &DriveOptions<'_>,
    stop: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&[DriveEvent], &Standing) -> Result<()>,
) -> Result<End> {
    let run = orch.read(|tx| runs::get(tx, opts.run))?;
    run.require_active()?;
    check_profiles(orch, &run.name, opts.plan)?;
    if let (Some(land), Some(repo)) = (opts.land, orch.repo) {
        // A target nothing can land on is refused before anything is dispatched.
        land::resolve_target(repo, &run, land.into)?;
    }
    let (queue, jobs) = Queue::new();
    let workers = opts.parallel.min(MAX_WORKERS);
    std::thread::scope(|scope| {
        let mut pool = Pool::start(scope, workers, (&queue, jobs), dispatchers, &run, opts.plan);
        let ended = turns(orch, launching, &mut pool, &run.name, opts, stop, report);
        // The dispatches under way finish (their supervisors start); queued ones do not.
        pool.close();
        ended
    })
}

fn turns(
    orch: &mut Orch<'_>,
    launching: &Launching<'_>,
    pool: &mut Pool<'_>,
    run: &str,
    opts: &DriveOptions<'_>,
    stop: &dyn Fn() -> bool,
    report: &mut dyn FnMut(&[DriveEvent], &Standing) -> Result<()>,
) -> Result<End> {
    let mut since = orch.read(events::last_id)?;
    let mut lander = Lander::default();
    loop {
        reap(launching);
        let version = orch.store.data_version()?;
        orch.reconcile()?;
        // Answers before the snapshot, so a task counts as being dispatched until the
        // snapshot shows it in flight.
        pool.collect()?;
        // Landing comes before dispatching: a dependent must not start from a result
        // that is about to be sent back. So with `--land` a turn lands and dispatches
        // only when no dispatch is under way (a land must not race one either).
        let settled = opts.land.is_none() || pool.pending.is_empty();
        if let (Some(land), true) = (opts.land, settled) {
            lander.turn(orch, land, run)?;
        }
        // What is left to land comes from the same snapshot as the tasks, so a task that
        // finished after the land above is never taken for landed.
        let (news, last, tasks, unlanded) = orch.read(|tx| {
            let (news, last) = news(tx, run, since)?;
            let unlanded = match opts.land {
                Some(_) => land::unlanded(tx, run)?,
                None => Vec::new(),
            };
            Ok((news, last, glance(tx, run)?, unlanded))
        })?;
        since = last;
        let standing = standing(&tasks, opts.land.is_some());
        report(&news, &standing)?;
        if stop() {
            return Ok(End::Interrupted);
        }
        if standing.done == standing.total && unlanded.is_empty() {
            return Ok(End::Done);
        }
        let preparing = pool.preparing(|key| {
            tasks
                .iter()
                .any(|t| t.key == key && t.status.is_in_flight())
        });
        if opts.until_blocked
            && preparing == 0
            && standing.in_flight > 0
            && standing.questions == standing.in_flight
        {
            return Ok(End::Blocked);
        }
        let room = opts.parallel.saturating_sub(standing.in_flight + preparing);
        let room = if settled { room } else { 0 };
        let reworks = tasks.iter().filter(|t| is_sent_back(t)).count();
        if opts.land.is_some() && room > 0 && reworks > 0 {
            let started =
                land::dispatch_reworks(orch, launching, Some(run), Some(opts.plan), Some(room))?;
            lander.rework_errors = started
                .iter()
                .filter_map(|(key, r)| r.as_ref().err().map(|e| (key.clone(), e.message.clone())))
                .collect();
            if started.iter().any(|(_, r)| r.is_ok()) {
                continue;
            }
        }
        let mut ready: Vec<&Glance> = tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Ready && !pool.pending.contains(&t.key))
            .collect();
        // Priority first; the snapshot is in creation order, which the sort keeps.
        ready.sort_by_key(|t| std::cmp::Reverse(t.priority));
        for task in ready.iter().take(room) {
            pool.send(&task.key)?;
        }
        if standing.in_flight == 0 && pool.pending.is_empty() && !lander.retry {
            if let Some(busy) = lander.busy.take() {
                return Err(busy);
            }
            // Finished after this turn's land: land it before calling anything stuck.
            if !unlanded.is_empty() && lander.waited.as_ref() != Some(&unlanded) {
                continue;
            }
            let tasks = orch.read(|tx| tasks::load(tx, run, Select::All))?;
            return Err(stuck(run, &tasks, &lander));
        }
        let wake = Instant::now() + STOP_POLL;
        let until = opts.deadline.map_or(wake, |d| d.min(wake));
        inbox::sleep_until_change(orch.store, version, Some(until))?;
        if opts.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(Error::new(Code::Timeout, "drive timed out")
                .hint("the agents keep working; run git orch drive again to carry on")
                .detail(
                    "standing",
                    serde_json::to_value(&standing).unwrap_or_default(),
                ));
        }
    }
}

/// How often a drive tries again to land on a target that is checked out and dirty.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// `--land`: what the last land came to, so that a turn lands only when there is
/// something new to land (or the target was busy a while ago).
#[derive(Default)]
struct Lander {
    /// The candidates the last land left waiting: landing again changes nothing until
    /// that list does.
    waited: Option<Vec<String>>,
    waiting: Vec<land::Waiting>,
    /// The target is checked out where it cannot be advanced (`target_busy`).
    busy: Option<Error>,
    busy_since: Option<Instant>,
    /// Another land holds the run's lock, or the target kept moving: try next turn.
    retry: bool,
    /// Reworks whose dispatch failed, and why (they stay blocked).
    rework_errors: Vec<(String, String)>,
}

impl Lander {
    /// Lands what succeeded since the last turn, one land at a time (under the run's land
    /// lock).
    fn turn(&mut self, orch: &mut Orch<'_>, opts: &land::Options<'_>, run: &str) -> Result<()> {
        let unlanded = orch.read(|tx| land::unlanded(tx, run))?;
        let busy_due = self.busy_since.is_none_or(|t| t.elapsed() >= BUSY_RETRY);
        let fresh = self.waited.as_ref() != Some(&unlanded);
        if unlanded.is_empty() || !(fresh || self.retry) || !busy_due {
            return Ok(());
        }
        self.retry = false;
        match land::land(orch, opts) {
            Ok(report) => {
                self.busy = None;
                self.busy_since = None;
                self.waited = Some(report.waiting.iter().map(|w| w.task.clone()).collect());
                self.waiting = report.waiting;
            }
            Err(err) if err.code == Code::TargetBusy => {
                self.waited = None;
                self.busy = Some(err);
                self.busy_since = Some(Instant::now());
            }
            Err(err) if err.code == Code::Conflict => self.retry = true,
            Err(err) => return Err(err),
        }
        Ok(())
    }
}

/// What a turn needs of each task: a few columns, not the task with its attempt and
/// dependencies (a turn runs after every commit, and the run may be large).
struct Glance {
    key: String,
    status: TaskStatus,
    blocked_reason: Option<String>,
    priority: i64,
    landed: bool,
}

fn glance(conn: &rusqlite::Connection, run: &str) -> Result<Vec<Glance>> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, status, blocked_reason, priority, landed_at IS NOT NULL
         FROM tasks WHERE run = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([run], |r| {
        Ok(Glance {
            key: r.get(0)?,
            status: r.get(1)?,
            blocked_reason: r.get(2)?,
            priority: r.get(3)?,
            landed: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn is_sent_back(task: &Glance) -> bool {
    task.status == TaskStatus::Blocked
        && matches!(
            task.blocked_reason.as_deref(),
            Some("land_conflict" | "land_check")
        )
}

fn standing(tasks: &[Glance], land: bool) -> Standing {
    let mut s = Standing {
        total: tasks.len(),
        landed: land.then(|| tasks.iter().filter(|t| t.landed).count()),
        ..Standing::default()
    };
    for task in tasks {
        match task.status {
            TaskStatus::Done | TaskStatus::Cancelled => s.done += 1,
            TaskStatus::Ready => s.ready += 1,
            TaskStatus::Failed => s.failed += 1,
            TaskStatus::Pending => s.pending += 1,
            TaskStatus::Blocked if task.blocked_reason.as_deref() != Some("question") => {
                // A base conflict, or sent back by a land: blocked, with nothing in flight.
                s.pending += 1
            }
            TaskStatus::Blocked => {
                s.in_flight += 1;
                s.questions += 1;
            }
            TaskStatus::Dispatched | TaskStatus::Running => s.in_flight += 1,
        }
    }
    s
}

/// `stuck` (exit 4): nothing in flight and nothing can start. Its details name the
/// failed tasks and, for every other unfinished one, what it waits on.
fn stuck(run: &str, tasks: &[Task], lander: &Lander) -> Error {
    let status_of = |key: &str| {
        tasks
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.status)
            .unwrap_or(TaskStatus::Pending)
    };
    let mut failed = Vec::new();
    let mut waiting = Vec::new();
    for task in tasks {
        match task.status {
            TaskStatus::Failed => {
                let reason = task
                    .current_attempt
                    .as_ref()
                    .and_then(|a| a.failure.as_ref())
                    .map(|f| f.reason.clone());
                failed.push(json!({"task": task.key, "attempts": task.attempts,
                    "max_attempts": task.max_attempts, "reason": reason}));
            }
            TaskStatus::Done | TaskStatus::Cancelled => {}
            _ => {
                let on: Vec<&str> = task
                    .after
                    .iter()
                    .map(String::as_str)
                    .filter(|d| status_of(d) != TaskStatus::Done)
                    .collect();
                waiting.push(json!({"task": task.key, "status": task.status, "on": on,
                    "blocked_reason": task.blocked_reason}));
            }
        }
    }
    let names = |v: &[Value]| {
        v.iter()
            .filter_map(|t| t["task"].as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let not_landed: Vec<Value> = lander
        .waiting
        .iter()
        .map(|w| json!({"task": w.task, "on": w.on}))
        .collect();
    for (task, error) in &lander.rework_errors {
        if let Some(w) = waiting.iter_mut().find(|w| w["task"] == task.as_str()) {
            w["dispatch_error"] = json!(error);
        }
    }
    let mut message = format!("run {run} is stuck: nothing is in flight and nothing can start");
    if !failed.is_empty() {
        message.push_str(&format!("; failed: {}", names(&failed)));
    }
    if !waiting.is_empty() {
        message.push_str(&format!("; waiting: {}", names(&waiting)));
    }
    if !not_landed.is_empty() {
        message.push_str(&format!("; not landed: {}", names(&not_landed)));
    }
    let mut err = Error::new(Code::Stuck, message)
        .hint("retry a failed task with `git orch retry KEY`, then drive again")
        .detail("failed", failed)
        .detail("waiting", waiting);
    if !not_landed.is_empty() {
        err = err.detail("not_landed", not_landed);
    }
    err
}
