//! `git orch run init|list|show|use|close`.

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash, Table};
use crate::error::Result;
use crate::orch::runs::{self, NewRun};
use crate::orch::{cancel, Counts, Run, TaskStatus};
use clap::Subcommand;
use serde_json::json;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
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
    /// Change the revision the run's tasks start from (attempts made keep theirs)
    SetBase(SetBaseArgs),
}

pub fn run(ctx: &mut Ctx, out: &Out, command: RunCommand) -> Result<()> {
    match command {
        RunCommand::Init(args) => init(ctx, out, args),
        RunCommand::List => list(ctx, out),
        RunCommand::Show(args) => show(ctx, out, args),
        RunCommand::Use(args) => use_run(ctx, out, args),
        RunCommand::Close(args) => close(ctx, out, args),
        RunCommand::SetBase(args) => set_base(ctx, out, args),
    }
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

pub fn init(ctx: &mut Ctx, out: &Out, args: RunInitArgs) -> Result<()> {
    // A base that names nothing (`--base main` in a `master` repository) is refused now,
    // not at the first dispatch; what is stored is the name as given, resolved again at
    // each dispatch, so the run follows the branch.
    if let Some(base) = &args.base {
        check_base(ctx, base)?;
    }
    let run = ctx.orch()?.write(|tx, cfg, changes| {
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
            run.name,
            escape(&run.title)
        )
    })
}

fn check_base(ctx: &mut Ctx, base: &str) -> Result<()> {
    crate::repo::check_ref_text(base)?;
    ctx.repo()?.resolve_commit(base).map(drop).map_err(|e| {
        e.hint(format!(
            "{base:?} names no commit here; give a branch, tag or commit (`git branch` lists the branches)"
        ))
    })
}

#[derive(clap::Args, Debug)]
pub struct SetBaseArgs {
    /// The revision (a branch follows its tip at each dispatch); HEAD for the main worktree's HEAD
    pub rev: String,
    #[command(flatten)]
    pub run: super::opts::RunOpt,
}

pub fn set_base(ctx: &mut Ctx, out: &Out, args: SetBaseArgs) -> Result<()> {
    check_base(ctx, &args.rev)?;
    // `HEAD` is the default base itself, with the strict check that only it runs.
    let base = (args.rev != "HEAD").then_some(args.rev.as_str());
    let run = ctx.orch()?.write(|tx, cfg, changes| {
        let row = runs::resolve(tx, args.run.run.as_deref())?;
        runs::set_base(tx, cfg, changes, &row, base)
    })?;
    out.success(&json!({ "run": run }), || {
        format!(
            "Run {} now starts tasks from {}.",
            run.name,
            run.base_ref
                .as_deref()
                .unwrap_or("HEAD of the main worktree")
        )
    })
}

pub fn list(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let (runs, current) = orch.read(|tx| Ok((runs::list(tx)?, runs::current_name(tx)?)))?;
    out.success(&json!({ "runs": runs }), || {
        if runs.is_empty() {
            return "No runs yet. Start one with `git orch run init NAME --title T`.".into();
        }
        let mut table = Table::new(&["", "RUN", "STATUS", "KIND", "TASKS", "DONE", "TITLE"]);
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

#[derive(clap::Args, Debug)]
pub struct RunName {
    /// The run (default: the current run)
    pub name: Option<String>,
}

pub fn show(ctx: &mut Ctx, out: &Out, args: RunName) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let run = orch.read(|tx| {
        let row = runs::resolve(tx, args.name.as_deref())?;
        runs::show(tx, &row)
    })?;
    out.success(&json!({ "run": run }), || render_run(&run))
}

#[derive(clap::Args, Debug)]
pub struct RunNameRequired {
    /// The run
    pub name: String,
}

pub fn use_run(ctx: &mut Ctx, out: &Out, args: RunNameRequired) -> Result<()> {
    let run = ctx
        .orch()?
        .write(|tx, _, _| runs::use_run(tx, &args.name))?;
    out.success(&json!({ "run": run }), || {
        format!("{} is now the current run.", run.name)
    })
}

#[derive(clap::Args, Debug)]
pub struct RunCloseArgs {
    /// The run (default: the current run)
    pub name: Option<String>,
    /// Cancel its unfinished tasks and their threads, and mark the run cancelled
    #[arg(long)]
    pub cancel: bool,
}

pub fn close(ctx: &mut Ctx, out: &Out, args: RunCloseArgs) -> Result<()> {
    let run = ctx.orch()?.write(|tx, cfg, changes| {
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

pub(super) fn counts_line(counts: &Counts) -> String {
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
        escape(&run.title),
        run.status,
        run.kind,
        or_dash(run.base_ref.as_deref()),
        run.created_at,
        counts_line(&run.counts)
    )
}
