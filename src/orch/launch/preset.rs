//! The built-in presets (SPEC §11): for each agent CLI its headless argv, where the
//! prompt goes, the narrowest flags that let it edit the worktree and run `git` and
//! `git inbox` without asking (as root too), its default protocol, and its success test,
//! which reads the CLI's own JSON result where it prints one.
//!
//! Flags were measured on Claude Code 2.1, Codex CLI 0.171, Gemini CLI 0.61, opencode
//! 1.18 and aider 0.86 (see docs/agents.md); they drift, so a profile's `command`
//! overrides the argv while keeping the preset's success test.
//!
//! An agent of protocol `inbox` reaches the inbox through its shell (`git inbox …`), the
//! `git inbox mcp` server, or both (`InboxVia`, the profile's `inbox` key); the MCP
//! wiring of each CLI is in `mcp.rs`.

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Claude,
    Codex,
    Gemini,
    Opencode,
    Aider,
    Script,
}

/// How an agent reports back: itself through `git inbox` (`inbox`), or only by its exit
/// status with its work committed (`exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Inbox,
    Exit,
}

impl Protocol {
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.trim() {
            "inbox" => Some(Protocol::Inbox),
            "exit" => Some(Protocol::Exit),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Inbox => "inbox",
            Protocol::Exit => "exit",
        }
    }
}

/// How an agent of protocol `inbox` reaches the inbox: `git inbox` in its shell, the
/// tools of the `git inbox mcp` server (with the shell route closed where the CLI can
/// close it), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxVia {
    Shell,
    Mcp,
    Both,
}

impl InboxVia {
    pub fn parse(text: &str) -> Option<InboxVia> {
        match text.trim() {
            "shell" => Some(InboxVia::Shell),
            "mcp" => Some(InboxVia::Mcp),
            "both" => Some(InboxVia::Both),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InboxVia::Shell => "shell",
            InboxVia::Mcp => "mcp",
            InboxVia::Both => "both",
        }
    }

    /// Whether the agent is given the MCP server.
    pub fn server(self) -> bool {
        self != InboxVia::Shell
    }
}

/// Claude Code's allow-list for the shell route (`mcp::wire` widens it for the server).
pub const CLAUDE_ALLOWED: &str = "Bash(git *)";

/// The parts of a preset's argv: the MCP wiring and the model flag go between `head`
/// and `tail`, since some CLIs want options before the prompt.
pub struct Argv {
    pub head: Vec<&'static str>,
    /// Literal words (no placeholders: they hold JSON) that hand the agent the server.
    pub mcp: Vec<String>,
    pub model: &'static [&'static str],
    pub tail: &'static [&'static str],
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Claude,
        Preset::Codex,
        Preset::Gemini,
        Preset::Opencode,
        Preset::Aider,
        Preset::Script,
    ];

    pub fn parse(text: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.as_str() == text.trim())
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Claude => "claude",
            Preset::Codex => "codex",
            Preset::Gemini => "gemini",
            Preset::Opencode => "opencode",
            Preset::Aider => "aider",
            Preset::Script => "script",
        }
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Preset::Aider | Preset::Script => Protocol::Exit,
            _ => Protocol::Inbox,
        }
    }

    /// The built-in argv, with the inbox through the shell (`mcp::wire` adds the server);
    /// `None` for `script`, which has only its profile's `command`.
    pub fn argv(self) -> Option<Argv> {
        let mcp = Vec::new();
        Some(match self {
            // acceptEdits approves file edits; the allow-list adds git (and so `git
            // inbox`) and nothing else (`mcp::wire` adds the inbox server's tools): no
            // --dangerously-skip-permissions, which root may not use anyway.
            Preset::Claude => Argv {
                head: vec![
                    "claude",
                    "-p",
                    "{brief}",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--permission-mode",
                    "acceptEdits",
                    "--allowedTools",
                    CLAUDE_ALLOWED,
                    "--strict-mcp-config",
                    "--no-session-persistence",
                ],
                mcp,
                model: &["--model", "{model}"],
                tail: &[],
            },
            // workspace-write confines writes to the worktree and makes the git dir
            // its `.git` points at read-only: the common dir (objects, refs, the state
            // database) and the worktree's private git dir (its index) are added. A
            // login shell would reset PATH and lose `git inbox`.
            Preset::Codex => Argv {
                head: vec![
                    "codex",
                    "exec",
                    "--json",
                    "--ephemeral",
                    "-s",
                    "workspace-write",
                    "--add-dir",
                    "{common_dir}",
                    "--add-dir",
                    "{git_dir}",
                    "-c",
                    "allow_login_shell=false",
                    "-C",
                    "{worktree}",
                ],
                mcp,
                model: &["-m", "{model}"],
                tail: &["{brief}"],
            },
            Preset::Gemini => Argv {
                head: vec![
                    "gemini",
                    "--skip-trust",
                    "--approval-mode",
                    "auto_edit",
                    "--allowed-tools",
                    "run_shell_command(git)",
                    "-o",
                    "stream-json",
                ],
                mcp,
                model: &["-m", "{model}"],
                tail: &["-p", "{brief}"],
            },
            Preset::Opencode => Argv {
                head: vec!["opencode", "run", "--format", "json"],
                mcp,
                model: &["-m", "{model}"],
                tail: &["{brief}"],
            },
            // Aider never runs shell commands headlessly: it edits and commits itself,
            // so it speaks the `exit` protocol.
            Preset::Aider => Argv {
                head: vec![
                    "aider",
                    "--yes-always",
                    "--no-check-update",
                    "--analytics-disable",
                    "--no-show-release-notes",
                    "--no-show-model-warnings",
                    "--no-pretty",
                    "--no-fancy-input",
                    "--no-gitignore",
                ],
                mcp,
                model: &["--model", "{model}"],
                tail: &["--message-file", "{brief_file}"],
            },
            Preset::Script => return None,
        })
    }

    /// Environment the preset always sets (a profile's `env` comes after and wins).
    pub fn env(self) -> &'static [(&'static str, &'static str)] {
        match self {
            // Edits yes, `git …` yes, every other shell command no.
            Preset::Opencode => &[
                (
                    "OPENCODE_PERMISSION",
                    r#"{"edit":"allow","bash":{"*":"deny","git *":"allow"},"webfetch":"deny"}"#,
                ),
                ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
            ],
            Preset::Aider => &[("LITELLM_LOCAL_MODEL_COST_MAP", "True")],
            _ => &[],
        }
    }

    /// Whether `path` (as status reports it, a folder with its `/`) is what the CLI itself
    /// leaves in a worktree: aider's chat and input history and its repo-map cache, which
    /// it writes at the top of the repository and has no flag to move. Not the agent's
    /// work, so protocol `exit` does not take them for uncommitted changes.
    pub fn is_scratch(self, path: &str) -> bool {
        let scratch: &[&str] = match self {
            Preset::Aider => &[
                ".aider.chat.history.md",
                ".aider.input.history",
                ".aider.llm.history",
                ".aider.tags.cache.v4/",
            ],
            _ => &[],
        };
        scratch
            .iter()
            .any(|s| path == *s || (s.ends_with('/') && path.starts_with(s)))
    }

    /// The success test of a finished agent: its exit code, its output, and how many
    /// commits its branch gained. `Err` says why a zero exit is still a failure.
    pub fn verdict(self, exit_code: Option<i32>, output: &str, commits: u64) -> Verdict {
        if exit_code != Some(0) {
            let why = match exit_code {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            return Verdict::failed(why, summary_line(output));
        }
        match self {
            Preset::Claude => claude(output),
            Preset::Codex => codex(output),
            Preset::Gemini => gemini(output),
            Preset::Opencode => opencode(output),
            // Aider exits 0 even when the model never answered: no commit, no work.
            Preset::Aider if commits == 0 => {
                Verdict::failed("made no commit".into(), summary_line(output))
            }
            Preset::Aider | Preset::Script => Verdict::ok(summary_line(output)),
        }
    }
}

/// What the success test concluded, and a one-line summary of the agent's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub why: Option<String>,
    pub summary: String,
}

impl Verdict {
    fn ok(summary: String) -> Verdict {
        Verdict {
            ok: true,
            why: None,
            summary,
        }
    }

    fn failed(why: String, summary: String) -> Verdict {
        Verdict {
            ok: false,
            why: Some(why),
            summary,
        }
    }
}

/// JSON objects printed one per line, newest last.
fn json_lines(output: &str) -> impl DoubleEndedIterator<Item = Value> + '_ {
    output
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
}

fn summary_line(output: &str) -> String {
    let line = output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("[git-orch]"))
        .unwrap_or("");
    line.chars().take(500).collect()
}

fn text_of(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}

/// `--output-format json`: one result object; `is_error` or denied tool calls fail it
/// (Claude exits 0 when tools were denied).
fn claude(output: &str) -> Verdict {
    let Some(result) = json_lines(output).rev().find(|v| v["type"] == "result") else {
        return Verdict::failed("printed no result JSON".into(), summary_line(output));
    };
    let summary = text_of(result.get("result"));
    if result["is_error"] == Value::Bool(true)
        || result["subtype"].as_str().is_some_and(|s| s != "success")
    {
        return Verdict::failed(format!("reported an error: {summary}"), summary);
    }
    let denied = result["permission_denials"]
        .as_array()
        .map(|d| {
            d.iter()
                .filter_map(|x| x["tool_name"].as_str())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if !denied.is_empty() {
        return Verdict::failed(
            format!("was denied tool calls: {}", denied.join(", ")),
            summary,
        );
    }
    Verdict::ok(summary)
}

/// `exec --json`: JSONL events; a finished run ends with `turn.completed`.
fn codex(output: &str) -> Verdict {
    let events: Vec<Value> = json_lines(output).collect();
    let summary = events
        .iter()
        .rev()
        .find(|e| e["item"]["type"] == "agent_message")
        .map(|e| text_of(e["item"].get("text")))
        .unwrap_or_else(|| summary_line(output));
    if let Some(failed) = events.iter().find(|e| e["type"] == "turn.failed") {
        // (An `error` item about missing model metadata is only a warning.)
        let why = failed["error"]["message"].as_str().unwrap_or("turn failed");
        return Verdict::failed(format!("reported: {why}"), summary);
    }
    // An `error` about missing model metadata is only a warning; any other fails.
    if let Some(error) = events.iter().find(|e| {
        e["type"] == "error"
            && !e["message"]
                .as_str()
                .unwrap_or("")
                .contains("Model metadata")
    }) {
        let why = error["message"].as_str().unwrap_or("error");
        return Verdict::failed(format!("reported: {why}"), summary);
    }
    if !events.iter().any(|e| e["type"] == "turn.completed") {
        return Verdict::failed("never completed a turn".into(), summary);
    }
    Verdict::ok(summary)
}

/// `-o stream-json`: the last event is `result` with a `status`.
fn gemini(output: &str) -> Verdict {
    let Some(result) = json_lines(output).rev().find(|v| v["type"] == "result") else {
        return Verdict::failed("printed no result event".into(), summary_line(output));
    };
    let summary = summary_line(output);
    match result["status"].as_str() {
        Some("success") => Verdict::ok(summary),
        other => Verdict::failed(
            format!("ended with status {}", other.unwrap_or("unknown")),
            summary,
        ),
    }
}

/// `--format json`: events; an `error` event fails the run.
fn opencode(output: &str) -> Verdict {
    let events: Vec<Value> = json_lines(output).collect();
    if let Some(error) = events.iter().find(|e| e["type"] == "error") {
        let why = error["error"]["name"].as_str().unwrap_or("error");
        return Verdict::failed(format!("reported {why}"), summary_line(output));
    }
    let summary = events
        .iter()
        .rev()
        .find(|e| e["type"] == "text")
        .map(|e| text_of(e["part"].get("text")))
        .unwrap_or_else(|| summary_line(output));
    Verdict::ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claude_fails_a_zero_exit_with_denials_or_an_error_flag() {
        let ok = r#"{"type":"result","subtype":"success","is_error":false,"result":"All done.","permission_denials":[]}"#;
        assert_eq!(
            Preset::Claude.verdict(Some(0), ok, 0),
            Verdict::ok("All done.".into())
        );
        let denied = r#"{"type":"result","is_error":false,"result":"x","permission_denials":[{"tool_name":"Bash"}]}"#;
        let v = Preset::Claude.verdict(Some(0), denied, 0);
        assert!(!v.ok && v.why.unwrap().contains("Bash"));
        let error = r#"{"type":"result","is_error":true,"result":"API Error"}"#;
        assert!(!Preset::Claude.verdict(Some(0), error, 0).ok);
        assert!(!Preset::Claude.verdict(Some(0), "plain text", 0).ok);
        assert!(!Preset::Claude.verdict(Some(1), ok, 0).ok);
    }

    #[test]
    fn the_other_presets_read_their_own_output() {
        let codex = "{\"type\":\"turn.started\"}\n{\"type\":\"item.completed\",\"item\":{\"type\":\"agent_message\",\"text\":\"hi\"}}\n{\"type\":\"turn.completed\"}";
        assert_eq!(
            Preset::Codex.verdict(Some(0), codex, 0),
            Verdict::ok("hi".into())
        );
        assert!(
            !Preset::Codex
                .verdict(Some(0), "{\"type\":\"turn.started\"}", 0)
                .ok
        );
        let warned = format!(
            "{{\"type\":\"error\",\"message\":\"Model metadata for m not found\"}}\n{codex}"
        );
        assert!(Preset::Codex.verdict(Some(0), &warned, 0).ok);
        let broken = format!("{{\"type\":\"error\",\"message\":\"stream disconnected\"}}\n{codex}");
        assert!(!Preset::Codex.verdict(Some(0), &broken, 0).ok);
        let gemini = "{\"type\":\"init\"}\n{\"type\":\"result\",\"status\":\"success\"}";
        assert!(Preset::Gemini.verdict(Some(0), gemini, 0).ok);
        assert!(
            !Preset::Gemini
                .verdict(Some(0), "{\"type\":\"result\",\"status\":\"error\"}", 0)
                .ok
        );
        let oc = "{\"type\":\"error\",\"error\":{\"name\":\"APIError\"}}";
        assert!(!Preset::Opencode.verdict(Some(0), oc, 0).ok);
        assert!(!Preset::Aider.verdict(Some(0), "done", 0).ok);
        assert!(Preset::Aider.verdict(Some(0), "done", 1).ok);
        assert_eq!(
            Preset::Script
                .verdict(Some(0), "line\n[git-orch] agent exited\n", 0)
                .summary,
            "line"
        );
    }

    #[test]
    fn only_aiders_own_files_are_scratch() {
        for path in [
            ".aider.chat.history.md",
            ".aider.tags.cache.v4/",
            ".aider.tags.cache.v4/x",
        ] {
            assert!(Preset::Aider.is_scratch(path), "{path}");
        }
        for path in [
            "a.txt",
            ".aider.conf.yml",
            "src/.aider.chat.history.md",
            ".aider.tags.cache.v4",
        ] {
            assert!(!Preset::Aider.is_scratch(path), "{path}");
        }
        assert!(!Preset::Claude.is_scratch(".aider.chat.history.md"));
    }
}
