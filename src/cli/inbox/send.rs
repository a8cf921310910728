//! `git inbox send`: a new thread with its first message.

use super::args::{DataArgs, NoteInput};
use crate::cli::ctx::Ctx;
use crate::cli::input::BodyArgs;
use crate::cli::output::Out;
use crate::cli::render::escape;
use crate::error::Result;
use crate::inbox;
use crate::names::Address;

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    /// An agent, or a queue as @name
    #[arg(long, value_name = "AGENT|@QUEUE")]
    pub to: String,
    /// One line, at most 200 characters
    #[arg(long)]
    pub subject: String,
    /// message or task
    #[arg(long, default_value = "message", value_parser = ["message", "task"])]
    pub kind: String,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: SendArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let to = Address::parse(&args.to)?;
    let input = NoteInput::read(ctx, args.body, args.data, |note| {
        inbox::check_subject(&args.subject)?;
        inbox::check_note(note)
    })?;
    let note = input.note();
    let posted = ctx.inbox()?.write(|tx, cfg| {
        inbox::send(
            tx,
            cfg,
            &actor,
            inbox::NewThread {
                to: &to,
                subject: &args.subject,
                kind: &args.kind,
                body: note.body,
                data: note.data,
                artifacts: note.artifacts,
            },
        )
    })?;
    out.success(&posted, || {
        format!(
            "Sent thread {} to {}: {}",
            posted.thread.id,
            posted.thread.to,
            escape(&posted.thread.subject)
        )
    })
}
