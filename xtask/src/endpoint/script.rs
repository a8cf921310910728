//! What the scripted model does next. Stateless: the step is the number of tool results
//! the request carries, so a retried request gets the same answer and one endpoint can
//! serve any number of agents at once.

use super::wire::{Conversation, Reply, Wire};
use anyhow::{bail, Result};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// whoami, edit, commit, ask, wait-reply, done.
    Worker,
    /// The worker without the question: whoami, edit, commit, done.
    QuietWorker,
    /// whoami, edit, commit, then stops talking: the thread is left open.
    ExitWithoutDone,
    /// whoami, then a stream that never ends.
    Hang,
    /// The worker's protocol through the inbox MCP tools (whoami, update, ask,
    /// wait_reply, done); only the edit and the commit use the CLI's own tools.
    McpWorker,
}

impl Scenario {
    pub fn parse(s: &str) -> Result<Scenario> {
        Ok(match s {
            "worker" => Scenario::Worker,
            "quiet-worker" => Scenario::QuietWorker,
            "exit-without-done" => Scenario::ExitWithoutDone,
            "hang" => Scenario::Hang,
            "mcp-worker" => Scenario::McpWorker,
            other => {
                bail!("unknown scenario {other:?} (worker, quiet-worker, exit-without-done, hang, mcp-worker)")
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Worker => "worker",
            Scenario::QuietWorker => "quiet-worker",
            Scenario::ExitWithoutDone => "exit-without-done",
            Scenario::Hang => "hang",
            Scenario::McpWorker => "mcp-worker",
        }
    }
}

/// The file the worker writes and commits, unless the prompt names another.
pub const FILE: &str = "greeting.txt";
/// How a task's body names the file instead: ``Write the greeting to `a.txt`.`` (so
/// several tasks of one plan each commit a file of their own and never collide).
pub const FILE_DIRECTIVE: &str = "Write the greeting to `";
pub const CONTENT: &str = "Hello from the scripted worker.\n";
pub const QUESTION: &str = "Should the greeting be formal?";
pub const SUMMARY: &str = "Wrote greeting.txt and committed it; the leader answered my question.";
pub const PROGRESS: &str = "greeting.txt is committed; asking about the tone next.";
/// The inbox tools `mcp-worker` calls, in order.
pub const MCP_VERBS: &[&str] = &["whoami", "update", "ask", "wait_reply", "done"];

/// One step of a scenario, before it is dressed in a CLI's tool names.
#[derive(Debug, PartialEq)]
pub enum Action {
    Shell(String),
    /// Write `FILE` (absolute path when the CLI's file tool wants one).
    WriteFile,
    /// An inbox MCP tool: one of `MCP_VERBS`.
    Mcp(&'static str, serde_json::Value),
    Text(&'static str),
    Hang,
}

/// The file a prompt asks for: the name after [`FILE_DIRECTIVE`], else [`FILE`]. Only a
/// plain relative name is taken, since it goes into a shell command line.
pub fn file_of(prompt: &str) -> String {
    let named = prompt.split_once(FILE_DIRECTIVE).and_then(|(_, rest)| {
        let name = rest.split('`').next()?;
        let plain = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        (plain && !name.is_empty() && !name.starts_with('/') && !name.contains(".."))
            .then(|| name.to_owned())
    });
    named.unwrap_or_else(|| FILE.to_owned())
}

pub fn action(scenario: Scenario, step: usize, file: &str) -> Action {
    use Action::*;
    let shell = |s: &str| Shell(s.to_owned());
    match (scenario, step) {
        (Scenario::McpWorker, 0) => Mcp("whoami", json!({})),
        (_, 0) => shell("git inbox whoami"),
        (Scenario::Hang, _) => Hang,
        // The worktree's absolute path, which file tools want; a git command so that a
        // `Bash(git *)` permission covers it.
        (_, 1) => shell("git rev-parse --show-toplevel"),
        (_, 2) => WriteFile,
        (_, 3) => shell(&format!("git add {file}")),
        (_, 4) => shell(&format!("git commit -q -m \"Add {file}\"")),
        (Scenario::ExitWithoutDone, _) => Text("I stopped before finishing."),
        (Scenario::QuietWorker, 5) => shell(&format!("git inbox done --body \"{SUMMARY}\"")),
        (Scenario::QuietWorker, _) => Text("All done."),
        (Scenario::McpWorker, 5) => Mcp("update", json!({"body": PROGRESS})),
        (Scenario::McpWorker, 6) => Mcp("ask", json!({"body": QUESTION})),
        // Shorter than any client's tool timeout, so a wait that runs out is the
        // server's `timeout` error rather than the client giving up.
        (Scenario::McpWorker, 7) => Mcp("wait_reply", json!({"timeout": "10m"})),
        (Scenario::McpWorker, 8) => Mcp("done", json!({"body": SUMMARY})),
        (_, 5) => shell(&format!("git inbox ask --body \"{QUESTION}\"")),
        (_, 6) => shell("git inbox wait-reply --timeout 10m"),
        (_, 7) => shell(&format!("git inbox done --body \"{SUMMARY}\"")),
        _ => Text("All done."),
    }
}

/// The worktree path printed by step 1, if the conversation has got that far.
fn worktree(c: &Conversation) -> Option<String> {
    let out = c.results.get(1)?;
    // Gemini CLI prefixes the output with "Output: ", Codex puts it under "Output:".
    out.lines()
        .map(|l| {
            l.trim()
                .trim_start_matches("Output:")
                .trim()
                .trim_matches('"')
        })
        .rfind(|l| l.starts_with('/'))
        .map(str::to_owned)
}

/// Dresses an action in the tool names and argument shapes of the CLI behind `wire`.
/// `Err` carries the reason the step cannot be played (a tool the CLI did not offer).
pub fn reply(wire: Wire, c: &Conversation, action: &Action, file: &str) -> Result<Reply, String> {
    let tool = |name: &str, args: serde_json::Value| Reply::Tool {
        name: name.to_owned(),
        namespace: None,
        args,
    };
    let offered = |name: &str| c.tools.iter().any(|t| t == name);
    let shell = |cmd: &str| match wire {
        Wire::Anthropic => tool(
            "Bash",
            json!({"command": cmd, "description": "Run a git command"}),
        ),
        // Long enough that `wait-reply` returns in one call instead of a polling session.
        Wire::Responses => tool(
            "exec_command",
            json!({"cmd": cmd, "yield_time_ms": 600_000}),
        ),
        Wire::Gemini => tool(
            "run_shell_command",
            json!({"command": cmd, "description": "Run a git command"}),
        ),
        Wire::Chat => tool(
            "bash",
            json!({"command": cmd, "description": "Run a git command"}),
        ),
    };
    let reply = match action {
        Action::Shell(cmd) => shell(cmd),
        Action::WriteFile => {
            let Some(dir) = worktree(c) else {
                return Err(
                    "no worktree path in the result of `git rev-parse --show-toplevel`".into(),
                );
            };
            let path = format!("{dir}/{file}");
            match wire {
                Wire::Anthropic => tool("Write", json!({"file_path": path, "content": CONTENT})),
                Wire::Gemini => tool("write_file", json!({"file_path": path, "content": CONTENT})),
                Wire::Chat => tool("write", json!({"filePath": path, "content": CONTENT})),
                // Codex offers no file tool to an unknown model: it edits through the shell.
                Wire::Responses => {
                    shell(&format!("printf '%s\\n' '{}' > {file}", CONTENT.trim_end()))
                }
            }
        }
        Action::Mcp(verb, args) => {
            // Each CLI spells a server's tool its own way; the server is called `inbox`.
            let (name, namespace) = match wire {
                Wire::Anthropic => (format!("mcp__inbox__{verb}"), None),
                Wire::Responses => ((*verb).to_owned(), Some("mcp__inbox".to_owned())),
                Wire::Gemini => (format!("mcp_inbox_{verb}"), None),
                Wire::Chat => (format!("inbox_{verb}"), None),
            };
            let listed = match &namespace {
                Some(ns) => format!("{ns}/{name}"),
                None => name.clone(),
            };
            if !offered(&listed) {
                return Err(format!("MCP tool {listed} was not offered"));
            }
            Reply::Tool {
                name,
                namespace,
                args: args.clone(),
            }
        }
        Action::Text(t) => Reply::Text((*t).to_owned()),
        Action::Hang => return Err("hang".into()),
    };
    if let Reply::Tool {
        name,
        namespace: None,
        ..
    } = &reply
    {
        if !offered(name) {
            return Err(format!(
                "tool {name} was not offered (offered: {:?})",
                c.tools
            ));
        }
    }
    Ok(reply)
}

/// aider offers no tools: it wants its edit format, and applies and commits the edit
/// itself.
pub fn aider_edit(file: &str) -> Reply {
    Reply::Text(format!(
        "I will create {file}.\n\n{file}\n```\n<<<<<<< SEARCH\n=======\n{}\n>>>>>>> REPLACE\n```\n",
        CONTENT.trim_end()
    ))
}
