//! `cargo xtask e2e agents [NAME…]`: each pinned CLI under `git orch drive --launch`, the
//! product's own loop, against the scripted endpoint. A plan of three tasks, `c` after
//! `a` and `b`: `a` and `c` launch with drive's `--launch <cli>` profile, `b` names its
//! own, `<cli>-ask`, whose endpoint plays a worker that asks a question; a separate
//! process answers it with `git orch answer` once `a` is done (so drive has gone on
//! driving meanwhile). Each profile points its CLI at the endpoint under the scenario's
//! URL prefix (`/s/quiet-worker`, `/s/worker`). Then, for Claude, the ways an agent ends
//! badly (`faults`). Where `unshare -n` works, drive (and so every supervisor and agent)
//! runs in a network namespace with only loopback, beside the endpoint.

mod faults;
mod plan;

use super::clis::{Cli, Context as LaunchContext};
use super::smoke::{kill_group, local_endpoint};
use crate::endpoint::{script, Endpoint, Verdict};
use crate::util::{finish_or_kill, Bins, Sandbox};
use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const RUN: &str = "e2e";

/// One line of the figures table.
pub struct Row {
    pub label: String,
    pub tasks: usize,
    pub attempts: usize,
    /// Per task: from drive's `dispatch` line to its `done` (or last) line.
    pub walls: Vec<(String, Duration)>,
    pub total: Duration,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut names = Vec::new();
    let mut netns = true;
    for a in args {
        match a.as_str() {
            "--no-netns" => netns = false,
            name if !name.starts_with('-') => names.push(name.to_owned()),
            other => bail!("unknown e2e agents argument {other:?}\nusage: cargo xtask e2e agents [NAME…] [--no-netns]"),
        }
    }
    let clis = if names.is_empty() {
        let installed: Vec<&'static Cli> = super::clis::CLIS
            .iter()
            .filter(|c| super::install::is_current(c))
            .collect();
        if installed.is_empty() {
            bail!("no agent CLI is installed: cargo xtask agents install [--only NAME,…]");
        }
        installed
    } else {
        let clis = super::clis::select(&names)?;
        for cli in &clis {
            super::install::install(cli)?;
        }
        clis
    };
    let bins = crate::util::build(false)?;
    // A fixed place, kept until the next run for inspection.
    let base = std::env::temp_dir().join("git-orch-agents-e2e");
    let rows = run_all(&bins, &clis, netns, &base)?;
    print_table(&rows);
    Ok(())
}

/// Every CLI's plan, then Claude's faults when Claude is among them, each in a folder
/// under `base`; fails at the end naming every run that failed.
pub fn run_all(bins: &Bins, clis: &[&'static Cli], netns: bool, base: &Path) -> Result<Vec<Row>> {
    let netns = netns && super::smoke::netns_works();
    println!(
        "network: {}",
        if netns {
            "drive, its supervisors and agents in a namespace with only loopback (unshare -n)"
        } else {
            "host network (unshare -n unavailable or --no-netns)"
        }
    );
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    let mut record = |label: String, result: Result<Row>| match result {
        Ok(row) => {
            println!("{label}: PASS in {:.1} s", row.total.as_secs_f64());
            rows.push(row);
        }
        Err(err) => {
            println!("{label}: FAIL {err:#}");
            failed.push(label);
        }
    };
    for cli in clis {
        let root = base.join(cli.name);
        record(cli.name.to_owned(), plan::plan(cli, bins, netns, &root));
    }
    if let Some(claude) = clis.iter().find(|c| c.name == "claude") {
        let root = base.join("claude-faults");
        record(
            "claude-faults".to_owned(),
            faults::faults(claude, bins, netns, &root),
        );
    }
    if !failed.is_empty() {
        print_table(&rows);
        bail!("e2e agents failed for {}", failed.join(", "));
    }
    Ok(rows)
}

pub fn print_table(rows: &[Row]) {
    println!();
    println!("| CLI | tasks | attempts | wall per task (drive's dispatch to done) | whole run |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        let walls: Vec<String> = r
            .walls
            .iter()
            .map(|(k, d)| format!("{k} {:.1} s", d.as_secs_f64()))
            .collect();
        println!(
            "| {} | {} | {} | {} | {:.1} s |",
            r.label,
            r.tasks,
            r.attempts,
            walls.join(", "),
            r.total.as_secs_f64()
        );
    }
}

/// A fresh sandbox at `root` with run `e2e` and its tasks imported from `tasks`.
pub fn sandbox(bins: &Bins, root: &Path, tasks: Value) -> Result<Sandbox> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    let sb = Sandbox::at(bins, root)?;
    // A user's identity in git config, as a real user has: aider writes one into the
    // repository's config when it finds none, and two aiders at once race on its lock.
    sb.git(&["config", "user.name", "E2E"])?;
    sb.git(&["config", "user.email", "e2e@example.com"])?;
    let orch = |args: &[&str]| sb.data(&bins.orch, args);
    orch(&["init"])?;
    orch(&[
        "run",
        "init",
        RUN,
        "--title",
        "Agents e2e",
        "--base",
        "main",
    ])?;
    let plan = root.join("plan.json");
    std::fs::write(&plan, serde_json::json!({ "tasks": tasks }).to_string())?;
    orch(&["task", "import", &plan.to_string_lossy()])?;
    Ok(sb)
}

/// Configures profile `name`: the CLI's preset, a timeout, and the environment that
/// points it at the endpoint under `/s/<scenario>`, with a home of its own.
pub fn profile(
    sb: &Sandbox,
    cli: &Cli,
    name: &str,
    port: u16,
    scenario: script::Scenario,
    timeout: &str,
) -> Result<()> {
    let home = sb
        .repo
        .parent()
        .context("sandbox root")?
        .join(format!("home-{name}"));
    std::fs::create_dir_all(&home)?;
    let base_url = format!("http://127.0.0.1:{port}/s/{}", scenario.name());
    let recipe = cli.launch(&LaunchContext {
        worktree: sb.repo.clone(),
        common_dir: sb.repo.join(".git"),
        git_dir: sb.repo.join(".git"),
        home,
        base_url: base_url.clone(),
        brief: String::new(),
    })?;
    let key = |k: &str| format!("orch.agent.{name}.{k}");
    sb.git(&["config", &key("preset"), cli.name])?;
    sb.git(&["config", &key("timeout"), timeout])?;
    let mut env = recipe.env;
    if cli.name == "aider" {
        // The preset's argv has no endpoint flags: aider reads them from its environment.
        sb.git(&["config", &key("model"), "openai/scripted-model"])?;
        for (k, v) in [
            ("OPENAI_API_BASE", format!("{base_url}/v1")),
            ("OPENAI_API_KEY", "sk-scripted".to_owned()),
            ("AIDER_EDIT_FORMAT", "diff".to_owned()),
        ] {
            env.push((k.to_owned(), v));
        }
    }
    for (k, v) in &env {
        sb.git(&["config", "--add", &key("env"), &format!("{k}={v}")])?;
    }
    Ok(())
}

/// Where the endpoint runs: on a thread here, or (in a namespace) beside drive, started
/// with it on the fixed port. Profiles need the port before drive starts.
pub struct Net {
    pub netns: bool,
    pub port: u16,
    local: Option<Endpoint>,
    log: PathBuf,
    expect: Vec<String>,
}

impl Net {
    pub fn new(netns: bool, cli: &Cli, root: &Path) -> Result<Net> {
        let log = root.join("endpoint.jsonl");
        let expect = expect(cli);
        let (local, port) = local_endpoint(netns, script::Scenario::Worker, &expect, &log)?;
        Ok(Net {
            netns,
            port,
            local,
            log,
            expect,
        })
    }
}

/// A running `git orch --json drive …`, its lines read as they come, each with the time
/// since drive started.
pub struct Drive {
    pub child: Child,
    pub started: Instant,
    pub lines: Arc<Mutex<Vec<(Duration, Value)>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    net: Net,
    /// With a namespace: the file whose creation lets netns-exec stop its endpoint.
    release: PathBuf,
}

/// Starts drive with `args`, in the namespace beside the endpoint (`netns-exec
/// --release`, which keeps it up after drive until released) or beside the local one.
pub fn start_drive(sb: &Sandbox, bins: &Bins, cli: &Cli, net: Net, args: &[&str]) -> Result<Drive> {
    let root = sb.repo.parent().context("sandbox root")?.to_path_buf();
    let release = root.join("release");
    // The CLI is found on PATH, as a user's would be.
    let program_dir = cli.program().parent().context("program dir")?.to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(program_dir).chain(std::env::split_paths(&sb.path_env)),
    )?;
    let mut cmd = if net.netns {
        let mut c = sb.command("unshare");
        c.args(["-n", "--"])
            .arg(std::env::current_exe()?)
            .args(["agents", "netns-exec"]);
        c.args(["--port", &net.port.to_string(), "--scenario", "worker"]);
        c.arg("--log").arg(&net.log);
        for e in &net.expect {
            c.args(["--expect", e]);
        }
        c.arg("--release").arg(&release).arg("--").arg(&bins.orch);
        c
    } else {
        sb.command(&bins.orch)
    };
    cmd.args(["--json", "drive"])
        .args(args)
        .env("PATH", &path)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(root.join("drive.stderr"))?);
    let started = Instant::now();
    let mut child = cmd.spawn().context("starting drive")?;
    let stdout = child.stdout.take().context("drive's stdout")?;
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let copy = root.join("drive.jsonl");
    let reader = std::thread::spawn(move || {
        let mut file = std::fs::File::create(copy).ok();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if let Some(f) = file.as_mut() {
                let _ = std::io::Write::write_all(f, format!("{line}\n").as_bytes());
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                sink.lock().unwrap().push((started.elapsed(), v));
            }
        }
    });
    Ok(Drive {
        child,
        started,
        lines,
        reader: Some(reader),
        net,
        release,
    })
}

/// The protocol lines every prompt must carry: the brief's, for its protocol.
fn expect(cli: &Cli) -> Vec<String> {
    let lines: &[&str] = if cli.inbox_protocol {
        crate::endpoint::DEFAULT_EXPECT
    } else {
        &["commit everything you change", "exit with status 0"]
    };
    lines.iter().map(|s| s.to_string()).collect()
}

impl Drive {
    /// Waits for drive's last line (the envelope), for at most `limit` from its start:
    /// returns its event lines and the envelope. With a namespace, a drive that succeeded
    /// keeps netns-exec (and the endpoint) up until [`Drive::end`].
    pub fn finish(&mut self, limit: Duration) -> Result<(Vec<(Duration, Value)>, Value)> {
        let deadline = self.started + limit;
        loop {
            let exited = self.child.try_wait()?.is_some();
            if exited {
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
            }
            let mut lines = self.lines.lock().unwrap().clone();
            if exited || lines.last().is_some_and(|(_, v)| v.get("ok").is_some()) {
                let last = lines.pop().map(|(_, v)| v).unwrap_or(Value::Null);
                return Ok((lines, last));
            }
            if Instant::now() >= deadline {
                bail!("drive still running after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Lets the namespace's endpoint go once every agent has ended; returns drive's exit
    /// status (netns-exec passes it on) and what the endpoint saw.
    pub fn end(&mut self) -> Result<(i32, Verdict)> {
        std::fs::write(&self.release, "")?;
        if !finish_or_kill(&mut self.child, Duration::from_secs(20))? {
            bail!("drive (or netns-exec) did not exit after its release");
        }
        let code = self.child.wait()?.code().unwrap_or(-1);
        let verdict = Verdict::read(&self.net.log);
        self.net.local.take();
        Ok((code, verdict?))
    }
}

impl Drop for Drive {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.release, "");
        if self.child.try_wait().ok().flatten().is_none() {
            kill_group(self.child.id());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `check` gives a value, for at most `limit`; `what` names it in the error.
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check()? {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `task show KEY`: the task and its attempts.
pub fn show(sb: &Sandbox, bins: &Bins, key: &str) -> Result<Value> {
    sb.data(&bins.orch, &["task", "show", key])
}

/// The run's `agent.exit` events, by attempt id.
pub fn agent_exits(sb: &Sandbox, bins: &Bins) -> Result<Vec<(i64, Value)>> {
    let log = sb.data(&bins.orch, &["log"])?;
    Ok(log["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["kind"] == "agent.exit")
        .map(|e| (e["attempt"].as_i64().unwrap_or(-1), e["data"].clone()))
        .collect())
}

/// Per task: from its first drive line (`dispatch`) to its last.
pub fn walls(lines: &[(Duration, Value)], keys: &[&str]) -> Vec<(String, Duration)> {
    keys.iter()
        .map(|k| {
            let times: Vec<Duration> = lines
                .iter()
                .filter(|(_, e)| e["task"] == *k)
                .map(|(t, _)| *t)
                .collect();
            let wall = match (times.first(), times.last()) {
                (Some(a), Some(b)) => *b - *a,
                _ => Duration::ZERO,
            };
            ((*k).to_owned(), wall)
        })
        .collect()
}

/// The position of drive's first `kind` line for `task`.
pub fn position(lines: &[(Duration, Value)], task: &str, kind: &str) -> Option<usize> {
    lines
        .iter()
        .position(|(_, e)| e["task"] == task && e["kind"] == kind)
}
