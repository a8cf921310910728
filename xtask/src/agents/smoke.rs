//! `cargo xtask agents smoke [NAME…]`: each pinned CLI does one real code task the way the
//! supervisor will launch it: a repository with `git orch init`, one dispatched attempt,
//! its thread claimed for `<cli>-<attempt id>`, the CLI started in the attempt worktree
//! against the scripted endpoint, a leader answering its question with `git orch answer`,
//! and a wall-clock limit. Where `unshare -n` works, the CLI and the endpoint run in a
//! network namespace that has only loopback.
//!
//! `NAME-mcp` (or `--mcp`) is the same task with every inbox step through the `inbox` MCP
//! server instead of the shell, launched by `git orch dispatch --launch` with the preset's
//! MCP wiring; see `launched` and `mcp`.

use super::clis::{Cli, Context as LaunchContext};
use crate::endpoint::{self, script, Config, Endpoint, Verdict};
use crate::util::{Bins, Sandbox};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// In a fresh network namespace every port is free; the CLIs' config needs it up front.
pub const NETNS_PORT: u16 = 18080;

pub struct SmokeArgs {
    pub names: Vec<String>,
    pub timeout: Duration,
    pub netns: bool,
    /// Every CLI named (or every one with an MCP recipe) in its MCP variant.
    pub mcp: bool,
}

pub fn run(args: &[String]) -> Result<()> {
    let mut smoke = SmokeArgs {
        names: Vec::new(),
        timeout: Duration::from_secs(300),
        netns: true,
        mcp: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--timeout" => {
                let secs: u64 = it.next().context("--timeout needs seconds")?.parse()?;
                smoke.timeout = Duration::from_secs(secs);
            }
            "--no-netns" => smoke.netns = false,
            "--mcp" => smoke.mcp = true,
            name if !name.starts_with('-') => smoke.names.push(name.to_owned()),
            other => bail!("unknown agents smoke argument {other:?}"),
        }
    }
    let runs = select(&smoke)?;
    for (cli, _) in &runs {
        super::install::install(cli)?;
    }
    let bins = crate::util::build(false)?;
    let netns = smoke.netns && netns_works();
    println!(
        "network: {}",
        if netns {
            "each CLI in its own namespace with only loopback (unshare -n)"
        } else {
            "host network (unshare -n unavailable or --no-netns)"
        }
    );
    let mut failed = Vec::new();
    for (cli, mcp) in runs {
        let label = label(cli, mcp);
        // Outside the project's own repository, so that no CLI that looks upwards for a
        // repository root can find this one; kept until the next run for inspection.
        let root = std::env::temp_dir()
            .join("git-orch-agents-smoke")
            .join(&label);
        match smoke_one(cli, mcp, &bins, netns, smoke.timeout, &root) {
            Ok(line) => println!("{label}: PASS {line}"),
            Err(err) => {
                println!("{label}: FAIL {err:#}");
                failed.push(label);
            }
        }
    }
    if !failed.is_empty() {
        bail!("agents smoke failed for {}", failed.join(", "));
    }
    Ok(())
}

/// The runs asked for: `NAME` or `NAME-mcp`, each CLI in its MCP variant with `--mcp`
/// (with no names: all five, or with `--mcp` those that have an MCP recipe).
fn select(smoke: &SmokeArgs) -> Result<Vec<(&'static Cli, bool)>> {
    if smoke.names.is_empty() {
        let all = super::clis::CLIS.iter();
        return Ok(all
            .filter(|c| !smoke.mcp || c.mcp_smoke)
            .map(|c| (c, smoke.mcp))
            .collect());
    }
    let mut runs = Vec::new();
    for name in &smoke.names {
        let (base, mcp) = match name.strip_suffix("-mcp") {
            Some(base) => (base, true),
            None => (name.as_str(), smoke.mcp),
        };
        let cli = super::clis::select(&[base.to_owned()])?[0];
        if mcp && !cli.mcp_smoke {
            bail!("{base} has no MCP smoke (claude-mcp, codex-mcp, opencode-mcp)");
        }
        runs.push((cli, mcp));
    }
    Ok(runs)
}

fn label(cli: &Cli, mcp: bool) -> String {
    if mcp {
        format!("{}-mcp", cli.name)
    } else {
        cli.name.to_owned()
    }
}

/// The Claude Code MCP smoke as one scenario of `cargo xtask test` (about 6 s once
/// installed): in a temporary folder of its own, so parallel runs do not meet.
pub fn claude_mcp(bins: &Bins) -> Result<String> {
    let cli = super::clis::select(&["claude".to_owned()])?[0];
    super::install::install(cli)?;
    let tmp = tempfile::Builder::new()
        .prefix("git-orch-claude-mcp-")
        .tempdir()?;
    let result = smoke_one(
        cli,
        true,
        bins,
        netns_works(),
        Duration::from_secs(120),
        &tmp.path().join("smoke"),
    );
    if result.is_err() {
        // The logs the error names must outlive it.
        let _ = tmp.keep();
    }
    result
}

pub fn netns_works() -> bool {
    Command::new("unshare")
        .args(["-n", "--", "ip", "link", "set", "lo", "up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The brief: `git orch brief` once the launcher has it, else the same protocol lines.
fn brief(sb: &Sandbox, bins: &Bins, cli: &Cli) -> String {
    if let Ok(text) = sb.run(&bins.orch, &["brief", "greet"]) {
        return text;
    }
    let protocol = if cli.inbox_protocol {
        "- Commit your work with git commit as you go.\n\
         - Need a decision? `git inbox ask --body \"…\"`, then `git inbox wait-reply`.\n\
         - Finished: `git inbox done --body \"summary\"`. Stuck: `git inbox fail --reason … --retryable`.\n"
    } else {
        "- Edit the files; commit your work; exit when finished.\n"
    };
    format!(
        "You are a git-orch worker on task greet of run smoke, in its own worktree.\n\
         Task: Write a greeting\n\
         Create {} with a one-line greeting.\n\nProtocol:\n{protocol}",
        script::FILE
    )
}

/// The endpoint on a thread of this process, with its port; in a network namespace it
/// runs inside the namespace instead (`None`, on [`NETNS_PORT`]).
pub fn local_endpoint(
    netns: bool,
    scenario: script::Scenario,
    expect: &[String],
    log: &Path,
) -> Result<(Option<Endpoint>, u16)> {
    if netns {
        return Ok((None, NETNS_PORT));
    }
    let endpoint = Endpoint::start(Config {
        port: 0,
        scenario,
        expect: expect.to_vec(),
        log: log.to_path_buf(),
    })?;
    let port = endpoint.port;
    Ok((Some(endpoint), port))
}

/// A fresh sandbox at `root` with the smoke's run and its one task, `greet`.
pub fn smoke_repo(bins: &Bins, root: &Path) -> Result<Sandbox> {
    if root.exists() {
        std::fs::remove_dir_all(root)?;
    }
    let sb = Sandbox::at(bins, root)?;
    let orch = |args: &[&str]| sb.data(&bins.orch, args);
    orch(&["init"])?;
    let run = [
        "run",
        "init",
        "smoke",
        "--title",
        "Agent smoke",
        "--base",
        "main",
    ];
    orch(&run)?;
    orch(&[
        "task",
        "add",
        "greet",
        "--title",
        "Write a greeting",
        "--kind",
        "code",
    ])?;
    Ok(sb)
}

fn smoke_one(
    cli: &'static Cli,
    mcp: bool,
    bins: &Bins,
    netns: bool,
    limit: Duration,
    root: &Path,
) -> Result<String> {
    if mcp {
        return super::launched::smoke(cli, bins, netns, limit, root);
    }
    let started = Instant::now();
    let sb = smoke_repo(bins, root)?;
    let orch = |args: &[&str]| sb.data(&bins.orch, args);
    let attempt = orch(&["dispatch", "greet"])?["attempts"][0].clone();
    let (id, thread) = (
        attempt["id"].as_i64().context("id")?,
        attempt["thread"].as_i64().context("thread")?,
    );
    let worktree = PathBuf::from(attempt["worktree"].as_str().context("worktree")?);
    let agent = format!("{}-{id}", cli.name);
    // The supervisor claims first, so the agent needs no claim and no ids.
    sb.data(
        &bins.inbox,
        &[
            "--agent",
            &agent,
            "claim",
            &thread.to_string(),
            "--lease",
            "30m",
        ],
    )?;

    let brief = brief(&sb, bins, cli);
    let git_dir = PathBuf::from(
        sb.git(&[
            "-C",
            &worktree.to_string_lossy(),
            "rev-parse",
            "--absolute-git-dir",
        ])?
        .trim(),
    );
    let common_dir = PathBuf::from(
        sb.git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?
            .trim(),
    );
    std::fs::write(git_dir.join("orch-brief.md"), &brief)?;
    let log_dir = common_dir.join("orch/logs/smoke");
    std::fs::create_dir_all(&log_dir)?;
    let agent_log = log_dir.join("greet-1.log");
    let endpoint_log = root.join("endpoint.jsonl");
    let scenario = script::Scenario::Worker;
    let expect: Vec<String> = if cli.inbox_protocol {
        endpoint::DEFAULT_EXPECT
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        vec![script::FILE.to_owned(), "commit your work".to_owned()]
    };

    let home = root.join("agent-home");
    std::fs::create_dir_all(&home)?;
    // In the namespace the endpoint runs beside the CLI; otherwise here, on a thread.
    let (local, port) = local_endpoint(netns, scenario, &expect, &endpoint_log)?;
    let ctx = LaunchContext {
        worktree: worktree.clone(),
        common_dir: common_dir.clone(),
        git_dir: git_dir.clone(),
        home: home.clone(),
        base_url: format!("http://127.0.0.1:{port}"),
        brief: brief.clone(),
    };
    let launch = cli.launch(&ctx)?;
    println!(
        "{} ({}@{}): {}",
        cli.name,
        cli.package,
        cli.version,
        launch.display(&cli.program())
    );
    let mut cmd = if netns {
        let mut c = Command::new("unshare");
        c.args(["-n", "--"])
            .arg(std::env::current_exe()?)
            .args(["agents", "netns-exec"]);
        c.args(["--port", &port.to_string(), "--scenario", scenario.name()]);
        c.arg("--log").arg(&endpoint_log);
        for e in &expect {
            c.args(["--expect", e]);
        }
        c.arg("--").args(&launch.argv);
        c
    } else {
        let mut c = Command::new(&launch.argv[0]);
        c.args(&launch.argv[1..]);
        c
    };
    let cmd = with_env(
        &sb,
        cmd.current_dir(&worktree),
        cli,
        &launch.env,
        &agent,
        id,
        thread,
        &git_dir,
    );
    let out = std::fs::File::create(&agent_log)?;
    let stdout_path = root.join("agent.stdout");
    cmd.stdout(std::fs::File::create(&stdout_path)?).stderr(out);
    std::os::unix::process::CommandExt::process_group(cmd, 0);
    let agent_started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {}", launch.argv[0]))?;

    // The leader: answer the question from this side, as `git orch answer` would from any
    // shell, while the agent runs.
    let deadline = agent_started + limit;
    let mut answered = false;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            kill_group(child.id());
            child.wait()?;
            bail!(
                "{} still running after {limit:?}: killed (log {})",
                cli.name,
                agent_log.display()
            );
        }
        let task = orch(&["task", "show", "greet"])?;
        if !answered && task["task"]["blocked_reason"] == "question" {
            orch(&["answer", "greet", "--body", super::mcp::ANSWER])?;
            answered = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let agent_secs = agent_started.elapsed().as_secs_f64();
    // A CLI that left a child behind must not outlive the run.
    kill_group(child.id());
    let verdict = match &local {
        Some(endpoint) => endpoint.verdict()?,
        None => Verdict::read(&endpoint_log)?,
    };
    drop(local);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let mut problems = Vec::new();
    if !status.success() {
        problems.push(format!("exit {status}"));
    }
    if let Err(why) = cli.success(&stdout) {
        problems.push(format!("{}'s own result: {why}", cli.name));
    }
    if !cli.inbox_protocol && status.success() {
        // protocol=exit: the supervisor completes the thread for an agent that exited 0.
        let head = sb.git(&["-C", &worktree.to_string_lossy(), "rev-parse", "HEAD"])?;
        let result = serde_json::json!({"exit_code": 0, "head_sha": head.trim(), "summary": "aider exited 0"});
        sb.data(
            &bins.inbox,
            &[
                "--agent",
                &agent,
                "done",
                &thread.to_string(),
                "--result",
                &result.to_string(),
            ],
        )?;
    }
    check(&sb, bins, cli, &verdict, answered, &mut problems)?;
    if !problems.is_empty() {
        bail!(
            "{}\n  endpoint: {verdict}\n  agent log: {}\n  stdout: {}",
            problems.join("; "),
            agent_log.display(),
            stdout_path.display()
        );
    }
    Ok(format!(
        "in {:.1} s (agent {agent_secs:.1} s): {verdict}",
        started.elapsed().as_secs_f64()
    ))
}

#[allow(clippy::too_many_arguments)]
fn with_env<'a>(
    sb: &Sandbox,
    cmd: &'a mut Command,
    cli: &Cli,
    extra: &[(String, String)],
    agent: &str,
    attempt: i64,
    thread: i64,
    git_dir: &Path,
) -> &'a mut Command {
    // The sandbox's hermetic git identity and PATH (with this build's git-inbox first).
    let template = sb.command("true");
    for (k, v) in template.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let node_bin = super::install::cache_dir()
        .join(cli.name)
        .join("node_modules/.bin");
    let path =
        std::env::join_paths(std::iter::once(node_bin).chain(std::env::split_paths(&sb.path_env)))
            .unwrap_or_default();
    // Node and Bun CLIs (opencode) take the project from $PWD, not from the process's
    // working directory: an inherited PWD sends them into the caller's repository.
    let pwd = cmd
        .get_current_dir()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    cmd.env("PATH", path)
        .env("PWD", pwd)
        .env("ORCH_AGENT", agent)
        .env("ORCH_RUN", "smoke")
        .env("ORCH_TASK", "greet")
        .env("ORCH_ATTEMPT", attempt.to_string())
        .env("ORCH_THREAD", thread.to_string())
        .env("ORCH_BRIEF", git_dir.join("orch-brief.md"))
        .stdin(Stdio::null());
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

pub fn check(
    sb: &Sandbox,
    bins: &Bins,
    cli: &Cli,
    v: &Verdict,
    answered: bool,
    problems: &mut Vec<String>,
) -> Result<()> {
    let task = sb.data(&bins.orch, &["task", "show", "greet"])?;
    if task["task"]["status"] != "done" {
        problems.push(format!(
            "task is {} ({})",
            task["task"]["status"], task["task"]["current_attempt"]["failure"]
        ));
    }
    if task["attempts"][0]["commits"].as_i64().unwrap_or(0) < 1 {
        problems.push("no commit recorded by the hooks".into());
    }
    match sb.git(&["show", &format!("orch/smoke/greet-1:{}", script::FILE)]) {
        Ok(text) if text == script::CONTENT => {}
        Ok(text) => problems.push(format!("{} on the branch holds {text:?}", script::FILE)),
        Err(_) => problems.push(format!("{} is not on the branch", script::FILE)),
    }
    if !v.prompt_ok() {
        problems.push(format!("prompt check failed, missing {:?}", v.missing));
    }
    if !v.errors.is_empty() {
        problems.push(format!("endpoint errors: {:?}", v.errors));
    }
    if cli.inbox_protocol {
        if !answered {
            problems.push("the agent never asked".into());
        }
        if !v.done_sent {
            problems.push("the script never got to `git inbox done`".into());
        }
    }
    Ok(())
}

/// SIGKILL to a process group, ignoring one that is already gone.
pub fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status();
}

/// `xtask agents netns-exec --port P --log F [--expect S]… -- ARGV…`, run by `unshare -n`:
/// brings loopback up, serves the endpoint on it, runs the agent, exits with its status.
pub fn netns_exec(args: &[String]) -> Result<()> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .context("netns-exec needs -- ARGV")?;
    // `--release FILE`: after a command that succeeded, keep the endpoint up until FILE
    // exists (the dispatch returns at once; the agent it launched talks to the endpoint).
    let mut own = args[..split].to_vec();
    let release = match own.iter().position(|a| a == "--release") {
        Some(i) if i + 1 < own.len() => {
            let file = PathBuf::from(own.remove(i + 1));
            own.remove(i);
            Some(file)
        }
        Some(_) => bail!("--release needs a file"),
        None => None,
    };
    let config = endpoint::parse_args(&own)?;
    let argv = &args[split + 1..];
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if !up.success() {
        bail!("ip link set lo up failed");
    }
    let endpoint = Endpoint::start(config)?;
    let status = Command::new(argv.first().context("empty ARGV")?)
        .args(&argv[1..])
        .status()
        .with_context(|| format!("starting {}", argv[0]))?;
    if let (Some(release), true) = (&release, status.success()) {
        // Bounded by the smoke's own limits; an hour is only the backstop.
        super::launched::hold_until(release, Duration::from_secs(3600));
    }
    drop(endpoint);
    std::process::exit(status.code().unwrap_or(128));
}
