//! `git orch drive` (SPEC §12): the leader's loop as one command, printing each event
//! as it happens and, on a terminal, a status line beneath them.

use super::launch::Supervisors;
use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::{print_line, write_stdout_bytes, Out};
use crate::cli::render::escape;
use crate::error::{Error, Result};
use crate::orch::drive::{self, DriveEvent, DriveLock, DriveOptions, End, Standing};
use crate::orch::drive_pool::Dispatchers;
use crate::orch::land;
use crate::orch::launch::Launching;
use crate::orch::runs;
use crate::orch::{GitWorkspaces, Orch, Step};
use crate::repo::Repo;
use crate::store::{Durability, Store};
use serde_json::json;
use std::cell::Cell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const DEFAULT_PARALLEL: usize = 4;

#[derive(clap::Args, Debug)]
pub struct DriveArgs {
    /// At most N tasks in flight (default: orch.parallel, else 4)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: Option<u32>,
    /// Launch with PROFILE the tasks that name none (default: orch.launch)
    #[arg(long, value_name = "PROFILE")]
    pub launch: Option<String>,
    /// Return when every task is done, or as soon as every task in flight waits on a question
    #[arg(long, value_name = "done|blocked", default_value = "done",
          value_parser = ["done", "blocked"])]
    pub until: String,
    /// Land each task as it succeeds
    #[arg(long)]
    pub land: bool,
    /// Give up after D (exit 5); the agents keep working
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn drive(ctx: &mut Ctx, out: &Out, args: DriveArgs) -> Result<()> {
    let deadline = crate::cli::input::deadline(args.timeout.as_deref())?;
    let parallel = match args.parallel {
        Some(n) => n as usize,
        None => parallel_from_config(ctx)?,
    };
    let run = {
        let mut orch = ctx.orch()?;
        orch.read(|tx| runs::resolve(tx, args.run.run.as_deref()))?
    };
    let plan = super::launch::plan(ctx, Some(&run.name), args.launch.as_deref())?;
    // The same settings as `git orch land`: orch.land.check, orch.land.mode and the
    // default target; a malformed one is refused before anything is dispatched.
    let landing = match args.land {
        true => Some(super::land::configured(ctx, None)?),
        false => None,
    };
    let land_opts = landing.map(|c| land::Options {
        run: Some(&run.name),
        check: c.check,
        mode: c.mode,
        strict_untracked: c.strict_untracked,
        ..land::Options::default()
    });
    let supervisors = Supervisors::find(ctx)?;
    let _lock = DriveLock::acquire(&supervisors.state_dir, &run.name, std::process::id())?;

    // Ctrl-C stops dispatching; the agents stay with their supervisors, which run in
    // their own sessions and so never see the terminal's SIGINT.
    let interrupted = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&interrupted))
        .map_err(|e| Error::io("handling SIGINT", e))?;
    let terminal = !out.json && std::io::stdout().is_terminal();
    let status_shown = Cell::new(false);
    let opts = DriveOptions {
        run: &run.name,
        parallel,
        until_blocked: args.until == "blocked",
        deadline,
        plan: &plan,
        land: land_opts.as_ref(),
    };
    let mut report = |events: &[DriveEvent], standing: &Standing| -> Result<()> {
        if terminal && status_shown.get() && !events.is_empty() {
            write_stdout_bytes(b"\r\x1b[2K")?;
            status_shown.set(false);
        }
        for event in events {
            out.stream_item(event, || render_event(event))?;
        }
        if terminal && (!events.is_empty() || !status_shown.get()) {
            // Only the line-clearing prefix is ours to send raw.
            let standing = render_standing(&run.name, standing);
            let line = format!("\r\x1b[2K{}", escape(&standing));
            write_stdout_bytes(line.as_bytes())?;
            status_shown.set(true);
        }
        Ok(())
    };
    let workers = Workers::new(ctx, &supervisors)?;
    let ended = ctx.dispatching(|orch, workspaces| {
        let launching = supervisors.launching(workspaces);
        drive::drive(
            orch,
            &launching,
            &workers,
            &opts,
            &|| interrupted.load(Ordering::Relaxed),
            &mut report,
        )
    });
    if status_shown.get() {
        print_line("")?;
    }
    let end = ended?;
    out.success(&json!({ "end": end, "run": run.name }), || match end {
        End::Done if args.land => format!(
            "Run {}: every task is done, and every result has landed.",
            run.name
        ),
        End::Done => format!("Run {}: every task is done.", run.name),
        End::Blocked => format!(
            "Run {}: every task in flight waits on a question; answer them and drive again.",
            run.name
        ),
        End::Interrupted => format!(
            "Interrupted: nothing more is dispatched; the agents keep working under their supervisors.\n  Carry on with: git orch drive --run {}",
            run.name
        ),
    })
}

/// What each of drive's dispatch threads opens for itself: the same repository, store,
/// settings and crash point as the command's own dispatcher.
struct Workers<'a> {
    start: PathBuf,
    state_dir: PathBuf,
    durability: Durability,
    cfg: crate::inbox::Config,
    strict_untracked: bool,
    crash: Option<Step>,
    supervisors: &'a Supervisors,
}

impl<'a> Workers<'a> {
    fn new(ctx: &mut Ctx, supervisors: &'a Supervisors) -> Result<Workers<'a>> {
        let start =
            std::env::current_dir().map_err(|e| Error::io("reading the current directory", e))?;
        let crash = ctx
            .env
            .crash_after
            .as_deref()
            .map(Step::parse)
            .transpose()?;
        let cfg = ctx.inbox_config()?;
        let durability = ctx.durability()?;
        let repo = ctx.repo()?;
        Ok(Workers {
            start,
            state_dir: repo.state_dir(),
            durability,
            cfg,
            strict_untracked: repo.config_bool("orch.strictUntracked")?.unwrap_or(false),
            crash,
            supervisors,
        })
    }
}

impl Dispatchers for Workers<'_> {
    fn with_dispatcher(
        &self,
        work: &mut dyn FnMut(&mut Orch<'_>, &Launching<'_>) -> Result<()>,
    ) -> Result<()> {
        let repo = Repo::discover(&self.start)?;
        let mut store = Store::open(&self.state_dir, self.durability)?;
        let on_step = |step: Step| {
            if Some(step) == self.crash {
                std::process::abort();
            }
        };
        let workspaces = GitWorkspaces::new(&repo)
            .strict_untracked(self.strict_untracked)
            .on_step(&on_step);
        let launching = self.supervisors.launching(&workspaces);
        let mut orch = Orch::with_repo(&mut store, self.cfg.clone(), &repo);
        work(&mut orch, &launching)
    }
}

fn parallel_from_config(ctx: &mut Ctx) -> Result<usize> {
    let Some(text) = ctx.config("orch.parallel")? else {
        return Ok(DEFAULT_PARALLEL);
    };
    match text.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::invalid_input(format!(
            "orch.parallel must be a whole number above 0, not {text:?}"
        ))
        .hint("git config orch.parallel 4")),
    }
}

fn render_event(e: &DriveEvent) -> String {
    let who = e.agent.as_deref().unwrap_or("?");
    let n = e.n.unwrap_or(0);
    match e.kind {
        "dispatch" => format!("dispatched {} (attempt {n}) to {who}", e.task),
        "retry" => format!("retrying {} (attempt {n}) with {who}", e.task),
        "commit" => format!(
            "{} committed {}",
            e.task,
            e.text.as_deref().map_or("", |h| &h[..h.len().min(12)])
        ),
        "question" => format!(
            "{} asks: {}\n  answer: {}",
            e.task,
            e.text.as_deref().unwrap_or("(see git orch blocked)"),
            e.answer_with.as_deref().unwrap_or("")
        ),
        "answer" => format!("{} got its answer and goes on", e.task),
        "failure" => format!(
            "{} failed (attempt {n}{}){}",
            e.task,
            e.text
                .as_deref()
                .map(|r| format!(", {r}"))
                .unwrap_or_default(),
            if e.retry == Some(true) {
                "; it will be retried"
            } else {
                "; no attempts left"
            }
        ),
        "conflict" => format!(
            "{} is blocked: its dependencies' results conflict (git orch task show {})",
            e.task, e.task
        ),
        "cancelled" => format!("{} was cancelled", e.task),
        "rework" => format!("reworking {} (attempt {n}) with {who}", e.task),
        "landed" => format!(
            "{} landed ({})",
            e.task,
            e.text.as_deref().map_or("", |h| &h[..h.len().min(12)])
        ),
        "sent_back" => match e.text.as_deref() {
            Some("land_conflict") => format!(
                "{} was sent back for rework: it conflicts with the target in {}",
                e.task,
                e.paths.as_deref().unwrap_or_default().join(", ")
            ),
            _ => format!(
                "{} was sent back for rework: merged onto the target it fails the land check (git orch task show {})",
                e.task, e.task
            ),
        },
        "done" => format!("{} is done", e.task),
        other => format!("{} {other}", e.task),
    }
}

fn render_standing(run: &str, s: &Standing) -> String {
    let mut parts = vec![format!("{}/{} done", s.done, s.total)];
    if let Some(landed) = s.landed {
        parts.push(format!("{landed} landed"));
    }
    if s.in_flight > s.questions {
        parts.push(format!("{} working", s.in_flight - s.questions));
    }
    if s.questions > 0 {
        parts.push(format!("{} asking", s.questions));
    }
    if s.ready > 0 {
        parts.push(format!("{} ready", s.ready));
    }
    if s.pending > 0 {
        parts.push(format!("{} waiting", s.pending));
    }
    if s.failed > 0 {
        parts.push(format!("{} failed", s.failed));
    }
    format!("drive {run}: {}", parts.join(", "))
}
