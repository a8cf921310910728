//! The land check (SPEC §13): a command (argv, never a shell) run in a temporary
//! worktree at a candidate's merged tip, with a wall-clock limit. It runs in a process
//! group of its own so that a timeout ends everything it started, not just its leader.

use crate::error::{Error, Result};
use crate::repo::git::LOCAL_ENV_VARS;
use rustix::process::{kill_process_group, Pid, Signal};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The check's default wall-clock limit (`orch.land.checkTimeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How much of a failing check's output goes into the rework brief.
pub const TAIL_LINES: usize = 100;
/// After SIGTERM, how long the group has before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

/// A check as configured: the argument vector and its limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub argv: Vec<String>,
    pub timeout: Duration,
}

impl Check {
    /// Splits `text` like a POSIX shell splits words (quotes, backslashes), without
    /// running one: no expansion, no pipes.
    pub fn parse(text: &str, timeout: Duration) -> Result<Check> {
        let argv = shlex::split(text).ok_or_else(|| {
            Error::invalid_input(format!("the check command {text:?} has an unclosed quote"))
                .hint("quote it like a shell would: --check 'cargo test --quiet'")
        })?;
        if argv.is_empty() {
            return Err(Error::invalid_input("the check command is empty")
                .hint("e.g. --check 'cargo test', or unset orch.land.check"));
        }
        Ok(Check { argv, timeout })
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: bool,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Its last [`TAIL_LINES`] lines of stdout and stderr, interleaved as written.
    pub tail: Vec<String>,
    pub duration_ms: u64,
}

/// Runs the check in `dir`. A program that cannot be started is an error (a broken
/// check must not send every candidate back); anything it does once started is an
/// [`Outcome`].
pub fn run(check: &Check, dir: &Path) -> Result<Outcome> {
    let mut log = tempfile::tempfile().map_err(|e| Error::io("creating the check's log", e))?;
    let clone = || {
        log.try_clone()
            .map_err(|e| Error::io("opening the check's log", e))
    };
    let mut cmd = Command::new(&check.argv[0]);
    cmd.args(&check.argv[1..])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(clone()?)
        .stderr(clone()?)
        .process_group(0);
    // A land started from a hook must not hand the hook's repository to the check.
    for key in LOCAL_ENV_VARS {
        cmd.env_remove(key);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|err| {
        let why = match err.kind() {
            std::io::ErrorKind::NotFound => "not found",
            std::io::ErrorKind::PermissionDenied => "not executable",
            _ => "cannot be started",
        };
        Error::invalid_input(format!(
            "the land check {:?} {why}: {err}",
            check.argv[0]
        ))
        .hint("fix --check or orch.land.check (argv, no shell; a relative path is relative to the repository's top)")
        .detail("argv", check.argv.clone())
    })?;
    let pgid = Pid::from_child(&child);
    let deadline = started + check.timeout;
    let mut pause = Duration::from_millis(2);
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Error::io("waiting for the land check", e))?
        {
            break status;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            let _ = kill_process_group(pgid, Signal::TERM);
            let grace_end = Instant::now() + GRACE;
            loop {
                if child.try_wait().ok().flatten().is_some() || Instant::now() >= grace_end {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = kill_process_group(pgid, Signal::KILL);
            break child
                .wait()
                .map_err(|e| Error::io("waiting for the land check", e))?;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    // Whatever it left running in the background goes with it: the worktree is removed next.
    let _ = kill_process_group(pgid, Signal::KILL);
    log.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io("reading the check's log", e))?;
    let mut bytes = Vec::new();
    log.read_to_end(&mut bytes)
        .map_err(|e| Error::io("reading the check's log", e))?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let mut tail: Vec<String> = lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect();
    if timed_out {
        tail.push(format!(
            "git-orch: the check ran out of time after {}s and was killed",
            check.timeout.as_secs()
        ));
        if tail.len() > TAIL_LINES {
            tail.remove(0);
        }
    }
    Ok(Outcome {
        passed: status.success() && !timed_out,
        exit_code: status.code(),
        signal: status.signal(),
        timed_out,
        tail,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// `orch.land.check` / `--check` missing entirely is fine (no check); a value that is
/// there must parse.
pub fn from_config(text: Option<&str>, timeout: Option<&str>) -> Result<Option<Check>> {
    let timeout = match timeout {
        Some(t) => crate::time::parse_duration(t).map_err(|e| {
            e.hint("fix it: git config orch.land.checkTimeout 30m")
                .detail("key", "orch.land.checkTimeout")
        })?,
        None => DEFAULT_TIMEOUT,
    };
    match text {
        None => Ok(None),
        Some(t) if t.trim().is_empty() => Ok(None),
        Some(t) => Check::parse(t, timeout).map(Some),
    }
}

impl From<&Outcome> for serde_json::Value {
    fn from(o: &Outcome) -> Self {
        serde_json::json!({
            "passed": o.passed, "exit_code": o.exit_code, "signal": o.signal,
            "timed_out": o.timed_out, "duration_ms": o.duration_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    fn check(argv: &[&str], timeout: Duration) -> Check {
        Check {
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            timeout,
        }
    }

    #[test]
    fn passes_fails_and_keeps_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run(&check(&["true"], DEFAULT_TIMEOUT), dir.path()).unwrap();
        assert!(ok.passed);
        let script = "for i in $(seq 1 150); do echo line $i; done; echo oops >&2; exit 3";
        let bad = run(&check(&["sh", "-c", script], DEFAULT_TIMEOUT), dir.path()).unwrap();
        assert!(!bad.passed);
        assert_eq!(bad.exit_code, Some(3));
        assert_eq!(bad.tail.len(), TAIL_LINES);
        assert_eq!(bad.tail.last().unwrap(), "oops");
        assert_eq!(bad.tail[0], "line 52");
    }

    #[test]
    fn a_hanging_check_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let started = Instant::now();
        let out = run(
            &check(&["sh", "-c", &script], Duration::from_millis(300)),
            dir.path(),
        )
        .unwrap();
        assert!(out.timed_out && !out.passed);
        assert!(started.elapsed() < Duration::from_secs(10));
        let child: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The background child went with the group (a zombie at worst). SIGKILL is only
        // acted on when the child is next scheduled, so wait for that, with a deadline.
        let gone = |stat: &str| stat.is_empty() || stat.split_whitespace().nth(2) == Some("Z");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut stat = String::new();
        while Instant::now() < deadline {
            stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            if gone(&stat) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(gone(&stat), "{stat}");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_failure() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &check(&["no-such-check-program-x"], DEFAULT_TIMEOUT),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(err.code, Code::InvalidInput);
        assert!(err.message.contains("not found"), "{}", err.message);
        assert!(Check::parse("  ", DEFAULT_TIMEOUT).is_err());
        assert!(Check::parse("a 'b", DEFAULT_TIMEOUT).is_err());
        assert_eq!(
            Check::parse("sh -c 'exit 1'", DEFAULT_TIMEOUT)
                .unwrap()
                .argv,
            ["sh", "-c", "exit 1"]
        );
    }
}
