//! `git orch`: the leader's scheduler (SPEC §6).

use super::render::{or_dash, preview, Table};
use super::{read_text_input, BodyArgs, Ctx, GlobalArgs, Out};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Note};
use crate::names::{check_name, Address};
use crate::orch::dispatch::{self, Options};
use crate::orch::runs::{self, NewRun};
use crate::orch::tasks::{self, Plan, Select, TaskSpec};
use crate::orch::waits::{self, Until, WaitFor};
use crate::orch::{
    cancel, cleanup, dag, reconcile, retry, worktrees, Attempt, Counts, GitWorkspaces, Orch, Run,
    Step, Task, TaskStatus, TASK_STATUSES,
};
use crate::repo::HooksReport;
use crate::store::events::Event;
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

/// The leader's scheduler: runs, a task DAG, dispatch into worktrees, reconcile, council
#[derive(Parser, Debug)]
#[command(
    name = "git-orch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct OrchCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: OrchCommand,
}

#[derive(Subcommand, Debug)]
pub enum OrchCommand {
    /// Create the state in this repository and install the hooks (idempotent)
    Init,
    /// Remove the git-orch blocks from the hooks, and nothing else
    UninstallHooks,
    /// Start, list, show, switch and close runs
    #[command(subcommand)]
    Run(RunCommand),
    /// Add, import, list and show tasks
    #[command(subcommand)]
    Task(TaskCommand),
    /// Add or remove a dependency between two tasks
    #[command(subcommand)]
    Dep(DepCommand),
    /// List ready tasks: priority high first, then oldest
    Ready(RunOpt),
    /// Start one new attempt per task, each as an inbox thread of kind task
    Dispatch(DispatchArgs),
    /// Bring attempts and tasks in line with their inbox threads
    Reconcile,
    /// List blocked tasks with their open question and thread
    Blocked(RunOpt),
    /// Reply to the question on a task's current thread
    Answer(AnswerArgs),
    /// Show the run at a glance: counts, then one line per task
    Status(RunOpt),
    /// Start a new attempt for a failed or cancelled task
    Retry(RetryArgs),
    /// Cancel a task's attempt in flight and start a new one for another agent
    Reassign(ReassignArgs),
    /// Cancel a task (its attempt and thread too), or a whole run with --run
    Cancel(CancelArgs),
    /// Remove the worktrees of ended attempts, never losing work
    Cleanup(CleanupArgs),
    /// Block until a condition holds; print the events that made it hold
    Wait(WaitArgs),
    /// Ask several reviewers the same question and tally what they recommend
    #[command(subcommand)]
    Council(super::council::CouncilCommand),
    /// Print the run's event log
    Log(LogArgs),
}

#[derive(clap::Args, Debug, Default)]
pub struct RunOpt {
    /// The run (default: the current run)
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RunCommand {
    /// Start a new run; it becomes the current run
    Init(RunInitArgs),
    /// List runs
    List,
    /// Show a run with its task counts
    Show(RunName),
    /// Make a run the current one
    Use(RunNameRequired),
    /// Close a run; with --cancel, cancel its unfinished tasks first
    Close(RunCloseArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunInitArgs {
    /// The run's name (default: r1, r2, … the first free)
    pub name: Option<String>,
    /// What the run is for, one line
    #[arg(long)]
    pub title: String,
    /// The revision tasks start from when neither dispatch nor the task names one
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RunName {
    /// The run (default: the current run)
    pub name: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct RunNameRequired {
    /// The run
    pub name: String,
}

#[derive(clap::Args, Debug)]
pub struct RunCloseArgs {
    /// The run (default: the current run)
    pub name: Option<String>,
    /// Cancel its unfinished tasks and their threads, and mark the run cancelled
    #[arg(long)]
    pub cancel: bool,
}

#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Add a task to the run
    Add(TaskAddArgs),
    /// Import a whole plan from FILE (- for stdin), all or nothing
    Import(TaskImportArgs),
    /// List the run's tasks
    List(TaskListArgs),
    /// Show a task with all its attempts
    Show(TaskKeyArgs),
}

#[derive(clap::Args, Debug)]
pub struct TaskAddArgs {
    /// The task's key: a name unique in the run
    pub key: String,
    /// One line, at most 200 characters; the subject of its threads
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub body: BodyArgs,
    /// code, review or chore
    #[arg(long, default_value = tasks::DEFAULT_KIND, value_parser = ["code", "review", "chore"])]
    pub kind: String,
    /// An agent, or a queue as @name
    #[arg(long, value_name = "AGENT|@QUEUE", default_value = tasks::DEFAULT_TO)]
    pub to: String,
    /// Run after this task (repeatable)
    #[arg(long, value_name = "KEY")]
    pub after: Vec<String>,
    /// Higher runs first
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub priority: i64,
    /// How many attempts before the task fails for good
    #[arg(long, value_name = "N", default_value_t = tasks::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: i64,
    /// The revision its attempts start from
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct TaskImportArgs {
    /// The plan: {"tasks": [{"key", "title", "body", "kind", "to", "after", …}]}
    pub file: PathBuf,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct TaskListArgs {
    /// Only tasks in this status
    #[arg(long, value_parser = TASK_STATUSES)]
    pub status: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct TaskKeyArgs {
    /// The task
    pub key: String,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(Subcommand, Debug)]
pub enum DepCommand {
    /// KEY runs after DEPENDS_ON (a cycle is refused)
    Add(DepArgs),
    /// KEY no longer waits for DEPENDS_ON
    Rm(DepArgs),
}

#[derive(clap::Args, Debug)]
pub struct DepArgs {
    /// The task that waits
    pub key: String,
    /// The task it waits for
    pub depends_on: String,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct DispatchArgs {
    /// Tasks to dispatch
    pub keys: Vec<String>,
    /// Dispatch every ready task (priority, then age)
    #[arg(long)]
    pub all_ready: bool,
    /// At most N tasks
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
    /// Send to this agent or @queue instead of the task's
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: Option<String>,
    /// Start from this revision instead of the task's or the run's
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// Dispatch named tasks even when they are not ready
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// The blocked task
    pub key: String,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct RetryArgs {
    /// The task
    pub key: String,
    /// Send to this agent or @queue instead of the task's
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: Option<String>,
    /// Start from this revision
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct ReassignArgs {
    /// The task
    pub key: String,
    /// The agent (or @queue) to take over
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: String,
    /// Start from the task's base instead of the old attempt's work
    #[arg(long)]
    pub fresh: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The task (without it, --run cancels the whole run)
    pub key: Option<String>,
    /// The run; alone, cancel the whole run (default: the current run)
    #[arg(long, value_name = "NAME", num_args = 0..=1, default_missing_value = "")]
    pub run: Option<String>,
    /// Why, recorded on the cancelled threads
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct CleanupArgs {
    /// Say what would be removed or skipped, and change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also remove worktrees with uncommitted changes, after committing them to
    /// refs/orch/rescue/<run>/<task>-<n>
    #[arg(long)]
    pub force: bool,
    /// Also delete attempt branches merged into the run's base or kept under another ref
    #[arg(long)]
    pub prune_branches: bool,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// change, done, blocked or ready
    #[arg(long, default_value = "change", value_parser = ["change", "done", "blocked", "ready"])]
    pub until: String,
    /// Wait for this task only
    #[arg(long, value_name = "KEY")]
    pub task: Option<String>,
    /// Give up after D (exit 5)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
    /// Count changes after this event id, not from now (a loop passes the last id it saw)
    #[arg(long, value_name = "EVENT_ID")]
    pub since: Option<i64>,
    #[command(flatten)]
    pub run: RunOpt,
}

#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// Only events after this id
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub since: i64,
    /// Keep printing events as they happen (one JSON object per line under --json)
    #[arg(long)]
    pub follow: bool,
    /// With --follow: stop after D (exit 5)
    #[arg(long, value_name = "D", requires = "follow")]
    pub timeout: Option<String>,
    /// With --follow: stop after N events
    #[arg(long, value_name = "N", requires = "follow")]
    pub count: Option<u64>,
    #[command(flatten)]
    pub run: RunOpt,
}

/// `{"tasks": [Task…]}`, serialized without a `Value` tree in between (it can be large).
#[derive(Serialize)]
struct TasksData<'a> {
    tasks: &'a [Task],
}

#[derive(Serialize)]
struct StatusData<'a> {
    run: &'a Run,
    counts: &'a Counts,
    tasks: &'a [Task],
}

/// The orch facade with the repository, for every orch and council command.
pub(super) fn orch(ctx: &mut Ctx) -> Result<Orch<'_>> {
    let cfg = ctx.inbox_config()?;
    let (repo, store) = ctx.repo_and_store()?;
    Ok(Orch::with_repo(store, cfg, repo))
}

/// `ORCH_TEST_CRASH_AFTER=allocate|worktree|thread|marker|store`: for tests, dispatch
/// aborts the process right after that step, as a SIGKILL would, so they can check
/// what reconcile makes of it. Read here only: the library never sees the variable.
fn crash_after() -> Result<Option<Step>> {
    match std::env::var("ORCH_TEST_CRASH_AFTER") {
        Ok(step) if !step.is_empty() => Step::parse(&step).map(Some),
        _ => Ok(None),
    }
}

/// Runs `f` with the orch facade and the worktrees that dispatch makes (SPEC §7).
fn with_workspaces<T>(
    ctx: &mut Ctx,
    f: impl FnOnce(&mut Orch<'_>, &GitWorkspaces<'_>) -> Result<T>,
) -> Result<T> {
    let cfg = ctx.inbox_config()?;
    let strict_untracked = ctx
        .repo()?
        .config_bool("orch.strictUntracked")?
        .unwrap_or(false);
    let crash = crash_after()?;
    let on_step = move |step: Step| {
        if Some(step) == crash {
            std::process::abort();
        }
    };
    let (repo, store) = ctx.repo_and_store()?;
    let workspaces = GitWorkspaces::new(repo)
        .strict_untracked(strict_untracked)
        .on_step(&on_step);
    let mut orch = Orch::with_repo(store, cfg, repo);
    f(&mut orch, &workspaces)
}

fn address(text: Option<&str>) -> Result<Option<Address>> {
    text.map(Address::parse).transpose()
}

pub fn run(ctx: &mut Ctx, out: &Out, command: OrchCommand) -> Result<()> {
    match command {
        OrchCommand::Init => init(ctx, out, true),
        OrchCommand::UninstallHooks => uninstall_hooks(ctx, out),
        OrchCommand::Run(command) => run_command(ctx, out, command),
        OrchCommand::Task(command) => task_command(ctx, out, command),
        OrchCommand::Dep(command) => dep_command(ctx, out, command),
        OrchCommand::Ready(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let tasks = orch.read(|tx| {
                let run = runs::resolve(tx, args.run.as_deref())?;
                tasks::load(tx, &run.name, Select::Ready)
            })?;
            out.success(&TasksData { tasks: &tasks }, || {
                if tasks.is_empty() {
                    "No task is ready.".into()
                } else {
                    render_tasks(&tasks)
                }
            })
        }
        OrchCommand::Dispatch(args) => {
            let to = address(args.to.as_deref())?;
            let opts = Options {
                keys: &args.keys,
                all_ready: args.all_ready,
                max: args.max.map(|m| m as usize),
                to: to.as_ref(),
                base: args.base.as_deref(),
                force: args.force,
            };
            let done = with_workspaces(ctx, |orch, workspaces| {
                dispatch::dispatch_tasks(orch, workspaces, args.run.run.as_deref(), &opts)
            })?;
            out.success(
                &json!({ "attempts": done.attempts, "blocked": done.blocked }),
                || {
                    let mut lines = Vec::new();
                    if !done.attempts.is_empty() {
                        lines.push(render_dispatched("Dispatched", &done.attempts));
                    }
                    for task in &done.blocked {
                        lines.push(render_conflict(task));
                    }
                    if lines.is_empty() {
                        "Nothing to dispatch: no task is ready.".into()
                    } else {
                        lines.join("\n")
                    }
                },
            )
        }
        OrchCommand::Reconcile => {
            let changes = orch(ctx)?.reconcile_thorough()?;
            out.success(&json!({ "changes": changes }), || {
                if changes.is_empty() {
                    "No changes.".into()
                } else {
                    render_events(&changes)
                }
            })
        }
        OrchCommand::Blocked(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let tasks = orch.read(|tx| {
                let run = runs::resolve(tx, args.run.as_deref())?;
                tasks::load(tx, &run.name, Select::Status(TaskStatus::Blocked))
            })?;
            out.success(&TasksData { tasks: &tasks }, || render_blocked(&tasks))
        }
        OrchCommand::Answer(args) => {
            let body = args.body.read()?;
            if body.trim().is_empty() {
                return Err(Error::invalid_input("the answer is empty")
                    .hint("pass it with --body or --body-file"));
            }
            inbox::check_body(&body)?;
            let key = args.key;
            let posted = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                let task = tasks::get_row(tx, &run.name, &key)?;
                let thread = task
                    .current_attempt
                    .map(|id| crate::orch::get_attempt(tx, id))
                    .transpose()?
                    .and_then(|a| a.thread)
                    .map(|id| inbox::get_thread(tx, id))
                    .transpose()?
                    .filter(|t| t.awaiting_reply && !t.is_closed());
                let Some(thread) = thread else {
                    return Err(Error::new(
                        Code::InvalidTransition,
                        format!("task {key} has no open question"),
                    )
                    .hint("see blocked tasks with `git orch blocked`")
                    .detail("task", key.clone())
                    .detail("status", task.status));
                };
                let posted = inbox::reply(
                    tx,
                    cfg,
                    &cfg.leader,
                    thread.id,
                    Note {
                        body: &body,
                        ..Note::default()
                    },
                )?;
                reconcile::reconcile_tx(tx, cfg, changes)?;
                Ok(posted)
            })?;
            out.success(&posted, || {
                format!(
                    "Answered the question on thread {} (task {key})",
                    posted.thread.id
                )
            })
        }
        OrchCommand::Status(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let (run, tasks) = orch.read(|tx| {
                let row = runs::resolve(tx, args.run.as_deref())?;
                let tasks = tasks::load(tx, &row.name, Select::All)?;
                let mut counts = Counts::default();
                for task in &tasks {
                    counts.add(task.status, 1);
                }
                Ok((runs::to_json(&row, counts), tasks))
            })?;
            let data = StatusData {
                run: &run,
                counts: &run.counts,
                tasks: &tasks,
            };
            out.success(&data, || render_status(&run, &tasks))
        }
        OrchCommand::Retry(args) => {
            let to = address(args.to.as_deref())?;
            let attempt = with_workspaces(ctx, |orch, workspaces| {
                retry::retry(
                    orch,
                    workspaces,
                    args.run.run.as_deref(),
                    &args.key,
                    to.as_ref(),
                    args.base.as_deref(),
                )
            })?;
            let attempts = vec![attempt];
            out.success(&json!({ "attempts": attempts }), || {
                render_dispatched("Retried", &attempts)
            })
        }
        OrchCommand::Reassign(args) => {
            let to = Address::parse(&args.to)?;
            let attempt = with_workspaces(ctx, |orch, workspaces| {
                retry::reassign(
                    orch,
                    workspaces,
                    args.run.run.as_deref(),
                    &args.key,
                    &to,
                    args.fresh,
                )
            })?;
            let attempts = vec![attempt];
            out.success(&json!({ "attempts": attempts }), || {
                render_dispatched("Reassigned", &attempts)
            })
        }
        OrchCommand::Cancel(args) => cancel(ctx, out, args),
        OrchCommand::Council(command) => super::council::run(ctx, out, command),
        OrchCommand::Cleanup(args) => {
            let opts = cleanup::Options {
                run: args.run.run.as_deref(),
                dry_run: args.dry_run,
                force: args.force,
                prune_branches: args.prune_branches,
            };
            let report = cleanup::cleanup(&mut orch(ctx)?, &opts)?;
            out.success(&report, || render_cleanup(&report))
        }
        OrchCommand::Wait(args) => {
            let until = Until::parse(&args.until)?;
            if let Some(task) = &args.task {
                check_name("task", task)?;
            }
            let spec = WaitFor {
                run: args.run.run.as_deref(),
                until,
                task: args.task.as_deref(),
                deadline: super::deadline(args.timeout.as_deref())?,
                since: args.since,
            };
            let events = waits::wait(&mut orch(ctx)?, &spec)?.ok_or_else(|| {
                Error::new(
                    Code::Timeout,
                    format!("timed out waiting for --until {}", args.until),
                )
                .hint("wait longer with a larger --timeout")
            })?;
            out.success(&json!({ "events": events }), || {
                if events.is_empty() {
                    format!("The condition --until {} holds.", args.until)
                } else {
                    render_events(&events)
                }
            })
        }
        OrchCommand::Log(args) => {
            let mut orch = orch(ctx)?;
            if !args.follow {
                let events = waits::log(&mut orch, args.run.run.as_deref(), args.since)?;
                return out.success(&json!({ "events": events }), || {
                    if events.is_empty() {
                        "No events.".into()
                    } else {
                        render_events(&events)
                    }
                });
            }
            let until = super::deadline(args.timeout.as_deref())?;
            let mut seen: u64 = 0;
            let stopped = waits::follow(
                &mut orch,
                args.run.run.as_deref(),
                args.since,
                until,
                |event| {
                    out.stream_item(event, || super::inbox::render_event(event))?;
                    seen += 1;
                    Ok(args.count.is_none_or(|count| seen < count))
                },
            )?;
            if !stopped {
                return Err(
                    Error::new(Code::Timeout, "log --follow ran for its --timeout")
                        .hint("follow longer with a larger --timeout, or without one"),
                );
            }
            Ok(())
        }
    }
}

fn run_command(ctx: &mut Ctx, out: &Out, command: RunCommand) -> Result<()> {
    match command {
        RunCommand::Init(args) => {
            let run = orch(ctx)?.write(|tx, cfg, changes| {
                runs::create(
                    tx,
                    cfg,
                    changes,
                    &NewRun {
                        name: args.name.as_deref(),
                        title: &args.title,
                        base_ref: args.base.as_deref(),
                        kind: "plan",
                    },
                )
            })?;
            out.success(&json!({ "run": run }), || {
                format!(
                    "Started run {} ({}); it is the current run.\nAdd tasks with `git orch task add KEY --title T` or `git orch task import plan.json`.",
                    run.name, run.title
                )
            })
        }
        RunCommand::List => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let (runs, current) = orch.read(|tx| Ok((runs::list(tx)?, runs::current_name(tx)?)))?;
            out.success(&json!({ "runs": runs }), || {
                if runs.is_empty() {
                    return "No runs yet. Start one with `git orch run init NAME --title T`."
                        .into();
                }
                let mut table =
                    Table::new(&["", "RUN", "STATUS", "KIND", "TASKS", "DONE", "TITLE"]);
                for run in &runs {
                    let mark = if current.as_deref() == Some(run.name.as_str()) {
                        "*"
                    } else {
                        ""
                    };
                    table.row(vec![
                        mark.into(),
                        run.name.clone(),
                        run.status.to_string(),
                        run.kind.clone(),
                        run.counts.total.to_string(),
                        run.counts.done.to_string(),
                        run.title.clone(),
                    ]);
                }
                table.render()
            })
        }
        RunCommand::Show(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let run = orch.read(|tx| {
                let row = runs::resolve(tx, args.name.as_deref())?;
                runs::show(tx, &row)
            })?;
            out.success(&json!({ "run": run }), || render_run(&run))
        }
        RunCommand::Use(args) => {
            let run = orch(ctx)?.write(|tx, _, _| runs::use_run(tx, &args.name))?;
            out.success(&json!({ "run": run }), || {
                format!("{} is now the current run.", run.name)
            })
        }
        RunCommand::Close(args) => {
            let run = orch(ctx)?.write(|tx, cfg, changes| {
                let row = runs::resolve(tx, args.name.as_deref())?;
                if args.cancel {
                    cancel::cancel_run(tx, cfg, changes, &row)
                } else {
                    runs::close(tx, cfg, changes, &row)
                }
            })?;
            out.success(&json!({ "run": run }), || {
                format!("Run {} is {}.", run.name, run.status)
            })
        }
    }
}

fn task_command(ctx: &mut Ctx, out: &Out, command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::Add(args) => {
            let body = args.body.read()?;
            let spec = TaskSpec {
                key: args.key,
                title: args.title,
                body,
                kind: Some(args.kind),
                to: Some(args.to),
                after: args.after,
                priority: Some(args.priority),
                max_attempts: Some(args.max_attempts),
                base: args.base,
            };
            let task = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                tasks::add(tx, cfg, changes, &run, &spec)
            })?;
            out.success(&json!({ "task": task }), || {
                format!(
                    "Added task {} to run {} ({}).",
                    task.key, task.run, task.status
                )
            })
        }
        TaskCommand::Import(args) => {
            let text = read_text_input(&args.file, "plan")?;
            let plan = Plan::parse(&text)?;
            let tasks = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                tasks::import(tx, cfg, changes, &run, &plan)
            })?;
            out.success(&TasksData { tasks: &tasks }, || {
                let ready = tasks
                    .iter()
                    .filter(|t| t.status == TaskStatus::Ready)
                    .count();
                format!(
                    "Imported {} task(s): {ready} ready, {} pending.",
                    tasks.len(),
                    tasks.len() - ready
                )
            })
        }
        TaskCommand::List(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let tasks = orch.read(|tx| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                match &args.status {
                    Some(status) => tasks::load(tx, &run.name, Select::Status(status.parse()?)),
                    None => tasks::load(tx, &run.name, Select::All),
                }
            })?;
            out.success(&TasksData { tasks: &tasks }, || {
                if tasks.is_empty() {
                    "No tasks.".into()
                } else {
                    render_tasks(&tasks)
                }
            })
        }
        TaskCommand::Show(args) => {
            let mut orch = orch(ctx)?;
            orch.reconcile()?;
            let (task, attempts) = orch.read(|tx| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                let task = tasks::load_one(tx, &run.name, &args.key)?;
                let attempts = tasks::attempts(tx, &run.name, &args.key)?;
                Ok((task, attempts))
            })?;
            out.success(&json!({"task": task, "attempts": attempts}), || {
                render_task(&task, &attempts)
            })
        }
    }
}

fn dep_command(ctx: &mut Ctx, out: &Out, command: DepCommand) -> Result<()> {
    match command {
        DepCommand::Add(args) => {
            let (task, changed) = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                dag::dep_add(tx, cfg, changes, &run, &args.key, &args.depends_on)
            })?;
            out.success(&json!({"task": task, "changed": changed}), || {
                if changed {
                    format!(
                        "{} now runs after {} ({}).",
                        task.key, args.depends_on, task.status
                    )
                } else {
                    format!("{} already runs after {}.", task.key, args.depends_on)
                }
            })
        }
        DepCommand::Rm(args) => {
            let task = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, args.run.run.as_deref())?;
                dag::dep_rm(tx, cfg, changes, &run, &args.key, &args.depends_on)
            })?;
            out.success(&json!({"task": task, "changed": true}), || {
                format!(
                    "{} no longer waits for {} ({}).",
                    task.key, args.depends_on, task.status
                )
            })
        }
    }
}

fn cancel(ctx: &mut Ctx, out: &Out, args: CancelArgs) -> Result<()> {
    let run_name = args.run.as_deref().filter(|r| !r.is_empty());
    let reason = args
        .reason
        .unwrap_or_else(|| "cancelled by the leader".into());
    inbox::check_body(&reason)?;
    match args.key {
        Some(key) => {
            let (task, changed) = orch(ctx)?.write(|tx, cfg, changes| {
                let run = runs::resolve(tx, run_name)?;
                let row = tasks::get_row(tx, &run.name, &key)?;
                let act_changed = crate::orch::cancel_task(tx, cfg, changes, &row, &reason)?;
                Ok((tasks::load_one(tx, &run.name, &key)?, act_changed))
            })?;
            out.success(&json!({"task": task, "changed": changed}), || {
                if changed {
                    format!("Cancelled task {}.", task.key)
                } else {
                    format!("Task {} was already cancelled.", task.key)
                }
            })
        }
        None if args.run.is_some() => {
            let run = orch(ctx)?.write(|tx, cfg, changes| {
                let row = runs::resolve(tx, run_name)?;
                cancel::cancel_run(tx, cfg, changes, &row)
            })?;
            out.success(&json!({ "run": run }), || {
                format!(
                    "Cancelled run {} ({} task(s) cancelled).",
                    run.name, run.counts.cancelled
                )
            })
        }
        None => Err(
            Error::new(Code::Usage, "nothing to cancel: name a task or pass --run")
                .hint("git orch cancel KEY, or git orch cancel --run [NAME] for a whole run"),
        ),
    }
}

/// `git orch init` and `git inbox init`: the state, and for orch the hooks.
pub fn init(ctx: &mut Ctx, out: &Out, with_hooks: bool) -> Result<()> {
    let created = ctx.init_store()?;
    let state_dir = ctx.repo()?.state_dir();
    let hooks = if with_hooks {
        Some(ctx.repo()?.install_hooks()?)
    } else {
        None
    };
    let mut data = json!({"state_dir": state_dir, "created": created, "schema_version": crate::store::SCHEMA_VERSION});
    if let Some(hooks) = &hooks {
        data["hooks"] = serde_json::to_value(hooks)?;
    }
    out.success(&data, || {
        let mut text = if created {
            format!("Initialized git-orch state in {}", state_dir.display())
        } else {
            format!("git-orch state in {} is up to date", state_dir.display())
        };
        if let Some(hooks) = &hooks {
            text.push('\n');
            text.push_str(&hooks_text(hooks));
        }
        text
    })
}

fn hooks_text(report: &HooksReport) -> String {
    let dir = report
        .dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut lines = Vec::new();
    if !report.installed.is_empty() {
        lines.push(format!(
            "Installed hooks {} in {dir}",
            report.installed.join(", ")
        ));
    }
    if !report.removed.is_empty() {
        lines.push(format!(
            "Removed the git-orch block from {} in {dir}",
            report.removed.join(", ")
        ));
    }
    if !report.unchanged.is_empty() && report.installed.is_empty() && report.skipped.is_empty() {
        lines.push(format!("Hooks in {dir} are up to date"));
    }
    for skipped in &report.skipped {
        lines.push(format!("Skipped {}: {}", skipped.hook, skipped.reason));
    }
    if lines.is_empty() {
        lines.push(format!("No git-orch hooks in {dir}"));
    }
    lines.join("\n")
}

/// `git orch uninstall-hooks`.
fn uninstall_hooks(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let report = ctx.repo()?.uninstall_hooks()?;
    out.success(&json!({ "hooks": report }), || hooks_text(&report))
}

/// `git inbox hook NAME`: what the installed hooks call in attempt worktrees (SPEC §7).
/// Records the commit as a `progress` message on the attempt's thread. Whatever goes
/// wrong is one line on stderr and exit 0: a hook must never fail the user's command.
pub fn hook(ctx: &mut Ctx, _out: &Out, name: &str, args: &[String]) -> Result<()> {
    if let Err(err) = record_hook(ctx, name, args) {
        let mut stderr = std::io::stderr().lock();
        let _ = writeln!(
            stderr,
            "git-orch: {name}: not recorded ({}: {}); `git orch reconcile` will catch up",
            err.code.as_str(),
            err.message
        );
    }
    Ok(())
}

fn record_hook(ctx: &mut Ctx, name: &str, args: &[String]) -> Result<()> {
    worktrees::check_hook_name(name)?;
    let Some(marker) = ctx.marker()? else {
        return Ok(());
    };
    let rewritten = if name == "post-rewrite" {
        read_rewritten()?
    } else {
        Vec::new()
    };
    let actor = match ctx.identity() {
        Ok((agent, _)) => agent,
        Err(_) => ctx.leader()?,
    };
    let cfg = ctx.inbox_config()?;
    let (repo, store) = ctx.repo_and_store()?;
    let call = worktrees::HookCall {
        name,
        arg: args.first().map(String::as_str),
        rewritten,
    };
    worktrees::record_hook(repo, store, &cfg, &actor, &marker, &call)
}

/// post-rewrite's stdin, `old new [extra]` per line, when a caller passed it on (the
/// installed block gives /dev/null to keep stdin for the user's part of the hook).
fn read_rewritten() -> Result<Vec<Value>> {
    const LIMIT: u64 = 1024 * 1024;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Vec::new());
    }
    let mut text = String::new();
    stdin
        .lock()
        .take(LIMIT)
        .read_to_string(&mut text)
        .map_err(|e| Error::io("reading the rewritten commits from stdin", e))?;
    Ok(text
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some(old), Some(new)) => Some(json!({"old": old, "new": new})),
                _ => None,
            }
        })
        .take(1000)
        .collect())
}

// ---------------------------------------------------------------------------------------
// Rendering for people.

/// "5s", "3m", "2h", "4d": how long ago.
fn age(ms: i64) -> String {
    let secs = (crate::time::now_ms() - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn counts_line(counts: &Counts) -> String {
    let parts: Vec<String> = TaskStatus::ALL
        .iter()
        .filter(|&&s| counts.get(s) > 0)
        .map(|&s| format!("{} {s}", counts.get(s)))
        .collect();
    if parts.is_empty() {
        "no tasks".into()
    } else {
        format!("{} task(s): {}", counts.total, parts.join(", "))
    }
}

fn render_run(run: &Run) -> String {
    format!(
        "Run {} ({}), {}, kind {}, base {}, started {}\n{}",
        run.name,
        run.title,
        run.status,
        run.kind,
        or_dash(run.base_ref.as_deref()),
        run.created_at,
        counts_line(&run.counts)
    )
}

fn render_tasks(tasks: &[Task]) -> String {
    let mut table = Table::new(&["KEY", "STATUS", "PRIO", "TO", "AFTER", "TITLE"]);
    for task in tasks {
        table.row(vec![
            task.key.clone(),
            task.status.to_string(),
            task.priority.to_string(),
            task.to.clone(),
            if task.after.is_empty() {
                "-".into()
            } else {
                task.after.join(",")
            },
            preview(&task.title, 60),
        ]);
    }
    table.render()
}

fn render_blocked(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "No task is blocked.".into();
    }
    let mut table = Table::new(&["KEY", "THREAD", "BY", "QUESTION"]);
    let mut conflicts = Vec::new();
    for task in tasks {
        if task.blocked_reason.as_deref() == Some("base_conflict") {
            conflicts.push(render_conflict(task));
            continue;
        }
        let detail = &task.blocked_detail;
        table.row(vec![
            task.key.clone(),
            detail["thread"]
                .as_i64()
                .map_or("-".into(), |t| t.to_string()),
            or_dash(detail["asked_by"].as_str()),
            preview(detail["question"].as_str().unwrap_or(""), 70),
        ]);
    }
    let mut text = String::new();
    if conflicts.len() < tasks.len() {
        text.push_str(&table.render());
        text.push_str("Answer with `git orch answer KEY --body …`.");
    }
    for line in conflicts {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
    }
    text
}

/// One task blocked by a base conflict, and how to unblock it.
fn render_conflict(task: &Task) -> String {
    let list = |v: &Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    let detail = &task.blocked_detail;
    format!(
        "{} is blocked: the results of {} conflict in {}.\n  Merge them by hand and dispatch it from the merge: git orch dispatch {} --base REV",
        task.key,
        list(&detail["deps"]),
        list(&detail["paths"]),
        task.key
    )
}

fn render_cleanup(report: &cleanup::Report) -> String {
    let verb = if report.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    let mut lines = Vec::new();
    for a in &report.removed {
        let mut line = format!(
            "{verb} the worktree of {} (attempt {}): {}",
            a.task,
            a.n,
            or_dash(a.worktree.as_deref())
        );
        if let Some(rescue) = &a.rescue_ref {
            line.push_str(&format!("; uncommitted work saved to {rescue}"));
        }
        if a.branch_deleted_at.is_some() {
            line.push_str(&format!(
                "; branch {} deleted",
                or_dash(a.branch.as_deref())
            ));
        }
        lines.push(line);
    }
    for s in &report.skipped {
        lines.push(format!(
            "Skipped {} (attempt {}): {}",
            s.attempt.task, s.attempt.n, s.reason
        ));
    }
    if lines.is_empty() {
        "No worktrees of ended attempts to remove.".into()
    } else {
        lines.join("\n")
    }
}

fn render_status(run: &Run, tasks: &[Task]) -> String {
    let mut text = format!(
        "Run {} ({}), {}\n{}\n",
        run.name,
        run.title,
        run.status,
        counts_line(&run.counts)
    );
    if tasks.is_empty() {
        text.push_str("Add tasks with `git orch task add KEY --title T`.");
        return text;
    }
    let with_branches = tasks.iter().any(|t| {
        t.current_attempt
            .as_ref()
            .is_some_and(|a| a.branch.is_some())
    });
    let mut header = vec!["KEY", "STATUS", "AGENT", "ATTEMPT"];
    if with_branches {
        header.extend(["BRANCH", "COMMITS"]);
    }
    header.push("ACTIVITY");
    let mut table = Table::new(&header);
    for task in tasks {
        let attempt = task.current_attempt.as_ref();
        let mut row = vec![
            task.key.clone(),
            match &task.blocked_reason {
                Some(reason) => format!("{} ({reason})", task.status),
                None => task.status.to_string(),
            },
            or_dash(attempt.and_then(|a| a.agent.as_deref())),
            attempt.map_or("-".into(), |a| format!("{}/{}", a.n, task.max_attempts)),
        ];
        if with_branches {
            row.push(or_dash(attempt.and_then(|a| a.branch.as_deref())));
            row.push(attempt.map_or("-".into(), |a| a.commits.to_string()));
        }
        row.push(format!("{} ago", age(task.last_activity_ms)));
        table.row(row);
    }
    text.push('\n');
    text.push_str(&table.render());
    if run.counts.blocked > 0 {
        text.push_str("Blocked tasks wait for you: `git orch blocked`.\n");
    }
    if run.counts.ready > 0 {
        text.push_str("Ready tasks: `git orch dispatch --all-ready`.\n");
    }
    text
}

fn render_task(task: &Task, attempts: &[Attempt]) -> String {
    let mut text = format!(
        "{} ({}) in run {}: {}\n  kind {}, to {}, priority {}, attempts {}/{}\n  after: {}",
        task.key,
        task.status,
        task.run,
        task.title,
        task.kind,
        task.to,
        task.priority,
        task.attempts,
        task.max_attempts,
        if task.after.is_empty() {
            "-".into()
        } else {
            task.after.join(", ")
        }
    );
    if let Some(question) = task.blocked_detail["question"].as_str() {
        text.push_str(&format!("\n  question: {}", preview(question, 200)));
    }
    if task.blocked_reason.as_deref() == Some("base_conflict") {
        text.push_str("\n  ");
        text.push_str(&render_conflict(task));
    }
    if !task.body.is_empty() {
        text.push_str("\n\n");
        text.push_str(&task.body);
    }
    if !attempts.is_empty() {
        let mut table = Table::new(&[
            "N", "STATUS", "AGENT", "THREAD", "BRANCH", "COMMITS", "STARTED", "ENDED", "FAILURE",
        ]);
        for a in attempts {
            table.row(vec![
                a.n.to_string(),
                a.status.to_string(),
                or_dash(a.agent.as_deref()),
                a.thread.map_or("-".into(), |t| t.to_string()),
                or_dash(a.branch.as_deref()),
                a.commits.to_string(),
                a.started_at.clone(),
                or_dash(a.ended_at.as_deref()),
                or_dash(a.failure.as_ref().map(|f| f.reason.as_str())),
            ]);
        }
        text.push_str("\n\n");
        text.push_str(&table.render());
    }
    text
}

fn render_dispatched(verb: &str, attempts: &[Attempt]) -> String {
    attempts
        .iter()
        .map(|a| {
            let mut line = format!(
                "{verb} {} (attempt {}) to {} as thread {}",
                a.task,
                a.n,
                a.to,
                a.thread.map_or("-".into(), |t| t.to_string())
            );
            if let (Some(branch), Some(worktree)) = (&a.branch, &a.worktree) {
                line.push_str(&format!("\n  branch {branch} in {worktree}"));
            }
            line
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_events(events: &[Event]) -> String {
    events
        .iter()
        .map(super::inbox::render_event)
        .collect::<Vec<_>>()
        .join("\n")
}
