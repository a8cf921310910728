//! `cargo xtask bench inbox`: start-up cost (wall time, and instructions under
//! callgrind, which a loaded machine does not disturb), wake-up latency, idle cost.

use super::Opts;
use crate::util::{data_of, median, median_time, ms, Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use std::process::Stdio;
use std::time::{Duration, Instant};

pub fn run(bins: &Bins, opts: Opts) -> Result<Vec<Row>> {
    let sb = Sandbox::new(bins)?;
    sb.run(&bins.orch, &["init"])?;
    // Some history, so fetch has rows to skip and index lookups to do.
    for i in 0..50 {
        sb.send(bins, "@workers", "message", &format!("warm-up {i}"))?;
    }
    let mut rows = vec![startup(&sb, bins, opts)?];
    rows.extend(instructions(&sb, bins)?);
    rows.extend(wake_latency(&sb, bins, opts)?);
    rows.push(idle_cpu(&sb, bins, opts)?);
    Ok(rows)
}

fn startup(sb: &Sandbox, bins: &Bins, opts: Opts) -> Result<Row> {
    let n = opts.runs(60, 20);
    let fetch = median_time(n, || {
        sb.run(&bins.inbox, &["--json", "--agent", "w1", "fetch", "--peek"])
            .map(drop)
    })?;
    let rev_parse = median_time(n, || sb.git(&["rev-parse", "--git-common-dir"]).map(drop))?;
    let ratio = fetch.as_secs_f64() / rev_parse.as_secs_f64();
    Ok(Row {
        bench: "inbox: `git inbox --json fetch --peek`, median".into(),
        figure: ms(fetch),
        baseline: format!("{} (`git rev-parse --git-common-dir`)", ms(rev_parse)),
        ratio: format!("{ratio:.2}x"),
        goal: "≤ 2.0x".into(),
        met: Some(ratio <= 2.0),
    })
}

/// Instructions retired by one run of `program args` under callgrind: start-up work
/// measured without the noise of a machine shared with other jobs.
pub fn callgrind(sb: &Sandbox, program: &str, args: &[&str]) -> Result<Option<u64>> {
    let out = match sb
        .command("valgrind")
        .args([
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            program,
        ])
        .args(args)
        .output()
    {
        Ok(out) => out,
        Err(_) => return Ok(None),
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    let collected = stderr
        .lines()
        .find_map(|line| line.split("Collected : ").nth(1))
        .with_context(|| format!("no instruction count from callgrind: {stderr}"))?;
    Ok(Some(collected.trim().parse()?))
}

fn instructions(sb: &Sandbox, bins: &Bins) -> Result<Vec<Row>> {
    let inbox = bins.inbox.to_str().context("UTF-8 path")?;
    let ours = callgrind(sb, inbox, &["--json", "--agent", "w1", "fetch", "--peek"])?;
    let git = callgrind(sb, "git", &["rev-parse", "--git-common-dir"])?;
    let (Some(ours), Some(git)) = (ours, git) else {
        return Ok(Vec::new());
    };
    let ratio = ours as f64 / git as f64;
    Ok(vec![Row {
        bench: "inbox: `fetch --peek` instructions (callgrind)".into(),
        figure: format!("{:.2} M instructions", ours as f64 / 1e6),
        baseline: format!(
            "{:.2} M (`git rev-parse --git-common-dir`)",
            git as f64 / 1e6
        ),
        ratio: format!("{ratio:.2}x"),
        goal: "(figure only: wall time is the goal)".into(),
        met: None,
    }])
}

/// A worker asks and blocks in `wait-reply`; the leader replies. The latency is from the
/// moment the `reply` process has returned (its commit is done) to the waiter's exit.
fn wake_latency(sb: &Sandbox, bins: &Bins, opts: Opts) -> Result<Vec<Row>> {
    let trials = opts.runs(21, 7);
    let mut latencies = Vec::with_capacity(trials);
    for trial in 0..trials {
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
        // Let the waiter settle into its idle sleep: the worst case for latency.
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
            bench: "inbox: `wait-reply` wake-up after the reply exits, p50".into(),
            figure: ms(p50),
            baseline: format!("{} (one `git inbox show`)", ms(one_shot)),
            ratio: format!("{:.2}x", p50.as_secs_f64() / one_shot.as_secs_f64()),
            goal: "≤ 3 ms".into(),
            met: Some(p50 <= Duration::from_millis(3)),
        },
        Row {
            bench: format!("inbox: `wait-reply` wake-up after the reply exits, max of {trials}"),
            figure: ms(max),
            baseline: format!("{} (one `git inbox show`)", ms(one_shot)),
            ratio: format!("{:.2}x", max.as_secs_f64() / one_shot.as_secs_f64()),
            goal: "≤ 15 ms".into(),
            met: Some(max <= Duration::from_millis(15)),
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

/// Times the process was switched out voluntarily so far: each is one sleep, so the
/// difference over a stretch counts the waiter's wake-ups.
fn wakeups(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .context("no voluntary_ctxt_switches")?;
    Ok(line.trim().parse()?)
}

fn idle_cpu(sb: &Sandbox, bins: &Bins, opts: Opts) -> Result<Row> {
    let seconds = opts.runs(10, 3) as u64;
    let mut waiter = sb
        .command(&bins.inbox)
        .args([
            "--agent",
            "nobody",
            "fetch",
            "--wait",
            &format!("{}s", seconds + 5),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    // Skip start-up, then measure a stretch of pure idling.
    std::thread::sleep(Duration::from_millis(500));
    let start_ticks = cpu_ticks(waiter.id())?;
    let start_wakeups = wakeups(waiter.id())?;
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    let ticks = cpu_ticks(waiter.id())? - start_ticks;
    let woke = wakeups(waiter.id())? - start_wakeups;
    let elapsed = started.elapsed();
    waiter.kill()?;
    waiter.wait()?;
    let percent = ticks as f64 * 10.0 / (elapsed.as_secs_f64() * 1000.0) * 100.0;
    Ok(Row {
        bench: format!("inbox: idle `fetch --wait` CPU over {seconds} s"),
        figure: format!("{percent:.2} % of a core ({ticks} ticks of 10 ms, {woke} wake-ups)"),
        baseline: "0% (a sleeping process)".into(),
        ratio: "-".into(),
        goal: "≤ 0.05% of a core".into(),
        met: Some(percent <= 0.05),
    })
}
