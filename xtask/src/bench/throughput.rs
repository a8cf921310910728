//! `cargo xtask bench throughput`: claims per second of 16 worker processes against the
//! two limits of this machine, measured in the same run:
//!
//! - the disk: a loop of one-row transactions at `synchronous=FULL` in one process (WAL,
//!   like ours), in the same directory as the bench's database. A claim and its `done`
//!   are two such commits, so the disk allows at most half that rate of pairs;
//! - processes: how many `git rev-parse` processes 16 threads can start and reap per
//!   second; a pair is two processes.

use super::Opts;
use crate::util::{Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::time::Instant;

const WORKERS: usize = 16;

pub fn run(bins: &Bins, opts: Opts) -> Result<Vec<Row>> {
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    let fsync = fsync_rate(&sb, opts.runs(300, 100))?;
    let threads = opts.runs(480, 160);
    let ceiling = process_rate(&sb, threads * 2)?;
    let (rate, busy) = claims(&sb, bins, threads)?;
    let pairs_disk = fsync / 2.0;
    let pairs_procs = ceiling / 2.0;
    let limit = pairs_disk.min(pairs_procs);
    let share = rate / limit;
    Ok(vec![
        Row {
            bench: "throughput: one-row transactions/s, synchronous=FULL, one process".into(),
            figure: format!("{fsync:.0} commits/s"),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "(the disk's limit)".into(),
            met: None,
        },
        Row {
            bench: format!("throughput: `git rev-parse` processes/s, {WORKERS} threads"),
            figure: format!("{ceiling:.0} processes/s"),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "(the process ceiling)".into(),
            met: None,
        },
        Row {
            bench: format!(
                "throughput: claim+done pairs/s, {WORKERS} worker processes, FULL ({threads} threads)"
            ),
            figure: format!("{rate:.0} pairs/s, busy = {busy}"),
            baseline: format!(
                "min({pairs_disk:.0} disk, {pairs_procs:.0} processes) = {limit:.0} pairs/s"
            ),
            ratio: format!("{share:.2}x of the limit"),
            goal: "≥ 0.5x; busy = 0".into(),
            met: Some(share >= 0.5 && busy == 0),
        },
    ])
}

/// Commits per second of a loop of one-row transactions, each waiting for its fsync.
fn fsync_rate(sb: &Sandbox, commits: usize) -> Result<f64> {
    let path = sb.repo.join(".git/orch/fsync-bench.db");
    let conn = rusqlite::Connection::open(&path)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    )?;
    let mut insert = conn.prepare("INSERT INTO t (v) VALUES (?1)")?;
    insert.execute(["warm-up"])?;
    let started = Instant::now();
    for i in 0..commits {
        insert.execute([format!("row {i}")])?;
    }
    let rate = commits as f64 / started.elapsed().as_secs_f64();
    drop(insert);
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(rate)
}

/// Processes per second that `WORKERS` threads start and reap.
fn process_rate(sb: &Sandbox, total: usize) -> Result<f64> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                for _ in 0..total / WORKERS {
                    let _ = sb.git(&["rev-parse", "--git-common-dir"]);
                }
            });
        }
    });
    Ok((total / WORKERS * WORKERS) as f64 / started.elapsed().as_secs_f64())
}

/// `WORKERS` processes loop `claim --next` + `done` on one queue of `threads` threads
/// until it is empty; returns pairs/s and how many commands failed with `busy`.
fn claims(sb: &Sandbox, bins: &Bins, threads: usize) -> Result<(f64, usize)> {
    for i in 0..threads {
        sb.send(bins, "@bench", "task", &format!("job {i}"))?;
    }
    let started = Instant::now();
    let results: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| scope.spawn(move || worker(sb, bins, w)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect::<Result<_>>()
    })?;
    let elapsed = started.elapsed();
    let claimed: usize = results.iter().map(|r| r.0).sum();
    let busy: usize = results.iter().map(|r| r.1).sum();
    if claimed != threads {
        bail!("{claimed} claims for {threads} threads");
    }
    Ok((claimed as f64 / elapsed.as_secs_f64(), busy))
}

fn worker(sb: &Sandbox, bins: &Bins, w: usize) -> Result<(usize, usize)> {
    let agent = format!("bench-{w}");
    let (mut claimed, mut busy) = (0, 0);
    let run = |args: &[&str]| -> Result<Value> {
        let out = sb
            .command(&bins.inbox)
            .args(["--json", "--agent", &agent])
            .args(args)
            .output()?;
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    loop {
        let doc = run(&["claim", "--next", "--queue", "@bench"])?;
        if doc["ok"] != true {
            match doc["error"]["code"].as_str() {
                Some("not_found") => return Ok((claimed, busy)),
                Some("busy") => {
                    busy += 1;
                    continue;
                }
                _ => bail!("claim failed: {doc}"),
            }
        }
        let id = doc["data"]["thread"]["id"]
            .as_i64()
            .context("id")?
            .to_string();
        loop {
            let done = run(&["done", &id])?;
            if done["ok"] == true {
                break;
            }
            if done["error"]["code"] != "busy" {
                bail!("done failed: {done}");
            }
            busy += 1;
        }
        claimed += 1;
    }
}
