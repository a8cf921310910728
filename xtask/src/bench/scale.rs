//! `cargo xtask bench scale`: every command's cost should grow with what it touches, not
//! with the size of the plan or the age of the database.
//!
//! - Plans of 1k, 20k and 100k tasks (about 3.3 dependencies each past the roots, so
//!   about 300k at 100k), each with 50 attempts in flight and 20 of them claimed: the
//!   median of `ready`, `status`, `dispatch KEY`, `reconcile`, `fetch --peek` and
//!   `claim --next`, and the peak RSS of each at the largest plan, with the text
//!   `status` and the last `task import` file (into the largest run) beside them.
//! - A database with 1M messages and 2M events of old threads between other agents,
//!   against a fresh one: `fetch --peek` and `claim --next` of a worker whose read
//!   cursor predates all of that history, the two databases measured round by round.
//!
//! `--quick` stops at 20k tasks and 100k messages.

use super::orch::plan_of;
use super::Opts;
use crate::util::{data_of, median, ms, Bins, Row, Sandbox};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 50;
/// Tasks per `task import` (a plan file is at most 4 MiB).
const IMPORT_CHUNK: usize = 10_000;
const CLAIMED: usize = 20;
const COMMANDS: [&str; 6] = ["ready", "status", "dispatch", "reconcile", "fetch", "claim"];

/// One plan size: the median of each command in `COMMANDS` order, and peak RSS in KiB.
struct Sized {
    tasks: usize,
    deps: usize,
    import: Duration,
    import_rss: Option<u64>,
    status_text_rss: Option<u64>,
    medians: Vec<Duration>,
    rss: Vec<Option<u64>>,
}

pub fn run(bins: &Bins, opts: Opts) -> Result<Vec<Row>> {
    let sizes: &[usize] = if opts.quick {
        &[1_000, 20_000]
    } else {
        &[1_000, 20_000, 100_000]
    };
    let runs = opts.runs(9, 5);
    let mut measured = Vec::new();
    for &tasks in sizes {
        measured.push(plan_size(bins, tasks, runs)?);
    }
    let mut rows = Vec::new();
    let small = &measured[0];
    for (c, command) in COMMANDS.iter().enumerate() {
        for m in &measured {
            let figure = m.medians[c];
            let growth = figure.as_secs_f64() / small.medians[c].as_secs_f64();
            let (goal, met) = goal_of(command, m.tasks, figure);
            rows.push(Row {
                bench: format!("scale: `{}` at {} tasks", invocation(command), m.tasks),
                figure: ms(figure),
                baseline: format!("{} at {} tasks", ms(small.medians[c]), small.tasks),
                ratio: format!("{growth:.2}x"),
                goal,
                met,
            });
        }
    }
    let largest = measured.last().context("a size")?;
    for m in &measured {
        rows.push(Row {
            bench: format!(
                "scale: `task import` of {} tasks, {} dependencies, in files of 10k tasks",
                m.tasks, m.deps
            ),
            figure: ms(m.import),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        });
    }
    let others = [
        ("git orch task import FILE", largest.import_rss),
        ("git orch status (text)", largest.status_text_rss),
    ];
    if let Some((worst, kib)) = COMMANDS
        .iter()
        .map(|c| invocation(c))
        .zip(largest.rss.iter().copied())
        .chain(others)
        .filter_map(|(c, r)| r.map(|r| (c, r)))
        .max_by_key(|(_, r)| *r)
    {
        let mb = |kib: u64| kib as f64 / 1024.0;
        rows.push(Row {
            bench: format!(
                "scale: peak RSS of any command at {} tasks (the six, the text `status`, \
                 the last `task import` file)",
                largest.tasks
            ),
            figure: format!("{:.1} MB (`{worst}`)", mb(kib)),
            baseline: largest.import_rss.map_or("-".into(), |k| {
                format!("`task import` of a 10k-task file {:.1} MB", mb(k))
            }),
            ratio: "-".into(),
            goal: "≤ 50 MB".into(),
            met: Some(mb(kib) <= 50.0),
        });
    }
    rows.extend(history(bins, opts, runs)?);
    Ok(rows)
}

fn invocation(command: &str) -> &'static str {
    match command {
        "ready" => "git orch ready",
        "status" => "git orch status",
        "dispatch" => "git orch dispatch KEY",
        "reconcile" => "git orch reconcile",
        "fetch" => "git inbox fetch --peek",
        _ => "git inbox claim --next",
    }
}

fn goal_of(command: &str, tasks: usize, figure: Duration) -> (String, Option<bool>) {
    let limit = match (command, tasks) {
        ("ready", 100_000) => 60,
        ("status", 100_000) => 300,
        _ => return ("-".into(), None),
    };
    (
        format!("≤ {limit} ms"),
        Some(figure <= Duration::from_millis(limit)),
    )
}

/// Runs `args` under GNU time when it is there; returns peak RSS in KiB.
fn peak_rss(sb: &Sandbox, program: &Path, args: &[&str]) -> Result<Option<u64>> {
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        return Ok(None);
    }
    let out = sb
        .command(time)
        .args(["-f", "rss=%M"])
        .arg(program)
        .args(args)
        .output()?;
    if !out.status.success() {
        bail!("{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Ok(stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("rss="))
        .and_then(|v| v.trim().parse().ok()))
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let started = Instant::now();
    f()?;
    Ok(started.elapsed())
}

fn plan_size(bins: &Bins, tasks: usize, runs: usize) -> Result<Sized> {
    let sb = Sandbox::new(bins)?;
    let orch = |args: &[&str]| sb.run(&bins.orch, args);
    let inbox = |args: &[&str]| sb.run(&bins.inbox, args);
    orch(&["init"])?;
    orch(&["run", "init", "bench", "--title", "Generated plan"])?;
    let (plan, deps) = plan_of(tasks, tasks / 10);
    // A plan file may hold at most 4 MiB, so a large plan goes in as several imports,
    // each depending only on tasks imported before it.
    let mut files = Vec::new();
    for (i, chunk) in plan["tasks"]
        .as_array()
        .context("plan tasks")?
        .chunks(IMPORT_CHUNK)
        .enumerate()
    {
        let file = sb.home.join(format!("plan-{i}.json"));
        std::fs::write(&file, serde_json::json!({ "tasks": chunk }).to_string())?;
        files.push(file.to_str().context("UTF-8 temp path")?.to_owned());
    }
    let mut import = Duration::ZERO;
    let (last, first) = files.split_last().context("a plan file")?;
    for file in first {
        import += timed(|| orch(&["task", "import", file]).map(drop))?;
    }
    // The last file goes into the largest run there is: its peak RSS is import's worst.
    let mut import_rss = None;
    import += timed(|| {
        import_rss = peak_rss(&sb, &bins.orch, &["--json", "task", "import", last])?;
        Ok(())
    })?;
    orch(&["dispatch", "--all-ready", "--max", &IN_FLIGHT.to_string()])?;
    inbox(&["--agent", "w1", "subscribe", "@workers"])?;
    for _ in 0..CLAIMED {
        inbox(&["--agent", "w1", "claim", "--next"])?;
    }
    orch(&["reconcile"])?;
    let ready = data_of(&orch(&["--json", "ready"])?)?;
    let mut keys: Vec<String> = ready["tasks"]
        .as_array()
        .context("ready tasks")?
        .iter()
        .filter_map(|t| t["key"].as_str().map(str::to_owned))
        .collect();
    if keys.len() < runs + 2 {
        bail!("only {} ready tasks", keys.len());
    }
    keys.reverse();
    let arg_sets = |command: &str, key: &str| -> Vec<String> {
        let v: &[&str] = match command {
            "ready" => &["--json", "ready"],
            "status" => &["--json", "status"],
            "dispatch" => &["--json", "dispatch", key],
            "reconcile" => &["--json", "reconcile"],
            "fetch" => &["--json", "--agent", "w1", "fetch", "--peek"],
            _ => &["--json", "--agent", "w1", "claim", "--next"],
        };
        v.iter().map(|s| (*s).to_owned()).collect()
    };
    let program = |command: &str| match command {
        "fetch" | "claim" => &bins.inbox,
        _ => &bins.orch,
    };
    // Interleaved, so drift of the machine's load hits every command alike; the first
    // round warms the caches and is not counted.
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); COMMANDS.len()];
    for round in 0..=runs {
        for (c, command) in COMMANDS.iter().enumerate() {
            let key = if *command == "dispatch" {
                keys.pop().context("a ready key")?
            } else {
                String::new()
            };
            let args = arg_sets(command, &key);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let took = timed(|| sb.run(program(command), &args).map(drop))?;
            if round > 0 {
                times[c].push(took);
            }
        }
    }
    let mut rss = Vec::new();
    for command in COMMANDS {
        let key = if command == "dispatch" {
            keys.pop().context("a ready key")?
        } else {
            String::new()
        };
        let args = arg_sets(command, &key);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        rss.push(peak_rss(&sb, program(command), &args)?);
    }
    // The human table is written as the tasks are read, like the JSON.
    let status_text_rss = peak_rss(&sb, &bins.orch, &["status"])?;
    Ok(Sized {
        tasks,
        deps,
        import,
        import_rss,
        status_text_rss,
        medians: times.iter_mut().map(|t| median(t)).collect(),
        rss,
    })
}

/// `fetch --peek` and `claim --next` of a worker on a fresh database and on one with a
/// long history of other agents' threads.
fn history(bins: &Bins, opts: Opts, runs: usize) -> Result<Vec<Row>> {
    let messages = opts.runs(1_000_000, 100_000);
    // A few milliseconds each, so more rounds than the plan commands get.
    let runs = runs * 3;
    let fresh = history_case(bins, 0, runs)?;
    let old = history_case(bins, messages, runs)?;
    // Round by round, the fresh database then the old one: the machine's load drifts
    // over both alike (one after the other, a busier minute decided the ratio).
    let mut times = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 0..=runs {
        for (case, sb) in [&fresh, &old].into_iter().enumerate() {
            let inbox = |args: &[&str]| sb.run(&bins.inbox, args).map(drop);
            let f = timed(|| inbox(&["--json", "--agent", "w1", "fetch", "--peek"]))?;
            let c = timed(|| inbox(&["--json", "--agent", "w1", "claim", "--next"]))?;
            if round > 0 {
                times[case][0].push(f);
                times[case][1].push(c);
            }
        }
    }
    let [fresh, old] = times.map(|[mut f, mut c]| [median(&mut f), median(&mut c)]);
    let mut rows = Vec::new();
    for (i, what) in ["git inbox fetch --peek", "git inbox claim --next"]
        .iter()
        .enumerate()
    {
        let ratio = old[i].as_secs_f64() / fresh[i].as_secs_f64();
        rows.push(Row {
            bench: format!(
                "history: `{what}` with {} messages, {} events",
                messages,
                messages * 2
            ),
            figure: ms(old[i]),
            baseline: format!("{} on a fresh database", ms(fresh[i])),
            ratio: format!("{ratio:.2}x"),
            goal: "≤ 1.2x".into(),
            met: Some(ratio <= 1.2),
        });
    }
    Ok(rows)
}

/// A sandbox whose worker `w1` (subscribed to `@workers`, its cursor before all of it)
/// finds `runs + 1` open threads after `messages` messages of other agents' history.
fn history_case(bins: &Bins, messages: usize, runs: usize) -> Result<Sandbox> {
    let sb = Sandbox::new(bins)?;
    let inbox = |args: &[&str]| sb.run(&bins.inbox, args);
    inbox(&["init"])?;
    inbox(&["--agent", "w1", "subscribe", "@workers"])?;
    if messages > 0 {
        fill_history(&sb.repo.join(".git/orch/state.db"), messages)?;
    }
    for i in 0..runs + 1 {
        inbox(&[
            "--agent",
            "leader",
            "send",
            "--to",
            "@workers",
            "--kind",
            "task",
            "--subject",
            &format!("job {i}"),
        ])?;
    }
    Ok(sb)
}

/// Writes `messages` messages (four per thread: send, claim, update, done) and twice as
/// many events of finished threads between agents the bench never acts as.
fn fill_history(db: &Path, messages: usize) -> Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    let tx = conn.transaction()?;
    {
        let mut thread = tx.prepare(
            "INSERT INTO threads (subject, kind, from_agent, to_addr, status, claimed_by,
                 claim_epoch, claim_count, data, result, created_at, updated_at)
             VALUES (?1, 'task', 'old-leader', ?2, 'done', ?2, 1, 1, '{}', '{}', ?3, ?3)",
        )?;
        let mut holder = tx.prepare(
            "INSERT INTO holders (thread_id, agent, epoch, ended_by) VALUES (?1, ?2, 1, 'done')",
        )?;
        let mut message = tx.prepare(
            "INSERT INTO messages (thread_id, author, kind, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut event = tx.prepare(
            "INSERT INTO events (at, kind, thread_id, actor, from_status, to_status, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, '{}')",
        )?;
        let start = 1_700_000_000_000_i64;
        for t in 0..messages / 4 {
            let at = start + t as i64 * 10;
            let agent = format!("old-w{}", t % 64);
            thread.execute(rusqlite::params![format!("old job {t}"), agent, at])?;
            let id = tx.last_insert_rowid();
            holder.execute(rusqlite::params![id, agent])?;
            for (kind, author, body) in [
                (
                    "send",
                    "old-leader",
                    "Do the old thing, carefully and with tests.",
                ),
                ("claim", agent.as_str(), ""),
                (
                    "update",
                    agent.as_str(),
                    "Halfway there; the parser is done.",
                ),
                ("done", agent.as_str(), ""),
            ] {
                message.execute(rusqlite::params![id, author, kind, body, at])?;
                event.execute(rusqlite::params![
                    at,
                    "message.created",
                    id,
                    author,
                    None::<&str>,
                    None::<&str>
                ])?;
                event.execute(rusqlite::params![
                    at,
                    "thread.status",
                    id,
                    author,
                    "open",
                    "claimed"
                ])?;
            }
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}
