//! Launch profiles (SPEC §11): `orch.agent.<profile>.{preset,command,env,model,protocol,
//! inbox,timeout,stallAfter}` in git config. A preset's name is a profile by itself, so
//! `--launch claude` works with no config at all, and a profile named after a preset
//! uses that preset unless it names another.

use super::preset::{InboxVia, Preset, Protocol};
use super::template::{self, Vars, Word};
use crate::error::{Code, Error, Result};
use crate::names::check_name;
use crate::repo::Repo;
use serde::Serialize;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub preset: Preset,
    /// The argv template: the profile's `command`, else the preset's.
    pub words: Vec<Word>,
    /// Whether `words` came from `orch.agent.<profile>.command`.
    pub custom_command: bool,
    pub env: Vec<(String, String)>,
    pub model: Option<String>,
    pub protocol: Protocol,
    /// How an `inbox` agent reaches the inbox: shell, MCP server, or both.
    pub inbox: InboxVia,
    pub timeout: Duration,
    pub stall_after: Duration,
    /// Whether any `orch.agent.<profile>.*` key is set (else: a bare preset).
    pub configured: bool,
}

/// How `profile list` and `profile show` print a profile.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub name: String,
    pub preset: &'static str,
    pub configured: bool,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub model: Option<String>,
    pub protocol: &'static str,
    pub inbox: &'static str,
    pub timeout_ms: u64,
    pub stall_after_ms: u64,
}

fn key(profile: &str, name: &str) -> String {
    format!("orch.agent.{profile}.{name}")
}

fn duration(repo: &Repo, profile: &str, name: &str, default: Duration) -> Result<Duration> {
    match repo.config_string(&key(profile, name)) {
        None => Ok(default),
        Some(text) => crate::time::parse_duration(&text).map_err(|e| {
            Error::invalid_input(format!("{} is {text:?}: {}", key(profile, name), e.message))
                .hint(format!("e.g. git config {} 30m", key(profile, name)))
        }),
    }
}

/// Profiles configured in git config, then the presets not shadowed by one.
pub fn names(repo: &Repo) -> Vec<String> {
    let mut names = repo.config_subsections("orch", "agent.");
    for preset in Preset::ALL {
        if !names.iter().any(|n| n == preset.as_str()) {
            names.push(preset.as_str().to_owned());
        }
    }
    names
}

/// Reads and checks profile `name`: `unknown_profile` when neither configured nor a
/// preset, `invalid_input` for a bad preset, protocol, inbox, duration, env entry or
/// template, or an MCP server the preset cannot hand over.
pub fn resolve(repo: &Repo, name: &str) -> Result<Profile> {
    check_name("profile", name)?;
    let configured = repo
        .config_subsections("orch", "agent.")
        .iter()
        .any(|n| n == name);
    let given_preset = repo.config_string(&key(name, "preset"));
    let command = repo.config_string(&key(name, "command"));
    if !configured && Preset::parse(name).is_none() {
        return Err(
            Error::new(Code::UnknownProfile, format!("no profile {name:?}"))
                .hint(format!(
                "profiles here: {}; configure one with git config orch.agent.{name}.preset claude",
                names(repo).join(", ")
            ))
                .detail("profile", name),
        );
    }
    let preset = match &given_preset {
        Some(text) => Preset::parse(text).ok_or_else(|| {
            Error::invalid_input(format!("{} is {text:?}", key(name, "preset")))
                .hint("one of claude, codex, gemini, opencode, aider, script")
        })?,
        None => match (Preset::parse(name), &command) {
            (Some(preset), None) => preset,
            (_, Some(_)) => Preset::Script,
            (None, None) => {
                return Err(Error::invalid_input(format!(
                    "profile {name} has neither a preset nor a command"
                ))
                .hint(format!("git config orch.agent.{name}.preset claude")))
            }
        },
    };
    let protocol = match repo.config_string(&key(name, "protocol")) {
        Some(text) => Protocol::parse(&text).ok_or_else(|| {
            Error::invalid_input(format!("{} is {text:?}", key(name, "protocol")))
                .hint("inbox (the agent runs git inbox done/fail) or exit (its exit status)")
        })?,
        None => preset.protocol(),
    };
    let inbox = match repo.config_string(&key(name, "inbox")) {
        Some(text) => InboxVia::parse(&text).ok_or_else(|| {
            Error::invalid_input(format!("{} is {text:?}", key(name, "inbox")))
                .hint("shell (git inbox in the agent's shell), mcp (the git inbox mcp server's tools) or both")
        })?,
        None => InboxVia::Shell,
    };
    super::mcp::check(name, preset, protocol, inbox)?;
    // A profile's `command` is the whole argv, MCP wiring included: a wrapper's flags are
    // its own business (docs/launch.md lists each CLI's words to copy).
    let (words, custom_command) = match (&command, preset.argv()) {
        (Some(text), _) => (template::parse(&key(name, "command"), text)?, true),
        (None, Some(mut argv)) => {
            super::mcp::wire(preset, inbox, &mut argv);
            let mut all = template::words(preset.as_str(), &argv.head)?;
            all.extend(argv.mcp.into_iter().map(Word::literal));
            let mut rest: Vec<&str> = Vec::new();
            if repo.config_string(&key(name, "model")).is_some() {
                rest.extend(argv.model);
            }
            rest.extend(argv.tail);
            all.extend(template::words(preset.as_str(), &rest)?);
            (all, false)
        }
        (None, None) => {
            return Err(Error::invalid_input(format!(
                "profile {name} uses the script preset but has no command"
            ))
            .hint(format!(
                "git config orch.agent.{name}.command './agent.sh {{brief_file}}'"
            )))
        }
    };
    let mut env: Vec<(String, String)> = preset
        .env()
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for entry in repo.config_strings(&key(name, "env")) {
        let (var, value) = entry
            .split_once('=')
            .filter(|(var, _)| is_env_name(var))
            .ok_or_else(|| {
                Error::invalid_input(format!("{} has {entry:?}", key(name, "env")))
                    .hint("each value is NAME=VALUE: git config --add orch.agent.P.env NAME=VALUE")
            })?;
        env.retain(|(k, _)| k != var);
        env.push((var.to_owned(), value.to_owned()));
    }
    super::mcp::env(name, preset, inbox, &mut env)?;
    let model = repo
        .config_string(&key(name, "model"))
        .filter(|m| !m.is_empty());
    if model.is_none() && words.iter().any(|w| w.uses("model")) {
        return Err(Error::invalid_input(format!(
            "{} uses {{model}} but no model is set",
            key(name, "command")
        ))
        .hint(format!("git config orch.agent.{name}.model NAME")));
    }
    Ok(Profile {
        name: name.to_owned(),
        preset,
        words,
        custom_command,
        env,
        model,
        protocol,
        inbox,
        timeout: duration(repo, name, "timeout", DEFAULT_TIMEOUT)?,
        stall_after: duration(repo, name, "stallAfter", DEFAULT_STALL_AFTER)?,
        configured,
    })
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether an env value should be hidden from `profile show`.
fn looks_secret(name: &str, value: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    [
        "KEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "AUTH",
        "CREDENTIAL",
        "COOKIE",
    ]
    .iter()
    .any(|w| upper.contains(w))
        || ["sk-", "ghp_", "gho_", "xox", "AKIA"]
            .iter()
            .any(|p| value.starts_with(p))
}

/// How `profile list` shows the bare `script` preset, which launches nothing until a
/// profile gives it a `command`.
pub fn script_preset_view() -> ProfileView {
    ProfileView {
        name: Preset::Script.as_str().to_owned(),
        preset: Preset::Script.as_str(),
        configured: false,
        argv: Vec::new(),
        env: Vec::new(),
        model: None,
        protocol: Preset::Script.protocol().as_str(),
        inbox: InboxVia::Shell.as_str(),
        timeout_ms: DEFAULT_TIMEOUT.as_millis() as u64,
        stall_after_ms: DEFAULT_STALL_AFTER.as_millis() as u64,
    }
}

impl Profile {
    /// The agent's name for attempt `id`, checked as a name.
    pub fn agent_name(&self, attempt: crate::orch::AttemptId) -> Result<String> {
        let agent = format!("{}-{attempt}", self.name);
        check_name("launched agent", &agent).map_err(|e| {
            e.hint("the profile name is too long to name its agents; use a shorter one")
        })?;
        Ok(agent)
    }

    /// The argv for one start of the agent.
    pub fn argv(&self, vars: &Vars<'_>) -> Result<Vec<String>> {
        let vars = Vars {
            model: self.model.as_deref(),
            ..*vars
        };
        self.words.iter().map(|w| w.fill(&vars)).collect()
    }

    /// The program the agent starts as: a path with a `/` (relative ones from `base`),
    /// else looked up on `path` like a shell would. `agent_failed_to_start` when it is
    /// missing or not executable.
    pub fn program(&self, base: &Path, path: Option<&OsStr>) -> Result<PathBuf> {
        let first = self
            .words
            .first()
            .map(|w| w.display(self.model.as_deref()))
            .unwrap_or_default();
        find_program(&first, base, path).map_err(|why| {
            Error::new(
                Code::AgentFailedToStart,
                format!("profile {}: the program {first:?} {why}", self.name),
            )
            .hint(if self.custom_command {
                format!("fix git config orch.agent.{}.command", self.name)
            } else {
                format!(
                    "install {first} or point the profile at it: git config orch.agent.{}.command '/path/to/{first} …'",
                    self.name
                )
            })
            .detail("profile", self.name.clone())
            .detail("program", first.clone())
        })
    }

    pub fn view(&self) -> ProfileView {
        ProfileView {
            name: self.name.clone(),
            preset: self.preset.as_str(),
            configured: self.configured,
            argv: self
                .words
                .iter()
                .map(|w| w.display(self.model.as_deref()))
                .collect(),
            env: self
                .env
                .iter()
                .map(|(k, v)| {
                    if looks_secret(k, v) {
                        format!("{k}=***")
                    } else {
                        format!("{k}={v}")
                    }
                })
                .collect(),
            model: self.model.clone(),
            protocol: self.protocol.as_str(),
            inbox: self.inbox.as_str(),
            timeout_ms: self.timeout.as_millis() as u64,
            stall_after_ms: self.stall_after.as_millis() as u64,
        }
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn find_program(
    program: &str,
    base: &Path,
    path: Option<&OsStr>,
) -> std::result::Result<PathBuf, &'static str> {
    if program.is_empty() || program.contains('{') {
        return Err("is not a program name");
    }
    if program.contains('/') {
        let full = base.join(program);
        return match full.exists() {
            false => Err("does not exist"),
            true if is_executable(&full) => Ok(full),
            true => Err("is not executable"),
        };
    }
    let mut seen = false;
    for dir in std::env::split_paths(path.unwrap_or_default()) {
        let full = dir.join(program);
        if is_executable(&full) {
            return Ok(full);
        }
        seen |= full.exists();
    }
    Err(if seen {
        "is not executable"
    } else {
        "is not on PATH"
    })
}
