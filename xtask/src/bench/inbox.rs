//! `cargo xtask bench inbox`: start-up cost, wake-up latency, idle cost, claim throughput.

use crate::util::{data_of, median, median_time, ms, Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::process::Stdio;
use std::time::{Duration, Instant};

const WAKE_TRIALS: usize = 15;
const IDLE_SECONDS: u64 = 10;
const WORKERS: usize = 8;
const QUEUE_THREADS: usize = 400;

pub fn run(bins: &Bins) -> Result<Vec<Row>> {
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    // Some history, so fetch has rows to skip and index lookups to do.
    for i in 0..50 {
        sb.run(
            &bins.inbox,
            &[
                "--agent",
                "leader",
                "send",
                "--to",
                "@workers",
                "--subject",
                &format!("warm-up {i}"),
            ],
        )?;
    }
    let mut rows = vec![startup(&sb, bins)?];
    rows.extend(wake_latency(&sb, bins)?);
    rows.push(idle_cpu(&sb, bins)?);
    rows.push(claim_throughput(&sb, bins)?);
    Ok(rows)
}

fn startup(sb: &Sandbox, bins: &Bins) -> Result<Row> {
    const N: usize = 60;
    let fetch = median_time(N, || {
        sb.run(&bins.inbox, &["--json", "--agent", "w1", "fetch", "--peek"])
            .map(drop)
    })?;
    let rev_parse = median_time(N, || sb.git(&["rev-parse", "--git-common-dir"]).map(drop))?;
    let ratio = fetch.as_secs_f64() / rev_parse.as_secs_f64();
    Ok(Row {
        bench: "inbox: `git inbox --json fetch --peek`, median of 60".into(),
        figure: ms(fetch),
        baseline: format!("{} (`git rev-parse --git-common-dir`)", ms(rev_parse)),
        ratio: format!("{ratio:.2}x"),
        goal: "≤ 3x".into(),
        met: Some(ratio <= 3.0),
    })
}

/// A worker asks and blocks in `wait-reply`; the leader replies. The latency is from the
/// moment the `reply` process has returned (its commit is done) to the waiter's exit.
fn wake_latency(sb: &Sandbox, bins: &Bins) -> Result<Vec<Row>> {
    let mut latencies = Vec::with_capacity(WAKE_TRIALS);
    for trial in 0..WAKE_TRIALS {
        let sent = data_of(&sb.run(
            &bins.inbox,
            &[
                "--json",
                "--agent",
                "leader",
                "send",
                "--to",
                "w1",
                "--subject",
                &format!("question {trial}"),
            ],
        )?)?;
        let id = sent["thread"]["id"]
            .as_i64()
            .context("thread id")?
            .to_string();
        sb.run(&bins.inbox, &["--agent", "w1", "claim", &id])?;
        sb.run(
            &bins.inbox,
            &["--agent", "w1", "ask", &id, "--body", "which way?"],
        )?;
        let mut waiter = sb
            .command(&bins.inbox)
            .args(["--agent", "w1", "wait-reply", &id, "--timeout", "30s"])
            .stdout(Stdio::null())
            .spawn()?;
        // Let the waiter settle into its idle backoff: the worst case for latency.
        std::thread::sleep(Duration::from_millis(300));
        sb.run(
            &bins.inbox,
            &["--agent", "leader", "reply", &id, "--body", "this way"],
        )?;
        let replied = Instant::now();
        let status = waiter.wait()?;
        let latency = replied.elapsed();
        if !status.success() {
            bail!("wait-reply failed: {status}");
        }
        latencies.push(latency);
    }
    let one_shot = median_time(15, || {
        sb.run(&bins.inbox, &["--json", "show", "1"]).map(drop)
    })?;
    let max = *latencies.iter().max().expect("trials ran");
    let p50 = median(&mut latencies);
    Ok(vec![
        Row {
            bench: format!("inbox: `wait-reply` wake-up after a reply, p50 of {WAKE_TRIALS}"),
            figure: ms(p50),
            baseline: format!("{} (one `git inbox show`)", ms(one_shot)),
            ratio: format!("{:.2}x", p50.as_secs_f64() / one_shot.as_secs_f64()),
            goal: "≤ 30 ms".into(),
            met: Some(p50 <= Duration::from_millis(30)),
        },
        Row {
            bench: format!("inbox: `wait-reply` wake-up after a reply, max of {WAKE_TRIALS}"),
            figure: ms(max),
            baseline: format!("{} (one `git inbox show`)", ms(one_shot)),
            ratio: format!("{:.2}x", max.as_secs_f64() / one_shot.as_secs_f64()),
            goal: "≤ 150 ms".into(),
            met: Some(max <= Duration::from_millis(150)),
        },
    ])
}

/// CPU time (user + system, in clock ticks of 10 ms) a live process has used so far.
fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').context("stat format")? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

fn idle_cpu(sb: &Sandbox, bins: &Bins) -> Result<Row> {
    let mut waiter = sb
        .command(&bins.inbox)
        .args([
            "--agent",
            "nobody",
            "fetch",
            "--wait",
            &format!("{}s", IDLE_SECONDS + 5),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    // Skip start-up, then measure a stretch of pure idling.
    std::thread::sleep(Duration::from_millis(500));
    let start_ticks = cpu_ticks(waiter.id())?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(IDLE_SECONDS));
    let ticks = cpu_ticks(waiter.id())? - start_ticks;
    let elapsed = started.elapsed();
    waiter.kill()?;
    waiter.wait()?;
    let percent = ticks as f64 * 10.0 / (elapsed.as_secs_f64() * 1000.0) * 100.0;
    Ok(Row {
        bench: format!("inbox: idle `fetch --wait` CPU over {IDLE_SECONDS} s"),
        figure: format!("{percent:.2}% of a core ({ticks} ticks of 10 ms)"),
        baseline: "0% (a sleeping process)".into(),
        ratio: "-".into(),
        goal: "≤ 1% of a core".into(),
        met: Some(percent <= 1.0),
    })
}

/// Eight workers loop `claim --next` + `done` on one queue until it is empty.
fn claim_throughput(sb: &Sandbox, bins: &Bins) -> Result<Row> {
    for i in 0..QUEUE_THREADS {
        sb.run(
            &bins.inbox,
            &[
                "--agent",
                "leader",
                "send",
                "--to",
                "@bench",
                "--kind",
                "task",
                "--subject",
                &format!("job {i}"),
            ],
        )?;
    }
    let started = Instant::now();
    let claims: usize = std::thread::scope(|scope| -> Result<usize> {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                scope.spawn(move || -> Result<usize> {
                    let agent = format!("bench-{w}");
                    let mut claimed = 0;
                    loop {
                        let out = sb
                            .command(&bins.inbox)
                            .args([
                                "--json", "--agent", &agent, "claim", "--next", "--queue", "@bench",
                            ])
                            .output()?;
                        let doc: Value = serde_json::from_slice(&out.stdout)?;
                        if doc["ok"] != true {
                            if doc["error"]["code"] == "not_found" {
                                return Ok(claimed);
                            }
                            bail!("claim failed: {doc}");
                        }
                        let id = doc["data"]["thread"]["id"]
                            .as_i64()
                            .context("id")?
                            .to_string();
                        sb.run(&bins.inbox, &["--agent", &agent, "done", &id])?;
                        claimed += 1;
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .sum()
    })?;
    let elapsed = started.elapsed();
    if claims != QUEUE_THREADS {
        bail!("{claims} claims for {QUEUE_THREADS} threads");
    }
    let spawn_started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| {
                for _ in 0..QUEUE_THREADS / WORKERS * 2 {
                    let _ = sb.git(&["rev-parse", "--git-common-dir"]);
                }
            });
        }
    });
    let spawn_rate = (QUEUE_THREADS * 2) as f64 / spawn_started.elapsed().as_secs_f64();
    let rate = claims as f64 / elapsed.as_secs_f64();
    Ok(Row {
        bench: format!(
            "inbox: claims/s, {WORKERS} worker processes on one queue (claim + done each)"
        ),
        figure: format!(
            "{rate:.0} claims/s ({claims} in {:.2} s)",
            elapsed.as_secs_f64()
        ),
        baseline: format!(
            "{:.0} `git rev-parse`/s ÷ 2 = {:.0} pairs/s (process ceiling)",
            spawn_rate,
            spawn_rate / 2.0
        ),
        ratio: format!("{:.2}x of the ceiling", rate / (spawn_rate / 2.0)),
        goal: "(figure only)".into(),
        met: None,
    })
}
