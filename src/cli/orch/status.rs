//! `git orch ready`, `blocked`, `status`, `answer` and `reconcile`: the run at a glance,
//! and the leader's answers to what blocks it.

use super::dispatch::render_conflict;
use super::opts::RunOpt;
use super::run::counts_line;
use super::task::{render_tasks, TasksData};
use crate::cli::ctx::Ctx;
use crate::cli::input::BodyArgs;
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash, preview, render_events, Table};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Note};
use crate::orch::tasks::{self, Select};
use crate::orch::{reconcile, runs, Counts, Run, Task, TaskStatus};
use serde::Serialize;
use serde_json::json;

pub fn ready(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
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

pub fn blocked(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let tasks = orch.read(|tx| {
        let run = runs::resolve(tx, args.run.as_deref())?;
        tasks::load(tx, &run.name, Select::Status(TaskStatus::Blocked))
    })?;
    out.success(&TasksData { tasks: &tasks }, || render_blocked(&tasks))
}

#[derive(Serialize)]
struct StatusData<'a> {
    run: &'a Run,
    counts: &'a Counts,
    tasks: &'a [Task],
}

pub fn status(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
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

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// The blocked task
    pub key: String,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn answer(ctx: &mut Ctx, out: &Out, args: AnswerArgs) -> Result<()> {
    let body = args.body.read()?;
    if body.trim().is_empty() {
        return Err(
            Error::invalid_input("the answer is empty").hint("pass it with --body or --body-file")
        );
    }
    inbox::check_body(&body)?;
    let key = args.key;
    let posted = ctx.orch()?.write(|tx, cfg, changes| {
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

pub fn reconcile(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let changes = ctx.orch()?.reconcile_thorough()?;
    out.success(&json!({ "changes": changes }), || {
        if changes.is_empty() {
            "No changes.".into()
        } else {
            render_events(&changes)
        }
    })
}

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
        if let Some(reason @ ("land_conflict" | "land_check")) = task.blocked_reason.as_deref() {
            conflicts.push(render_land_rework(task, reason));
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

/// A task `git orch land` sent back, waiting for its rework attempt to be dispatched.
fn render_land_rework(task: &Task, reason: &str) -> String {
    let detail = &task.blocked_detail;
    let list = |key: &str| -> Vec<String> {
        detail[key]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let what = match reason {
        "land_conflict" => format!("conflicts with the target in {}", list("paths").join(", ")),
        _ => format!(
            "fails the land check: {}",
            list("output").last().map(String::as_str).unwrap_or("")
        ),
    };
    format!(
        "{}: its result {what}; `git orch land` (or `git orch dispatch {}`) starts the rework.",
        task.key, task.key
    )
}

fn render_status(run: &Run, tasks: &[Task]) -> String {
    let mut text = format!(
        "Run {} ({}), {}\n{}\n",
        run.name,
        escape(&run.title),
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
            match (&task.blocked_reason, &task.landed_commit) {
                (Some(reason), _) => format!("{} ({reason})", task.status),
                (None, Some(commit)) => {
                    format!(
                        "{} (landed {})",
                        task.status,
                        &commit[..commit.len().min(8)]
                    )
                }
                (None, None) => task.status.to_string(),
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
