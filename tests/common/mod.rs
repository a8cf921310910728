//! The one harness: hermetic temp repositories and the real binaries, so a test reads
//! like what a user types.

#![allow(dead_code)]

#[path = "../../src/repo/test_env.rs"]
mod test_env;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const INBOX: &str = env!("CARGO_BIN_EXE_git-inbox");
pub const ORCH: &str = env!("CARGO_BIN_EXE_git-orch");

/// A temp dir holding `home/` and a repository `repo/` with one commit.
pub struct TestEnv {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub repo: PathBuf,
}

impl TestEnv {
    /// A fresh repository with one commit, not yet initialized for git-orch.
    pub fn bare_repo() -> TestEnv {
        Self::bare_repo_at(Path::new("repo"))
    }

    /// [`TestEnv::bare_repo`] with the repository at `path` under the temp dir.
    pub fn bare_repo_at(path: &Path) -> TestEnv {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().unwrap();
        let home = root.join("home");
        let repo = root.join(path);
        std::fs::create_dir_all(&home).unwrap();
        std::fs::create_dir_all(&repo).unwrap();
        let env = TestEnv { tmp, home, repo };
        env.git(&["init", "-q", "-b", "main"]);
        std::fs::write(env.repo.join("README.md"), "hello\n").unwrap();
        env.git(&["add", "README.md"]);
        env.git(&["commit", "-q", "-m", "initial"]);
        env
    }

    /// A fresh repository with `git orch init` done.
    pub fn new() -> TestEnv {
        let env = Self::bare_repo();
        env.orch().arg("init").ok();
        env
    }

    pub fn root(&self) -> PathBuf {
        self.tmp.path().canonicalize().unwrap()
    }

    pub fn hermetic(&self, cmd: &mut Command) {
        for key in test_env::inherited_to_remove() {
            cmd.env_remove(key);
        }
        cmd.envs(test_env::hermetic_vars(&self.home));
    }

    /// Runs git in the repository; panics on failure. Returns trimmed stdout.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.repo, args)
    }

    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        self.hermetic(&mut cmd);
        let out = cmd
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `git ARGS…` with both binaries on PATH, so `git inbox …` runs ours as git would.
    pub fn git_with_tools(&self) -> Cmd {
        let bins = Path::new(INBOX).parent().unwrap().to_path_buf();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![bins];
        dirs.extend(std::env::split_paths(&path));
        let mut cmd = self.cmd("git");
        cmd.cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        cmd
    }

    pub fn inbox(&self) -> Cmd {
        self.cmd(INBOX)
    }

    pub fn orch(&self) -> Cmd {
        self.cmd(ORCH)
    }

    fn cmd(&self, program: &str) -> Cmd {
        let mut cmd = Command::new(program);
        self.hermetic(&mut cmd);
        cmd.current_dir(&self.repo).stdin(Stdio::null());
        Cmd { cmd, stdin: None }
    }

    pub fn state_db(&self) -> PathBuf {
        self.repo.join(".git/orch/state.db")
    }

    /// A connection on the state database, to check what a command did or did not write.
    pub fn db(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.state_db()).expect("open state.db");
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        conn
    }

    /// The pid of the supervisor that launched attempt `attempt`.
    pub fn supervisor_pid(&self, attempt: i64) -> i64 {
        self.db()
            .query_row(
                "SELECT supervisor_pid FROM launches WHERE attempt_id = ?1",
                [attempt],
                |r| r.get(0),
            )
            .unwrap()
    }

    /// Rows in one table of the state database.
    pub fn count(&self, table: &str) -> i64 {
        self.db()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// `git inbox send` from `from` to `to` about `subject`, for a test to add flags to.
    pub fn sending(&self, from: &str, to: &str, subject: &str) -> Cmd {
        self.inbox()
            .agent(from)
            .args(["send", "--to", to, "--subject", subject])
    }

    /// `git inbox send` from `from` to `to`; returns the new thread's id.
    pub fn send(&self, from: &str, to: &str, subject: &str) -> i64 {
        self.sending(from, to, subject).ok()["thread"]["id"]
            .as_i64()
            .expect("thread id")
    }

    /// `git inbox send --kind task` to `to`; returns the new thread's id.
    pub fn task(&self, from: &str, to: &str, subject: &str) -> i64 {
        self.sending(from, to, subject)
            .args(["--kind", "task"])
            .ok()["thread"]["id"]
            .as_i64()
            .expect("thread id")
    }

    /// `git inbox show ID` as `data`.
    pub fn show(&self, id: i64) -> Value {
        self.inbox()
            .agent("observer")
            .args(["show", &id.to_string()])
            .ok()
    }
}

/// A command about to run; builder methods mirror what a user types.
pub struct Cmd {
    pub cmd: Command,
    stdin: Option<Vec<u8>>,
}

/// What a command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// `data` of a successful `--json` run.
    pub fn data(&self) -> Value {
        let doc = self.doc();
        assert_eq!(
            self.code, 0,
            "expected success, got {doc}\nstderr: {}",
            self.stderr
        );
        assert_eq!(doc["ok"], true, "{doc}");
        doc["data"].clone()
    }

    /// `error` of a failed `--json` run, after checking its code and exit status.
    pub fn error(&self, code: &str, exit: i32) -> Value {
        let doc = self.doc();
        assert_eq!(doc["ok"], false, "expected failure {code}, got {doc}");
        assert_eq!(doc["error"]["code"], code, "{doc}");
        assert_eq!(self.code, exit, "exit status for {code}: {doc}");
        doc["error"].clone()
    }

    /// Every stdout line as JSON (streaming commands print one object per line).
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("not a JSON line ({e}): {l:?}\nstderr: {}", self.stderr)
                })
            })
            .collect()
    }

    /// The parsed `--json` document.
    pub fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON document ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Cmd {
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// `--agent NAME`.
    pub fn agent(self, name: &str) -> Self {
        self.args(["--agent", name])
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    pub fn run(mut self) -> Run {
        use std::io::Write;
        let out: Output = if let Some(bytes) = self.stdin.take() {
            self.cmd
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = self.cmd.spawn().expect("spawn");
            child.stdin.take().unwrap().write_all(&bytes).unwrap();
            child.wait_with_output().unwrap()
        } else {
            self.cmd.output().expect("spawn")
        };
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let mut argv = vec![self.cmd.get_program().to_string_lossy().into_owned()];
        argv.extend(
            self.cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned()),
        );
        check_against_reference(&argv, &run.stdout);
        run
    }

    /// Runs with `--json`, asserts success, returns `data`.
    pub fn ok(self) -> Value {
        let run = self.arg("--json").run();
        let doc = run.doc();
        assert_eq!(
            run.code, 0,
            "expected success, got {doc}\nstderr: {}",
            run.stderr
        );
        assert_eq!(doc["ok"], true, "{doc}");
        doc["data"].clone()
    }

    /// Runs with `--json`, asserts the failure's code and exit status, returns `error`.
    pub fn fails(self, code: &str, exit: i32) -> Value {
        let run = self.arg("--json").run();
        let doc = run.doc();
        assert_eq!(doc["ok"], false, "expected failure {code}, got {doc}");
        assert_eq!(doc["error"]["code"], code, "{doc}");
        assert_eq!(run.code, exit, "exit status for {code}: {doc}");
        doc["error"].clone()
    }

    /// Runs and returns the raw output (for bytes on stdout).
    pub fn raw(mut self) -> Output {
        self.cmd.output().expect("spawn")
    }

    /// Starts with `--json` without waiting, with piped output; end it with [`finish`].
    pub fn spawn_json(self) -> std::process::Child {
        self.arg("--json").spawn()
    }

    /// Starts without waiting, with piped output.
    pub fn spawn(mut self) -> std::process::Child {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.spawn().expect("spawn")
    }
}

/// Every `--json` document (or line of a stream) a test sees must be what
/// docs/reference.md says the command prints: the registry in `src/reference/`.
fn check_against_reference(argv: &[String], stdout: &str) {
    if !argv.iter().any(|a| a == "--json") {
        return;
    }
    let docs: Vec<Value> = match serde_json::from_str::<Value>(stdout) {
        Ok(doc) => vec![doc],
        Err(_) => match stdout
            .lines()
            .map(serde_json::from_str::<Value>)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(lines) => lines,
            Err(_) => return, // output for people
        },
    };
    for doc in docs.iter().filter(|d| d.is_object()) {
        if let Err(diff) = git_orch::reference::json::check_document(argv, doc) {
            panic!("{argv:?} printed what docs/reference.md does not say:\n{diff}\n{doc}");
        }
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes (then panics with `what`).
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::park_timeout(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Waits for a spawned command to end (draining its output meanwhile); kills it and panics
/// when it outlives `timeout`.
pub fn finish(mut child: std::process::Child, timeout: Duration) -> Run {
    use std::io::Read;
    fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            panic!("command still running after {timeout:?}; stdout so far: {out:?}");
        }
        std::thread::park_timeout(Duration::from_millis(5));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
    }
}

/// Waits until a spawned command has the state database open, i.e. it is (about to be)
/// blocked in its wait. Only a hint that makes tests exercise the wake-up path: the
/// commands under test must be correct whichever side of the race they land on.
pub fn wait_until_db_open(child: &std::process::Child) {
    let fd_dir = PathBuf::from(format!("/proc/{}/fd", child.id()));
    if !fd_dir.exists() {
        return;
    }
    let stat = PathBuf::from(format!("/proc/{}/stat", child.id()));
    wait_until(
        "the command to open the database",
        Duration::from_secs(10),
        || {
            // A command that already ended (a zombie) will never open it: let `finish` report.
            let ended = std::fs::read_to_string(&stat).map_or(true, |s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            });
            if ended {
                return Some(());
            }
            let entries = std::fs::read_dir(&fd_dir).ok()?;
            entries
                .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .any(|target| target.to_string_lossy().ends_with("state.db-shm"))
                .then_some(())
        },
    );
}
