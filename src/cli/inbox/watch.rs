//! `git inbox watch`: events as they happen, one line each.

use super::args::timeout_error;
use crate::cli::ctx::Ctx;
use crate::cli::input::deadline;
use crate::cli::output::Out;
use crate::cli::render::render_event;
use crate::error::Result;
use crate::inbox::EventFilter;
use crate::names::Address;

#[derive(clap::Args, Debug)]
pub struct WatchArgs {
    /// Only events of this thread
    #[arg(long, value_name = "ID")]
    pub thread: Option<i64>,
    /// Only events of threads addressed to AGENT or @QUEUE
    #[arg(long, value_name = "X")]
    pub to: Option<String>,
    /// Start after this event id (default: from now on)
    #[arg(long, value_name = "EVENT_ID")]
    pub since: Option<i64>,
    /// Stop after D (exit 5 unless --count was reached)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
    /// Stop after N events
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: WatchArgs) -> Result<()> {
    if let Some(to) = &args.to {
        Address::parse(to)?;
    }
    let until = deadline(args.timeout.as_deref())?;
    let filter = EventFilter {
        thread: args.thread,
        to: args.to.clone(),
        run: None,
    };
    let mut inbox = ctx.inbox()?;
    let after = match args.since {
        Some(since) => since,
        None => inbox.read(crate::store::events::last_id)?,
    };
    let mut seen: u64 = 0;
    let stopped = inbox.watch(&filter, after, until, |event| {
        out.stream_item(event, || render_event(event))?;
        seen += 1;
        Ok(args.count.is_none_or(|count| seen < count))
    })?;
    if !stopped && args.count.is_some() {
        return Err(timeout_error("events"));
    }
    if !stopped {
        return Err(timeout_error("events").hint("watch ran for its --timeout"));
    }
    Ok(())
}
