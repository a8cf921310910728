//! `git inbox claim`, `renew` and `release`: holding a thread under a lease.

use super::args::{timeout_error, wait_deadline, ThreadArg};
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::{Error, Result};
use crate::inbox::{self, NextFilter};
use crate::names;

#[derive(clap::Args, Debug)]
pub struct ClaimArgs {
    /// The thread (default: this attempt worktree's thread)
    #[arg(conflicts_with = "next")]
    pub id: Option<i64>,
    /// Take the oldest open thread addressed to me or my queues
    #[arg(long)]
    pub next: bool,
    /// With --next: take from this queue (subscribed or not)
    #[arg(long, value_name = "@QUEUE", requires = "next")]
    pub queue: Option<String>,
    /// With --next: only threads of this kind
    #[arg(long, requires = "next", value_parser = ["message", "task"])]
    pub kind: Option<String>,
    /// Lease length (default orch.defaultLease, 30m)
    #[arg(long, value_name = "D")]
    pub lease: Option<String>,
    /// With --next: block until there is one to take (for at most D)
    #[arg(long, value_name = "D", num_args = 0..=1, requires = "next")]
    pub wait: Option<Option<String>>,
}

pub fn claim(ctx: &mut Ctx, out: &Out, args: ClaimArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let lease = lease(args.lease.as_deref())?;
    let posted = if args.next {
        let queue = args.queue.as_deref().map(names::parse_queue).transpose()?;
        let filter = NextFilter {
            queue: queue.as_deref(),
            kind: args.kind.as_deref(),
        };
        let wait = wait_deadline(args.wait.as_ref())?;
        let mut inbox = ctx.inbox()?;
        let found = match wait {
            None => inbox.write(|tx, cfg| inbox::claim_next(tx, cfg, &actor, &filter, lease))?,
            Some(until) => Some(
                inbox
                    .claim_next_wait(&actor, &filter, lease, until)?
                    .ok_or_else(|| timeout_error("an open thread to claim"))?,
            ),
        };
        found.ok_or_else(|| {
            Error::not_found(format!("no open thread for {actor}")).hint(
                "wait for one with --wait, or subscribe to a queue: git inbox subscribe @workers",
            )
        })?
    } else {
        let id = ctx.thread_id(args.id)?;
        ctx.inbox()?
            .write(|tx, cfg| inbox::claim(tx, cfg, &actor, id, lease))?
    };
    out.success(&posted, || {
        format!(
            "Claimed thread {} ({}) until {}",
            posted.thread.id,
            posted.thread.subject,
            posted.thread.lease_expires_at.as_deref().unwrap_or("?")
        )
    })
}

#[derive(clap::Args, Debug)]
pub struct RenewArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    /// New lease length from now (default: the claim's own)
    #[arg(long, value_name = "D")]
    pub lease: Option<String>,
}

pub fn renew(ctx: &mut Ctx, out: &Out, args: RenewArgs) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let lease = lease(args.lease.as_deref())?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::renew(tx, cfg, &actor, id, lease))?;
    out.success(&posted, || {
        format!(
            "Renewed thread {} until {}",
            id,
            posted.thread.lease_expires_at.as_deref().unwrap_or("?")
        )
    })
}

pub fn release(ctx: &mut Ctx, out: &Out, args: ThreadArg) -> Result<()> {
    let actor = ctx.agent()?;
    let id = ctx.thread_id(args.id)?;
    let posted = ctx
        .inbox()?
        .write(|tx, cfg| inbox::release(tx, cfg, &actor, id))?;
    out.success(&posted, || {
        format!("Released thread {id}; it is open again")
    })
}

fn lease(text: Option<&str>) -> Result<Option<std::time::Duration>> {
    text.map(crate::time::parse_duration).transpose()
}
