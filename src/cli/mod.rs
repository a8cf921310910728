//! The command-line edge: parse, build a context, call the library, print the result as
//! JSON or for people, and map errors to exit statuses. Nothing below this module prints.

pub mod council;
pub mod inbox;
pub mod orch;
mod render;

use crate::error::{Code, Error, Kind, Result};
use crate::repo::{AttemptMarker, Repo};
use crate::store::{Durability, Store};
use serde::Serialize;
use serde_json::{json, Value};
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use render::Table;

/// Flags every command takes, in any position.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Print exactly one JSON document on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Run as if started in DIR
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Act as agent NAME (overrides ORCH_AGENT and the worktree's attempt marker)
    #[arg(long, global = true, value_name = "NAME")]
    pub agent: Option<String>,
}

/// What the process was started with, read once at the edge: the library never reads
/// the environment.
pub struct Env {
    pub orch_agent: Option<String>,
    pub color: bool,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            orch_agent: std::env::var("ORCH_AGENT").ok().filter(|v| !v.is_empty()),
            color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        }
    }
}

/// Per-invocation state: the repository and database are opened on first use, so a
/// command pays only for what it touches.
pub struct Ctx {
    pub global: GlobalArgs,
    pub env: Env,
    repo: Option<Repo>,
    store: Option<Store>,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentitySource {
    Flag,
    Env,
    Worktree,
}

impl Ctx {
    pub fn new(global: GlobalArgs, env: Env) -> Ctx {
        Ctx {
            global,
            env,
            repo: None,
            store: None,
        }
    }

    pub fn repo(&mut self) -> Result<&Repo> {
        if self.repo.is_none() {
            let cwd = std::env::current_dir()
                .map_err(|e| Error::io("reading the current directory", e))?;
            self.repo = Some(Repo::discover(&cwd)?);
        }
        Ok(self.repo.as_ref().expect("just set"))
    }

    fn durability(&mut self) -> Result<Durability> {
        match self.repo()?.config_string("orch.durability") {
            Some(value) => Durability::parse(value.trim()),
            None => Ok(Durability::Full),
        }
    }

    pub fn store(&mut self) -> Result<&mut Store> {
        if self.store.is_none() {
            let durability = self.durability()?;
            let state_dir = self.repo()?.state_dir();
            self.store = Some(Store::open(&state_dir, durability)?);
        }
        Ok(self.store.as_mut().expect("just set"))
    }

    /// The repository and the store at once (orch reads the one while writing the other).
    pub fn repo_and_store(&mut self) -> Result<(&Repo, &mut Store)> {
        self.store()?;
        match (&self.repo, &mut self.store) {
            (Some(repo), Some(store)) => Ok((repo, store)),
            _ => Err(Error::internal("the store is open without its repository")),
        }
    }

    /// Creates the state; reports whether anything changed.
    pub fn init_store(&mut self) -> Result<bool> {
        let durability = self.durability()?;
        let state_dir = self.repo()?.state_dir();
        let (store, created) = Store::init(&state_dir, durability)?;
        self.store = Some(store);
        Ok(created)
    }

    pub fn config(&mut self, key: &str) -> Result<Option<String>> {
        Ok(self.repo()?.config_string(key))
    }

    pub fn leader(&mut self) -> Result<String> {
        let leader = self
            .config("orch.leader")?
            .unwrap_or_else(|| "leader".to_owned());
        crate::names::check_name("leader (orch.leader)", &leader)?;
        Ok(leader)
    }

    pub fn inbox_config(&mut self) -> Result<crate::inbox::Config> {
        let mut cfg = crate::inbox::Config {
            leader: self.leader()?,
            ..crate::inbox::Config::default()
        };
        if let Some(lease) = self.config("orch.defaultLease")? {
            cfg.default_lease = crate::time::parse_duration(&lease)
                .map_err(|e| e.hint("fix it: git config orch.defaultLease 30m"))?;
        }
        if let Some(max) = self.config("orch.maxClaims")? {
            cfg.max_claims = max
                .trim()
                .parse()
                .ok()
                .filter(|n: &i64| *n >= 1)
                .ok_or_else(|| {
                    Error::invalid_input(format!("orch.maxClaims is {max:?}"))
                        .hint("set a whole number ≥ 1: git config orch.maxClaims 5")
                })?;
        }
        Ok(cfg)
    }

    /// Opens the store with the inbox settings, for commands that use the inbox.
    pub fn inbox(&mut self) -> Result<crate::inbox::Inbox<'_>> {
        let cfg = self.inbox_config()?;
        Ok(crate::inbox::Inbox::new(self.store()?, cfg))
    }

    pub fn marker(&mut self) -> Result<Option<AttemptMarker>> {
        self.repo()?.attempt_marker()
    }

    /// The acting agent (SPEC §4): `--agent` > `ORCH_AGENT` > the attempt marker.
    pub fn identity(&mut self) -> Result<(String, IdentitySource)> {
        let (agent, source) = if let Some(agent) = self.global.agent.clone() {
            (agent, IdentitySource::Flag)
        } else if let Some(agent) = self.env.orch_agent.clone() {
            (agent, IdentitySource::Env)
        } else if let Some(agent) = self.marker()?.and_then(|m| m.agent) {
            (agent, IdentitySource::Worktree)
        } else {
            return Err(Error::new(Code::NoIdentity, "no agent identity")
                .hint("pass --agent NAME or set ORCH_AGENT=NAME (inside an attempt worktree addressed to one agent it is automatic)"));
        };
        crate::names::check_name("agent", &agent)?;
        Ok((agent, source))
    }

    pub fn agent(&mut self) -> Result<String> {
        self.identity().map(|(agent, _)| agent)
    }

    /// A thread id given on the command line, else the attempt worktree's thread.
    pub fn thread_id(&mut self, given: Option<i64>) -> Result<i64> {
        if let Some(id) = given {
            return Ok(id);
        }
        match self.marker()? {
            Some(marker) => Ok(marker.thread),
            None => Err(Error::new(Code::Usage, "no thread id given")
                .hint("pass the thread id, or run this inside an attempt worktree")),
        }
    }
}

/// Checks a thread's result at `done` against what the layer that made the thread
/// expects; threads without such expectations accept any object. Council review threads
/// (a `council` key in their data) must carry a valid review.
pub fn result_check(thread: &crate::inbox::Thread, result: &Value) -> Result<()> {
    crate::council::check_result(&thread.data, result)
}

/// `--body TEXT` or `--body-file FILE`, as every command that posts text takes them.
#[derive(clap::Args, Debug)]
pub struct BodyArgs {
    /// The text
    #[arg(long, value_name = "TEXT")]
    pub body: Option<String>,
    /// Read the text from FILE (- for stdin)
    #[arg(long, value_name = "FILE", conflicts_with = "body")]
    pub body_file: Option<PathBuf>,
}

impl BodyArgs {
    /// The text given, empty when neither flag was.
    pub fn read(self) -> Result<String> {
        read_body(self.body, self.body_file.as_deref())
    }
}

/// `--body`, `--body-file F` or `--body-file -` (stdin); empty when none is given.
pub fn read_body(body: Option<String>, file: Option<&Path>) -> Result<String> {
    match (body, file) {
        (Some(_), Some(_)) => Err(Error::new(
            Code::Usage,
            "give --body or --body-file, not both",
        )),
        (Some(body), None) => Ok(body),
        (None, Some(path)) => read_text_input(path, "body"),
        (None, None) => Ok(String::new()),
    }
}

/// Reads a file (or stdin for `-`) as UTF-8 text, refusing more than `limit` bytes early.
pub fn read_text_input(path: &Path, what: &str) -> Result<String> {
    const LIMIT: u64 = 4 * 1024 * 1024;
    let mut bytes = Vec::new();
    let outcome = if path == Path::new("-") {
        io::stdin().lock().take(LIMIT + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path)
            .map_err(|e| {
                Error::new(
                    Code::NotFound,
                    format!("cannot read {what} file {}: {e}", path.display()),
                )
            })?
            .take(LIMIT + 1)
            .read_to_end(&mut bytes)
    };
    outcome.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if bytes.len() as u64 > LIMIT {
        return Err(Error::new(
            Code::TooLarge,
            format!("the {what} is larger than the limit"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        Error::invalid_input(format!(
            "the {what} in {} is not UTF-8 text",
            path.display()
        ))
        .hint("attach binary files with --attach instead")
    })
}

/// `--data JSON` or `--data-file F`.
pub fn read_json_arg(
    what: &str,
    text: Option<String>,
    file: Option<&Path>,
) -> Result<Option<Value>> {
    let text = match (text, file) {
        (Some(_), Some(_)) => {
            return Err(Error::new(
                Code::Usage,
                format!("give --{what} or --{what}-file, not both"),
            ))
        }
        (Some(text), None) => text,
        (None, Some(path)) => read_text_input(path, what)?,
        (None, None) => return Ok(None),
    };
    crate::inbox::parse_json(what, &text).map(Some)
}

pub fn parse_duration_arg(text: &str) -> Result<Duration> {
    crate::time::parse_duration(text)
}

/// `--timeout D` as a deadline from now; none without the flag.
pub fn deadline(timeout: Option<&str>) -> Result<Option<Instant>> {
    timeout
        .map(|t| Ok(Instant::now() + parse_duration_arg(t)?))
        .transpose()
}

/// Where output goes: one JSON document, or text for people.
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints a command's result: `{"ok": true, "data": …}` or the human text.
    pub fn success(&self, data: &impl Serialize, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            // Serialized straight from `data`: no intermediate `Value` tree, which for a
            // large status is most of the command's time.
            #[derive(Serialize)]
            struct Doc<'a, T: Serialize> {
                ok: bool,
                data: &'a T,
            }
            print_line(&serde_json::to_string(&Doc { ok: true, data })?)
        } else {
            let text = human();
            if text.is_empty() {
                return Ok(());
            }
            print_text(&text)
        }
    }

    /// One line of a stream (`watch`, `log --follow`).
    pub fn stream_item(&self, item: &impl Serialize, human: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            print_line(&serde_json::to_string(item)?)
        } else {
            print_text(&human())
        }
    }
}

fn write_stdout(text: &str) -> Result<()> {
    write_stdout_bytes(text.as_bytes())
}

/// Writes raw bytes (an artifact) to stdout; a reader that left is [`Kind::BrokenPipe`].
pub fn write_stdout_bytes(bytes: &[u8]) -> Result<()> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Error::output)
}

pub fn print_line(line: &str) -> Result<()> {
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    write_stdout(&text)
}

pub fn print_text(text: &str) -> Result<()> {
    if text.ends_with('\n') {
        write_stdout(text)
    } else {
        print_line(text)
    }
}

/// Prints `err` (JSON on stdout under `--json`, text on stderr otherwise) and returns
/// the exit status.
pub fn report_error(err: &Error, json_mode: bool) -> i32 {
    if err.kind() == Kind::BrokenPipe {
        return 0;
    }
    if json_mode {
        let doc = json!({"ok": false, "error": {
            "code": err.code.as_str(), "message": err.message, "hint": err.hint, "details": err.details,
        }});
        // Streams end with this line too, so it always goes to stdout.
        let _ = print_line(&doc.to_string());
    } else {
        let mut stderr = io::stderr().lock();
        let _ = writeln!(stderr, "error: {} [{}]", err.message, err.code.as_str());
        if let Some(hint) = &err.hint {
            let _ = writeln!(stderr, "hint: {hint}");
        }
    }
    err.code.exit_status()
}

/// Parses argv with clap; a usage error becomes our `usage` error (exit 2, JSON when
/// `--json` is among the arguments), help and version print as usual.
pub fn parse_args<P: clap::Parser>(args: Vec<OsString>) -> std::result::Result<P, i32> {
    match P::try_parse_from(&args) {
        Ok(parsed) => Ok(parsed),
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                return Err(
                    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        2
                    } else {
                        0
                    },
                );
            }
            let json_mode = args.iter().any(|a| a == "--json");
            if json_mode {
                let message = err.kind().to_string();
                let rendered = err.render().to_string();
                let detail = rendered
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_owned();
                let error = Error::new(
                    Code::Usage,
                    if detail.is_empty() { message } else { detail },
                )
                .hint("see --help for the command's usage");
                Err(report_error(&error, true))
            } else {
                let _ = err.print();
                Err(2)
            }
        }
    }
}

/// Runs a parsed command: `-C`, the context, the call, error reporting. Returns the exit
/// status for the binary to exit with.
pub fn execute(global: GlobalArgs, run: impl FnOnce(&mut Ctx, &Out) -> Result<()>) -> i32 {
    let out = Out { json: global.json };
    if let Some(dir) = &global.dir {
        if let Err(e) = std::env::set_current_dir(dir) {
            let err = Error::new(
                Code::NotFound,
                format!("cannot change to {}: {e}", dir.display()),
            );
            return report_error(&err, out.json);
        }
    }
    let mut ctx = Ctx::new(global, Env::from_process());
    match run(&mut ctx, &out) {
        Ok(()) => 0,
        Err(err) => report_error(&err, out.json),
    }
}

/// The whole of `git-inbox`: returns the exit status.
pub fn inbox_main(args: Vec<OsString>) -> i32 {
    let parsed: self::inbox::InboxCli = match parse_args(args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    execute(parsed.global, |ctx, out| {
        self::inbox::run(ctx, out, parsed.command)
    })
}

/// The whole of `git-orch`: returns the exit status.
pub fn orch_main(args: Vec<OsString>) -> i32 {
    let parsed: orch::OrchCli = match parse_args(args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    execute(parsed.global, |ctx, out| {
        orch::run(ctx, out, parsed.command)
    })
}

#[cfg(test)]
mod help_reference {
    //! The whole `--help` tree of both binaries, snapshotted so that any change to the
    //! command-line surface shows up in review. Regenerate with
    //! `UPDATE_SNAPSHOTS=1 cargo test --lib help_reference`.

    use clap::CommandFactory;

    fn render(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_owned()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        out.push_str(&format!(
            "## {name}\n\n```\n{}\n```\n\n",
            cmd.render_long_help().to_string().trim_end()
        ));
        let mut subs: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .cloned()
            .collect();
        for sub in &mut subs {
            render(sub, &name, out);
        }
    }

    #[test]
    fn the_help_tree_matches_the_snapshot() {
        let mut text = String::from("# Command-line reference (generated from --help)\n\n");
        for mut cmd in [
            super::inbox::InboxCli::command(),
            super::orch::OrchCli::command(),
        ] {
            cmd.build();
            render(&mut cmd.term_width(100), "", &mut text);
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots/cli-reference.md");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(stored == text, "the --help tree changed; review it and run UPDATE_SNAPSHOTS=1 cargo test --lib help_reference");
    }
}
