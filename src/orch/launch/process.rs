//! Sessions, process groups and signals for the supervisor, through rustix so that no
//! `unsafe` is needed. A launched agent is the leader of its own process group inside
//! the supervisor's session, so the whole tree it starts can be ended at once.

use rustix::process::{self, Pid, Signal};
use std::time::{Duration, Instant};

/// Makes the calling process the leader of a new session (and process group), so a
/// supervisor outlives the terminal and the process group of whoever started it.
pub fn detach() -> std::io::Result<()> {
    process::setsid().map(drop).map_err(std::io::Error::from)
}

fn pid(raw: i64) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// Whether any process of group `pgid` is left.
pub fn group_alive(pgid: i64) -> bool {
    pid(pgid).is_some_and(|p| process::test_kill_process_group(p).is_ok())
}

/// Sends `signal` to every process of group `pgid`; false when none was left.
pub fn signal_group(pgid: i64, signal: Signal) -> bool {
    pid(pgid).is_some_and(|p| process::kill_process_group(p, signal).is_ok())
}

/// SIGTERM to the group, then SIGKILL once `grace` has passed with any of it left.
/// `gone` says whether the group's leader has ended (the caller may be reaping it).
pub fn end_group(pgid: i64, grace: Duration, mut gone: impl FnMut(Duration) -> bool) {
    if !signal_group(pgid, Signal::TERM) {
        return;
    }
    let deadline = Instant::now() + grace;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if gone(left.min(Duration::from_millis(100))) && !group_alive(pgid) {
            return;
        }
        if left.is_zero() {
            break;
        }
    }
    signal_group(pgid, Signal::KILL);
}

/// Processes of group `pgid` in session `sid`, from /proc: checking both keeps a reused
/// pid from being mistaken for an agent that survived its supervisor.
pub fn group_members(pgid: i64, sid: i64) -> Vec<i64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|stat| group_and_session(&stat))
                == Some((pgid, sid))
        })
        .collect()
}

/// Fields 5 and 6 of /proc/PID/stat (pgrp, session), after the parenthesised name.
fn group_and_session(stat: &str) -> Option<(i64, i64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        return None;
    }
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    let session = fields.next()?.parse().ok()?;
    Some((pgrp, session))
}

/// SIGKILL to what is left of an agent whose supervisor died: only when /proc shows
/// processes of its group in the supervisor's session.
pub fn kill_orphaned_group(pgid: i64, sid: i64) -> bool {
    if group_members(pgid, sid).is_empty() {
        return false;
    }
    signal_group(pgid, Signal::KILL)
}

pub use crate::orch::model::signal_name;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_group_and_session_even_with_odd_names() {
        let stat = "123 (a (weird) name) S 1 456 789 0 -1";
        assert_eq!(group_and_session(stat), Some((456, 789)));
        assert_eq!(group_and_session("12 (zombie) Z 1 12 12 0"), None);
        assert_eq!(signal_name(9), "SIGKILL");
    }
}
