//! `git inbox`: the worker-facing bus (SPEC §5). One file per noun, each with its
//! commands' arguments, bodies and renderers; this one only dispatches.

mod args;
mod artifact;
mod claim;
mod close;
mod fetch;
mod list;
mod queue;
mod send;
mod talk;
mod watch;
mod whoami;

use crate::cli::ctx::{Ctx, GlobalArgs};
use crate::cli::output::Out;
use crate::cli::{hook, setup};
use crate::error::Result;
use clap::{Parser, Subcommand};

/// The durable coordination bus for agents working on one repository
#[derive(Parser, Debug)]
#[command(
    name = "git-inbox",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct InboxCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: InboxCommand,
}

// Deferred: a subcommand's arguments are built only when it is the one being run (as
// in every nested command enum). Building all of them cost every short command 0.4M
// instructions, a tenth of a `fetch --peek`; help and the generated docs build them all.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum InboxCommand {
    /// Create the state in this repository (same as `git orch init`)
    Init,
    /// Start a new thread with its first message
    Send(send::SendArgs),
    /// Print unread messages on threads visible to me, oldest first
    Fetch(fetch::FetchArgs),
    /// Take a thread (or the oldest open one for me with --next)
    Claim(claim::ClaimArgs),
    /// Extend my lease on a thread
    Renew(claim::RenewArgs),
    /// Give a claimed thread back
    Release(args::ThreadArg),
    /// Post a progress note on a thread I hold (renews the lease)
    Update(talk::UpdateArgs),
    /// Ask a question on a thread I hold
    Ask(talk::AskArgs),
    /// Answer on a thread
    Reply(talk::ReplyArgs),
    /// Block until someone else posts on the thread
    WaitReply(talk::WaitReplyArgs),
    /// Complete a thread I hold
    Done(close::DoneArgs),
    /// Give up on a thread I hold
    Fail(close::FailArgs),
    /// Withdraw a thread (its sender or the leader)
    Cancel(close::CancelArgs),
    /// List threads
    List(list::ListArgs),
    /// Show one thread with all its messages
    Show(args::ThreadArg),
    /// Stream events as they happen
    Watch(watch::WatchArgs),
    /// Join a queue
    Subscribe(queue::QueueArg),
    /// Leave a queue
    Unsubscribe(queue::QueueArg),
    /// Read stored artifacts
    #[command(subcommand)]
    Artifact(artifact::ArtifactCommand),
    /// Print who I am acting as, and the attempt worktree I stand in
    Whoami,
    /// Serve the worker's tools over MCP on stdin/stdout (see docs/mcp.md)
    Mcp,
    /// Internal: called by the installed git hooks
    #[command(hide = true)]
    Hook(hook::HookArgs),
}

pub fn run(ctx: &mut Ctx, out: &Out, command: InboxCommand) -> Result<()> {
    match command {
        InboxCommand::Init => setup::init(ctx, out, false),
        InboxCommand::Send(args) => send::run(ctx, out, args),
        InboxCommand::Fetch(args) => fetch::run(ctx, out, args),
        InboxCommand::Claim(args) => claim::claim(ctx, out, args),
        InboxCommand::Renew(args) => claim::renew(ctx, out, args),
        InboxCommand::Release(args) => claim::release(ctx, out, args),
        InboxCommand::Update(args) => talk::update(ctx, out, args),
        InboxCommand::Ask(args) => talk::ask(ctx, out, args),
        InboxCommand::Reply(args) => talk::reply(ctx, out, args),
        InboxCommand::WaitReply(args) => talk::wait_reply(ctx, out, args),
        InboxCommand::Done(args) => close::done(ctx, out, args),
        InboxCommand::Fail(args) => close::fail(ctx, out, args),
        InboxCommand::Cancel(args) => close::cancel(ctx, out, args),
        InboxCommand::List(args) => list::list(ctx, out, args),
        InboxCommand::Show(args) => list::show(ctx, out, args),
        InboxCommand::Watch(args) => watch::run(ctx, out, args),
        InboxCommand::Subscribe(args) => queue::subscribe(ctx, out, args),
        InboxCommand::Unsubscribe(args) => queue::unsubscribe(ctx, out, args),
        InboxCommand::Artifact(command) => artifact::run(ctx, out, command),
        InboxCommand::Whoami => whoami::run(ctx, out),
        InboxCommand::Mcp => {
            use clap::CommandFactory;
            let cli = InboxCli::command();
            crate::cli::mcp::serve(ctx, crate::cli::mcp::tools::Side::Inbox, &cli)
        }
        InboxCommand::Hook(args) => hook::run(ctx, out, args),
    }
}
