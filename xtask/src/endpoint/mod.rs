//! A scripted model endpoint on 127.0.0.1 that the real agent CLIs talk to instead of a
//! model: one port, every wire format (see `wire`), playing a worker (see `script`).
//!
//! Every request is one JSON line in the log; `Verdict::read` sums the log up, so a test
//! can check an endpoint that ran in another process (inside a network namespace) the same
//! way as one on a thread of its own.
//!
//! The scenario is the server's default, or the URL's prefix `/s/<scenario>/…` (give a CLI
//! `http://127.0.0.1:PORT/s/hang` as its base URL).

mod http;
pub mod script;
#[cfg(test)]
mod tests;
pub mod wire;

use anyhow::{Context, Result};
use script::{Action, Scenario};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use wire::{Conversation, Reply, Wire};

/// The protocol lines a brief must carry; the endpoint checks the prompt for each.
pub const DEFAULT_EXPECT: &[&str] = &["git inbox ask", "git inbox wait-reply", "git inbox done"];
/// The same for `mcp-worker`: the brief names the inbox tools instead of the commands.
pub const MCP_EXPECT: &[&str] = &["`ask`", "`wait_reply`", "`done`"];

/// The default expectations of a scenario.
pub fn default_expect(scenario: Scenario) -> Vec<String> {
    let lines = match scenario {
        Scenario::McpWorker => MCP_EXPECT,
        _ => DEFAULT_EXPECT,
    };
    lines.iter().map(|s| s.to_string()).collect()
}

/// How much of a tool result the log keeps: enough to see what a call answered.
const RESULT_LOG_CHARS: usize = 2000;

pub struct Config {
    pub port: u16,
    pub scenario: Scenario,
    /// Substrings the user prompt of every worker request must contain.
    pub expect: Vec<String>,
    /// The JSON-lines log (created or appended to).
    pub log: PathBuf,
}

struct Shared {
    config: Config,
    log: Mutex<File>,
    requests: AtomicUsize,
    stop: AtomicBool,
}

/// A running endpoint; dropping it stops it.
pub struct Endpoint {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Endpoint {
    pub fn start(config: Config) -> Result<Endpoint> {
        let listener = TcpListener::bind(("127.0.0.1", config.port))
            .with_context(|| format!("binding 127.0.0.1:{}", config.port))?;
        let port = listener.local_addr()?.port();
        if let Some(dir) = config.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&config.log)
            .with_context(|| format!("opening {}", config.log.display()))?;
        let shared = Arc::new(Shared {
            config,
            log: Mutex::new(log),
            requests: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let for_loop = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if for_loop.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&for_loop);
                std::thread::spawn(move || serve(&shared, stream));
            }
        });
        Ok(Endpoint {
            port,
            shared,
            accept: Some(accept),
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> &Path {
        &self.shared.config.log
    }

    pub fn verdict(&self) -> Result<Verdict> {
        Verdict::read(self.log())
    }

    /// Blocks until the endpoint is stopped from another thread or process (Ctrl-C).
    pub fn serve_forever(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(shared: &Shared, stream: TcpStream) {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let mut entry = json!({"n": n});
    if let Err(err) = handle(shared, &stream, &mut entry) {
        entry["error"] = json!(format!("{err:#}"));
    }
    if shared.stop.load(Ordering::SeqCst) && entry.get("method").is_none() {
        return; // the wake-up connection of Drop
    }
    if let Ok(mut log) = shared.log.lock() {
        let _ = writeln!(log, "{entry}");
    }
}

fn handle(shared: &Shared, stream: &TcpStream, entry: &mut Value) -> Result<()> {
    let req = http::read_request(stream)?;
    entry["method"] = json!(req.method);
    entry["path"] = json!(req.path);
    let (scenario, path) = match req.path.strip_prefix("/s/") {
        Some(rest) => {
            let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
            (Scenario::parse(name)?, format!("/{tail}"))
        }
        None => (shared.config.scenario, req.path.clone()),
    };
    entry["scenario"] = json!(scenario.name());
    let Some(wire) = Wire::of(&path).filter(|_| req.method == "POST") else {
        entry["kind"] = json!("other");
        // Claude Code probes `HEAD /`; answer anything that is not a model call politely.
        return http::respond(stream, 200, "application/json", b"{}");
    };
    entry["wire"] = json!(wire.name());
    if let Some(enc) = req.header("content-encoding").filter(|e| *e != "identity") {
        http::respond(
            stream,
            415,
            "text/plain",
            b"compressed bodies are not supported",
        )?;
        anyhow::bail!("request body is {enc}-encoded");
    }
    let body: Value = serde_json::from_slice(&req.body).context("request body is not JSON")?;
    let c = wire::parse(wire, &body, &path);
    let step = c.results.len();
    entry["step"] = json!(step);
    entry["tools"] = json!(c.tools.len());
    // What the CLI sent back for the previous step: the output of a tool call, whether
    // a shell's or an MCP server's, is seen only here.
    if let Some(last) = c.results.last() {
        entry["last_result"] = json!(last.chars().take(RESULT_LOG_CHARS).collect::<String>());
    }

    let aider = wire == Wire::Chat && c.tools.is_empty() && c.system.contains("SEARCH/REPLACE");
    let worker = !c.tools.is_empty() || (aider && c.stream);
    if !worker {
        entry["kind"] = json!("side");
        return send(stream, wire, &side_answer(wire, &c), &c, step);
    }
    entry["kind"] = json!("worker");
    let missing: Vec<&String> = shared
        .config
        .expect
        .iter()
        .filter(|e| !c.prompt.contains(e.as_str()))
        .collect();
    entry["prompt_ok"] = json!(missing.is_empty());
    entry["missing"] = json!(missing);
    let file = script::file_of(&c.prompt);
    if aider {
        entry["action"] = json!("aider-edit");
        return send(stream, wire, &script::aider_edit(&file), &c, step);
    }
    let action = script::action(scenario, step, &file);
    entry["action"] = json!(format!("{action:?}"));
    match &action {
        Action::Shell(cmd) => entry["shell"] = json!(cmd),
        Action::Mcp(verb, _) => entry["mcp"] = json!(verb),
        _ => {}
    }
    if action == Action::Hang {
        return hang(shared, stream);
    }
    match script::reply(wire, &c, &action, &file) {
        Ok(reply) => send(stream, wire, &reply, &c, step),
        Err(why) => {
            entry["error"] = json!(why);
            // The whole request, to see what a CLI's new version changed.
            entry["request"] = body.clone();
            send(
                stream,
                wire,
                &Reply::Text(format!("The script cannot go on: {why}")),
                &c,
                step,
            )
        }
    }
}

/// Titles, classifiers, commit messages: a short harmless text.
fn side_answer(wire: Wire, c: &Conversation) -> Reply {
    if wire == Wire::Gemini {
        // Gemini CLI's model router wants JSON text; any well-formed object will do.
        return Reply::Text(r#"{"reasoning": "scripted", "model_choice": "flash"}"#.into());
    }
    if c.system.contains("commit message") || c.prompt.contains("commit message") {
        return Reply::Text("Add greeting.txt".into());
    }
    Reply::Text("Scripted worker".into())
}

fn send(
    stream: &TcpStream,
    wire: Wire,
    reply: &Reply,
    c: &Conversation,
    step: usize,
) -> Result<()> {
    let (content_type, body) = wire::render(wire, reply, c, step);
    if content_type == "text/event-stream" {
        http::start_sse(stream)?;
        let mut s = stream;
        s.write_all(&body)?;
        s.flush()?;
        Ok(())
    } else {
        http::respond(stream, 200, content_type, &body)
    }
}

/// Opens the stream and then sends only SSE comments, until the client goes away or the
/// endpoint stops: a model that never answers.
fn hang(shared: &Shared, stream: &TcpStream) -> Result<()> {
    http::start_sse(stream)?;
    let mut s = stream;
    while !shared.stop.load(Ordering::SeqCst) {
        if s.write_all(b": waiting\n\n")
            .and_then(|_| s.flush())
            .is_err()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// What the log says happened.
#[derive(Debug, Default)]
pub struct Verdict {
    pub requests: usize,
    pub worker_requests: usize,
    /// Expected substrings some worker request lacked.
    pub missing: BTreeSet<String>,
    /// The highest scripted step served.
    pub max_step: usize,
    /// Whether the step that runs `git inbox done` (or its MCP tool) was handed out.
    pub done_sent: bool,
    pub errors: Vec<String>,
    /// The inbox MCP tools handed out, by step.
    pub mcp: BTreeMap<usize, String>,
    /// Shell commands handed out that run `git inbox`, by step.
    pub inbox_shell: BTreeMap<usize, String>,
    /// What the CLI sent back for each step (the start of it), as later requests carry it.
    pub outputs: BTreeMap<usize, String>,
}

impl Verdict {
    pub fn read(log: &Path) -> Result<Verdict> {
        let mut v = Verdict::default();
        let file = File::open(log).with_context(|| format!("opening {}", log.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let entry: Value = serde_json::from_str(&line?)?;
            v.requests += 1;
            if let Some(err) = entry["error"].as_str() {
                v.errors.push(format!("request {}: {err}", entry["n"]));
            }
            if entry["kind"] != "worker" {
                continue;
            }
            v.worker_requests += 1;
            v.max_step = v.max_step.max(entry["step"].as_u64().unwrap_or(0) as usize);
            for m in entry["missing"].as_array().into_iter().flatten() {
                v.missing.insert(m.as_str().unwrap_or("").to_owned());
            }
            let step = entry["step"].as_u64().unwrap_or(0) as usize;
            if let (Some(out), Some(prev)) = (entry["last_result"].as_str(), step.checked_sub(1)) {
                v.outputs.insert(prev, out.to_owned());
            }
            if let Some(verb) = entry["mcp"].as_str() {
                v.mcp.insert(step, verb.to_owned());
            }
            if let Some(cmd) = entry["shell"].as_str().filter(|c| c.contains("git inbox")) {
                v.inbox_shell.insert(step, cmd.to_owned());
            }
            let action = entry["action"].as_str().unwrap_or("");
            if action.contains("git inbox done") || action.contains("Mcp(\"done\"") {
                v.done_sent = true;
            }
        }
        Ok(v)
    }

    /// What the CLI reported back from the MCP tool `verb`, if it was played and answered.
    pub fn mcp_output(&self, verb: &str) -> Option<&str> {
        let step = self.mcp.iter().find(|(_, v)| *v == verb)?.0;
        self.outputs.get(step).map(String::as_str)
    }

    /// The prompt carried every protocol line and every step could be played.
    pub fn prompt_ok(&self) -> bool {
        self.worker_requests > 0 && self.missing.is_empty()
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests ({} worker), last step {}, done sent: {}, prompt check: {}",
            self.requests,
            self.worker_requests,
            self.max_step,
            self.done_sent,
            if self.prompt_ok() {
                "passed".to_owned()
            } else {
                format!("FAILED, missing {:?}", self.missing)
            }
        )?;
        if !self.mcp.is_empty() {
            let verbs: Vec<&str> = self.mcp.values().map(String::as_str).collect();
            write!(f, ", MCP calls: {}", verbs.join(" "))?;
        }
        for e in &self.errors {
            write!(f, "\n  error: {e}")?;
        }
        Ok(())
    }
}

/// `cargo xtask endpoint [--port P] [--scenario S] [--expect TEXT]… [--log FILE]`.
pub fn run(args: &[String]) -> Result<()> {
    let config = parse_args(args)?;
    let endpoint = Endpoint::start(config)?;
    println!("{}", endpoint.port);
    eprintln!(
        "scripted endpoint on {} (log {}); Ctrl-C stops it",
        endpoint.base_url(),
        endpoint.log().display()
    );
    let _ = std::io::stdout().flush();
    endpoint.serve_forever();
    Ok(())
}

pub fn parse_args(args: &[String]) -> Result<Config> {
    let mut config = Config {
        port: 0,
        scenario: Scenario::Worker,
        expect: Vec::new(),
        log: crate::util::workspace_root().join("target/agents/endpoint.jsonl"),
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => config.port = value()?.parse().context("--port")?,
            "--scenario" => config.scenario = Scenario::parse(value()?)?,
            "--expect" => config.expect.push(value()?.clone()),
            "--log" => config.log = PathBuf::from(value()?),
            other => anyhow::bail!("unknown endpoint flag {other:?}"),
        }
    }
    if config.expect.is_empty() {
        config.expect = default_expect(config.scenario);
    }
    Ok(config)
}
