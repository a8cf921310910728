//! `git orch wait` and `git orch log`: the run's event log, waited on or printed.

use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::input::deadline;
use crate::cli::output::Out;
use crate::cli::render::{render_event, render_events};
use crate::error::{Code, Error, Result};
use crate::names::check_name;
use crate::orch::waits::{self, Until, WaitFor};
use serde_json::json;

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

pub fn wait(ctx: &mut Ctx, out: &Out, args: WaitArgs) -> Result<()> {
    let until = Until::parse(&args.until)?;
    if let Some(task) = &args.task {
        check_name("task", task)?;
    }
    let spec = WaitFor {
        run: args.run.run.as_deref(),
        until,
        task: args.task.as_deref(),
        deadline: deadline(args.timeout.as_deref())?,
        since: args.since,
    };
    let events = waits::wait(&mut ctx.orch()?, &spec)?.ok_or_else(|| {
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

pub fn log(ctx: &mut Ctx, out: &Out, args: LogArgs) -> Result<()> {
    let mut orch = ctx.orch()?;
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
    let until = deadline(args.timeout.as_deref())?;
    let mut seen: u64 = 0;
    let stopped = waits::follow(
        &mut orch,
        args.run.run.as_deref(),
        args.since,
        until,
        |event| {
            out.stream_item(event, || render_event(event))?;
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
