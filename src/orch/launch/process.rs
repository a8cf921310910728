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
    live_processes()
        .filter(|(_, group, session)| (*group, *session) == (pgid, sid))
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Every process that is not a zombie, as (pid, pgrp, session).
fn live_processes() -> impl Iterator<Item = (i64, i64, i64)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok())
        .filter_map(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
            group_and_session(&stat).map(|(group, session)| (p, group, session))
        })
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

/// SIGKILL to everything left of the session of supervisor `sid`, which is dead: its
/// agent's process group, and anything else it started (`orch.setup`, or an agent it
/// started but had not yet recorded). A live process `sid` means the number now leads
/// someone else's session, so nothing is touched; while any member of the old session
/// lives, the kernel does not hand its number out again. Returns whether anything was
/// left.
pub fn kill_orphaned_session(sid: i64) -> bool {
    let leader_alive = std::fs::read_to_string(format!("/proc/{sid}/stat"))
        .ok()
        .and_then(|stat| group_and_session(&stat))
        .is_some();
    if leader_alive {
        return false;
    }
    let mut found = false;
    // A member may fork between the look and the kill: look again until none is left
    // (bounded: SIGKILL cannot be caught, so each pass leaves fewer).
    for _ in 0..50 {
        let groups: std::collections::BTreeSet<i64> = live_processes()
            .filter(|(_, _, session)| *session == sid)
            .map(|(_, group, _)| group)
            .collect();
        if groups.is_empty() {
            break;
        }
        found = true;
        for group in groups {
            // A process group never spans sessions, so the whole group is the dead one's.
            signal_group(group, Signal::KILL);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    found
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
