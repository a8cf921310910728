//! `git inbox fetch`: unread messages, at least once.

use super::args::{timeout_error, wait_deadline};
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::cli::render::render_messages;
use crate::error::Result;
use crate::inbox;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Do not advance my read cursor
    #[arg(long)]
    pub peek: bool,
    /// At most N messages
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Block until at least one message arrives (for at most D)
    #[arg(long, value_name = "D", num_args = 0..=1)]
    pub wait: Option<Option<String>>,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: FetchArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let wait = wait_deadline(args.wait.as_ref())?;
    let mut inbox = ctx.inbox()?;
    let (messages, cursor) = match wait {
        None => inbox.read(|tx| inbox::unread(tx, &actor, args.limit))?,
        Some(until) => inbox
            .fetch_wait(&actor, args.limit, until)?
            .ok_or_else(|| timeout_error("a message"))?,
    };
    let data = json!({"messages": messages, "cursor": cursor});
    out.success(&data, || render_messages(&messages))?;
    // At-least-once: the cursor moves only once the output is out.
    if !args.peek && !messages.is_empty() {
        inbox.write(|tx, _| inbox::advance_cursor(tx, &actor, cursor))?;
    }
    Ok(())
}
