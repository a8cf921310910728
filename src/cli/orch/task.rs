//! `git orch task add|import|list|show`.

use super::dispatch::render_conflict;
use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::input::{read_text_input, BodyArgs};
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash, preview, Table};
use crate::error::{Code, Result};
use crate::orch::runs;
use crate::orch::tasks::{self, Plan, Select, TaskSpec};
use crate::orch::{Attempt, Task, TASK_STATUSES};
use clap::Subcommand;
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum TaskCommand {
    /// Add a task to the run
    Add(Box<TaskAddArgs>),
    /// Import a whole plan from FILE (- for stdin), all or nothing
    Import(TaskImportArgs),
    /// List the run's tasks
    List(TaskListArgs),
    /// Show a task with all its attempts
    Show(TaskKeyArgs),
}

pub fn run(ctx: &mut Ctx, out: &Out, command: TaskCommand) -> Result<()> {
    match command {
        TaskCommand::Add(args) => add(ctx, out, *args),
        TaskCommand::Import(args) => import(ctx, out, args),
        TaskCommand::List(args) => list(ctx, out, args),
        TaskCommand::Show(args) => show(ctx, out, args),
    }
}

/// `{"tasks": [Task…]}`, serialized without a `Value` tree in between (it can be large).
#[derive(Serialize)]
pub(super) struct TasksData<'a> {
    pub tasks: &'a [Task],
}

/// [`TasksData`] of the tasks `select` names, written as they are read (`ready`, what
/// `task import` wrote): a plan's roots can be tens of thousands.
pub(super) fn stream_tasks(
    out: &Out,
    conn: &rusqlite::Connection,
    run: &str,
    select: Select<'_>,
) -> Result<()> {
    out.success_streamed(|doc| {
        doc.raw(r#"{"tasks":"#)?;
        tasks::write_tasks(conn, run, select, doc.writer())?;
        doc.raw("}")
    })
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
    /// The launch profile of its attempts, over `drive --launch` and `orch.launch`
    #[arg(long, value_name = "PROFILE")]
    pub agent_profile: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn add(ctx: &mut Ctx, out: &Out, args: TaskAddArgs) -> Result<()> {
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
        profile: args.agent_profile,
    };
    let task = ctx.orch()?.write(|tx, cfg, changes| {
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

#[derive(clap::Args, Debug)]
pub struct TaskImportArgs {
    /// The plan, at most 4 MiB: {"tasks": [{"key", "title", "body", "kind", "to", "after", "profile", …}]}
    pub file: PathBuf,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn import(ctx: &mut Ctx, out: &Out, args: TaskImportArgs) -> Result<()> {
    let text = read_text_input(&args.file, "plan").map_err(|e| match e.code {
        Code::TooLarge => e.hint(
            "split the plan into several files and import them in order; \
             a task may depend on tasks imported before it",
        ),
        _ => e,
    })?;
    let plan = Plan::parse(&text)?;
    drop(text);
    let mut orch = ctx.orch()?;
    let (run, imported) = orch.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, args.run.run.as_deref())?;
        let imported = tasks::import(tx, cfg, changes, &run, &plan)?;
        Ok((run.name, imported))
    })?;
    drop(plan);
    if out.json {
        // Read back after the commit (no printing under the write lock), each task as it
        // is read: the tasks as they stand now, which a dispatch may already have moved.
        return orch.read(|tx| stream_tasks(out, tx, &run, imported.select));
    }
    out.success(&(), || {
        format!(
            "Imported {} task(s): {} ready, {} pending.",
            imported.tasks,
            imported.ready,
            imported.tasks - imported.ready
        )
    })
}

#[derive(clap::Args, Debug)]
pub struct TaskListArgs {
    /// Only tasks in this status
    #[arg(long, value_parser = TASK_STATUSES)]
    pub status: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn list(ctx: &mut Ctx, out: &Out, args: TaskListArgs) -> Result<()> {
    let mut orch = ctx.orch()?;
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

#[derive(clap::Args, Debug)]
pub struct TaskKeyArgs {
    /// The task
    pub key: String,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn show(ctx: &mut Ctx, out: &Out, args: TaskKeyArgs) -> Result<()> {
    let mut orch = ctx.orch()?;
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

pub(super) fn render_tasks(tasks: &[Task]) -> String {
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

fn render_task(task: &Task, attempts: &[Attempt]) -> String {
    let mut text = format!(
        "{} ({}) in run {}: {}\n  kind {}, to {}, priority {}, attempts {}/{}\n  after: {}",
        task.key,
        task.status,
        task.run,
        escape(&task.title),
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
        text.push_str(&format!(
            "\n  question: {}",
            escape(&preview(question, 200))
        ));
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
