//! The supervisor of one launched agent (SPEC §11), a detached process that lives
//! exactly as long as its agent:
//!
//! 1. claims the attempt's thread as the agent `<profile>-<attempt id>`;
//! 2. writes the brief, runs `orch.setup`, and starts the agent in the worktree, in a
//!    process group of its own, stdout and stderr to the attempt's log;
//! 3. renews the lease while the agent lives;
//! 4. when the agent exits, records `agent.exit` and settles a thread the agent left
//!    open: failed, retryable, `agent_exited` (protocol `inbox`), or for protocol `exit`
//!    done when it exited 0, passed its preset's success test and left nothing
//!    uncommitted;
//! 5. ends the agent's process group (SIGTERM, SIGKILL 10 s later) when the thread is
//!    cancelled or the timeout passes (`agent_timeout`).
//!
//! It also marks the launch `stalled` when neither the log nor the thread moved for
//! `stallAfter`. Its lock (see [`super`]) is its stdin, inherited from the dispatcher.

use super::brief::Brief;
use super::preset::Protocol;
use super::process;
use super::profile::{self, Profile};
use super::template::{self, Vars};
use super::{emit, fail_for_agent, open_log, remove_lock, Launch};
use super::{AGENT_EXITED, AGENT_FAILED_TO_START, AGENT_TIMEOUT, SETUP_FAILED};
use crate::error::{Error, Result};
use crate::inbox::{self, Note, ThreadStatus};
use crate::orch::{get_attempt, tasks, Attempt, AttemptId, Task};
use crate::repo::{Repo, Untracked};
use crate::store::Store;
use rusqlite::params;
use serde_json::json;
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a process group has between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(10);
/// How often the supervisor looks at its agent, its thread and the clock.
const TICK: Duration = Duration::from_millis(200);
/// How much of the log's end `agent.exit` carries.
const LOG_TAIL_BYTES: u64 = 4096;

/// What the supervisor gets from the process it runs in (read at the CLI edge).
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// `PATH` as the supervisor was started with.
    pub path: Option<OsString>,
    /// The folder of the running git-orch, put first on the agent's PATH so its `git
    /// inbox` is the one installed beside it.
    pub exe_dir: Option<PathBuf>,
}

/// Why the supervisor ended the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Timeout,
    Cancelled,
}

struct Supervisor<'a> {
    repo: &'a Repo,
    store: &'a mut Store,
    cfg: &'a inbox::Config,
    attempt: Attempt,
    launch: Launch,
    thread: i64,
    log: File,
    /// The agent's pid (and process group) once it started.
    agent_pid: Option<i64>,
    /// The attempt's worktree, opened once for its git dir and the dirty check at exit.
    worktree: Option<Repo>,
}

/// Runs the supervisor of attempt `id` to the end. Errors are also written to the log.
pub fn supervise(
    repo: &Repo,
    store: &mut Store,
    cfg: &inbox::Config,
    id: AttemptId,
    edge: &Edge,
) -> Result<()> {
    let (attempt, task) = store.read(|tx| {
        let attempt = get_attempt(tx, id)?;
        let task = tasks::load_one(tx, &attempt.run, &attempt.task)?;
        Ok((attempt, task))
    })?;
    let (Some(launch), Some(thread)) = (attempt.launch.clone(), attempt.thread) else {
        return Err(Error::not_found(format!(
            "attempt {id} was not launched or has no thread"
        )));
    };
    let log = open_log(Path::new(&launch.log))?;
    let state_dir = store.state_dir().to_owned();
    let mut sup = Supervisor {
        repo,
        store,
        cfg,
        attempt,
        launch,
        thread,
        log,
        agent_pid: None,
        worktree: None,
    };
    let outcome = sup.run(&task, edge);
    if let Err(err) = &outcome {
        sup.say(&format!(
            "supervisor error: {} [{}]",
            err.message,
            err.code.as_str()
        ));
        // Nothing keeps running once nobody supervises it.
        if let Some(pid) = sup.agent_pid {
            process::end_group(pid, KILL_GRACE, |wait| {
                std::thread::sleep(wait);
                true
            });
        }
        // A supervisor that cannot go on must not leave the thread to look alive.
        let _ = sup.give_up(AGENT_EXITED, &err.message);
    }
    remove_lock(&state_dir, id);
    outcome
}

impl Supervisor<'_> {
    /// A line of the supervisor's own in the agent log.
    fn say(&mut self, text: &str) {
        let _ = writeln!(self.log, "[git-orch] {text}");
    }

    fn agent(&self) -> String {
        self.launch.agent.clone()
    }

    /// Fails the thread for the agent and marks the launch ended.
    fn give_up(&mut self, reason: &str, detail: &str) -> Result<()> {
        let (cfg, agent, thread, id) = (self.cfg, self.agent(), self.thread, self.attempt.id);
        self.store.write(|tx| {
            fail_for_agent(tx, cfg, &agent, thread, reason, Some(detail))?;
            tx.prepare_cached(
                "UPDATE launches SET ended_at = coalesce(ended_at, ?2) WHERE attempt_id = ?1",
            )?
            .execute(params![id, crate::time::now_ms()])?;
            Ok(())
        })
    }

    fn run(&mut self, task: &Task, edge: &Edge) -> Result<()> {
        let (cfg, agent, thread, id) = (self.cfg, self.agent(), self.thread, self.attempt.id);
        let me = std::process::id() as i64;
        let claimed = self.store.write(|tx| {
            tx.prepare_cached("UPDATE launches SET supervisor_pid = ?2 WHERE attempt_id = ?1")?
                .execute(params![id, me])?;
            let thread = inbox::get_thread(tx, thread)?;
            if thread.is_closed() {
                return Ok(false);
            }
            inbox::claim(tx, cfg, &agent, thread.id, None).map(|_| true)
        })?;
        if !claimed {
            self.say("the thread was closed before the agent started; nothing to do");
            return self.give_up(AGENT_EXITED, "closed before start");
        }
        self.say(&format!(
            "supervisor {me} claimed thread {thread} as {agent}"
        ));

        let profile = match profile::resolve(self.repo, &self.launch.profile) {
            Ok(profile) => profile,
            Err(err) => return self.failed_to_start(&err),
        };
        let main = self.repo.main_worktree()?;
        let cwd = match &self.attempt.worktree {
            Some(path) => PathBuf::from(path),
            None => main
                .clone()
                .unwrap_or_else(|| self.repo.common_dir().to_owned()),
        };
        // Opened once: the brief goes into its private git dir, `{git_dir}` names it, and
        // the exit's dirty check reads it.
        if self.attempt.worktree.is_some() {
            self.worktree = Some(Repo::open_worktree(&cwd)?);
        }
        let git_dir = self.worktree.as_ref().map(|wt| wt.git_dir().to_owned());
        let (brief_file, brief) = self.write_brief(task, &profile, git_dir.as_deref())?;
        let git_dir = git_dir.unwrap_or_else(|| self.repo.common_dir().to_owned());
        if self.attempt.worktree.is_some() {
            if let Some(setup) = self.repo.config_string("orch.setup") {
                if !self.setup(&setup, &cwd, edge)? {
                    return Ok(());
                }
            }
        }
        let vars = Vars {
            brief: &brief,
            brief_file: &brief_file,
            worktree: &cwd,
            agent: &agent,
            model: profile.model.as_deref(),
            common_dir: self.repo.common_dir(),
            git_dir: &git_dir,
        };
        let mut argv = match profile.argv(&vars) {
            Ok(argv) => argv,
            Err(err) => return self.failed_to_start(&err),
        };
        let base = main.unwrap_or_else(|| cwd.clone());
        let program = match profile.program(&base, edge.path.as_deref()) {
            Ok(program) => program,
            Err(err) => return self.failed_to_start(&err),
        };
        argv[0] = program.to_string_lossy().into_owned();
        self.say(&format!("starting {} in {}", argv[0], cwd.display()));
        let mut cmd = self.command(&argv, &cwd, edge, &brief_file, &profile)?;
        let started = Instant::now();
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let err = Error::io(format!("starting {}", argv[0]), e);
                return self.failed_to_start(&err);
            }
        };
        let pid = child.id() as i64;
        self.agent_pid = Some(pid);
        let attempt = self.attempt.clone();
        self.store.write(|tx| {
            tx.prepare_cached(
                "UPDATE launches SET pid = ?2, started_at = ?3 WHERE attempt_id = ?1",
            )?
            .execute(params![id, pid, crate::time::now_ms()])?;
            emit(
                tx,
                &attempt,
                &agent,
                "agent.start",
                json!({"pid": pid, "profile": profile.name}),
            )
            .map(drop)
        })?;
        let (status, ending) = self.watch(child, pid, &profile)?;
        self.finish(pid, status, ending, started, &profile)
    }

    fn failed_to_start(&mut self, err: &Error) -> Result<()> {
        self.say(&format!("the agent could not start: {}", err.message));
        self.give_up(AGENT_FAILED_TO_START, &err.message)
    }

    /// The brief, in the worktree's private git dir `git_dir` (for a task without a
    /// worktree, beside the log): its path and its text.
    fn write_brief(
        &mut self,
        task: &Task,
        profile: &Profile,
        git_dir: Option<&Path>,
    ) -> Result<(PathBuf, String)> {
        let attempt = &self.attempt;
        let body = self
            .store
            .read(|tx| super::brief::opening_body(tx, attempt))?;
        let text = Brief {
            task,
            attempt: Some(&self.attempt),
            agent: Some(&self.launch.agent),
            protocol: profile.protocol,
            inbox: profile.inbox,
            body: body.as_deref(),
        }
        .render();
        let path = match git_dir {
            Some(dir) => dir.join("orch-brief.md"),
            None => PathBuf::from(&self.launch.log).with_extension("brief.md"),
        };
        std::fs::write(&path, &text)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok((path, text))
    }

    fn base_command(&self, program: &str, cwd: &Path, edge: &Edge) -> Result<Command> {
        let mut cmd = Command::new(program);
        // PWD too: some CLIs (opencode) take their project from it, not from the cwd.
        cmd.current_dir(cwd).env("PWD", cwd).stdin(Stdio::null());
        for out in [0, 1] {
            let file = self
                .log
                .try_clone()
                .map_err(|e| Error::io("opening the agent log", e))?;
            if out == 0 {
                cmd.stdout(file);
            } else {
                cmd.stderr(file);
            }
        }
        for var in crate::repo::git::LOCAL_ENV_VARS {
            cmd.env_remove(var);
        }
        let mut dirs: Vec<PathBuf> = edge.exe_dir.iter().cloned().collect();
        dirs.extend(std::env::split_paths(
            edge.path.as_deref().unwrap_or_default(),
        ));
        if let Ok(path) = std::env::join_paths(dirs) {
            cmd.env("PATH", path);
        }
        Ok(cmd)
    }

    fn command(
        &self,
        argv: &[String],
        cwd: &Path,
        edge: &Edge,
        brief_file: &Path,
        profile: &Profile,
    ) -> Result<Command> {
        let mut cmd = self.base_command(&argv[0], cwd, edge)?;
        cmd.args(&argv[1..])
            // Its own group, so that ending the agent ends everything it started.
            .process_group(0)
            .env("ORCH_AGENT", &self.launch.agent)
            .env("ORCH_RUN", &self.attempt.run)
            .env("ORCH_TASK", &self.attempt.task)
            .env("ORCH_ATTEMPT", self.attempt.id.to_string())
            .env("ORCH_THREAD", self.thread.to_string())
            .env("ORCH_BRIEF", brief_file);
        for (key, value) in &profile.env {
            cmd.env(key, value);
        }
        Ok(cmd)
    }

    /// `orch.setup` in the new worktree; false (thread failed) when it did not pass.
    fn setup(&mut self, setup: &str, cwd: &Path, edge: &Edge) -> Result<bool> {
        let words = template::parse("orch.setup", setup)?;
        let argv: Vec<String> = words.iter().map(|w| w.display(None)).collect();
        self.say(&format!("setup: {}", argv.join(" ")));
        let from = self.log.metadata().map(|m| m.len()).unwrap_or(0);
        let status = self
            .base_command(&argv[0], cwd, edge)?
            .args(&argv[1..])
            .process_group(0)
            .status();
        let why = match status {
            Ok(s) if s.success() => return Ok(true),
            Ok(s) => format!("orch.setup failed ({})", describe(&s)),
            Err(e) => format!("orch.setup could not start: {e}"),
        };
        let output = tail_from(Path::new(&self.launch.log), from);
        self.say(&why);
        self.give_up(SETUP_FAILED, &format!("{why}\n{output}"))?;
        Ok(false)
    }

    /// Waits for the agent while keeping its lease, watching its thread and the clock.
    fn watch(
        &mut self,
        mut child: std::process::Child,
        pid: i64,
        profile: &Profile,
    ) -> Result<(ExitStatus, Option<Ending>)> {
        let (tx_exit, rx_exit) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx_exit.send(child.wait());
        });
        let (cfg, agent, thread_id, id) = (self.cfg, self.agent(), self.thread, self.attempt.id);
        let deadline = Instant::now() + profile.timeout;
        let renew_every = (cfg.default_lease / 3).max(Duration::from_secs(1));
        let mut next_renew = Instant::now() + renew_every;
        let mut ending: Option<(Ending, Instant)> = None;
        let mut killed = false;
        let mut version = self.store.data_version()?;
        let mut own_update: Option<String> = None;
        let mut last_activity = Instant::now();
        let mut log_len = self.log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut stalled = false;
        loop {
            match rx_exit.recv_timeout(TICK) {
                Ok(status) => {
                    let status = status.map_err(|e| Error::io("waiting for the agent", e))?;
                    return Ok((status, ending.map(|(why, _)| why)));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Error::internal("lost the agent's exit status"))
                }
            }
            let now = Instant::now();
            if let Some((_, kill_at)) = ending {
                if now >= kill_at && !killed {
                    process::signal_group(pid, rustix::process::Signal::KILL);
                    killed = true;
                }
                continue;
            }
            if now >= deadline {
                self.say(&format!(
                    "timeout after {:?}: ending the agent",
                    profile.timeout
                ));
                process::signal_group(pid, rustix::process::Signal::TERM);
                ending = Some((Ending::Timeout, now + KILL_GRACE));
                continue;
            }
            let current = self.store.data_version()?;
            if current != version {
                version = current;
                if let Some(thread) = self.store.read(|tx| inbox::find_thread(tx, thread_id))? {
                    if thread.status == ThreadStatus::Cancelled {
                        self.say("the thread was cancelled: ending the agent");
                        process::signal_group(pid, rustix::process::Signal::TERM);
                        ending = Some((Ending::Cancelled, now + KILL_GRACE));
                        continue;
                    }
                    if own_update.as_deref() != Some(thread.updated_at.as_str()) {
                        last_activity = now;
                    }
                    if thread.status == ThreadStatus::Open {
                        next_renew = now;
                    }
                }
            }
            let len = self.log.metadata().map(|m| m.len()).unwrap_or(log_len);
            if len != log_len {
                log_len = len;
                last_activity = now;
            }
            let idle = now.duration_since(last_activity);
            if stalled != (idle >= profile.stall_after) {
                stalled = !stalled;
                let (kind, attempt) = (
                    if stalled {
                        "agent.stalled"
                    } else {
                        "agent.active"
                    },
                    self.attempt.clone(),
                );
                self.store.write(|tx| {
                    tx.prepare_cached("UPDATE launches SET stalled = ?2 WHERE attempt_id = ?1")?
                        .execute(params![id, stalled])?;
                    emit(
                        tx,
                        &attempt,
                        &agent,
                        kind,
                        json!({"idle_ms": idle.as_millis() as u64}),
                    )
                    .map(drop)
                })?;
            }
            if now >= next_renew {
                next_renew = now + renew_every;
                // Claiming again renews a held claim and takes back one that lapsed.
                own_update = self.store.write(|tx| {
                    let thread = inbox::get_thread(tx, thread_id)?;
                    if thread.is_closed() {
                        return Ok(None);
                    }
                    inbox::claim(tx, cfg, &agent, thread_id, None)
                        .map(|p| Some(p.thread.updated_at))
                })?;
            }
        }
    }

    /// After the agent exited: its leftovers ended, `agent.exit`, the thread settled.
    fn finish(
        &mut self,
        pid: i64,
        status: ExitStatus,
        ending: Option<Ending>,
        started: Instant,
        profile: &Profile,
    ) -> Result<()> {
        let me = std::process::id() as i64;
        // The signal-0 test first: /proc is read only when the group outlived its leader.
        if process::group_alive(pid) && !process::group_members(pid, me).is_empty() {
            process::end_group(pid, KILL_GRACE, |wait| {
                std::thread::sleep(wait);
                true
            });
        }
        let duration_ms = started.elapsed().as_millis() as u64;
        self.say(&format!(
            "agent {} after {duration_ms} ms",
            describe(&status)
        ));
        let output = tail_from(Path::new(&self.launch.log), 0);
        let log_tail = tail_from(
            Path::new(&self.launch.log),
            std::fs::metadata(&self.launch.log)
                .map(|m| m.len().saturating_sub(LOG_TAIL_BYTES))
                .unwrap_or(0),
        );
        let (head_sha, commits) = self.head();
        let verdict = profile.preset.verdict(status.code(), &output, commits);
        let dirty = match (&self.worktree, profile.protocol) {
            (Some(worktree), Protocol::Exit) => {
                let mut dirty = worktree.dirty_paths(Untracked::Include).unwrap_or_default();
                dirty.retain(|p| !profile.preset.is_scratch(p));
                dirty
            }
            _ => Vec::new(),
        };
        let (cfg, agent, thread_id, id) = (self.cfg, self.agent(), self.thread, self.attempt.id);
        let attempt = self.attempt.clone();
        let protocol = profile.protocol;
        self.store.write(|tx| {
            tx.prepare_cached(
                "UPDATE launches SET exit_code = ?2, signal = ?3, ended_at = ?4 WHERE attempt_id = ?1",
            )?
            .execute(params![id, status.code(), status.signal(), crate::time::now_ms()])?;
            emit(tx, &attempt, &agent, "agent.exit", json!({
                "code": status.code(),
                "signal": status.signal().map(process::signal_name),
                "log_tail": log_tail,
                "duration_ms": duration_ms,
                "ended_by": ending.map(|e| match e { Ending::Timeout => "timeout", Ending::Cancelled => "cancel" }),
                "verdict": {"ok": verdict.ok, "why": verdict.why, "summary": verdict.summary},
            }))?;
            let thread = inbox::get_thread(tx, thread_id)?;
            if thread.is_closed() {
                return Ok(());
            }
            let why = verdict.why.clone().unwrap_or_default();
            match (ending, protocol) {
                (Some(Ending::Timeout), _) => {
                    let detail = format!("the agent ran past its timeout of {:?}", profile.timeout);
                    fail_for_agent(tx, cfg, &agent, thread_id, AGENT_TIMEOUT, Some(&detail)).map(drop)
                }
                (_, Protocol::Exit) if verdict.ok && dirty.is_empty() => {
                    if thread.status != ThreadStatus::Claimed {
                        inbox::claim(tx, cfg, &agent, thread_id, None)?;
                    }
                    let result = json!({"exit_code": status.code(), "head_sha": head_sha,
                                        "commits": commits, "summary": verdict.summary});
                    let note = Note { body: &verdict.summary, ..Note::default() };
                    inbox::done(tx, cfg, &agent, thread_id, note, Some(&result), None).map(drop)
                }
                (_, Protocol::Exit) => {
                    let detail = if verdict.ok {
                        format!("the agent exited 0 but left uncommitted changes: {}", dirty.join(", "))
                    } else {
                        format!("the agent {why}: {}", verdict.summary)
                    };
                    fail_for_agent(tx, cfg, &agent, thread_id, AGENT_EXITED, Some(&detail)).map(drop)
                }
                (_, Protocol::Inbox) => {
                    let detail = format!(
                        "the agent {} without `git inbox done` or `fail`{}",
                        describe(&status),
                        if why.is_empty() { String::new() } else { format!(" ({why})") }
                    );
                    fail_for_agent(tx, cfg, &agent, thread_id, AGENT_EXITED, Some(&detail)).map(drop)
                }
            }
        })
    }

    /// The attempt branch's tip and its commits since the base (none without a branch).
    fn head(&self) -> (Option<String>, u64) {
        let Some(branch) = &self.attempt.branch else {
            return (None, 0);
        };
        let tip = self.repo.branch_tip(branch).ok().flatten();
        let commits = match (&tip, &self.attempt.base_sha) {
            (Some(tip), Some(base)) => self.repo.count_commits(tip, base).unwrap_or(0),
            _ => 0,
        };
        (tip, commits)
    }
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by {}", process::signal_name(signal)),
        _ => "ended".to_owned(),
    }
}

/// The log from byte `from` on (at most the last 64 KiB of it), as text.
fn tail_from(path: &Path, from: u64) -> String {
    let Ok(mut file) = File::open(path) else {
        return String::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(64 * 1024));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
