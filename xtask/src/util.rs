//! Shared pieces for benchmarks and scenarios: release binaries, hermetic temp repos,
//! timing, and the figures table.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

/// Paths of the release binaries, built first.
pub struct Bins {
    pub inbox: PathBuf,
    pub orch: PathBuf,
    pub dir: PathBuf,
}

pub fn build_release() -> Result<Bins> {
    build(true)
}

/// Builds the binaries (release for figures, debug to reuse what `cargo test` built).
pub fn build(release: bool) -> Result<Bins> {
    let root = workspace_root();
    // Not quiet: a first build takes minutes, and a silent one looks hung.
    let mut args = vec!["build", "--package", "git-orch", "--bins"];
    if release {
        args.push("--release");
    }
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(&args)
        .current_dir(&root)
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo {args:?} failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join(if release { "release" } else { "debug" });
    Ok(Bins {
        inbox: dir.join("git-inbox"),
        orch: dir.join("git-orch"),
        dir,
    })
}

/// A temp dir with a hermetic environment and a repository `repo/` with one commit.
pub struct Sandbox {
    /// Held so a temporary directory lives exactly as long as the sandbox.
    _tmp: Option<tempfile::TempDir>,
    pub repo: PathBuf,
    pub home: PathBuf,
    pub path_env: std::ffi::OsString,
}

impl Sandbox {
    /// The run's SQLite file, opened read-only: checks read what the commands wrote
    /// without taking part in their locking.
    pub fn read_state(&self) -> Result<rusqlite::Connection> {
        let db = self.repo.join(".git/orch/state.db");
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))
    }

    pub fn new(bins: &Bins) -> Result<Sandbox> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().to_path_buf();
        Self::make(bins, Some(tmp), &root)
    }

    /// A sandbox in `dir` (created; must be empty), kept afterwards for inspection.
    pub fn at(bins: &Bins, dir: &Path) -> Result<Sandbox> {
        std::fs::create_dir_all(dir)?;
        if std::fs::read_dir(dir)?.next().is_some() {
            bail!("{} is not empty", dir.display());
        }
        Self::make(bins, None, dir)
    }

    fn make(bins: &Bins, tmp: Option<tempfile::TempDir>, root: &Path) -> Result<Sandbox> {
        let root = root.canonicalize()?;
        let repo = root.join("repo");
        let home = root.join("home");
        std::fs::create_dir_all(&repo)?;
        std::fs::create_dir_all(&home)?;
        let mut paths = vec![bins.dir.clone()];
        paths.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path_env = std::env::join_paths(paths)?;
        let sandbox = Sandbox {
            _tmp: tmp,
            repo,
            home,
            path_env,
        };
        sandbox.git(&["init", "-q", "-b", "main"])?;
        std::fs::write(sandbox.repo.join("README.md"), "bench\n")?;
        sandbox.git(&["add", "README.md"])?;
        sandbox.git(&["commit", "-q", "-m", "initial"])?;
        Ok(sandbox)
    }

    /// A command with the sandbox's environment, started in the repository.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("GIT_") || k.starts_with("ORCH_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("HOME", &self.home)
            .env("PATH", &self.path_env)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Bench")
            .env("GIT_AUTHOR_EMAIL", "bench@example.com")
            .env("GIT_COMMITTER_NAME", "Bench")
            .env("GIT_COMMITTER_EMAIL", "bench@example.com")
            .env("LC_ALL", "C")
            .env("NO_COLOR", "1")
            .current_dir(&self.repo)
            .stdin(Stdio::null());
        cmd
    }

    pub fn git(&self, args: &[&str]) -> Result<String> {
        let out = self.command("git").args(args).output()?;
        check(&out, &format!("git {args:?}"))
    }

    /// Runs `program --json args…` and returns its `data`, or fails with its error.
    pub fn data(&self, program: &Path, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.command(program).arg("--json").args(args).output()?;
        data_of(&String::from_utf8_lossy(&out.stdout))
            .with_context(|| format!("{} {args:?}", program.display()))
    }

    /// `git inbox send` by the leader to `to` about `subject`; `kind` is message or task.
    pub fn send(&self, bins: &Bins, to: &str, kind: &str, subject: &str) -> Result<String> {
        let args = [
            "--agent",
            "leader",
            "send",
            "--to",
            to,
            "--kind",
            kind,
            "--subject",
            subject,
        ];
        self.run(&bins.inbox, &args)
    }

    /// Runs `program args…`, failing on a non-zero exit; returns stdout.
    pub fn run(&self, program: &Path, args: &[&str]) -> Result<String> {
        let out = self.command(program).args(args).output()?;
        check(&out, &format!("{} {args:?}", program.display()))
    }
}

/// `data` of a `--json` document, or the error it reports.
pub fn data_of(stdout: &str) -> Result<serde_json::Value> {
    let doc: serde_json::Value = serde_json::from_str(stdout)
        .with_context(|| format!("not a --json document: {stdout:?}"))?;
    if doc["ok"] != true {
        bail!("command failed: {}", doc["error"]);
    }
    Ok(doc["data"].clone())
}

pub fn check(out: &Output, what: &str) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Median wall time of `n` runs of `f` (after one warm-up run).
pub fn median_time(n: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(&mut times))
}

pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// One line of the figures table.
pub struct Row {
    pub bench: String,
    pub figure: String,
    pub baseline: String,
    pub ratio: String,
    pub goal: String,
    pub met: Option<bool>,
}

impl Row {
    /// The leading number of `figure` and the word after it ("1.52 ms" → 1.52, "ms").
    pub fn value(&self) -> Option<(f64, String)> {
        let mut words = self.figure.split_whitespace();
        let number: f64 = words.next()?.replace(',', "").parse().ok()?;
        Some((number, words.next().unwrap_or("").to_owned()))
    }

    pub fn to_json(&self) -> serde_json::Value {
        let value = self.value();
        serde_json::json!({
            "bench": self.bench,
            "figure": self.figure,
            "value": value.as_ref().map(|v| v.0),
            "unit": value.map(|v| v.1),
            "baseline": self.baseline,
            "ratio": self.ratio,
            "goal": self.goal,
            "met": self.met,
        })
    }
}

/// Prints the table; with the last run's `target/bench.json`, a column of what each
/// figure was then.
pub fn print_table(rows: &[Row], previous: Option<&serde_json::Value>) {
    let before = |bench: &str| -> String {
        previous
            .and_then(|doc| doc["rows"].as_array())
            .and_then(|rows| rows.iter().find(|r| r["bench"] == bench))
            .and_then(|r| r["figure"].as_str())
            .unwrap_or("-")
            .to_owned()
    };
    println!();
    println!("| benchmark | figure | baseline (same run) | ratio | goal | met | last run |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.bench,
            r.figure,
            r.baseline,
            r.ratio,
            r.goal,
            met,
            before(&r.bench)
        );
    }
}

/// A small xorshift generator: scenarios need variety, not cryptography.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Lets `child` run for at most `after`, then SIGKILLs it; returns whether it finished
/// on its own.
pub fn finish_or_kill(child: &mut std::process::Child, after: Duration) -> Result<bool> {
    let until = Instant::now() + after;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        if Instant::now() >= until {
            child.kill()?;
            child.wait()?;
            return Ok(false);
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}
