//! `git inbox done`, `fail` and `cancel`: how a thread ends.

use super::args::stage_attachments;
use crate::cli::ctx::Ctx;
use crate::cli::input::{read_json_arg, BodyArgs};
use crate::cli::output::Out;
use crate::error::Result;
use crate::inbox::{self, Note, Thread};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct DoneArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    #[command(flatten)]
    pub body: BodyArgs,
    /// The result, a JSON object
    #[arg(long, value_name = "JSON")]
    pub result: Option<String>,
    /// Read the result from FILE (- for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "result")]
    pub result_file: Option<PathBuf>,
    /// Attach a file (repeatable)
    #[arg(long, value_name = "PATH")]
    pub attach: Vec<PathBuf>,
}

pub fn done(ctx: &mut Ctx, out: &Out, args: DoneArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let body = args.body.read()?;
    let result = read_json_arg("result", args.result, args.result_file.as_deref())?;
    inbox::check_body(&body)?;
    if let Some(result) = &result {
        inbox::check_object("result", result)?;
    }
    let staged = stage_attachments(ctx, &args.attach)?;
    let note = Note {
        body: &body,
        data: None,
        artifacts: &staged,
    };
    let check = result_check;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::done(tx, cfg, &actor, id, note, result.as_ref(), Some(&check)))?;
    out.success(&posted, || format!("Thread {id} is done"))
}

/// Checks a thread's result at `done` against what the layer that made the thread
/// expects; threads without such expectations accept any object. Council review threads
/// (a `council` key in their data) must carry a valid review.
fn result_check(thread: &Thread, result: &serde_json::Value) -> Result<()> {
    crate::council::check_result(&thread.data, result)
}

#[derive(clap::Args, Debug)]
pub struct FailArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    /// Why
    #[arg(long)]
    pub reason: String,
    /// Another attempt may succeed
    #[arg(long)]
    pub retryable: bool,
}

pub fn fail(ctx: &mut Ctx, out: &Out, args: FailArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::fail(tx, cfg, &actor, id, &args.reason, args.retryable))?;
    out.success(&posted, || {
        format!(
            "Thread {id} failed{}",
            if args.retryable { " (retryable)" } else { "" }
        )
    })
}

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The thread
    pub id: i64,
    /// Why
    #[arg(long, default_value = "")]
    pub reason: String,
}

pub fn cancel(ctx: &mut Ctx, out: &Out, args: CancelArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::cancel(tx, cfg, &actor, args.id, &args.reason))?;
    out.success(&posted, || format!("Cancelled thread {}", args.id))
}
