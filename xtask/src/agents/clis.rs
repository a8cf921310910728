//! The pinned agent CLIs and how each is launched headless against the scripted endpoint:
//! argv, environment, config files and the success test. `docs/agents.md` says the same in
//! prose; the launcher's presets encode it.

use super::install::cache_dir;
use anyhow::{bail, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub enum Kind {
    /// `target/agents/<name>/node_modules/.bin/<bin>`.
    Npm { bin: &'static str },
    /// `target/agents/<name>/venv/bin/<bin>`.
    Pypi { bin: &'static str },
}

pub struct Cli {
    pub name: &'static str,
    pub package: &'static str,
    pub version: &'static str,
    pub kind: Kind,
    /// `inbox`: the agent runs the inbox protocol itself; `exit`: it only edits and its
    /// exit decides (SPEC §11 `protocol`).
    pub inbox_protocol: bool,
    /// Whether its preset's MCP wiring has a smoke (`smoke NAME-mcp`): launched by
    /// `git orch dispatch --launch` with `inbox = mcp`.
    pub mcp_smoke: bool,
}

pub static CLIS: &[Cli] = &[
    Cli {
        name: "claude",
        package: "@anthropic-ai/claude-code",
        version: "2.1.197",
        kind: Kind::Npm { bin: "claude" },
        inbox_protocol: true,
        mcp_smoke: true,
    },
    Cli {
        name: "codex",
        package: "@openai/codex",
        version: "0.171.0",
        kind: Kind::Npm { bin: "codex" },
        inbox_protocol: true,
        mcp_smoke: true,
    },
    Cli {
        name: "gemini",
        package: "@google/gemini-cli",
        version: "0.61.0",
        kind: Kind::Npm { bin: "gemini" },
        inbox_protocol: true,
        mcp_smoke: false,
    },
    Cli {
        name: "opencode",
        package: "opencode-ai",
        version: "1.18.33",
        kind: Kind::Npm { bin: "opencode" },
        inbox_protocol: true,
        mcp_smoke: true,
    },
    Cli {
        name: "aider",
        package: "aider-chat",
        version: "0.86.2",
        kind: Kind::Pypi { bin: "aider" },
        inbox_protocol: false,
        mcp_smoke: false,
    },
];

/// The CLIs named (all when none is), refusing unknown names.
pub fn select(names: &[String]) -> Result<Vec<&'static Cli>> {
    if names.is_empty() {
        return Ok(CLIS.iter().collect());
    }
    names
        .iter()
        .map(|n| match CLIS.iter().find(|c| c.name == n) {
            Some(c) => Ok(c),
            None => bail!(
                "unknown agent CLI {n:?}; known: {}",
                CLIS.iter().map(|c| c.name).collect::<Vec<_>>().join(", ")
            ),
        })
        .collect()
}

impl Cli {
    pub fn program(&self) -> PathBuf {
        let dir = cache_dir().join(self.name);
        match self.kind {
            Kind::Npm { bin } => dir.join("node_modules/.bin").join(bin),
            Kind::Pypi { bin } => dir.join("venv/bin").join(bin),
        }
    }

    /// The headless launch of this CLI in `worktree`, its model calls going to `base_url`.
    pub fn launch(&self, ctx: &Context) -> Result<Launch> {
        let program = self.program().to_string_lossy().into_owned();
        let home = &ctx.home;
        let url = &ctx.base_url;
        let mut l = Launch {
            argv: vec![program],
            env: vec![("HOME".into(), home.to_string_lossy().into_owned())],
        };
        let env = |l: &mut Launch, k: &str, v: &str| l.env.push((k.to_owned(), v.to_owned()));
        let args = |l: &mut Launch, a: &[&str]| l.argv.extend(a.iter().map(|s| s.to_string()));
        match self.name {
            "claude" => {
                env(&mut l, "ANTHROPIC_BASE_URL", url);
                env(&mut l, "ANTHROPIC_API_KEY", "sk-scripted");
                env(
                    &mut l,
                    "CLAUDE_CONFIG_DIR",
                    &home.join(".claude").to_string_lossy(),
                );
                env(&mut l, "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1");
                env(&mut l, "DISABLE_AUTOUPDATER", "1");
                env(&mut l, "DISABLE_TELEMETRY", "1");
                // Default retries take minutes on a dead endpoint; the supervisor's
                // timeout is the backstop, this keeps a real failure quick.
                env(&mut l, "CLAUDE_CODE_MAX_RETRIES", "2");
                args(
                    &mut l,
                    &[
                        "-p",
                        &ctx.brief,
                        "--output-format",
                        "stream-json",
                        "--verbose",
                    ],
                );
                // Root-safe and narrow: edits inside the worktree, and git (which covers
                // `git inbox`) without asking; anything else is denied, not hung.
                args(
                    &mut l,
                    &[
                        "--permission-mode",
                        "acceptEdits",
                        "--allowedTools",
                        "Bash(git *)",
                    ],
                );
                args(&mut l, &["--strict-mcp-config", "--no-session-persistence"]);
            }
            "codex" => {
                let codex_home = home.join(".codex");
                std::fs::create_dir_all(&codex_home)?;
                std::fs::write(
                    codex_home.join("config.toml"),
                    format!(
                        "model = \"scripted-model\"\nmodel_provider = \"scripted\"\n\
                         allow_login_shell = false\n\
                         [model_providers.scripted]\nname = \"Scripted\"\nbase_url = \"{url}/v1\"\n\
                         wire_api = \"responses\"\nenv_key = \"SCRIPTED_API_KEY\"\n\
                         [sandbox_workspace_write]\nexclude_slash_tmp = true\nexclude_tmpdir_env_var = true\n"
                    ),
                )?;
                env(&mut l, "CODEX_HOME", &codex_home.to_string_lossy());
                env(&mut l, "SCRIPTED_API_KEY", "sk-scripted");
                args(
                    &mut l,
                    &["exec", "--json", "--ephemeral", "-s", "workspace-write"],
                );
                // Commits and the inbox write under the common git dir, outside the
                // worktree: the one extra writable root the sandbox needs.
                for dir in [&ctx.common_dir, &ctx.git_dir] {
                    l.argv.push("--add-dir".into());
                    l.argv.push(dir.to_string_lossy().into_owned());
                }
                l.argv.push("-C".into());
                l.argv.push(ctx.worktree.to_string_lossy().into_owned());
                l.argv.push(ctx.brief.clone());
            }
            "gemini" => {
                let dir = home.join(".gemini");
                std::fs::create_dir_all(&dir)?;
                let settings = json!({
                    "security": {"auth": {"selectedType": "gemini-api-key"}},
                    "privacy": {"usageStatisticsEnabled": false},
                    "telemetry": {"enabled": false},
                    "general": {"disableAutoUpdate": true, "disableUpdateNag": true},
                });
                std::fs::write(dir.join("settings.json"), settings.to_string())?;
                env(&mut l, "GOOGLE_GEMINI_BASE_URL", url);
                env(&mut l, "GEMINI_API_KEY", "scripted");
                args(&mut l, &["--skip-trust", "--approval-mode", "auto_edit"]);
                args(&mut l, &["--allowed-tools", "run_shell_command(git)"]);
                args(&mut l, &["-o", "stream-json", "-p", &ctx.brief]);
            }
            "opencode" => {
                let config = json!({
                    "model": "scripted/scripted-model",
                    "provider": {"scripted": {
                        "npm": "@ai-sdk/openai-compatible", "name": "Scripted",
                        "options": {"baseURL": format!("{url}/v1"), "apiKey": "sk-scripted"},
                        "models": {"scripted-model": {"name": "Scripted", "tool_call": true}}}},
                    "permission": {"edit": "allow", "bash": {"*": "deny", "git *": "allow"},
                                   "webfetch": "deny"},
                    "autoupdate": false, "share": "disabled",
                });
                env(&mut l, "OPENCODE_CONFIG_CONTENT", &config.to_string());
                env(&mut l, "OPENCODE_DISABLE_MODELS_FETCH", "1");
                env(&mut l, "OPENCODE_DISABLE_AUTOUPDATE", "1");
                args(&mut l, &["run", "--format", "json", &ctx.brief]);
            }
            "aider" => {
                env(&mut l, "LITELLM_LOCAL_MODEL_COST_MAP", "True");
                let base = format!("{url}/v1");
                args(
                    &mut l,
                    &[
                        "--model",
                        "openai/scripted-model",
                        "--openai-api-base",
                        &base,
                    ],
                );
                args(
                    &mut l,
                    &["--openai-api-key", "sk-scripted", "--edit-format", "diff"],
                );
                args(
                    &mut l,
                    &["--yes-always", "--no-check-update", "--analytics-disable"],
                );
                args(
                    &mut l,
                    &["--no-show-release-notes", "--no-show-model-warnings"],
                );
                args(
                    &mut l,
                    &["--no-pretty", "--no-fancy-input", "--no-gitignore"],
                );
                args(&mut l, &["--message", &ctx.brief]);
            }
            other => bail!("no launch recipe for {other}"),
        }
        Ok(l)
    }

    /// The CLI's own verdict, read from what it printed: `Err` says why a zero exit is
    /// still a failure.
    pub fn success(&self, stdout: &str) -> Result<(), String> {
        let events: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect();
        let last_of = |ty: &str| events.iter().rev().find(|e| e["type"] == ty);
        match self.name {
            "claude" => {
                let r = last_of("result").ok_or("no result event")?;
                if r["subtype"] != "success" || r["is_error"] != false {
                    return Err(format!("result {}", r["subtype"]));
                }
                match r["permission_denials"].as_array() {
                    Some(d) if !d.is_empty() => {
                        Err(format!("denied tool calls: {}", r["permission_denials"]))
                    }
                    _ => Ok(()),
                }
            }
            "codex" => {
                if let Some(e) = last_of("turn.failed").or(last_of("error").filter(|e| {
                    !e["message"]
                        .as_str()
                        .unwrap_or("")
                        .contains("Model metadata")
                })) {
                    return Err(format!("{e}"));
                }
                last_of("turn.completed")
                    .map(|_| ())
                    .ok_or("no turn.completed event".into())
            }
            "gemini" => {
                let r = last_of("result").ok_or("no result event")?;
                if r["status"] == "success" {
                    Ok(())
                } else {
                    Err(format!("result {r}"))
                }
            }
            "opencode" => match last_of("error") {
                Some(e) => Err(format!("{e}")),
                None if events.is_empty() => Err("no JSON events".into()),
                None => Ok(()),
            },
            // aider prints text only; its exit and the commit it made are the test.
            _ => Ok(()),
        }
    }
}

/// What a launch needs to know about where it runs.
pub struct Context {
    pub worktree: PathBuf,
    pub common_dir: PathBuf,
    /// The worktree's private git dir (index, HEAD), under the common dir.
    pub git_dir: PathBuf,
    pub home: PathBuf,
    pub base_url: String,
    pub brief: String,
}

pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    /// The argv as one line, the brief shortened.
    pub fn display(&self, program: &Path) -> String {
        self.argv
            .iter()
            .map(|a| {
                if a == &program.to_string_lossy() {
                    program
                        .file_name()
                        .map_or(a.clone(), |f| f.to_string_lossy().into_owned())
                } else if a.contains('\n') {
                    "'<brief>'".to_owned()
                } else if a.contains([' ', '(', '*', '"', '{', '[']) {
                    format!("'{a}'")
                } else {
                    a.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
