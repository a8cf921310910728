//! `git inbox subscribe` and `unsubscribe`: queue membership.

use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::Result;
use crate::inbox;
use crate::names;
use serde_json::json;

#[derive(clap::Args, Debug)]
pub struct QueueArg {
    /// The queue, as @name
    pub queue: String,
}

pub fn subscribe(ctx: &mut Ctx, out: &Out, args: QueueArg) -> Result<()> {
    let actor = ctx.agent()?;
    let queue = names::parse_queue(&args.queue)?;
    let added = ctx
        .inbox()?
        .write(|tx, cfg| inbox::subscribe(tx, cfg, &actor, &queue))?;
    let data = json!({"agent": actor, "queue": format!("@{queue}"), "changed": added});
    out.success(&data, || {
        if added {
            format!("{actor} subscribed to @{queue}")
        } else {
            format!("{actor} was already subscribed to @{queue}")
        }
    })
}

pub fn unsubscribe(ctx: &mut Ctx, out: &Out, args: QueueArg) -> Result<()> {
    let actor = ctx.agent()?;
    let queue = names::parse_queue(&args.queue)?;
    let removed = ctx
        .inbox()?
        .write(|tx, cfg| inbox::unsubscribe(tx, cfg, &actor, &queue))?;
    let data = json!({"agent": actor, "queue": format!("@{queue}"), "changed": removed});
    out.success(&data, || {
        if removed {
            format!("{actor} left @{queue}")
        } else {
            format!("{actor} was not subscribed to @{queue}")
        }
    })
}
