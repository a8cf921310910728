//! `git orch` commands for launched agents (SPEC §11): `dispatch --launch`, `profile`,
//! `brief`, `agents`, `logs`, and the hidden `supervise` that `dispatch --launch` starts.

use super::dispatch::DispatchArgs;
use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::{or_dash, Table};
use crate::error::{Error, Result};
use crate::orch::dispatch::{self, Options};
use crate::orch::launch::brief::Brief;
use crate::orch::launch::preset::{InboxVia, Protocol};
use crate::orch::launch::supervisor::{self, Edge};
use crate::orch::launch::{self, profile, Launching, Plan};
use crate::orch::{runs, tasks, Attempt, Workspaces};
use clap::Subcommand;
use serde_json::json;
use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum ProfileCommand {
    /// List the configured profiles and the built-in presets
    List,
    /// Show one profile with its resolved argv (secret-looking env values as ***)
    Show(ProfileName),
}

#[derive(clap::Args, Debug)]
pub struct ProfileName {
    /// The profile (a name under orch.agent.<profile>, or a preset)
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct BriefArgs {
    /// The task
    pub key: String,
    /// Write it for this profile's protocol (default: the attempt's, else the task's)
    #[arg(long, value_name = "PROFILE")]
    pub profile: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The task (its current attempt's log)
    pub key: String,
    /// Keep printing what the agent writes until it has exited
    #[arg(long)]
    pub follow: bool,
    /// With --follow, give up after D (exit 5)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct SuperviseArgs {
    /// The attempt id
    pub attempt: i64,
}

fn path_env() -> Option<std::ffi::OsString> {
    std::env::var_os("PATH")
}

/// The profiles a dispatch may launch with, resolved and their programs checked.
pub(super) fn plan(ctx: &mut Ctx, run: Option<&str>, given: Option<&str>) -> Result<Plan> {
    let names = {
        let mut orch = ctx.orch()?;
        orch.read(|tx| {
            let run = runs::resolve(tx, run)?;
            launch::task_profiles(tx, &run.name)
        })?
    };
    plan_of(ctx, names, given)
}

/// The plan a retry or reassign of task `key` launches with: `--launch [PROFILE]` when
/// given; else, unless the attempt goes to a named agent (`--to`), the profile its last
/// attempt was launched with, as drive would; else none (a dispatch by hand).
pub(super) fn relaunch_plan(
    ctx: &mut Ctx,
    run: Option<&str>,
    key: &str,
    to_given: bool,
    given: Option<String>,
) -> Result<Option<Plan>> {
    let profile = match given {
        Some(given) => given,
        None if to_given => return Ok(None),
        None => {
            let mut orch = ctx.orch()?;
            let last = orch.read(|tx| {
                let run = runs::resolve(tx, run)?;
                let task = tasks::load_one(tx, &run.name, key)?;
                Ok(task
                    .current_attempt
                    .and_then(|a| a.launch)
                    .map(|l| l.profile))
            })?;
            match last {
                Some(profile) => profile,
                None => return Ok(None),
            }
        }
    };
    plan(ctx, run, Some(&profile)).map(Some)
}

/// A plan of the profiles `names` (the tasks' own) and `given`, over `orch.launch`.
pub(super) fn plan_of(ctx: &mut Ctx, names: Vec<String>, given: Option<&str>) -> Result<Plan> {
    let given = given.filter(|g| !g.is_empty()).map(str::to_owned);
    let default = ctx.config("orch.launch")?.filter(|d| !d.trim().is_empty());
    let repo = ctx.repo()?;
    let base = repo
        .main_worktree()?
        .or_else(|| repo.workdir().map(PathBuf::from))
        .unwrap_or_else(|| repo.common_dir().to_owned());
    let path = path_env();
    let state_dir = repo.state_dir();
    Ok(Plan::new(given, default, state_dir, names, |name| {
        let profile = profile::resolve(repo, name)?;
        profile.program(&base, path.as_deref())?;
        Ok(profile)
    }))
}

/// Where supervisors start from: this git-orch binary, run in the repository's folder,
/// with its state dir. `dispatch --launch` and `drive` start them the same way.
pub(super) struct Supervisors {
    exe: PathBuf,
    dir: PathBuf,
    pub state_dir: PathBuf,
}

impl Supervisors {
    pub(super) fn find(ctx: &mut Ctx) -> Result<Supervisors> {
        let exe =
            std::env::current_exe().map_err(|e| Error::io("finding the git-orch binary", e))?;
        let repo = ctx.repo()?;
        let dir = repo
            .workdir()
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.git_dir().to_owned());
        Ok(Supervisors {
            exe,
            dir,
            state_dir: repo.state_dir(),
        })
    }

    /// The dispatcher's workspaces, starting a supervisor for each attempt.
    pub(super) fn launching<'a>(&self, inner: &'a dyn Workspaces) -> Launching<'a> {
        Launching {
            inner,
            exe: self.exe.clone(),
            dir: self.dir.clone(),
            state_dir: self.state_dir.clone(),
            children: RefCell::new(Vec::new()),
        }
    }
}

/// `git orch dispatch … --launch [PROFILE]`.
pub fn dispatch(ctx: &mut Ctx, out: &Out, args: DispatchArgs) -> Result<()> {
    let plan = plan(ctx, args.run.run.as_deref(), args.launch.as_deref())?;
    let supervisors = Supervisors::find(ctx)?;
    let opts = Options {
        keys: &args.keys,
        all_ready: args.all_ready,
        max: args.max.map(|m| m as usize),
        to: None,
        base: args.base.as_deref(),
        force: args.force,
        launch: Some(&plan),
    };
    let done = ctx.dispatching(|orch, workspaces| {
        let launching = supervisors.launching(workspaces);
        dispatch::dispatch_tasks(orch, &launching, args.run.run.as_deref(), &opts)
    })?;
    out.success(
        &json!({ "attempts": done.attempts, "blocked": done.blocked }),
        || {
            let mut lines: Vec<String> = done.attempts.iter().map(render_launched).collect();
            lines.extend(done.blocked.iter().map(super::dispatch::render_conflict));
            if lines.is_empty() {
                "Nothing to dispatch: no task is ready.".into()
            } else {
                lines.join("\n")
            }
        },
    )
}

fn render_launched(a: &Attempt) -> String {
    let mut line = format!("Launched {} (attempt {})", a.task, a.n);
    if let Some(launch) = &a.launch {
        line.push_str(&format!(" as {} [{}]", launch.agent, launch.profile));
        line.push_str(&format!("\n  log {}", launch.log));
    }
    if let Some(worktree) = &a.worktree {
        line.push_str(&format!("\n  worktree {worktree}"));
    }
    line
}

pub fn profile_command(ctx: &mut Ctx, out: &Out, command: ProfileCommand) -> Result<()> {
    let repo = ctx.repo()?;
    match command {
        ProfileCommand::List => {
            let mut views = Vec::new();
            let mut problems = Vec::new();
            for name in profile::names(repo) {
                match profile::resolve(repo, &name) {
                    Ok(p) => views.push(p.view()),
                    Err(_) if name == "script" => views.push(profile::script_preset_view()),
                    Err(err) => problems.push(json!({"name": name, "error": err.message})),
                }
            }
            let default = repo.config_string("orch.launch");
            out.success(
                &json!({"profiles": views, "invalid": problems, "default": default}),
                || {
                    let mut table = Table::new(&["PROFILE", "PRESET", "PROTOCOL", "ARGV"]);
                    for v in &views {
                        let mark = if default.as_deref() == Some(v.name.as_str()) {
                            " (default)"
                        } else {
                            ""
                        };
                        table.row(vec![
                            format!("{}{mark}", v.name),
                            v.preset.to_owned(),
                            protocol_text(v.protocol, v.inbox),
                            if v.argv.is_empty() {
                                "(its profile's command)".to_owned()
                            } else {
                                v.argv.join(" ")
                            },
                        ]);
                    }
                    let mut text = table.render();
                    for p in &problems {
                        text.push_str(&format!(
                            "{}: invalid: {}\n",
                            p["name"].as_str().unwrap_or(""),
                            p["error"].as_str().unwrap_or("")
                        ));
                    }
                    text
                },
            )
        }
        ProfileCommand::Show(args) => {
            let profile = profile::resolve(repo, &args.name)?;
            let view = profile.view();
            out.success(&json!({"profile": view}), || {
                let mut text = format!(
                    "profile {} (preset {}{})\nargv:     {}\nprotocol: {}\ntimeout:  {}s, stalled after {}s\nmodel:    {}\n",
                    view.name,
                    view.preset,
                    if view.configured { "" } else { ", not configured" },
                    view.argv.join(" "),
                    protocol_text(view.protocol, view.inbox),
                    view.timeout_ms / 1000,
                    view.stall_after_ms / 1000,
                    or_dash(view.model.as_deref()),
                );
                for entry in &view.env {
                    text.push_str(&format!("env:      {entry}\n"));
                }
                text
            })
        }
    }
}

/// `inbox`, with how the agent reaches it unless that is its shell.
fn protocol_text(protocol: &str, inbox: &str) -> String {
    match (protocol, inbox) {
        ("inbox", "shell") | ("exit", _) => protocol.to_owned(),
        _ => format!("{protocol} (via {inbox})"),
    }
}

/// `git orch brief KEY`: the brief the task's current (or next) attempt gets.
pub fn brief(ctx: &mut Ctx, out: &Out, args: BriefArgs) -> Result<()> {
    let default = ctx.config("orch.launch")?;
    let (task, own, body) = {
        let mut orch = ctx.orch()?;
        orch.reconcile()?;
        orch.read(|tx| {
            let run = runs::resolve(tx, args.run.run.as_deref())?;
            let task = tasks::load_one(tx, &run.name, &args.key)?;
            let own = launch::task_profile(tx, &run.name, &args.key)?;
            let body = match &task.current_attempt {
                Some(a) => launch::brief::opening_body(tx, a)?,
                None => None,
            };
            Ok((task, own, body))
        })?
    };
    let attempt = task.current_attempt.clone();
    let launched = attempt.as_ref().and_then(|a| a.launch.clone());
    let name = args
        .profile
        .clone()
        .or(launched.as_ref().map(|l| l.profile.clone()))
        .or(own)
        .or(default);
    let (protocol, inbox) = match &name {
        Some(name) => {
            let p = profile::resolve(ctx.repo()?, name)?;
            (p.protocol, p.inbox)
        }
        None => (Protocol::Inbox, InboxVia::Shell),
    };
    let text = Brief {
        task: &task,
        attempt: attempt.as_ref(),
        agent: launched.as_ref().map(|l| l.agent.as_str()),
        protocol,
        inbox,
        body: body.as_deref(),
    }
    .render();
    out.success(
        &json!({"task": task.key, "attempt": attempt.map(|a| a.id), "profile": name,
                "protocol": protocol.as_str(), "inbox": inbox.as_str(), "brief": text}),
        || text.clone(),
    )
}

/// `git orch agents`: the run's launched agents, newest first.
pub fn agents(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let agents = orch.read(|tx| {
        let run = runs::resolve(tx, args.run.as_deref())?;
        launch::agents(tx, &run.name)
    })?;
    out.success(&json!({"agents": agents}), || {
        if agents.is_empty() {
            return "No agent was launched in this run.".into();
        }
        let mut table = Table::new(&[
            "TASK", "ATTEMPT", "PROFILE", "PID", "STATE", "FOR", "LAST", "LOG",
        ]);
        for a in &agents {
            let state = match (&a.state[..], a.exit_code, &a.signal) {
                ("exited", Some(code), _) => format!("exited {code}"),
                ("killed", _, Some(signal)) => format!("killed {signal}"),
                (state, _, _) => state.to_owned(),
            };
            table.row(vec![
                a.task.clone(),
                a.n.to_string(),
                a.profile.clone(),
                a.pid.map_or("-".into(), |p| p.to_string()),
                state,
                a.running_ms
                    .map_or("-".into(), |ms| format!("{}s", ms / 1000)),
                or_dash(a.last_activity_at.as_deref()),
                a.log.clone(),
            ]);
        }
        table.render()
    })
}

/// `git orch logs KEY [--follow]`.
pub fn logs(ctx: &mut Ctx, out: &Out, args: LogsArgs) -> Result<()> {
    let deadline = crate::cli::input::deadline(args.timeout.as_deref())?;
    let mut orch = ctx.orch()?;
    let (run, attempt) = orch.read(|tx| {
        let run = runs::resolve(tx, args.run.run.as_deref())?;
        let task = tasks::load_one(tx, &run.name, &args.key)?;
        Ok((run.name, task.current_attempt))
    })?;
    let launch = attempt
        .as_ref()
        .and_then(|a| a.launch.clone())
        .ok_or_else(|| {
            Error::not_found(format!("task {} has no launched attempt", args.key)).hint(format!(
                "launch one: git orch dispatch {} --launch",
                args.key
            ))
        })?;
    let id = attempt.map(|a| a.id).unwrap_or(crate::orch::AttemptId(0));
    let path = PathBuf::from(&launch.log);
    let mut offset = 0u64;
    let read_more = |offset: &mut u64| -> Result<String> {
        let Ok(mut file) = std::fs::File::open(&path) else {
            return Ok(String::new());
        };
        file.seek(SeekFrom::Start(*offset))
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        // Whole lines only while following, so a line is never printed in two halves.
        let cut = match bytes.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None => 0,
        };
        let take = if args.follow { cut } else { bytes.len() };
        *offset += take as u64;
        Ok(String::from_utf8_lossy(&bytes[..take]).into_owned())
    };
    if !args.follow {
        let text = read_more(&mut offset)?;
        return out.success(
            &json!({"task": args.key, "run": run, "log": launch.log, "text": text}),
            || text.clone(),
        );
    }
    let mut pause = Duration::from_millis(20);
    loop {
        let ended = orch
            .read(|tx| crate::orch::get_attempt(tx, id))?
            .launch
            .is_some_and(|l| l.ended_at.is_some());
        let text = read_more(&mut offset)?;
        for line in text.lines() {
            out.stream_item(&json!({"line": line}), || line.to_owned())?;
        }
        if ended && text.is_empty() {
            let rest = read_more(&mut offset)?;
            for line in rest.lines() {
                out.stream_item(&json!({"line": line}), || line.to_owned())?;
            }
            return Ok(());
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(
                Error::new(crate::error::Code::Timeout, "the agent is still running")
                    .detail("task", args.key.clone()),
            );
        }
        std::thread::sleep(pause);
        pause = if text.is_empty() {
            (pause * 2).min(Duration::from_millis(250))
        } else {
            Duration::from_millis(20)
        };
    }
}

/// `git orch supervise ID` (hidden): the supervisor of one launched attempt.
pub fn supervise(ctx: &mut Ctx, args: SuperviseArgs) -> Result<()> {
    // First of all: a session of its own, so the dispatcher's terminal and process
    // group can end without taking the agent along.
    let detached = launch::process::detach();
    let edge = Edge {
        path: path_env(),
        exe_dir: std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from)),
    };
    if let Err(e) = detached {
        eprintln!("[git-orch] could not start a session of its own: {e}");
    }
    let cfg = ctx.inbox_config()?;
    let (repo, store) = ctx.repo_and_store()?;
    supervisor::supervise(
        repo,
        store,
        &cfg,
        crate::orch::AttemptId(args.attempt),
        &edge,
    )
}
