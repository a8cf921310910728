//! `cargo xtask bench council`: the tally of 3 reviewers × 200 recommendations.
//!
//! The council commands need orch runs, so this times the council's pure core through
//! `examples/council_tally.rs`, a small release-built program over reviewer files. That
//! keeps xtask free of the main crate (it stays a thin driver of release binaries, like
//! the other benchmarks) and measures the optimised code, which a library dependency of
//! the dev-built xtask would not. Two figures: the whole process (start-up, reading and
//! validating three files, the tally, printing) and the tally alone, which the program
//! reports on stderr.
//!
//! The input is generated, deterministic and varied: 150 components × 12 concerns, each
//! concern with three ways to word its title and its rationale, so that reviewers who
//! raise the same point mostly use different words. 100 points are raised by all three
//! reviewers, 40 by each pair, 20 by one reviewer only.

use crate::util::{check, median, ms, workspace_root, Bins, Row};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const RUNS: usize = 11;
const GOAL: Duration = Duration::from_millis(200);
const PER_REVIEWER: usize = 200;
const SHARED_BY_ALL: usize = 100;
const SHARED_BY_PAIR: usize = 40;
const OWN: usize = PER_REVIEWER - SHARED_BY_ALL - 2 * SHARED_BY_PAIR;

pub fn run(_bins: &Bins) -> Result<Vec<Row>> {
    let program = build_example()?;
    let tmp = tempfile::tempdir()?;
    let (files, truth) = write_reviews(tmp.path())?;
    let empty = write_empty_reviews(tmp.path())?;

    let (wall, tally) = time_runs(&program, &files)?;
    let (baseline, _) = time_runs(&program, &empty)?;
    let (summary, quality) = summarize(&program, &files, &truth)?;
    let ratio = wall.as_secs_f64() / baseline.as_secs_f64().max(1e-9);
    Ok(vec![
        Row {
            bench: "council tally, 3 × 200 recommendations (process, median)".into(),
            figure: ms(wall),
            baseline: format!("{} (same program, 3 empty reviews)", ms(baseline)),
            ratio: format!("{ratio:.1}×"),
            goal: format!("≤ {}", ms(GOAL)),
            met: Some(wall <= GOAL),
        },
        Row {
            bench: "council tally, 3 × 200 recommendations (tally alone, median)".into(),
            figure: ms(tally),
            baseline: "-".into(),
            ratio: "-".into(),
            goal: format!("≤ {}", ms(GOAL)),
            met: Some(tally <= GOAL),
        },
        Row {
            bench: "council tally groups (generated: 100 by all, 3 × 40 by two, 3 × 20 by one)"
                .into(),
            figure: summary,
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
        Row {
            bench: "council tally pairs grouped as generated (precision / recall)".into(),
            figure: quality,
            baseline: "-".into(),
            ratio: "-".into(),
            goal: "-".into(),
            met: None,
        },
    ])
}

fn build_example() -> Result<PathBuf> {
    let root = workspace_root();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--package",
            "git-orch",
            "--example",
            "council_tally",
        ])
        .current_dir(&root)
        .status()
        .context("running cargo build --example council_tally")?;
    if !status.success() {
        bail!("cargo build --release --example council_tally failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    Ok(target.join("release/examples/council_tally"))
}

/// Median wall time of the whole program and median of the tally time it reports.
fn time_runs(program: &Path, files: &[PathBuf]) -> Result<(Duration, Duration)> {
    let mut walls = Vec::with_capacity(RUNS);
    let mut tallies = Vec::with_capacity(RUNS);
    for i in 0..=RUNS {
        let start = Instant::now();
        let out = Command::new(program)
            .arg("--time")
            .args(files)
            .output()
            .context("running council_tally")?;
        let wall = start.elapsed();
        check(&out, "council_tally")?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        let micros: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("tally_us "))
            .and_then(|v| v.trim().parse().ok())
            .context("council_tally did not report tally_us")?;
        // The first run warms the page cache and is not counted.
        if i > 0 {
            walls.push(wall);
            tallies.push(Duration::from_micros(micros));
        }
    }
    Ok((median(&mut walls), median(&mut tallies)))
}

/// How the tally grouped the generated input, and how many of the pairs it put together
/// make the same generated point (precision) out of all such pairs (recall).
fn summarize(program: &Path, files: &[PathBuf], truth: &Truth) -> Result<(String, String)> {
    let out = Command::new(program).args(files).output()?;
    let tally: Value = serde_json::from_str(&check(&out, "council_tally")?)?;
    let groups = tally["groups"].as_array().context("no groups")?;
    let count = |level: &str| groups.iter().filter(|g| g["level"] == level).count();
    let summary = format!(
        "{} groups: {} consensus, {} majority, {} minority",
        groups.len(),
        count("consensus"),
        count("majority"),
        count("minority")
    );
    let (mut grouped, mut right) = (0usize, 0usize);
    for g in groups {
        let points: Vec<Option<&(usize, usize)>> = g["members"]
            .as_array()
            .context("no members")?
            .iter()
            .map(|m| {
                let key = (
                    m["reviewer"].as_str().unwrap_or_default().to_owned(),
                    m["title"].as_str().unwrap_or_default().to_owned(),
                );
                truth.get(&key)
            })
            .collect();
        for i in 0..points.len() {
            for j in i + 1..points.len() {
                grouped += 1;
                if points[i].is_some() && points[i] == points[j] {
                    right += 1;
                }
            }
        }
    }
    let true_pairs = 3 * SHARED_BY_ALL + 3 * SHARED_BY_PAIR;
    let quality = format!(
        "{:.1}% / {:.1}% ({right} right of {grouped} grouped pairs; {true_pairs} true pairs)",
        100.0 * right as f64 / grouped.max(1) as f64,
        100.0 * right as f64 / true_pairs as f64
    );
    Ok((summary, quality))
}

fn write_empty_reviews(dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = dir.join("empty");
    std::fs::create_dir_all(&dir)?;
    (1..=3)
        .map(|r| {
            let path = dir.join(format!("reviewer-{r}.json"));
            std::fs::write(&path, json!({"recommendations": []}).to_string())?;
            Ok(path)
        })
        .collect()
}

/// Which generated point each `(reviewer, title)` makes.
type Truth = HashMap<(String, String), (usize, usize)>;

/// Writes `reviewer-{1,2,3}.json` with 200 recommendations each.
fn write_reviews(dir: &Path) -> Result<(Vec<PathBuf>, Truth)> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Distinct (component, concern) points, in a shuffled order.
    let mut points: Vec<(usize, usize)> = (0..COMPONENTS.len() * SUFFIXES.len())
        .flat_map(|c| (0..CONCERNS.len()).map(move |k| (c, k)))
        .collect();
    rng.shuffle(&mut points);
    let mut next = points.into_iter();
    let mut take = |n: usize| -> Vec<(usize, usize)> { next.by_ref().take(n).collect() };
    let all = take(SHARED_BY_ALL);
    let pairs = [
        take(SHARED_BY_PAIR),
        take(SHARED_BY_PAIR),
        take(SHARED_BY_PAIR),
    ];
    let own = [take(OWN), take(OWN), take(OWN)];
    let mut files = Vec::new();
    let mut truth = Truth::new();
    for r in 0..3 {
        // Reviewer r shares pair r with r+1 and pair r-1 with r-1.
        let mut mine: Vec<(usize, usize)> = all.clone();
        mine.extend(&pairs[r]);
        mine.extend(&pairs[(r + 2) % 3]);
        mine.extend(&own[r]);
        rng.shuffle(&mut mine);
        let name = format!("reviewer-{}", r + 1);
        let recs: Vec<Value> = mine
            .iter()
            .map(|&(c, k)| {
                let rec = recommendation(&mut rng, r, c, k);
                let title = rec["title"].as_str().unwrap_or_default().to_owned();
                truth.insert((name.clone(), title), (c, k));
                rec
            })
            .collect();
        let path = dir.join(format!("{name}.json"));
        std::fs::write(&path, json!({ "recommendations": recs }).to_string())?;
        files.push(path);
    }
    Ok((files, truth))
}

fn recommendation(rng: &mut Rng, reviewer: usize, component: usize, concern: usize) -> Value {
    let noun = COMPONENTS[component / SUFFIXES.len()];
    let suffix = SUFFIXES[component % SUFFIXES.len()];
    let thing = format!("{noun} {suffix}");
    let ident = format!("{noun}_{suffix}");
    let concern = &CONCERNS[concern];
    // Reviewers word the same point differently; a little randomness on top.
    let t = (reviewer + rng.below(2)) % 3;
    let w = (reviewer + rng.below(2)) % 3;
    let fill = |s: &str| s.replace("{c}", &thing).replace("{f}", &ident);
    let priority = ["high", "medium", "low"][(concern.priority + rng.below(2)) % 3];
    json!({
        "title": fill(concern.titles[t]),
        "rationale": fill(concern.rationales[w]),
        "priority": priority,
    })
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough to shuffle benchmark input.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

const COMPONENTS: &[&str] = &[
    "config",
    "cache",
    "parser",
    "lexer",
    "router",
    "session",
    "token",
    "upload",
    "billing",
    "report",
    "search",
    "index",
    "queue",
    "worker",
    "scheduler",
    "auth",
    "payment",
    "invoice",
    "profile",
    "audit",
    "export",
    "import",
    "metrics",
    "logger",
    "client",
    "server",
    "retry",
    "pool",
    "store",
    "webhook",
];

const SUFFIXES: &[&str] = &["loader", "handler", "service", "manager", "repo"];

struct Concern {
    titles: [&'static str; 3],
    rationales: [&'static str; 3],
    /// Index into high, medium, low; a reviewer may rate it one step lower.
    priority: usize,
}

const CONCERNS: &[Concern] = &[
    Concern {
        titles: [
            "Add tests for the {c}",
            "The {c} lacks unit tests",
            "Test coverage for the {c} is missing",
        ],
        rationales: [
            "The {c} has no tests for its error paths; `{f}` in particular is never exercised.",
            "Nothing tests `{f}`; a regression in the {c} would ship unnoticed.",
            "There are no unit tests around the {c}, so edge cases in `{f}` are unverified.",
        ],
        priority: 1,
    },
    Concern {
        titles: [
            "Don't unwrap in the {c}",
            "The {c} panics on bad input",
            "Handle errors in `{f}` instead of crashing",
        ],
        rationales: [
            "`{f}` calls unwrap on a fallible result, so malformed input crashes the process.",
            "A malformed request makes `{f}` panic; return an error to the caller instead.",
            "The {c} aborts with a panic when `{f}` gets unexpected input; propagate the error.",
        ],
        priority: 0,
    },
    Concern {
        titles: [
            "Cache results in the {c}",
            "The {c} recomputes the same values",
            "Memoize `{f}`",
        ],
        rationales: [
            "`{f}` is called for every request and recomputes identical results; keep a small cache.",
            "The {c} does the same expensive work on every call to `{f}`; memoize it.",
            "Repeated calls to `{f}` redo the work each time; caching the result in the {c} would help.",
        ],
        priority: 2,
    },
    Concern {
        titles: [
            "Document the {c}",
            "The {c} has no docs",
            "Write doc comments for `{f}`",
        ],
        rationales: [
            "The public API of the {c} is undocumented; callers of `{f}` must read the code.",
            "`{f}` has no doc comment, and the {c} is not mentioned in the README.",
            "Nobody can tell what `{f}` guarantees; describe the {c} in its docs.",
        ],
        priority: 2,
    },
    Concern {
        titles: [
            "Race condition in the {c}",
            "Unsynchronised state in `{f}`",
            "Guard the {c}'s shared state with a lock",
        ],
        rationales: [
            "`{f}` mutates shared state from several threads without a lock; this is a data race.",
            "The {c} updates its counters concurrently and unsynchronised; use a mutex or atomics.",
            "Concurrent callers of `{f}` race on the {c}'s shared map; guard it with a lock.",
        ],
        priority: 0,
    },
    Concern {
        titles: [
            "Log failures in the {c}",
            "The {c} swallows errors silently",
            "Errors from `{f}` are never logged",
        ],
        rationales: [
            "When `{f}` fails nothing is logged, so operators cannot see why the {c} misbehaves.",
            "The {c} drops errors from `{f}` without a trace; log them with context.",
            "Failures in `{f}` vanish; add a log line with the error so the {c} can be debugged.",
        ],
        priority: 1,
    },
    Concern {
        titles: [
            "Validate input in the {c}",
            "The {c} trusts unchecked input",
            "Reject malformed data before `{f}` uses it",
        ],
        rationales: [
            "`{f}` accepts negative sizes and empty names; validate the input at the {c}'s boundary.",
            "The {c} stores whatever it is given; out-of-range values in `{f}` corrupt state later.",
            "Nothing checks the input to `{f}`, so the {c} accepts invalid records; reject them early.",
        ],
        priority: 1,
    },
    Concern {
        titles: [
            "Add a timeout to the {c}",
            "The {c} can hang forever",
            "Calls in `{f}` need a deadline",
        ],
        rationales: [
            "`{f}` waits on the network without a timeout; a stuck peer hangs the {c}.",
            "The {c} blocks indefinitely when the remote side stops answering; set a deadline in `{f}`.",
            "There is no timeout around the remote call in `{f}`, so the {c} can stall for good.",
        ],
        priority: 0,
    },
    Concern {
        titles: [
            "Split up the {c}",
            "The {c} does too much",
            "Refactor `{f}` into smaller functions",
        ],
        rationales: [
            "`{f}` is 400 lines long and mixes parsing, I/O and formatting; extract helpers.",
            "The {c} combines three responsibilities in `{f}`; splitting it would ease review.",
            "`{f}` has grown too large to follow; break the {c} into focused pieces.",
        ],
        priority: 2,
    },
    Concern {
        titles: [
            "Avoid N+1 queries in the {c}",
            "The {c} queries the database in a loop",
            "Batch the lookups in `{f}`",
        ],
        rationales: [
            "`{f}` issues one query per row; a page of 100 rows costs 101 round trips to the database.",
            "The {c} loads related rows one at a time inside a loop; fetch them in one batched query.",
            "Each iteration in `{f}` runs its own SELECT; batch the lookups so the {c} makes one query.",
        ],
        priority: 0,
    },
    Concern {
        titles: [
            "Make the {c} limits configurable",
            "Hard-coded limits in the {c}",
            "Read `{f}` settings from configuration",
        ],
        rationales: [
            "The {c} hard-codes its buffer size and retry count; expose them as settings.",
            "`{f}` uses magic numbers for its limits; production needs to tune them without a rebuild.",
            "Limits in `{f}` are constants; read them from the configuration so the {c} can be tuned.",
        ],
        priority: 2,
    },
    Concern {
        titles: [
            "Leaked file handles in the {c}",
            "The {c} never closes what it opens",
            "Close resources in `{f}` on every path",
        ],
        rationales: [
            "`{f}` opens a file and returns early on error without closing it; the {c} leaks handles.",
            "On the error path the {c} forgets to close the handle it opened in `{f}`.",
            "Handles opened by `{f}` stay open when it fails; close them on every path of the {c}.",
        ],
        priority: 1,
    },
];
