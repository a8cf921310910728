//! `git inbox update`, `ask`, `reply` and `wait-reply`: messages on a thread.

use super::args::{timeout_error, DataArgs, NoteInput};
use crate::cli::ctx::Ctx;
use crate::cli::input::{deadline, BodyArgs};
use crate::cli::output::Out;
use crate::cli::render::render_messages;
use crate::error::Result;
use crate::inbox;

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn update(ctx: &mut Ctx, out: &Out, args: UpdateArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let input = NoteInput::read(ctx, args.body, args.data, inbox::check_note)?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::update(tx, cfg, &actor, id, input.note()))?;
    out.success(&posted, || {
        format!("Updated thread {id} (message {})", posted.message.id)
    })
}

#[derive(clap::Args, Debug)]
pub struct AskArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    #[command(flatten)]
    pub body: BodyArgs,
}

pub fn ask(ctx: &mut Ctx, out: &Out, args: AskArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let body = args.body.read()?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::ask(tx, cfg, &actor, id, &body))?;
    out.success(&posted, || {
        format!("Asked on thread {id}; wait for the answer with `git inbox wait-reply {id}`")
    })
}

#[derive(clap::Args, Debug)]
pub struct ReplyArgs {
    /// The thread
    pub id: i64,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn reply(ctx: &mut Ctx, out: &Out, args: ReplyArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let input = NoteInput::read(ctx, args.body, args.data, inbox::check_reply)?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::reply(tx, cfg, &actor, args.id, input.note()))?;
    out.success(&posted, || {
        format!(
            "Replied on thread {} (message {})",
            args.id, posted.message.id
        )
    })
}

#[derive(clap::Args, Debug)]
pub struct WaitReplyArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    /// Give up after D (exit 5)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
}

pub fn wait_reply(ctx: &mut Ctx, out: &Out, args: WaitReplyArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let until = deadline(args.timeout.as_deref())?;
    let posted = ctx
        .inbox()?
        .wait_reply(&actor, id, until)?
        .ok_or_else(|| timeout_error("a reply"))?;
    out.success(&posted, || {
        render_messages(std::slice::from_ref(&posted.message))
    })
}
