//! `cargo xtask soak [--workers N] [--threads M] [--seconds S] [--debug]`: N worker
//! processes on one queue with short leases; some claims are abandoned, some CLI processes
//! are killed with SIGKILL mid-command. Then an audit of the message log proves that every
//! thread ended done exactly once, that no two live claims overlapped, that no command
//! failed with `busy`, and that SQLite's integrity check passes.

use crate::util::{finish_or_kill, Bins, Rng, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct SoakArgs {
    pub workers: usize,
    pub threads: usize,
    pub seconds: u64,
    pub release: bool,
}

impl SoakArgs {
    pub fn parse(args: &[String]) -> Result<SoakArgs> {
        let mut soak = SoakArgs {
            workers: 16,
            threads: 5000,
            seconds: 600,
            release: true,
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--workers" => soak.workers = value()?.parse()?,
                "--threads" => soak.threads = value()?.parse()?,
                "--seconds" => soak.seconds = value()?.parse()?,
                "--debug" => soak.release = false,
                "--small" => {
                    soak.workers = 6;
                    soak.threads = 150;
                    soak.seconds = 120;
                }
                other => bail!("unknown soak flag {other:?}"),
            }
        }
        if soak.workers == 0 || soak.threads == 0 {
            bail!("--workers and --threads must be at least 1");
        }
        Ok(soak)
    }
}

#[derive(Default)]
struct Tally {
    claims: AtomicUsize,
    dones: AtomicUsize,
    abandoned: AtomicUsize,
    killed: AtomicUsize,
    busy: AtomicUsize,
    lease_lost: AtomicUsize,
    other_errors: AtomicUsize,
}

pub fn run(args: &[String]) -> Result<()> {
    let soak = SoakArgs::parse(args)?;
    let bins = crate::util::build(soak.release)?;
    let report = soak_run(&bins, &soak)?;
    println!("{report}");
    Ok(())
}

/// Runs the soak and its audit; returns the figures as text, or fails on any violation.
pub fn soak_run(bins: &Bins, soak: &SoakArgs) -> Result<String> {
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    // Abandoned claims must not fail threads for expiring too often: the audit wants
    // every thread done.
    sb.git(&["config", "orch.maxClaims", "1000000"])?;
    sb.git(&["config", "orch.durability", "normal"])?;
    let started = Instant::now();
    send_all(&sb, bins, soak.threads)?;
    let sent_in = started.elapsed();

    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(soak.seconds);
    let work_started = Instant::now();
    std::thread::scope(|scope| {
        for w in 0..soak.workers {
            let (sb, tally, stop) = (&sb, &tally, &stop);
            scope.spawn(move || worker(sb, bins, w, tally, stop, deadline));
        }
    });
    let worked_for = work_started.elapsed();
    if Instant::now() >= deadline {
        bail!("soak did not finish within {} s", soak.seconds);
    }
    let audit = audit(&sb, bins, soak.threads)?;
    let busy = tally.busy.load(Ordering::Relaxed);
    let integrity_ok = integrity_check(&sb.repo.join(".git/orch/state.db"))?;
    let figures = format!(
        "soak: {} workers, {} threads: sent in {:.1} s, worked in {:.1} s = {:.0} threads/s\n\
         claims={} done={} abandoned={} killed={} lease_lost={} busy={} other_errors={}\n\
         audit: done_once={} double_done={} lost={} overlapping_claims={} integrity_check={}",
        soak.workers,
        soak.threads,
        sent_in.as_secs_f64(),
        worked_for.as_secs_f64(),
        soak.threads as f64 / worked_for.as_secs_f64(),
        tally.claims.load(Ordering::Relaxed),
        tally.dones.load(Ordering::Relaxed),
        tally.abandoned.load(Ordering::Relaxed),
        tally.killed.load(Ordering::Relaxed),
        tally.lease_lost.load(Ordering::Relaxed),
        busy,
        tally.other_errors.load(Ordering::Relaxed),
        audit.done_once,
        audit.double_done,
        audit.lost,
        audit.overlaps,
        if integrity_ok { "ok" } else { "FAILED" },
    );
    if busy > 0
        || audit.double_done > 0
        || audit.lost > 0
        || audit.overlaps > 0
        || !integrity_ok
        || tally.other_errors.load(Ordering::Relaxed) > 0
    {
        bail!(
            "soak found violations:\n{figures}\n{}",
            audit.problems.join("\n")
        );
    }
    Ok(figures)
}

fn send_all(sb: &Sandbox, bins: &Bins, threads: usize) -> Result<()> {
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> Result<()> {
        let senders: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= threads {
                            return Ok(());
                        }
                        sb.send(bins, "@soak", "task", &format!("job {i}"))?;
                    }
                })
            })
            .collect();
        senders
            .into_iter()
            .try_for_each(|s| s.join().expect("sender thread"))
    })
}

enum Outcome {
    Ok(Value),
    Err(String),
    Killed,
}

/// Runs one inbox command; with `kill_after`, SIGKILLs it after that long if still running.
fn inbox(
    sb: &Sandbox,
    bins: &Bins,
    args: &[&str],
    kill_after: Option<Duration>,
) -> Result<Outcome> {
    let mut cmd = sb.command(&bins.inbox);
    cmd.arg("--json")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn()?;
    if let Some(after) = kill_after {
        if !finish_or_kill(&mut child, after)? {
            return Ok(Outcome::Killed);
        }
    }
    let out = child.wait_with_output()?;
    let doc: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "inbox {args:?} printed {:?}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    if doc["ok"] == true {
        Ok(Outcome::Ok(doc["data"].clone()))
    } else {
        Ok(Outcome::Err(
            doc["error"]["code"].as_str().unwrap_or("?").to_owned(),
        ))
    }
}

fn worker(
    sb: &Sandbox,
    bins: &Bins,
    w: usize,
    tally: &Tally,
    stop: &AtomicBool,
    deadline: Instant,
) -> Result<()> {
    let agent = format!("soak-{w}");
    let mut rng = Rng::new(w as u64 + 1 + std::process::id() as u64);
    let mut idle_rounds = 0;
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let kill_claim = rng
            .chance(3)
            .then(|| Duration::from_micros(rng.next() % 8000));
        let claim = inbox(
            sb,
            bins,
            &[
                "--agent", &agent, "claim", "--next", "--queue", "@soak", "--lease", "700ms",
            ],
            kill_claim,
        )?;
        let id = match claim {
            Outcome::Killed => {
                tally.killed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            Outcome::Err(code) if code == "not_found" => {
                // Nothing open: finished if nothing is claimed either, else leases will expire.
                let claimed = inbox(
                    sb,
                    bins,
                    &["list", "--status", "claimed", "--limit", "1"],
                    None,
                )?;
                let open = inbox(
                    sb,
                    bins,
                    &["list", "--status", "open", "--limit", "1"],
                    None,
                )?;
                let empty = |o: &Outcome| matches!(o, Outcome::Ok(d) if d["threads"].as_array().is_some_and(Vec::is_empty));
                if empty(&claimed) && empty(&open) {
                    stop.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                idle_rounds += 1;
                std::thread::sleep(Duration::from_millis(20 * idle_rounds.min(10)));
                continue;
            }
            Outcome::Err(code) => {
                count_error(tally, &code);
                continue;
            }
            Outcome::Ok(data) => data["thread"]["id"].as_i64().context("thread id")?,
        };
        idle_rounds = 0;
        tally.claims.fetch_add(1, Ordering::Relaxed);
        if rng.chance(5) {
            tally.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let id = id.to_string();
        if rng.chance(10) {
            let _ = inbox(
                sb,
                bins,
                &["--agent", &agent, "update", &id, "--body", "working"],
                None,
            )?;
        }
        let kill_done = rng
            .chance(3)
            .then(|| Duration::from_micros(rng.next() % 8000));
        match inbox(sb, bins, &["--agent", &agent, "done", &id], kill_done)? {
            Outcome::Ok(_) => {
                tally.dones.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Killed => {
                tally.killed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::Err(code) => count_error(tally, &code),
        }
    }
    Ok(())
}

fn count_error(tally: &Tally, code: &str) {
    let counter = match code {
        "busy" => &tally.busy,
        // A worker slower than its lease loses it: expected under short leases.
        "lease_lost" | "already_claimed" | "thread_closed" => &tally.lease_lost,
        _ => &tally.other_errors,
    };
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Default)]
struct Audit {
    done_once: usize,
    double_done: usize,
    lost: usize,
    overlaps: usize,
    problems: Vec<String>,
}

/// Replays every thread's messages in id order (the commit order) and checks the claims.
fn audit(sb: &Sandbox, bins: &Bins, threads: usize) -> Result<Audit> {
    let list = match inbox(sb, bins, &["list", "--limit", "100000"], None)? {
        Outcome::Ok(data) => data,
        _ => bail!("list failed"),
    };
    let all = list["threads"].as_array().context("threads")?;
    let mut audit = Audit::default();
    if all.len() != threads {
        audit.lost += threads.abs_diff(all.len());
        audit
            .problems
            .push(format!("{} threads listed, {threads} sent", all.len()));
    }
    for thread in all {
        let id = thread["id"].as_i64().context("id")?.to_string();
        let shown = match inbox(sb, bins, &["show", &id], None)? {
            Outcome::Ok(data) => data,
            _ => bail!("show {id} failed"),
        };
        let mut holder: Option<String> = None;
        let mut lease_end: BTreeMap<String, String> = BTreeMap::new();
        let mut dones = 0;
        for m in shown["messages"].as_array().context("messages")? {
            let author = m["author"].as_str().unwrap_or("").to_owned();
            match m["kind"].as_str().unwrap_or("") {
                "claim" => {
                    if let Some(h) = &holder {
                        audit.overlaps += 1;
                        audit
                            .problems
                            .push(format!("thread {id}: {author} claimed while {h} held it"));
                    }
                    // The previous holder's lease must have run out before this claim.
                    if let Some(end) = lease_end.values().max() {
                        if m["created_at"].as_str().unwrap_or("") < end.as_str() {
                            audit.overlaps += 1;
                            audit.problems.push(format!(
                                "thread {id}: claim at {} before lease end {end}",
                                m["created_at"]
                            ));
                        }
                    }
                    lease_end.clear();
                    holder = Some(author);
                }
                "expire" => {
                    if holder.as_deref() != Some(&author) {
                        audit.problems.push(format!(
                            "thread {id}: expire of {author} who did not hold it"
                        ));
                        audit.overlaps += 1;
                    }
                    lease_end.insert(
                        author,
                        m["data"]["lease_expired_at"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                    );
                    holder = None;
                }
                "release" => holder = None,
                "done" => {
                    dones += 1;
                    if holder.as_deref() != Some(&author) {
                        audit.overlaps += 1;
                        audit
                            .problems
                            .push(format!("thread {id}: done by {author} without the claim"));
                    }
                    holder = None;
                }
                "update" | "renew" if holder.as_deref() != Some(&author) => {
                    audit.overlaps += 1;
                    audit.problems.push(format!(
                        "thread {id}: {} by {author} without the claim",
                        m["kind"]
                    ));
                }
                _ => {}
            }
        }
        match (thread["status"].as_str(), dones) {
            (Some("done"), 1) => audit.done_once += 1,
            (_, 0) => {
                audit.lost += 1;
                audit.problems.push(format!(
                    "thread {id} ended {} without done",
                    thread["status"]
                ));
            }
            _ => {
                audit.double_done += 1;
                audit
                    .problems
                    .push(format!("thread {id} has {dones} done messages"));
            }
        }
    }
    Ok(audit)
}

/// SQLite's own consistency check of the state database, read-only.
pub fn integrity_check(db: &std::path::Path) -> Result<bool> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let verdict: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    Ok(verdict == "ok")
}
