//! `git inbox list` and `show`: threads, and one thread with its messages.

use super::args::ThreadArg;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash, preview, render_messages, Table};
use crate::error::Result;
use crate::inbox::{self, ListFilter, Message, Thread};
use crate::names::Address;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Addressed to AGENT or @QUEUE
    #[arg(long, value_name = "X")]
    pub to: Option<String>,
    /// Sent by AGENT
    #[arg(long, value_name = "X")]
    pub from: Option<String>,
    /// open, claimed, done, failed or cancelled
    #[arg(long, value_parser = ["open", "claimed", "done", "failed", "cancelled"])]
    pub status: Option<String>,
    /// message or task
    #[arg(long, value_parser = ["message", "task"])]
    pub kind: Option<String>,
    /// Threads I sent, that are addressed to me, or that I hold or held
    #[arg(long)]
    pub mine: bool,
    /// The newest N
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
}

pub fn list(ctx: &mut Ctx, out: &Out, args: ListArgs) -> Result<()> {
    for name in [args.to.as_deref(), args.from.as_deref()]
        .into_iter()
        .flatten()
    {
        Address::parse(name)?;
    }
    let mine = if args.mine { Some(ctx.agent()?) } else { None };
    let filter = ListFilter {
        to: args.to.as_deref(),
        from: args.from.as_deref(),
        status: args.status.as_deref(),
        kind: args.kind.as_deref(),
        mine: mine.as_deref(),
        limit: args.limit,
    };
    let threads = ctx.inbox()?.read(|tx| inbox::list(tx, &filter))?;
    out.success(&json!({"threads": threads}), || render_threads(&threads))
}

pub fn show(ctx: &mut Ctx, out: &Out, args: ThreadArg) -> Result<()> {
    let id = ctx.thread_id(args.id)?;
    let (thread, messages) = ctx
        .inbox()?
        .read(|tx| Ok((inbox::get_thread(tx, id)?, inbox::thread_messages(tx, id)?)))?;
    let data = json!({"thread": thread, "messages": messages});
    out.success(&data, || render_show(&thread, &messages))
}

fn render_threads(threads: &[Thread]) -> String {
    if threads.is_empty() {
        return "No threads.".into();
    }
    let mut table = Table::new(&[
        "ID",
        "STATUS",
        "KIND",
        "FROM",
        "TO",
        "CLAIMED BY",
        "SUBJECT",
    ]);
    for t in threads {
        let holder = if t.status == "claimed" {
            t.claimed_by.as_deref()
        } else {
            None
        };
        let status = if t.awaiting_reply {
            format!("{} (asking)", t.status)
        } else {
            t.status.to_string()
        };
        table.row(vec![
            t.id.to_string(),
            status,
            t.kind.clone(),
            t.from.clone(),
            t.to.clone(),
            or_dash(holder),
            preview(&t.subject, 60),
        ]);
    }
    table.render()
}

fn render_show(thread: &Thread, messages: &[Message]) -> String {
    let mut text = format!(
        "Thread {}: {}\n  {} {} from {} to {}",
        thread.id,
        escape(&thread.subject),
        thread.status,
        thread.kind,
        thread.from,
        thread.to
    );
    if let (Some(holder), Some(lease)) = (&thread.claimed_by, &thread.lease_expires_at) {
        text.push_str(&format!(", claimed by {holder} until {lease}"));
    }
    if thread.awaiting_reply {
        text.push_str(", awaiting a reply");
    }
    if let Some(failure) = &thread.failure {
        text.push_str(&format!(
            "\n  failed: {}{}",
            escape(&failure.reason),
            if failure.retryable {
                " (retryable)"
            } else {
                ""
            }
        ));
    }
    if !thread.result.is_null() {
        text.push_str(&format!("\n  result: {}", thread.result));
    }
    text.push_str("\n\n");
    text.push_str(&render_messages(messages));
    text
}
