//! How each preset hands its agent the `git inbox mcp` server (a profile's `inbox = mcp`
//! or `both`): the words added to its argv, the environment it gets, and which presets
//! cannot take it. The server is named `inbox` everywhere, so its tools reach the model as
//! `mcp__inbox__done` (Claude Code, Codex's namespace `mcp__inbox`) or `inbox_done`
//! (opencode).
//!
//! The server's command is `git-inbox` by name: the supervisor puts the folder of the
//! running git-orch first on the agent's `PATH`, so it is the `git-inbox` beside it, as
//! `git inbox` in the agent's shell is. Started in the attempt worktree with the agent's
//! `ORCH_*` environment, it acts as the launched agent on the attempt's thread, so no tool
//! needs an id. Measured with Claude Code 2.1.197 and Codex 0.171.0 (docs/mcp.md).

use super::preset::{Argv, InboxVia, Preset, Protocol, CLAUDE_ALLOWED};
use crate::error::{Error, Result};
use serde_json::{json, Value};

/// The variables Codex must forward: it starts a server with a handful of its own only
/// (PATH, HOME, …), and without `ORCH_AGENT` every call answers `no_identity`.
const CODEX_ENV_VARS: &str = r#"mcp_servers.inbox.env_vars=["ORCH_AGENT","ORCH_RUN","ORCH_TASK","ORCH_ATTEMPT","ORCH_THREAD","ORCH_BRIEF"]"#;

/// Claude Code's `--allowedTools` with the server: `-p` denies every tool not allowed,
/// MCP ones too.
const CLAUDE_ALLOWED_MCP: &str = "mcp__inbox__* Bash(git *)";

/// A preset's argv with the server handed over `via` the profile's choice: the words
/// added, and Claude's allow-list widened to the server's tools.
pub fn wire(preset: Preset, via: InboxVia, argv: &mut Argv) {
    if !via.server() {
        return;
    }
    if preset == Preset::Claude {
        for word in argv.head.iter_mut().filter(|w| **w == CLAUDE_ALLOWED) {
            *word = CLAUDE_ALLOWED_MCP;
        }
    }
    argv.mcp = args(preset, via);
}

/// The words a preset adds to its argv to give the agent the server.
fn args(preset: Preset, via: InboxVia) -> Vec<String> {
    if !via.server() {
        return Vec::new();
    }
    let mut words: Vec<String> = Vec::new();
    match preset {
        // `--strict-mcp-config` (always in the preset) keeps the user's own servers out.
        Preset::Claude => {
            let config = json!({"mcpServers": {"inbox": {
                "type": "stdio", "command": "git-inbox", "args": ["mcp"]}}});
            words.extend(["--mcp-config".to_owned(), config.to_string()]);
            // A deny rule beats the `Bash(git *)` allow: `git add` and `git commit` still
            // run, `git inbox` in the shell is refused, so the tools are the only route.
            if via == InboxVia::Mcp {
                words.extend([
                    "--disallowedTools".to_owned(),
                    "Bash(git inbox *)".to_owned(),
                ]);
            }
        }
        // `exec` runs with approval policy `never`, which refuses a tool call needing
        // approval; `approve` lets the server's through. `wait_reply` blocks until the
        // leader answers: an hour before Codex gives up on a call, not its short default.
        // Codex has no rule that keeps `git inbox` out of its shell.
        Preset::Codex => {
            for kv in [
                r#"mcp_servers.inbox.command="git-inbox""#,
                r#"mcp_servers.inbox.args=["mcp"]"#,
                CODEX_ENV_VARS,
                r#"mcp_servers.inbox.default_tools_approval_mode="approve""#,
                "mcp_servers.inbox.tool_timeout_sec=3600",
            ] {
                words.extend(["-c".to_owned(), kv.to_owned()]);
            }
        }
        // opencode takes its servers from its config: see `env`.
        _ => {}
    }
    words
}

/// Refuses a combination that cannot work, naming what would.
pub fn check(profile: &str, preset: Preset, protocol: Protocol, via: InboxVia) -> Result<()> {
    if !via.server() {
        return Ok(());
    }
    let key = format!("orch.agent.{profile}.inbox");
    if protocol == Protocol::Exit {
        return Err(Error::invalid_input(format!(
            "{key} is {} but the profile's protocol is exit: its agent never talks to the inbox",
            via.as_str()
        ))
        .hint(format!(
            "git config orch.agent.{profile}.protocol inbox, or unset {key}"
        )));
    }
    match preset {
        Preset::Claude | Preset::Codex | Preset::Opencode | Preset::Script => Ok(()),
        Preset::Gemini => Err(Error::invalid_input(format!(
            "{key}: Gemini CLI reads MCP servers only from settings.json, which a launch cannot pass"
        ))
        .hint(
            "register the server once (gemini mcp add -s user inbox git-inbox mcp) and keep inbox shell",
        )),
        Preset::Aider => Err(Error::invalid_input(format!(
            "{key}: aider has no MCP client"
        ))
        .hint(format!("unset {key}: aider speaks the exit protocol"))),
    }
}

/// Adds the server to the environment of a preset that takes its servers from there
/// (opencode's `OPENCODE_CONFIG_CONTENT`, merged into the profile's own value, whose
/// `mcp.inbox` wins when it has one).
pub fn env(
    profile: &str,
    preset: Preset,
    via: InboxVia,
    env: &mut Vec<(String, String)>,
) -> Result<()> {
    if preset != Preset::Opencode || !via.server() {
        return Ok(());
    }
    const VAR: &str = "OPENCODE_CONFIG_CONTENT";
    let bad = |why: &str| {
        Error::invalid_input(format!(
            "orch.agent.{profile}.env {VAR} {why}, so the inbox server cannot be added to it"
        ))
        .hint("give it a JSON object, e.g. {\"model\": \"provider/model\"}")
    };
    let mut config = match env.iter().find(|(k, _)| k == VAR) {
        Some((_, text)) => serde_json::from_str::<Value>(text).map_err(|_| bad("is not JSON"))?,
        None => json!({}),
    };
    let servers = config
        .as_object_mut()
        .ok_or_else(|| bad("is not a JSON object"))?
        .entry("mcp")
        .or_insert_with(|| json!({}));
    let servers = servers
        .as_object_mut()
        .ok_or_else(|| bad("has an \"mcp\" that is not an object"))?;
    servers.entry("inbox").or_insert_with(
        || json!({"type": "local", "command": ["git-inbox", "mcp"], "enabled": true}),
    );
    let text = config.to_string();
    env.retain(|(k, _)| k != VAR);
    env.push((VAR.to_owned(), text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::profile::{self, Profile};
    use super::super::template::Vars;
    use crate::error::Code;
    use crate::repo::testing::TempRepo;
    use serde_json::Value;
    use std::path::Path;

    /// Profile `name` resolved after setting `config` (pairs of key suffix and value).
    fn resolve(name: &str, config: &[(&str, &str)]) -> crate::error::Result<Profile> {
        let repo = TempRepo::new();
        for (key, value) in config {
            repo.git(&[
                "config",
                "--add",
                &format!("orch.agent.{name}.{key}"),
                value,
            ]);
        }
        profile::resolve(&repo.open(), name)
    }

    fn argv(p: &Profile) -> Vec<String> {
        p.argv(&Vars {
            brief: "BRIEF",
            brief_file: Path::new("/wt/.git/orch-brief.md"),
            worktree: Path::new("/wt"),
            agent: "a-1",
            model: None,
            common_dir: Path::new("/repo/.git"),
            git_dir: Path::new("/repo/.git/worktrees/wt"),
        })
        .unwrap()
    }

    /// The word after `flag`, every time it occurs.
    fn after<'a>(argv: &'a [String], flag: &str) -> Vec<&'a str> {
        argv.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn claude_gets_the_server_its_tools_and_with_mcp_alone_no_git_inbox_in_its_shell() {
        let mcp = resolve(
            "c",
            &[("preset", "claude"), ("inbox", "mcp"), ("model", "m")],
        )
        .unwrap();
        let a = argv(&mcp);
        assert_eq!(after(&a, "--allowedTools"), ["mcp__inbox__* Bash(git *)"]);
        assert_eq!(after(&a, "--disallowedTools"), ["Bash(git inbox *)"]);
        assert!(a.contains(&"--strict-mcp-config".to_owned()));
        let config: Value = serde_json::from_str(after(&a, "--mcp-config")[0]).unwrap();
        assert_eq!(
            config["mcpServers"]["inbox"],
            serde_json::json!({"type": "stdio", "command": "git-inbox", "args": ["mcp"]})
        );
        // The prompt and the model keep their places.
        assert_eq!(after(&a, "-p"), ["BRIEF"]);
        assert_eq!(after(&a, "--model"), ["m"]);
        // `profile show` prints the JSON as it is, not as placeholders.
        assert!(mcp
            .view()
            .argv
            .iter()
            .any(|w| w.starts_with("{\"mcpServers\"")));

        let both = argv(&resolve("c", &[("preset", "claude"), ("inbox", "both")]).unwrap());
        assert_eq!(
            after(&both, "--allowedTools"),
            ["mcp__inbox__* Bash(git *)"]
        );
        assert!(after(&both, "--disallowedTools").is_empty());
        assert_eq!(after(&both, "--mcp-config").len(), 1);

        let shell = argv(&resolve("claude", &[]).unwrap());
        assert_eq!(after(&shell, "--allowedTools"), ["Bash(git *)"]);
        assert!(after(&shell, "--mcp-config").is_empty());
    }

    #[test]
    fn codex_gets_the_server_with_the_identity_forwarded_and_calls_approved() {
        let p = resolve("x", &[("preset", "codex"), ("inbox", "mcp")]).unwrap();
        let a = argv(&p);
        let set = after(&a, "-c");
        for kv in [
            "allow_login_shell=false",
            r#"mcp_servers.inbox.command="git-inbox""#,
            r#"mcp_servers.inbox.args=["mcp"]"#,
            r#"mcp_servers.inbox.default_tools_approval_mode="approve""#,
            "mcp_servers.inbox.tool_timeout_sec=3600",
        ] {
            assert!(set.contains(&kv), "{kv} missing from {set:?}");
        }
        let vars = set
            .iter()
            .find_map(|kv| kv.strip_prefix("mcp_servers.inbox.env_vars="))
            .unwrap();
        let vars: Vec<String> = serde_json::from_str(vars).unwrap();
        for var in [
            "ORCH_AGENT",
            "ORCH_THREAD",
            "ORCH_RUN",
            "ORCH_TASK",
            "ORCH_ATTEMPT",
        ] {
            assert!(vars.iter().any(|v| v == var), "{var}");
        }
        // The prompt stays the last word, after every option.
        assert_eq!(a.last().unwrap(), "BRIEF");
        let shell = argv(&resolve("codex", &[]).unwrap());
        assert!(!shell.iter().any(|w| w.starts_with("mcp_servers.")));
    }

    #[test]
    fn opencode_gets_the_server_in_its_config_merged_into_the_profiles_own() {
        let config = |p: &Profile| -> Value {
            let (_, text) = p
                .env
                .iter()
                .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
                .unwrap();
            serde_json::from_str(text).unwrap()
        };
        let bare = resolve("o", &[("preset", "opencode"), ("inbox", "mcp")]).unwrap();
        assert_eq!(
            config(&bare)["mcp"]["inbox"],
            serde_json::json!({"type": "local", "command": ["git-inbox", "mcp"], "enabled": true})
        );
        assert!(bare.env.iter().any(|(k, _)| k == "OPENCODE_PERMISSION"));
        let own = resolve(
            "o",
            &[
                ("preset", "opencode"),
                ("inbox", "both"),
                (
                    "env",
                    r#"OPENCODE_CONFIG_CONTENT={"model":"p/m","mcp":{"other":{"type":"local"}}}"#,
                ),
            ],
        )
        .unwrap();
        let merged = config(&own);
        assert_eq!(merged["model"], "p/m");
        assert_eq!(merged["mcp"]["other"]["type"], "local");
        assert_eq!(merged["mcp"]["inbox"]["command"][1], "mcp");
        assert_eq!(
            own.env
                .iter()
                .filter(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
                .count(),
            1
        );
        // A server of the profile's own called `inbox` wins.
        let mine = resolve(
            "o",
            &[
                ("preset", "opencode"),
                ("inbox", "mcp"),
                (
                    "env",
                    r#"OPENCODE_CONFIG_CONTENT={"mcp":{"inbox":{"type":"remote"}}}"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(
            config(&mine)["mcp"]["inbox"],
            serde_json::json!({"type": "remote"})
        );
        for bad in [
            "OPENCODE_CONFIG_CONTENT=not json",
            "OPENCODE_CONFIG_CONTENT=[1]",
            r#"OPENCODE_CONFIG_CONTENT={"mcp":1}"#,
        ] {
            let err = resolve(
                "o",
                &[("preset", "opencode"), ("inbox", "mcp"), ("env", bad)],
            )
            .unwrap_err();
            assert_eq!(err.code, Code::InvalidInput, "{bad}");
        }
        let shell = resolve("opencode", &[]).unwrap();
        assert!(!shell
            .env
            .iter()
            .any(|(k, _)| k == "OPENCODE_CONFIG_CONTENT"));
    }

    #[test]
    fn a_server_nobody_can_take_is_refused_and_a_preset_named_profile_keeps_its_preset() {
        for config in [
            vec![("preset", "gemini"), ("inbox", "mcp")],
            vec![("preset", "aider"), ("inbox", "both")],
            vec![("preset", "claude"), ("inbox", "mcp"), ("protocol", "exit")],
            vec![("preset", "claude"), ("inbox", "yes")],
        ] {
            let err = resolve("p", &config).unwrap_err();
            assert_eq!(err.code, Code::InvalidInput, "{config:?}: {err}");
            assert!(err.hint.is_some(), "{config:?}");
        }
        // A script speaks MCP by itself: only its brief changes.
        let script = resolve(
            "s",
            &[
                ("command", "./agent.sh {brief_file}"),
                ("protocol", "inbox"),
                ("inbox", "mcp"),
            ],
        )
        .unwrap();
        assert_eq!(argv(&script), ["./agent.sh", "/wt/.git/orch-brief.md"]);
        assert_eq!(script.view().inbox, "mcp");
        // Configuring only `inbox` on the profile `claude` keeps the preset `claude`.
        let claude = resolve("claude", &[("inbox", "mcp")]).unwrap();
        assert_eq!(claude.preset.as_str(), "claude");
        assert!(claude.configured);
        assert_eq!(
            after(&argv(&claude), "--disallowedTools"),
            ["Bash(git inbox *)"]
        );
    }
}
