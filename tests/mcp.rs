//! `git inbox mcp` and `git orch mcp` driven over stdio by a small JSON-RPC client, as an
//! MCP client drives them: the handshake, the tool lists and their size, a worker in its
//! attempt worktree from whoami to done while the leader answers from another process,
//! tool errors with their codes, cancellation of a blocking call, and shutdown.

use crate::common::{wait_until, TestEnv, INBOX, ORCH};
use crate::orch_plan::{add, with_run};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

/// A server process and the client end of its stdio.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
    /// Responses read while waiting for another id.
    early: HashMap<String, Value>,
    next_id: i64,
}

impl Client {
    fn start(env: &TestEnv, program: &str, dir: &Path, args: &[&str]) -> Client {
        let mut cmd = Command::new(program);
        env.hermetic(&mut cmd);
        let mut child = cmd
            .args(args)
            .arg("mcp")
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let msg = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the server wrote a non-JSON line ({e}): {line:?}"));
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        let mut client = Client {
            child,
            stdin,
            lines,
            early: HashMap::new(),
            next_id: 1,
        };
        let init = client.request(
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "runner", "version": "0"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        client.notify("notifications/initialized", json!({}));
        client
    }

    fn send(&mut self, msg: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    /// Sends a request without waiting; returns its id.
    fn start_request(&mut self, method: &str, params: Value) -> Value {
        let id = json!(self.next_id);
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    /// The response to `id`, keeping others for later.
    fn response(&mut self, id: &Value, timeout: Duration) -> Value {
        let key = id.to_string();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(msg) = self.early.remove(&key) {
                return msg;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(msg) => {
                    assert_eq!(msg["jsonrpc"], "2.0", "{msg}");
                    self.early.insert(msg["id"].to_string(), msg);
                }
                Err(RecvTimeoutError::Timeout) => panic!("no response to {id} in {timeout:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("the server ended before answering {id}")
                }
            }
        }
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.start_request(method, params);
        self.response(&id, LONG)
    }

    fn start_call(&mut self, tool: &str, args: Value) -> Value {
        self.start_request("tools/call", json!({"name": tool, "arguments": args}))
    }

    /// The `tools/call` result of `id`, checked for the shape both kinds share.
    fn result_of(&mut self, id: &Value, timeout: Duration) -> Value {
        let msg = self.response(id, timeout);
        let result = msg["result"].clone();
        assert!(result.is_object(), "not a tool result: {msg}");
        let text = result["content"][0]["text"].as_str().expect("text content");
        let parsed: Value = serde_json::from_str(text).expect("the text is JSON");
        assert_eq!(
            parsed, result["structuredContent"],
            "text and structured content agree"
        );
        result
    }

    /// Calls a tool and returns the command's `data`.
    fn call(&mut self, tool: &str, args: Value) -> Value {
        let id = self.start_call(tool, args);
        self.data_of(&id, LONG)
    }

    fn data_of(&mut self, id: &Value, timeout: Duration) -> Value {
        let result = self.result_of(id, timeout);
        assert_eq!(result["isError"], false, "{result}");
        result["structuredContent"].clone()
    }

    /// Calls a tool that must fail; returns the error (code, message, hint, details).
    fn fails(&mut self, tool: &str, args: Value, code: &str) -> Value {
        let id = self.start_call(tool, args);
        let result = self.result_of(&id, LONG);
        assert_eq!(result["isError"], true, "{result}");
        assert_eq!(result["structuredContent"]["code"], code, "{result}");
        result["structuredContent"].clone()
    }

    /// Pids of the server's children (tool calls in flight).
    fn children(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    /// Closes stdin and waits for the server to end.
    fn close(&mut self) -> i32 {
        drop(self.stdin.take());
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            assert!(Instant::now() < deadline, "the server outlived its stdin");
            std::thread::park_timeout(Duration::from_millis(5));
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live (not zombie) processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid …; comm may hold spaces, so read after the last ')'.
        let mut rest = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        let state = rest.next().unwrap_or("");
        let ppid = rest.next().and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) && state != "Z" {
            found.push(child);
        }
    }
    found
}

fn tool_names(list: &Value) -> Vec<String> {
    list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A run with one code task dispatched to worker-1; returns the attempt's worktree, the
/// task thread, and the env.
fn dispatched() -> (TestEnv, PathBuf, i64) {
    let env = with_run();
    add(
        &env,
        "lexer",
        &["--to", "worker-1", "--body", "Write the lexer"],
    );
    let attempts = env.orch().args(["dispatch", "lexer"]).ok()["attempts"].clone();
    let wt = PathBuf::from(attempts[0]["worktree"].as_str().unwrap());
    let thread = attempts[0]["thread"].as_i64().unwrap();
    (env, wt, thread)
}

#[test]
fn tool_lists_are_small_and_exact() {
    let env = TestEnv::new();
    for (program, expected) in [
        (
            INBOX,
            &[
                "whoami",
                "show",
                "update",
                "ask",
                "wait_reply",
                "done",
                "fail",
                "fetch",
            ][..],
        ),
        (
            ORCH,
            &["status", "ready", "dispatch", "answer", "blocked", "wait"][..],
        ),
    ] {
        let mut client = Client::start(&env, program, &env.repo, &[]);
        let list = client.request("tools/list", json!({}));
        let bytes = list.to_string().len();
        let name = Path::new(program).file_name().unwrap().to_string_lossy();
        println!("{name} mcp: tools/list answer is {bytes} bytes");
        assert!(bytes <= 6 * 1024, "{name}: tools/list is {bytes} bytes");
        let names = tool_names(&list);
        // `land` joins the leader's list when `git orch land` exists.
        let names: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != "land")
            .collect();
        assert_eq!(names, expected);
        for tool in list["result"]["tools"].as_array().unwrap() {
            assert_eq!(tool["inputSchema"]["type"], "object", "{tool}");
            assert!(tool["description"].as_str().unwrap().len() <= 160, "{tool}");
        }
        // Protocol errors stay protocol errors: an unknown tool or method.
        let unknown = client.request("tools/call", json!({"name": "nope", "arguments": {}}));
        assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
        let method = client.request("resources/list", json!({}));
        assert_eq!(method["error"]["code"], -32601, "{method}");
        assert_eq!(client.request("ping", json!({}))["result"], json!({}));
        assert_eq!(client.close(), 0);
    }
}

#[test]
fn a_worker_in_its_worktree_does_a_task_through_the_tools() {
    let (env, wt, thread) = dispatched();
    // The launcher claims the thread for the agent it starts; a person does it so.
    env.inbox().dir(&wt).args(["claim"]).ok();
    let mut worker = Client::start(&env, INBOX, &wt, &[]);

    // No ids anywhere: the identity and the thread come from the worktree's marker.
    let me = worker.call("whoami", json!({}));
    assert_eq!(me["agent"], "worker-1", "{me}");
    assert_eq!(me["source"], "worktree", "{me}");
    let started = Instant::now();
    let shown = worker.call("show", json!({}));
    let round_trip = started.elapsed();
    println!(
        "inbox mcp: one show call took {:.1} ms",
        round_trip.as_secs_f64() * 1e3
    );
    assert_eq!(shown["thread"]["id"], thread);
    assert_eq!(shown["thread"]["status"], "claimed");

    let updated = worker.call(
        "update",
        json!({"body": "tokens done", "data": {"files": 2}}),
    );
    assert_eq!(updated["message"]["kind"], "update");
    assert_eq!(updated["message"]["data"], json!({"files": 2}));
    let asked = worker.call("ask", json!({"body": "Are hex literals in scope?"}));
    assert_eq!(asked["thread"]["awaiting_reply"], true);

    // wait_reply blocks in a child process while the server keeps answering.
    let waiting = worker.start_call("wait_reply", json!({"timeout": "60s"}));
    wait_until("the wait to start", LONG, || {
        (!worker.children().is_empty()).then_some(())
    });
    assert_eq!(worker.request("ping", json!({}))["result"], json!({}));
    let mut leader = Client::start(&env, ORCH, &env.repo, &[]);
    let blocked = leader.call("blocked", json!({}));
    assert_eq!(blocked["tasks"][0]["key"], "lexer", "{blocked}");
    // The leader answers through the CLI, from another process.
    env.orch()
        .args(["answer", "lexer", "--body", "Yes, hex too"])
        .ok();
    let reply = worker.data_of(&waiting, LONG);
    assert_eq!(reply["message"]["body"], "Yes, hex too", "{reply}");
    assert_eq!(reply["message"]["author"], "leader");

    // A cancelled wait ends its child and gets no answer.
    worker.call("update", json!({"body": "hex done"}));
    let cancelled = worker.start_call("wait_reply", json!({}));
    wait_until("the second wait to start", LONG, || {
        (!worker.children().is_empty()).then_some(())
    });
    worker.notify(
        "notifications/cancelled",
        json!({"requestId": cancelled, "reason": "the user pressed Esc"}),
    );
    wait_until("the cancelled wait to end", LONG, || {
        worker.children().is_empty().then_some(())
    });
    assert_eq!(worker.request("ping", json!({}))["result"], json!({}));
    assert!(
        !worker.early.contains_key(&cancelled.to_string()),
        "a cancelled call got a response"
    );

    let done = worker.call(
        "done",
        json!({"result": {"tests": 42}, "body": "lexer done"}),
    );
    assert_eq!(done["thread"]["status"], "done");
    assert_eq!(done["thread"]["result"], json!({"tests": 42}));

    // A closed thread refuses more: a tool error carrying the CLI's code and hint.
    let error = worker.fails("update", json!({"body": "one more thing"}), "thread_closed");
    assert!(
        error["message"].as_str().unwrap().contains("done"),
        "{error}"
    );
    assert!(error["hint"].is_string(), "{error}");
    // Bad arguments are refused before any command runs.
    worker.fails("fail", json!({"retryable": true}), "invalid_input");
    worker.fails(
        "show",
        json!({"thread": 1, "colour": "red"}),
        "invalid_input",
    );

    let status = leader.call("status", json!({}));
    assert_eq!(status["tasks"][0]["key"], "lexer");
    assert_eq!(status["tasks"][0]["status"], "done", "{status}");
    assert_eq!(status["counts"]["done"], 1);
    assert_eq!(worker.close(), 0);
    assert_eq!(leader.close(), 0);
}

#[test]
fn identity_flags_reach_every_call_and_closing_stdin_ends_blocking_calls() {
    let env = with_run();
    add(&env, "a", &[]);
    let mut agent = Client::start(&env, INBOX, &env.repo, &["--agent", "worker-9"]);
    let me = agent.call("whoami", json!({}));
    assert_eq!(
        (me["agent"].as_str(), me["source"].as_str()),
        (Some("worker-9"), Some("flag"))
    );
    // Outside an attempt worktree a thread id is needed, and the CLI's error says so.
    agent.fails("show", json!({}), "usage");
    agent.fails("show", json!({"thread": 999}), "not_found");
    // A call sent just before stdin closes is still answered: only waits are cut short.
    let last = agent.start_call("whoami", json!({}));
    agent.start_call("fetch", json!({"wait": "10m"}));
    let started = Instant::now();
    assert_eq!(agent.close(), 0);
    assert!(started.elapsed() < LONG);
    let answer = agent.data_of(&last, LONG);
    assert_eq!(answer["agent"], "worker-9");

    let mut leader = Client::start(&env, ORCH, &env.repo, &[]);
    let ready = leader.call("ready", json!({}));
    assert_eq!(ready["tasks"][0]["key"], "a");
    leader.start_call("wait", json!({"until": "done"}));
    let child = wait_until("the wait to start", LONG, || {
        leader.children().first().copied()
    });
    let proc_dir = PathBuf::from(format!("/proc/{child}"));
    // The client goes away: the server ends, and so does the wait it was running.
    assert_eq!(leader.close(), 0);
    wait_until("the wait's process to end", LONG, || {
        let stat = std::fs::read_to_string(proc_dir.join("stat")).unwrap_or_default();
        let state = stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next();
        (state.is_none() || state == Some("Z")).then_some(())
    });

    // A dispatch from the leader's server gives the task its worktree.
    let mut leader = Client::start(&env, ORCH, &env.repo, &[]);
    let dispatched = leader.call("dispatch", json!({"all_ready": true}));
    assert_eq!(dispatched["attempts"][0]["task"], "a", "{dispatched}");
    leader.fails("dispatch", json!({"tasks": ["a"]}), "conflict");
    let status = env.orch().arg("status").ok();
    assert_eq!(status["tasks"][0]["status"], "dispatched");
}
