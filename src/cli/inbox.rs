//! `git inbox`: the worker-facing bus (SPEC §5).

use super::render::{or_dash, preview, render_event, render_messages, Table};
use super::{parse_duration_arg, read_json_arg, BodyArgs, Ctx, GlobalArgs, IdentitySource, Out};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, artifacts, EventFilter, ListFilter, Message, NextFilter, Note, Thread};
use crate::names::{self, Address};
use clap::{Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

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

#[derive(Subcommand, Debug)]
pub enum InboxCommand {
    /// Create the state in this repository (same as `git orch init`)
    Init,
    /// Start a new thread with its first message
    Send(SendArgs),
    /// Print unread messages on threads visible to me, oldest first
    Fetch(FetchArgs),
    /// Take a thread (or the oldest open one for me with --next)
    Claim(ClaimArgs),
    /// Extend my lease on a thread
    Renew(RenewArgs),
    /// Give a claimed thread back
    Release(ThreadArg),
    /// Post a progress note on a thread I hold (renews the lease)
    Update(UpdateArgs),
    /// Ask a question on a thread I hold
    Ask(AskArgs),
    /// Answer on a thread
    Reply(ReplyArgs),
    /// Block until someone else posts on the thread
    WaitReply(WaitReplyArgs),
    /// Complete a thread I hold
    Done(DoneArgs),
    /// Give up on a thread I hold
    Fail(FailArgs),
    /// Withdraw a thread (its sender or the leader)
    Cancel(CancelArgs),
    /// List threads
    List(ListArgs),
    /// Show one thread with all its messages
    Show(ThreadArg),
    /// Stream events as they happen
    Watch(WatchArgs),
    /// Join a queue
    Subscribe(QueueArg),
    /// Leave a queue
    Unsubscribe(QueueArg),
    /// Read stored artifacts
    #[command(subcommand)]
    Artifact(ArtifactCommand),
    /// Print who I am acting as, and the attempt worktree I stand in
    Whoami,
    /// Internal: called by the installed git hooks
    #[command(hide = true)]
    Hook(super::hook::HookArgs),
}

#[derive(clap::Args, Debug)]
pub struct DataArgs {
    /// A JSON object to carry
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Read the JSON object from FILE (- for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "data")]
    pub data_file: Option<PathBuf>,
    /// Attach a file (repeatable); stored by content hash under its base name
    #[arg(long, value_name = "PATH")]
    pub attach: Vec<PathBuf>,
}

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

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// Do not advance my read cursor
    #[arg(long)]
    pub peek: bool,
    /// At most N messages
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(i64).range(1..=100_000))]
    pub limit: i64,
    /// Block until at least one message arrives (for at most D)
    #[arg(long, value_name = "D", num_args = 0..=1, default_missing_value = "")]
    pub wait: Option<String>,
}

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
    #[arg(long, value_name = "D", num_args = 0..=1, default_missing_value = "", requires = "next")]
    pub wait: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ThreadArg {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
}

#[derive(clap::Args, Debug)]
pub struct RenewArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    /// New lease length from now (default: the claim's own)
    #[arg(long, value_name = "D")]
    pub lease: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(clap::Args, Debug)]
pub struct AskArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    #[command(flatten)]
    pub body: BodyArgs,
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

#[derive(clap::Args, Debug)]
pub struct WaitReplyArgs {
    /// The thread (default: this attempt worktree's thread)
    pub id: Option<i64>,
    /// Give up after D (exit 5)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
}

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

#[derive(clap::Args, Debug)]
pub struct CancelArgs {
    /// The thread
    pub id: i64,
    /// Why
    #[arg(long, default_value = "")]
    pub reason: String,
}

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

#[derive(clap::Args, Debug)]
pub struct QueueArg {
    /// The queue, as @name
    pub queue: String,
}

#[derive(Subcommand, Debug)]
pub enum ArtifactCommand {
    /// Write an artifact's bytes to PATH or stdout
    Get {
        id: i64,
        /// Write to PATH instead of stdout (into PATH under the artifact's name when PATH is a directory)
        #[arg(short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

/// `--wait`/`--timeout` text to a deadline; an empty `--wait` waits forever.
fn deadline(text: Option<&str>) -> Result<Option<Instant>> {
    super::deadline(text.filter(|t| !t.is_empty()))
}

fn lease(text: Option<&str>) -> Result<Option<std::time::Duration>> {
    text.map(parse_duration_arg).transpose()
}

fn timeout_error(what: &str) -> Error {
    Error::new(Code::Timeout, format!("timed out waiting for {what}"))
        .hint("wait longer with a larger timeout")
}

/// Hashes and stores attachments before any transaction; refuses bad ones first.
fn stage_attachments(ctx: &mut Ctx, paths: &[PathBuf]) -> Result<Vec<artifacts::StagedArtifact>> {
    for path in paths {
        artifacts::check(path)?;
    }
    let state_dir = ctx.store()?.state_dir().to_path_buf();
    paths
        .iter()
        .map(|p| artifacts::stage(&state_dir, p))
        .collect()
}

pub fn run(ctx: &mut Ctx, out: &Out, command: InboxCommand) -> Result<()> {
    match command {
        InboxCommand::Init => super::setup::init(ctx, out, false),
        InboxCommand::Send(args) => {
            let actor = ctx.agent()?;
            let to = Address::parse(&args.to)?;
            let body = args.body.read()?;
            let data = read_json_arg("data", args.data.data, args.data.data_file.as_deref())?;
            inbox::check_subject(&args.subject)?;
            inbox::check_body(&body)?;
            if let Some(data) = &data {
                inbox::check_object("data", data)?;
            }
            let staged = stage_attachments(ctx, &args.data.attach)?;
            let posted = ctx.inbox()?.write(|tx, cfg| {
                inbox::send(
                    tx,
                    cfg,
                    &actor,
                    inbox::NewThread {
                        to: &to,
                        subject: &args.subject,
                        kind: &args.kind,
                        body: &body,
                        data: data.as_ref(),
                        artifacts: &staged,
                    },
                )
            })?;
            out.success(&posted, || {
                format!(
                    "Sent thread {} to {}: {}",
                    posted.thread.id, posted.thread.to, posted.thread.subject
                )
            })
        }
        InboxCommand::Fetch(args) => {
            let actor = ctx.agent()?;
            let wait = args
                .wait
                .as_deref()
                .map(|w| deadline(Some(w)))
                .transpose()?;
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
        InboxCommand::Claim(args) => {
            let actor = ctx.agent()?;
            let lease = lease(args.lease.as_deref())?;
            let posted = if args.next {
                let queue = args.queue.as_deref().map(names::parse_queue).transpose()?;
                let filter = NextFilter {
                    queue: queue.as_deref(),
                    kind: args.kind.as_deref(),
                };
                let wait = args
                    .wait
                    .as_deref()
                    .map(|w| deadline(Some(w)))
                    .transpose()?;
                let mut inbox = ctx.inbox()?;
                let found = match wait {
                    None => {
                        inbox.write(|tx, cfg| inbox::claim_next(tx, cfg, &actor, &filter, lease))?
                    }
                    Some(until) => Some(
                        inbox
                            .claim_next_wait(&actor, &filter, lease, until)?
                            .ok_or_else(|| timeout_error("an open thread to claim"))?,
                    ),
                };
                found.ok_or_else(|| {
                    Error::not_found(format!("no open thread for {actor}"))
                        .hint("wait for one with --wait, or subscribe to a queue: git inbox subscribe @workers")
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
        InboxCommand::Renew(args) => {
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
        InboxCommand::Release(args) => {
            let actor = ctx.agent()?;
            let id = ctx.thread_id(args.id)?;
            let posted = ctx
                .inbox()?
                .write(|tx, cfg| inbox::release(tx, cfg, &actor, id))?;
            out.success(&posted, || {
                format!("Released thread {id}; it is open again")
            })
        }
        InboxCommand::Update(args) => {
            let actor = ctx.agent()?;
            let id = ctx.thread_id(args.id)?;
            let body = args.body.read()?;
            let data = read_json_arg("data", args.data.data, args.data.data_file.as_deref())?;
            inbox::check_note(&Note {
                body: &body,
                data: data.as_ref(),
                artifacts: &[],
            })?;
            let staged = stage_attachments(ctx, &args.data.attach)?;
            let note = Note {
                body: &body,
                data: data.as_ref(),
                artifacts: &staged,
            };
            let posted = ctx
                .inbox()?
                .write(|tx, cfg| inbox::update(tx, cfg, &actor, id, note))?;
            out.success(&posted, || {
                format!("Updated thread {id} (message {})", posted.message.id)
            })
        }
        InboxCommand::Ask(args) => {
            let actor = ctx.agent()?;
            let id = ctx.thread_id(args.id)?;
            let body = args.body.read()?;
            let posted = ctx
                .inbox()?
                .write(|tx, cfg| inbox::ask(tx, cfg, &actor, id, &body))?;
            out.success(&posted, || {
                format!(
                    "Asked on thread {id}; wait for the answer with `git inbox wait-reply {id}`"
                )
            })
        }
        InboxCommand::Reply(args) => {
            let actor = ctx.agent()?;
            let body = args.body.read()?;
            let data = read_json_arg("data", args.data.data, args.data.data_file.as_deref())?;
            inbox::check_reply(&Note {
                body: &body,
                data: data.as_ref(),
                artifacts: &[],
            })?;
            let staged = stage_attachments(ctx, &args.data.attach)?;
            let note = Note {
                body: &body,
                data: data.as_ref(),
                artifacts: &staged,
            };
            let posted = ctx
                .inbox()?
                .write(|tx, cfg| inbox::reply(tx, cfg, &actor, args.id, note))?;
            out.success(&posted, || {
                format!(
                    "Replied on thread {} (message {})",
                    args.id, posted.message.id
                )
            })
        }
        InboxCommand::WaitReply(args) => {
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
        InboxCommand::Done(args) => {
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
            let posted = ctx.inbox()?.write(|tx, cfg| {
                inbox::done(tx, cfg, &actor, id, note, result.as_ref(), Some(&check))
            })?;
            out.success(&posted, || format!("Thread {id} is done"))
        }
        InboxCommand::Fail(args) => {
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
        InboxCommand::Cancel(args) => {
            let actor = ctx.agent()?;
            let posted = ctx
                .inbox()?
                .write(|tx, cfg| inbox::cancel(tx, cfg, &actor, args.id, &args.reason))?;
            out.success(&posted, || format!("Cancelled thread {}", args.id))
        }
        InboxCommand::List(args) => {
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
        InboxCommand::Show(args) => {
            let id = ctx.thread_id(args.id)?;
            let (thread, messages) = ctx
                .inbox()?
                .read(|tx| Ok((inbox::get_thread(tx, id)?, inbox::thread_messages(tx, id)?)))?;
            let data = json!({"thread": thread, "messages": messages});
            out.success(&data, || render_show(&thread, &messages))
        }
        InboxCommand::Watch(args) => {
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
        InboxCommand::Subscribe(args) => {
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
        InboxCommand::Unsubscribe(args) => {
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
        InboxCommand::Artifact(ArtifactCommand::Get { id, output }) => {
            let meta = ctx.store()?.read(|tx| inbox::artifact(tx, id))?;
            let path = artifacts::blob_path(ctx.store()?.state_dir(), &meta.sha256);
            match output {
                Some(dest) => {
                    // Like cp: into a directory, under the artifact's own name.
                    let dest = if dest.is_dir() {
                        dest.join(&meta.name)
                    } else {
                        dest
                    };
                    copy_atomically(&path, &dest)?;
                    let data = json!({"artifact": meta, "path": dest});
                    out.success(&data, || {
                        format!(
                            "Wrote {} ({} bytes) to {}",
                            meta.name,
                            meta.size,
                            dest.display()
                        )
                    })
                }
                None if out.json => Err(Error::new(
                    Code::Usage,
                    "artifact bytes cannot share stdout with --json",
                )
                .hint("write them to a file with -o PATH")),
                None => {
                    let bytes = std::fs::read(&path)
                        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
                    super::write_stdout_bytes(&bytes)
                }
            }
        }
        InboxCommand::Whoami => {
            // SPEC §2: every command but init needs the state, even one that reads none.
            ctx.store()?;
            let (agent, source) = ctx.identity()?;
            let marker = ctx.marker()?;
            let data = json!({
                "agent": agent,
                "source": source,
                "thread": marker.as_ref().map(|m| m.thread),
                "run": marker.as_ref().map(|m| m.run.clone()),
                "task": marker.as_ref().map(|m| m.task.clone()),
                "attempt": marker.as_ref().map(|m| m.attempt),
            });
            out.success(&data, || {
                let how = match source {
                    IdentitySource::Flag => "--agent",
                    IdentitySource::Env => "ORCH_AGENT",
                    IdentitySource::Worktree => "this attempt worktree",
                };
                let mut text = format!("{agent} (from {how})");
                if let Some(m) = &marker {
                    text.push_str(&format!(
                        "\nattempt {} of task {} in run {}, thread {}",
                        m.attempt, m.task, m.run, m.thread
                    ));
                }
                text
            })
        }
        InboxCommand::Hook(args) => super::hook::run(ctx, out, args),
    }
}

/// Checks a thread's result at `done` against what the layer that made the thread
/// expects; threads without such expectations accept any object. Council review threads
/// (a `council` key in their data) must carry a valid review.
fn result_check(thread: &Thread, result: &serde_json::Value) -> Result<()> {
    crate::council::check_result(&thread.data, result)
}

fn copy_atomically(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    let dir = match to.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(format!("writing into {}", dir.display()), e))?;
    std::fs::copy(from, temp.path())
        .map_err(|e| Error::io(format!("copying {}", from.display()), e))?;
    temp.persist(to)
        .map_err(|e| Error::io(format!("writing {}", to.display()), e.error))?;
    Ok(())
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
        thread.id, thread.subject, thread.status, thread.kind, thread.from, thread.to
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
            failure.reason,
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
