//! `git inbox mcp` and `git orch mcp`: Model Context Protocol servers on stdio.
//!
//! Each tool call runs this very binary (`current_exe`) with the tool's subcommand, its
//! arguments as flags and `--json`, in the server's directory and environment. So a
//! result is the command's `data`, an error its `error` (code, message, hint), and
//! identity and thread defaults are the CLI's, by construction rather than by a second
//! implementation. A blocking call (`wait_reply`, `wait`, `fetch` with `wait`) is a
//! child process on its own thread, so pings, other calls and the client's
//! `notifications/cancelled` (which kills that child) get through meanwhile. No async
//! runtime: a thread per call in flight is all the concurrency a client needs, and
//! every other command starts exactly as before. Decisions: docs/mcp.md.

pub(crate) mod protocol;
pub mod tools;

use self::protocol::Incoming;
use self::tools::{Side, Tool};
use crate::cli::ctx::Ctx;
use crate::error::{Error, Result};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::thread::Scope;

/// Serves MCP on stdin/stdout until the client closes stdin; `cli` is the binary's
/// command tree, which decides the tools offered.
pub fn serve(ctx: &mut Ctx, side: Side, cli: &clap::Command) -> Result<()> {
    let exe = std::env::current_exe().map_err(|e| Error::io("finding this program", e))?;
    let server = Server {
        side,
        exe,
        agent: ctx.global.agent.clone(),
        tools: tools::available(side, cli),
        structured: AtomicBool::new(true),
        gone: AtomicBool::new(false),
        calls: Mutex::new(Calls::default()),
    };
    server.run(io::stdin().lock())
}

struct Server {
    side: Side,
    exe: PathBuf,
    /// `--agent` given to the server, passed on to every call (`ORCH_AGENT` and the
    /// worktree's marker reach the child by themselves).
    agent: Option<String>,
    tools: Vec<&'static Tool>,
    /// Whether the negotiated revision has `structuredContent`.
    structured: AtomicBool,
    /// Set when stdout is gone: nobody can read an answer any more.
    gone: AtomicBool,
    calls: Mutex<Calls>,
}

/// Tool calls in flight, by the JSON text of their request id.
#[derive(Default)]
struct Calls {
    /// Stdin has ended: no new blocking call starts.
    closing: bool,
    by_id: HashMap<String, Call>,
}

struct Call {
    child: Option<Child>,
    cancelled: bool,
    blocks: bool,
}

impl Server {
    fn run(&self, input: impl BufRead) -> Result<()> {
        std::thread::scope(|scope| {
            let read = self.read_loop(input, scope);
            // The client is gone: end the calls that could wait for ever, so none outlives
            // the session; the others are bounded, so they finish (a `printf … | git inbox
            // mcp` still gets its answers) and the scope joins their threads.
            let mut calls = self.lock();
            calls.closing = true;
            for call in calls.by_id.values_mut().filter(|c| c.blocks) {
                call.cancelled = true;
                if let Some(child) = &mut call.child {
                    let _ = child.kill();
                }
            }
            drop(calls);
            read
        })
    }

    fn read_loop<'s>(&'s self, mut input: impl BufRead, scope: &'s Scope<'s, '_>) -> Result<()> {
        let mut line = Vec::new();
        while !self.gone.load(Ordering::Relaxed) {
            line.clear();
            let n = input
                .read_until(b'\n', &mut line)
                .map_err(|e| Error::io("reading stdin", e))?;
            if n == 0 {
                break;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match protocol::parse(&line) {
                Incoming::Request { id, method, params } => {
                    self.request(scope, id, &method, params)
                }
                Incoming::Notification { method, params } => self.notification(&method, &params),
                Incoming::Invalid { id, code, message } => {
                    self.send(&protocol::error(&id, code, &message))
                }
                Incoming::Ignored => {}
            }
        }
        Ok(())
    }

    fn request<'s>(&'s self, scope: &'s Scope<'s, '_>, id: Value, method: &str, params: Value) {
        let result = match method {
            "initialize" => {
                let version = protocol::negotiate(params["protocolVersion"].as_str());
                self.structured
                    .store(protocol::has_structured_content(version), Ordering::Relaxed);
                let (name, instructions) = match self.side {
                    Side::Inbox => ("git-inbox", INBOX_INSTRUCTIONS),
                    Side::Orch => ("git-orch", ORCH_INSTRUCTIONS),
                };
                protocol::initialize_result(version, name, instructions)
            }
            "ping" => json!({}),
            "tools/list" => self.list(),
            "tools/call" => return self.call(scope, id, &params),
            _ => {
                let message = format!("method {method:?} is not offered by this server");
                return self.send(&protocol::error(&id, protocol::METHOD_NOT_FOUND, &message));
            }
        };
        self.send(&protocol::response(&id, result));
    }

    fn list(&self) -> Value {
        json!({"tools": self.tools.iter().map(|t| tools::describe(t)).collect::<Vec<_>>()})
    }

    fn notification(&self, method: &str, params: &Value) {
        // `initialized` needs nothing; a cancel of a call that already ended is a no-op.
        if method == "notifications/cancelled" {
            let key = params["requestId"].to_string();
            if let Some(call) = self.lock().by_id.get_mut(&key) {
                call.cancelled = true;
                if let Some(child) = &mut call.child {
                    let _ = child.kill();
                }
            }
        }
    }

    fn call<'s>(&'s self, scope: &'s Scope<'s, '_>, id: Value, params: &Value) {
        let name = params["name"].as_str().unwrap_or_default();
        let Some(tool) = self.tools.iter().copied().find(|t| t.name == name) else {
            let message = format!("unknown tool {name:?}");
            return self.send(&protocol::error(&id, protocol::INVALID_PARAMS, &message));
        };
        let args = match params.get("arguments") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(args)) => args.clone(),
            Some(_) => {
                let message = "arguments must be a JSON object";
                return self.send(&protocol::error(&id, protocol::INVALID_PARAMS, message));
            }
        };
        let key = id.to_string();
        {
            // Registered before the thread starts, so a cancel that arrives before the
            // child exists still stops it from being started.
            let mut calls = self.lock();
            if calls.by_id.contains_key(&key) {
                let message = "a call with this id is still in flight";
                drop(calls);
                return self.send(&protocol::error(&id, protocol::INVALID_REQUEST, message));
            }
            let call = Call {
                child: None,
                cancelled: false,
                blocks: tool.blocks(&args),
            };
            calls.by_id.insert(key.clone(), call);
        }
        scope.spawn(move || {
            let result = self.run_tool(&key, tool, &args);
            let mut calls = self.lock();
            let cancelled = calls.by_id.remove(&key).is_none_or(|c| c.cancelled);
            drop(calls);
            // A cancelled request gets no response (MCP: the receiver SHOULD NOT answer).
            if let (false, Some(result)) = (cancelled, result) {
                self.send(&protocol::response(&id, result));
            }
        });
    }

    /// Runs the tool's command; `None` when the call was cancelled before it started.
    fn run_tool(&self, key: &str, tool: &Tool, args: &Map<String, Value>) -> Option<Value> {
        let structured = self.structured.load(Ordering::Relaxed);
        let argv = match tools::argv(tool, args) {
            Ok(argv) => argv,
            Err(err) => return Some(protocol::tool_result(Err(error_json(&err)), structured)),
        };
        let mut cmd = Command::new(&self.exe);
        // Global flags go right after the subcommand: before any `--`, in any position.
        cmd.arg(&argv.args[0]).arg("--json");
        if let Some(agent) = &self.agent {
            cmd.arg(format!("--agent={agent}"));
        }
        cmd.args(&argv.args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Warnings reach the client's log of this server.
            .stderr(Stdio::inherit());
        let stdout = {
            let mut calls = self.lock();
            let closing = calls.closing;
            if calls
                .by_id
                .get(key)
                .is_none_or(|c| c.cancelled || (closing && c.blocks))
            {
                return None;
            }
            let mut child = match cmd.spawn() {
                Ok(child) => child,
                Err(e) => {
                    let err = Error::io(format!("starting {}", self.exe.display()), e);
                    return Some(protocol::tool_result(Err(error_json(&err)), structured));
                }
            };
            let stdout = child.stdout.take();
            if let Some(call) = calls.by_id.get_mut(key) {
                call.child = Some(child);
            }
            stdout
        };
        let mut bytes = Vec::new();
        if let Some(mut stdout) = stdout {
            let _ = stdout.read_to_end(&mut bytes);
        }
        let child = self.lock().by_id.get_mut(key).and_then(|c| c.child.take());
        let status = child.and_then(|mut child| child.wait().ok());
        drop(argv);
        Some(protocol::tool_result(
            outcome(tool, &bytes, status),
            structured,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Calls> {
        // A panicking call thread leaves the map usable: it holds no invariant mid-edit.
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one message as one line; the stdout lock keeps lines from interleaving.
    fn send(&self, message: &str) {
        let mut out = io::stdout().lock();
        let written = out
            .write_all(message.as_bytes())
            .and_then(|()| out.write_all(b"\n"))
            .and_then(|()| out.flush());
        if written.is_err() {
            self.gone.store(true, Ordering::Relaxed);
        }
    }
}

/// The command's `--json` document as the call's outcome: `data` or `error`.
fn outcome(
    tool: &Tool,
    stdout: &[u8],
    status: Option<std::process::ExitStatus>,
) -> std::result::Result<Value, Value> {
    match serde_json::from_slice::<Value>(stdout) {
        Ok(mut doc) if doc["ok"] == true => Ok(doc["data"].take()),
        Ok(mut doc) if doc["ok"] == false && doc["error"].is_object() => Err(doc["error"].take()),
        _ => {
            let how = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
            Err(error_json(&Error::internal(format!(
                "`{}` ended without a result ({how})",
                tool.command
            ))))
        }
    }
}

fn error_json(err: &Error) -> Value {
    json!({"code": err.code.as_str(), "message": err.message, "hint": err.hint, "details": err.details})
}

const INBOX_INSTRUCTIONS: &str = "git inbox for an agent working in a git worktree. Thread ids \
default to this worktree's thread. Report progress with update; when stuck, ask, then \
wait_reply; finish with done (or fail). Errors carry a stable code.";

const ORCH_INSTRUCTIONS: &str = "git orch for the leader of this repository's runs: status, \
ready and blocked to look; dispatch to start tasks; answer open questions; wait to block \
until something changes. Errors carry a stable code.";
