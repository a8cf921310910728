//! Per-invocation state: the flags every command takes, what the process was started with,
//! and the repository, store and facades opened on first use.

use crate::error::{Code, Error, Result};
use crate::orch::{GitWorkspaces, Orch, Step};
use crate::repo::{AttemptMarker, Repo};
use crate::store::{Durability, Store};
use serde::Serialize;
use std::path::PathBuf;

/// Flags every command takes, in any position.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Print exactly one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Run as if started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Act as agent NAME (overrides ORCH_AGENT and the worktree's attempt marker)
    #[arg(long, global = true, value_name = "NAME")]
    pub agent: Option<String>,
}

/// What the process was started with, read once at the edge: the library never reads
/// the environment.
pub struct Env {
    pub orch_agent: Option<String>,
    /// `ORCH_THREAD`, set for a launched agent: its thread where no marker names it.
    pub orch_thread: Option<i64>,
    /// `ORCH_TEST_CRASH_AFTER`, raw: parsed only by the commands that dispatch.
    pub crash_after: Option<String>,
    /// `ORCH_TEST_LAND_BEFORE_UPDATE`: a program `land` runs just before it moves the
    /// target (tests move the target there to race the compare-and-swap).
    pub land_before_update: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            orch_agent: std::env::var("ORCH_AGENT").ok().filter(|v| !v.is_empty()),
            orch_thread: std::env::var("ORCH_THREAD")
                .ok()
                .and_then(|v| v.parse().ok()),
            crash_after: std::env::var("ORCH_TEST_CRASH_AFTER")
                .ok()
                .filter(|v| !v.is_empty()),
            land_before_update: std::env::var("ORCH_TEST_LAND_BEFORE_UPDATE")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }
}

/// Per-invocation state: the repository and database are opened on first use, so a
/// command pays only for what it touches.
pub struct Ctx {
    pub global: GlobalArgs,
    pub env: Env,
    repo: Option<Repo>,
    store: Option<Store>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    Flag,
    Env,
    Worktree,
}

impl Ctx {
    pub fn new(global: GlobalArgs, env: Env) -> Ctx {
        Ctx {
            global,
            env,
            repo: None,
            store: None,
        }
    }

    pub fn repo(&mut self) -> Result<&Repo> {
        if self.repo.is_none() {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::io("reading the current directory", e))?;
            self.repo = Some(Repo::discover(&cwd)?);
        }
        Ok(self.repo.as_ref().expect("just set"))
    }

    pub(crate) fn durability(&mut self) -> Result<Durability> {
        match self.repo()?.config_string("orch.durability") {
            Some(value) => Durability::parse(value.trim()),
            None => Ok(Durability::Full),
        }
    }

    pub fn store(&mut self) -> Result<&mut Store> {
        if self.store.is_none() {
            let durability = self.durability()?;
            let state_dir = self.repo()?.state_dir();
            let mut store = Store::open(&state_dir, durability)?;
            store.take_spool_with(crate::orch::worktrees::take_in_spooled);
            self.store = Some(store);
        }
        Ok(self.store.as_mut().expect("just set"))
    }

    /// The repository and the store at once (orch reads the one while writing the other).
    pub fn repo_and_store(&mut self) -> Result<(&Repo, &mut Store)> {
        self.store()?;
        match (&self.repo, &mut self.store) {
            (Some(repo), Some(store)) => Ok((repo, store)),
            _ => Err(Error::internal("the store is open without its repository")),
        }
    }

    /// Creates the state; reports whether anything changed.
    pub fn init_store(&mut self) -> Result<bool> {
        let durability = self.durability()?;
        let state_dir = self.repo()?.state_dir();
        let (mut store, created) = Store::init(&state_dir, durability)?;
        store.take_spool_with(crate::orch::worktrees::take_in_spooled);
        self.store = Some(store);
        Ok(created)
    }

    pub fn config(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.repo()?.config_string(key))
    }

    pub fn leader(&mut self) -> Result<String> {
        let leader = self
            .config("orch.leader")?
            .unwrap_or_else(|| "leader".to_owned());
        crate::names::check_name("leader (orch.leader)", &leader)?;
        Ok(leader)
    }

    pub fn inbox_config(&mut self) -> Result<crate::inbox::Config> {
        let mut cfg = crate::inbox::Config {
            leader: self.leader()?,
            ..crate::inbox::Config::default()
        };
        if let Some(lease) = self.config("orch.defaultLease")? {
            cfg.default_lease = crate::time::parse_duration(&lease)
                .map_err(|e| e.hint("fix it: git config orch.defaultLease 30m"))?;
        }
        if let Some(max) = self.config("orch.maxClaims")? {
            cfg.max_claims = max
                .trim()
                .parse()
                .ok()
                .filter(|n: &i64| *n >= 1)
                .ok_or_else(|| {
                    Error::invalid_input(format!("orch.maxClaims is {max:?}"))
                        .hint("set a whole number ≥ 1: git config orch.maxClaims 5")
                })?;
        }
        Ok(cfg)
    }

    /// Opens the store with the inbox settings, for commands that use the inbox.
    pub fn inbox(&mut self) -> Result<crate::inbox::Inbox<'_>> {
        let cfg = self.inbox_config()?;
        Ok(crate::inbox::Inbox::new(self.store()?, cfg))
    }

    pub fn marker(&mut self) -> Result<Option<AttemptMarker>> {
        self.repo()?.attempt_marker()
    }

    /// The acting agent (SPEC §4): `--agent` > `ORCH_AGENT` > the attempt marker. In a
    /// worktree whose attempt went to a queue the marker names no agent; the worker there
    /// is `<queue>-<attempt id>` (one name per attempt, so two attempts of one queue never
    /// share a claim or a read cursor), and an agent started there still needs no ids.
    pub fn identity(&mut self) -> Result<(String, IdentitySource)> {
        let (agent, source) = if let Some(agent) = self.global.agent.clone() {
            (agent, IdentitySource::Flag)
        } else if let Some(agent) = self.env.orch_agent.clone() {
            (agent, IdentitySource::Env)
        } else if let Some(marker) = self.marker()? {
            match marker.agent {
                Some(agent) => (agent, IdentitySource::Worktree),
                None => (self.queue_worker(&marker)?, IdentitySource::Worktree),
            }
        } else {
            return Err(Error::new(Code::NoIdentity, "no agent identity")
                .hint("pass --agent NAME or set ORCH_AGENT=NAME (inside an attempt worktree it is automatic)"));
        };
        crate::names::check_name("agent", &agent)?;
        Ok((agent, source))
    }

    /// The default worker name in a queue-addressed attempt worktree.
    fn queue_worker(&mut self, marker: &AttemptMarker) -> Result<String> {
        let thread = self
            .inbox()?
            .read(|tx| crate::inbox::find_thread(tx, marker.thread))?;
        let queue = thread
            .as_ref()
            .and_then(|t| t.to.strip_prefix('@'))
            .unwrap_or("worker");
        let name = format!("{queue}-{}", marker.attempt);
        // A queue name near the 63-character limit leaves no room for the suffix.
        Ok(if crate::names::check_name("agent", &name).is_ok() {
            name
        } else {
            format!("worker-{}", marker.attempt)
        })
    }

    pub fn agent(&mut self) -> Result<String> {
        self.identity().map(|(agent, _)| agent)
    }

    /// A thread id given on the command line, else the attempt worktree's thread, else a
    /// launched agent's `ORCH_THREAD`, else the one thread the acting agent holds a claim
    /// on (a reviewer has no worktree).
    pub fn thread_id(&mut self, given: Option<i64>) -> Result<i64> {
        if let Some(id) = given {
            return Ok(id);
        }
        if let Some(marker) = self.marker()? {
            return Ok(marker.thread);
        }
        if let Some(thread) = self.env.orch_thread {
            return Ok(thread);
        }
        let no_id = || {
            Error::new(Code::Usage, "no thread id given").hint(
                "pass the thread id, run this inside an attempt worktree, or hold exactly one claim",
            )
        };
        let Ok(agent) = self.agent() else {
            return Err(no_id());
        };
        let held = self.inbox()?.read(|tx| {
            let filter = crate::inbox::ListFilter {
                status: Some("claimed"),
                mine: Some(&agent),
                limit: i64::MAX,
                ..Default::default()
            };
            Ok(crate::inbox::list(tx, &filter)?
                .into_iter()
                .filter(|t| t.is_held_by(&agent))
                .map(|t| t.id)
                .collect::<Vec<_>>())
        })?;
        match held.as_slice() {
            [id] => Ok(*id),
            [] => Err(no_id()),
            ids => Err(Error::new(
                Code::Usage,
                format!("no thread id given, and {agent} holds {} claims", ids.len()),
            )
            .hint(format!(
                "name one of them: {}",
                ids.iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .detail("threads", ids.to_vec())),
        }
    }

    /// The orch facade with the repository, for every orch and council command.
    pub fn orch(&mut self) -> Result<Orch<'_>> {
        let cfg = self.inbox_config()?;
        let (repo, store) = self.repo_and_store()?;
        Ok(Orch::with_repo(store, cfg, repo))
    }

    /// Runs `f` with the orch facade and the worktrees that dispatch makes (SPEC §7).
    ///
    /// `ORCH_TEST_CRASH_AFTER=allocate|worktree|thread|marker|store` makes dispatch abort
    /// the process right after that step, as a SIGKILL would, so tests can check what
    /// reconcile makes of it. The library sees only the callback, never the variable.
    pub fn dispatching<T>(
        &mut self,
        f: impl FnOnce(&mut Orch<'_>, &GitWorkspaces<'_>) -> Result<T>,
    ) -> Result<T> {
        let cfg = self.inbox_config()?;
        let strict_untracked = self
            .repo()?
            .config_bool("orch.strictUntracked")?
            .unwrap_or(false);
        let crash = self
            .env
            .crash_after
            .as_deref()
            .map(Step::parse)
            .transpose()?;
        let on_step = move |step: Step| {
            if Some(step) == crash {
                std::process::abort();
            }
        };
        let (repo, store) = self.repo_and_store()?;
        let workspaces = GitWorkspaces::new(repo)
            .strict_untracked(strict_untracked)
            .on_step(&on_step);
        let mut orch = Orch::with_repo(store, cfg, repo);
        f(&mut orch, &workspaces)
    }
}
