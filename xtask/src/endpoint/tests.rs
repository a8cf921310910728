//! The endpoint over real sockets: each wire format walks the worker script, the prompt
//! check fails when a protocol line is missing, and `hang` never finishes its stream.

use super::script::Scenario;
use super::{Config, Endpoint, Verdict};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const BRIEF: &str = "Protocol: git inbox ask, git inbox wait-reply, git inbox done.";

fn start(dir: &tempfile::TempDir, scenario: Scenario) -> Endpoint {
    Endpoint::start(Config {
        port: 0,
        scenario,
        expect: super::DEFAULT_EXPECT
            .iter()
            .map(|s| s.to_string())
            .collect(),
        log: dir.path().join("endpoint.jsonl"),
    })
    .unwrap()
}

fn post(port: u16, path: &str, body: &Value) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.to_string();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A Messages request carrying `results` tool results after the brief.
fn anthropic(results: usize, prompt: &str) -> Value {
    let mut messages = vec![json!({"role": "user", "content": prompt})];
    for i in 0..results {
        messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("t{i}"), "name": "Bash", "input": {}}]}));
        let out = if i == 1 { "/work/tree" } else { "ok" };
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("t{i}"), "content": out}]}));
    }
    json!({"model": "m", "stream": true, "messages": messages,
           "tools": [{"name": "Bash"}, {"name": "Write"}]})
}

#[test]
fn claude_walks_the_worker_script_and_the_verdict_sums_it_up() {
    let dir = tempfile::tempdir().unwrap();
    let ep = start(&dir, Scenario::Worker);
    let first = post(ep.port, "/v1/messages", &anthropic(0, BRIEF));
    assert!(first.contains("event: message_start"), "{first}");
    assert!(
        first.contains(r#"\"command\":\"git inbox whoami\""#),
        "{first}"
    );
    let write = post(ep.port, "/v1/messages", &anthropic(2, BRIEF));
    assert!(write.contains(r#""name":"Write""#), "{write}");
    assert!(write.contains(r#"/work/tree/greeting.txt"#), "{write}");
    let done = post(ep.port, "/v1/messages", &anthropic(7, BRIEF));
    assert!(done.contains("git inbox done --body"), "{done}");
    let last = post(ep.port, "/v1/messages", &anthropic(8, BRIEF));
    assert!(last.contains(r#""stop_reason":"end_turn""#), "{last}");
    let v = ep.verdict().unwrap();
    assert_eq!((v.requests, v.worker_requests, v.max_step), (4, 4, 8));
    assert!(v.done_sent && v.prompt_ok() && v.errors.is_empty(), "{v}");
}

#[test]
fn a_prompt_without_the_protocol_lines_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let ep = start(&dir, Scenario::Worker);
    post(ep.port, "/v1/messages", &anthropic(0, "Just write a file."));
    let v = ep.verdict().unwrap();
    assert!(!v.prompt_ok());
    assert!(v.missing.contains("git inbox done"), "{v}");
}

#[test]
fn every_wire_gets_the_first_step_in_its_own_tool_names() {
    let dir = tempfile::tempdir().unwrap();
    let ep = start(&dir, Scenario::Worker);
    let codex = post(
        ep.port,
        "/v1/responses",
        &json!({"model": "m", "stream": true,
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": BRIEF}]}],
        "tools": [{"type": "function", "name": "exec_command"}]}),
    );
    assert!(
        codex.contains("event: response.completed") && codex.contains(r#""name":"exec_command""#),
        "{codex}"
    );
    let gemini = post(
        ep.port,
        "/v1beta/models/g:streamGenerateContent",
        &json!({
        "contents": [{"role": "user", "parts": [{"text": BRIEF}]}],
        "tools": [{"functionDeclarations": [{"name": "run_shell_command"}]}]}),
    );
    assert!(
        gemini.contains(r#""functionCall":{"args":{"command":"git inbox whoami""#),
        "{gemini}"
    );
    let chat = post(
        ep.port,
        "/v1/chat/completions",
        &json!({"model": "m", "stream": true,
        "messages": [{"role": "user", "content": BRIEF}],
        "tools": [{"type": "function", "function": {"name": "bash"}}]}),
    );
    assert!(
        chat.contains(r#""finish_reason":"tool_calls""#) && chat.ends_with("data: [DONE]\n\n"),
        "{chat}"
    );
    // aider: no tools, its edit format, then a plain request for the commit message.
    let aider = post(
        ep.port,
        "/v1/chat/completions",
        &json!({"model": "m", "stream": true,
        "messages": [{"role": "system", "content": "Use SEARCH/REPLACE blocks"}, {"role": "user", "content": BRIEF}]}),
    );
    assert!(aider.contains(">>>>>>> REPLACE"), "{aider}");
    let commit = post(
        ep.port,
        "/v1/chat/completions",
        &json!({"model": "m",
        "messages": [{"role": "system", "content": "Write a commit message"}, {"role": "user", "content": "diff"}]}),
    );
    assert!(commit.contains(r#""object":"chat.completion""#), "{commit}");
    let v = Verdict::read(ep.log()).unwrap();
    assert_eq!((v.requests, v.worker_requests), (5, 4), "{v}");
    assert!(v.prompt_ok() && v.errors.is_empty(), "{v}");
}

#[test]
fn a_url_prefix_picks_the_scenario_and_hang_never_ends_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let ep = start(&dir, Scenario::Worker);
    let mut s = TcpStream::connect(("127.0.0.1", ep.port)).unwrap();
    let body = anthropic(1, BRIEF).to_string();
    write!(
        s,
        "POST /s/hang/v1/messages HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    // Two keep-alive comments prove the stream stays open while saying nothing.
    while String::from_utf8_lossy(&got).matches(": waiting").count() < 2 {
        let n = s.read(&mut buf).expect("the hanging stream went silent");
        assert!(n > 0, "the hanging stream was closed");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.starts_with("HTTP/1.1 200") && text.contains(": waiting"),
        "{text}"
    );
    assert!(!text.contains("event:"), "{text}");
    let exit = post(
        ep.port,
        "/s/exit-without-done/v1/messages",
        &anthropic(5, BRIEF),
    );
    assert!(exit.contains("I stopped before finishing."), "{exit}");
}

/// A Messages request at `step` offering Claude's file and shell tools and, with `mcp`,
/// the inbox server's tools; the result of step `i` is `outputs(i)`.
fn anthropic_mcp(step: usize, mcp: bool, outputs: impl Fn(usize) -> String) -> Value {
    let mut req = anthropic(0, "Protocol: `ask`, then `wait_reply`; finished: `done`.");
    let messages = req["messages"].as_array_mut().unwrap();
    for i in 0..step {
        messages.push(json!({"role": "assistant", "content": [{"type": "tool_use", "id": format!("t{i}"), "name": "x", "input": {}}]}));
        messages.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": format!("t{i}"), "content": [{"type": "text", "text": outputs(i)}]}]}));
    }
    let mut tools = vec![json!({"name": "Bash"}), json!({"name": "Write"})];
    if mcp {
        for verb in super::script::MCP_VERBS {
            tools.push(json!({"name": format!("mcp__inbox__{verb}")}));
        }
    }
    req["tools"] = json!(tools);
    req
}

#[test]
fn mcp_worker_runs_the_inbox_through_mcp_and_the_verdict_keeps_each_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ep = Endpoint::start(Config {
        port: 0,
        scenario: Scenario::McpWorker,
        expect: super::default_expect(Scenario::McpWorker),
        log: dir.path().join("endpoint.jsonl"),
    })
    .unwrap();
    let out = |i: usize| match i {
        1 => "/work/tree".to_owned(),
        _ => format!("{{\"step\":{i}}}"),
    };
    let mut bodies = Vec::new();
    for step in 0..=9 {
        bodies.push(post(
            ep.port,
            "/v1/messages",
            &anthropic_mcp(step, true, out),
        ));
    }
    for (step, verb) in [
        (0, "whoami"),
        (5, "update"),
        (6, "ask"),
        (7, "wait_reply"),
        (8, "done"),
    ] {
        let name = format!(r#""name":"mcp__inbox__{verb}""#);
        assert!(
            bodies[step].contains(&name),
            "step {step}: {}",
            bodies[step]
        );
    }
    assert!(bodies[2].contains(r#""name":"Write""#), "{}", bodies[2]);
    assert!(bodies[4].contains("git commit"), "{}", bodies[4]);
    assert!(bodies.iter().all(|b| !b.contains("git inbox")));
    let v = ep.verdict().unwrap();
    assert!(v.prompt_ok() && v.errors.is_empty() && v.done_sent, "{v}");
    let verbs: Vec<&str> = v.mcp.values().map(String::as_str).collect();
    assert_eq!(verbs, super::script::MCP_VERBS);
    assert!(v.inbox_shell.is_empty(), "{:?}", v.inbox_shell);
    assert_eq!(v.mcp_output("wait_reply"), Some("{\"step\":7}\n"));
    assert_eq!(v.mcp_output("done"), Some("{\"step\":8}\n"));

    // A CLI that did not offer the server: the step is refused and logged as an error.
    let refused = post(ep.port, "/v1/messages", &anthropic_mcp(0, false, out));
    assert!(refused.contains("The script cannot go on"), "{refused}");
    let v = ep.verdict().unwrap();
    assert!(
        v.errors
            .iter()
            .any(|e| e.contains("mcp__inbox__whoami was not offered")),
        "{v}"
    );
}

#[test]
fn the_shell_worker_counts_its_inbox_commands() {
    let dir = tempfile::tempdir().unwrap();
    let ep = start(&dir, Scenario::Worker);
    post(ep.port, "/v1/messages", &anthropic(0, BRIEF));
    post(ep.port, "/v1/messages", &anthropic(3, BRIEF));
    let v = ep.verdict().unwrap();
    assert_eq!(
        v.inbox_shell.into_iter().collect::<Vec<_>>(),
        [(0, "git inbox whoami".to_owned())]
    );
    assert!(v.mcp.is_empty());
}
