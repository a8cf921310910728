//! The MCP variant of the smoke (`cargo xtask agents smoke claude-mcp`, or `--mcp`): the
//! launcher's preset with `inbox = mcp` gives the CLI `git-inbox mcp` as its `inbox`
//! server (see `launched`), and it runs every inbox step through it; only the edit and
//! the commit use its own tools. Two witnesses must agree that no inbox
//! step went through the shell: the endpoint's log (what the script handed out and what
//! came back) and the CLI's own event stream (what it actually called).

use super::clis::Cli;
use crate::endpoint::script::MCP_VERBS;
use crate::endpoint::Verdict;
use serde_json::Value;

/// What the leader answers; the `wait_reply` result must carry it back.
pub const ANSWER: &str = "Yes, make it formal.";

/// One tool call as the CLI reported it in its JSON output.
#[derive(Debug, PartialEq)]
pub enum Call {
    /// A tool of the `inbox` MCP server, by its own name (`wait_reply`).
    Inbox(String),
    /// A shell command.
    Shell(String),
    /// Any other tool (`Write`, a tool of another server).
    Other(String),
}

/// The tool calls in a CLI's event stream, oldest first.
pub fn calls(cli: &Cli, stdout: &str) -> Vec<Call> {
    let events = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok());
    let mut out = Vec::new();
    for e in events {
        match cli.name {
            "claude" if e["type"] == "assistant" => {
                for b in e["message"]["content"].as_array().into_iter().flatten() {
                    if b["type"] != "tool_use" {
                        continue;
                    }
                    let name = b["name"].as_str().unwrap_or("");
                    out.push(match name.strip_prefix("mcp__inbox__") {
                        Some(verb) => Call::Inbox(verb.to_owned()),
                        None if name == "Bash" => {
                            Call::Shell(b["input"]["command"].as_str().unwrap_or("").to_owned())
                        }
                        None => Call::Other(name.to_owned()),
                    });
                }
            }
            "codex" if e["type"] == "item.completed" => {
                let item = &e["item"];
                match item["type"].as_str() {
                    Some("mcp_tool_call")
                        if item["server"] == "inbox" && item["status"] == "completed" =>
                    {
                        out.push(Call::Inbox(item["tool"].as_str().unwrap_or("").to_owned()))
                    }
                    Some("mcp_tool_call") => {
                        let (server, tool) = (item["server"].as_str(), item["tool"].as_str());
                        let name = format!("{}/{}", server.unwrap_or(""), tool.unwrap_or(""));
                        out.push(Call::Other(name))
                    }
                    Some("command_execution") => out.push(Call::Shell(
                        item["command"].as_str().unwrap_or("").to_owned(),
                    )),
                    _ => {}
                }
            }
            // `tool_use` parts once a call has ended; the server's tools are `inbox_<tool>`.
            "opencode" if e["type"] == "tool_use" => {
                let part = &e["part"];
                let name = part["tool"].as_str().unwrap_or("");
                let completed = part["state"]["status"] == "completed";
                out.push(match name.strip_prefix("inbox_") {
                    Some(verb) if completed => Call::Inbox(verb.to_owned()),
                    None if name == "bash" => Call::Shell(
                        part["state"]["input"]["command"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                    ),
                    _ => Call::Other(name.to_owned()),
                });
            }
            _ => {}
        }
    }
    out
}

/// The CLI's report that its `inbox` server started, where it makes one.
fn server_connected(cli: &Cli, stdout: &str) -> Result<(), String> {
    if cli.name != "claude" {
        return Ok(()); // Codex reports a server only through its calls.
    }
    let init = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .find(|e| e["type"] == "system" && e["subtype"] == "init")
        .ok_or("no system/init event")?;
    let servers = init["mcp_servers"].as_array().cloned().unwrap_or_default();
    match servers.iter().find(|s| s["name"] == "inbox") {
        Some(s) if s["status"] == "connected" => Ok(()),
        Some(s) => Err(format!("MCP server inbox is {}", s["status"])),
        None => Err(format!("no MCP server inbox in {}", init["mcp_servers"])),
    }
}

/// Everything the MCP smoke asserts beyond the shell smoke's checks.
pub fn check(cli: &Cli, stdout: &str, v: &Verdict, agent: &str, problems: &mut Vec<String>) {
    if let Err(why) = server_connected(cli, stdout) {
        problems.push(why);
    }
    // The endpoint's side: the script handed out every inbox step as an MCP call, the
    // CLI answered each, and the answers are the server's.
    if !v.inbox_shell.is_empty() {
        problems.push(format!(
            "the endpoint handed out inbox shell commands: {:?}",
            v.inbox_shell
        ));
    }
    let played: Vec<&str> = v.mcp.values().map(String::as_str).collect();
    if played != MCP_VERBS {
        problems.push(format!(
            "the endpoint played MCP calls {played:?}, not {MCP_VERBS:?}"
        ));
    }
    // Each answer is the server's JSON `data` (a refusal would be an error object with a
    // `code`), and says what the call did.
    let answer = |j: &Value, verb: &str| -> bool {
        match verb {
            "whoami" => j["agent"] == agent,
            "update" => j["message"]["kind"] == "update",
            "ask" => j["thread"]["awaiting_reply"] == true,
            "wait_reply" => j["message"]["body"] == ANSWER && j["message"]["author"] == "leader",
            "done" => j["thread"]["status"] == "done",
            _ => false,
        }
    };
    for verb in MCP_VERBS {
        match v.mcp_output(verb) {
            Some(out) => {
                // Codex puts "Wall time: …\nOutput:\n" before a tool's text.
                let json = out.find('{').map_or("", |i| out[i..].trim());
                let j: Value = serde_json::from_str(json).unwrap_or(Value::Null);
                if j.get("code").is_some() || !answer(&j, verb) {
                    problems.push(format!("the {verb} call answered {out:?}"));
                }
            }
            None => problems.push(format!("no answer to the {verb} call reached the endpoint")),
        }
    }
    // The CLI's side: what it says it called.
    let calls = calls(cli, stdout);
    let inbox: Vec<&str> = calls
        .iter()
        .filter_map(|c| match c {
            Call::Inbox(verb) => Some(verb.as_str()),
            _ => None,
        })
        .collect();
    if inbox != MCP_VERBS {
        problems.push(format!(
            "{} reports inbox MCP calls {inbox:?}, not {MCP_VERBS:?}",
            cli.name
        ));
    }
    let shell_inbox: Vec<&Call> = calls
        .iter()
        .filter(|c| matches!(c, Call::Shell(cmd) if cmd.contains("git inbox") || cmd.contains("git-inbox")))
        .collect();
    if !shell_inbox.is_empty() {
        problems.push(format!(
            "{} ran the inbox through its shell: {shell_inbox:?}",
            cli.name
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(name: &str) -> &'static Cli {
        super::super::clis::select(&[name.to_owned()]).unwrap()[0]
    }

    // Lines as the pinned versions print them (trimmed to the fields read).
    #[test]
    fn calls_are_read_from_each_clis_own_events() {
        let claude = r#"{"type":"system","subtype":"init","mcp_servers":[{"name":"inbox","status":"connected"}]}
{"type":"assistant","message":{"content":[{"type":"tool_use","name":"mcp__inbox__whoami","input":{}}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash","input":{"command":"git add greeting.txt"}}]}}
{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Write","input":{}}]}}"#;
        assert_eq!(
            calls(cli("claude"), claude),
            [
                Call::Inbox("whoami".into()),
                Call::Shell("git add greeting.txt".into()),
                Call::Other("Write".into())
            ]
        );
        assert_eq!(server_connected(cli("claude"), claude), Ok(()));
        let failed = claude.replace("connected", "failed");
        assert!(server_connected(cli("claude"), &failed).is_err());

        let codex = r#"{"type":"item.started","item":{"type":"mcp_tool_call","server":"inbox","tool":"whoami","status":"in_progress"}}
{"type":"item.completed","item":{"type":"mcp_tool_call","server":"inbox","tool":"whoami","status":"completed"}}
{"type":"item.completed","item":{"type":"mcp_tool_call","server":"inbox","tool":"ask","status":"failed"}}
{"type":"item.completed","item":{"type":"command_execution","command":"git inbox done","exit_code":0}}"#;
        assert_eq!(
            calls(cli("codex"), codex),
            [
                Call::Inbox("whoami".into()),
                Call::Other("inbox/ask".into()),
                Call::Shell("git inbox done".into())
            ]
        );

        let opencode = r#"{"type":"tool_use","part":{"tool":"inbox_whoami","state":{"status":"completed","input":{}}}}
{"type":"tool_use","part":{"tool":"bash","state":{"status":"completed","input":{"command":"git add greeting.txt"}}}}
{"type":"tool_use","part":{"tool":"inbox_ask","state":{"status":"error","input":{}}}}"#;
        assert_eq!(
            calls(cli("opencode"), opencode),
            [
                Call::Inbox("whoami".into()),
                Call::Shell("git add greeting.txt".into()),
                Call::Other("inbox_ask".into())
            ]
        );
    }
}
