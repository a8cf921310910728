//! The rows and events of landing, each in the transaction of the step it records:
//! `task.landed` once the target holds a task's head, `task.land_rework` (and the task
//! `done → blocked`) when its result is sent back.

use super::plan::Candidate;
use crate::error::Result;
use crate::orch::changes::{Act, Changes};
use crate::orch::status::TaskStatus;
use crate::orch::tasks::{self, Transition};
use crate::store::events::NewEvent;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// How a head reached the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Merge,
    FastForward,
    /// Already there (merged by hand, or by a land that died before recording it).
    Contained,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Merge => "merge",
            How::FastForward => "fast_forward",
            How::Contained => "contained",
        }
    }
}

/// One task whose head the target now holds.
#[derive(Debug, Clone)]
pub struct Landing {
    pub candidate: Candidate,
    /// The target commit that brought it in.
    pub commit: String,
    pub how: How,
    /// The check's result, when one ran.
    pub check: Option<Value>,
}

/// Records `landings` on the target `into` (`refs/heads/…`); a task recorded already
/// (by a land that raced this one) is left as it was. Returns the keys recorded.
pub fn landed(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    into: &str,
    landings: &[Landing],
) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    for l in landings {
        let c = &l.candidate;
        let n = conn
            .prepare_cached(
                "UPDATE tasks SET landed_at = ?3, landed_commit = ?4, updated_at = ?3
                 WHERE run = ?1 AND key = ?2 AND landed_at IS NULL",
            )?
            .execute(params![run, c.key, act.now, l.commit])?;
        if n == 0 {
            continue;
        }
        changes.emit(
            conn,
            act,
            NewEvent {
                kind: "task.landed",
                run: Some(run),
                task: Some(&c.key),
                attempt: Some(c.attempt.0),
                data: Some(json!({
                    "commit": l.commit, "into": into, "head": c.head,
                    "branch": c.branch, "how": l.how.as_str(), "check": l.check,
                })),
                ..NewEvent::default()
            },
        )?;
        keys.push(c.key.clone());
    }
    Ok(keys)
}

/// Why a result is sent back, and what the rework's brief says about it.
#[derive(Debug, Clone)]
pub struct SendBack {
    pub candidate: Candidate,
    /// `land_conflict` or `land_check`.
    pub reason: &'static str,
    pub paths: Option<Vec<String>>,
    pub output: Option<Vec<String>>,
}

impl SendBack {
    /// The note the rework attempt's brief carries.
    pub fn brief(&self, into: &str, base: &str) -> String {
        let c = &self.candidate;
        let branch = c.branch.as_deref().unwrap_or(&c.head);
        let mut text = match self.reason {
            "land_conflict" => format!(
                "Rework for landing: your previous result ({branch}, {}) conflicts with {into}.\n\
                 This attempt starts from the integration tip {base}. Merge your previous \
                 result into it (`git merge {}`), resolve the conflicts, and commit.\n\
                 Conflicting paths:\n",
                short(&c.head),
                c.head
            ),
            _ => format!(
                "Rework for landing: your previous result ({branch}, {}) merged onto {into} \
                 fails the land check.\n\
                 This attempt starts from the integration tip {base}. Merge your previous \
                 result into it (`git merge {}`), make the check pass, and commit.\n\
                 The check's last lines:\n",
                short(&c.head),
                c.head
            ),
        };
        for line in self.paths.iter().chain(self.output.iter()).flatten() {
            text.push_str("    ");
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// Sends a done task back: `done → blocked` with `blocked_reason` the reason and a detail
/// naming the paths or output, the integration tip `base` the rework starts from and the
/// brief it carries; dependents that had not started go back to `pending`. Returns false
/// when the task is no longer a done, unlanded task (a racing land moved it).
pub fn send_back(
    conn: &Connection,
    act: &Act<'_>,
    changes: &mut Changes,
    run: &str,
    into: &str,
    base: &str,
    back: &SendBack,
) -> Result<bool> {
    let c = &back.candidate;
    let Some(task) = tasks::find_row(conn, run, &c.key)? else {
        return Ok(false);
    };
    let landed: bool = conn
        .prepare_cached("SELECT landed_at IS NOT NULL FROM tasks WHERE run = ?1 AND key = ?2")?
        .query_row(params![run, c.key], |r| r.get(0))?;
    if task.status != TaskStatus::Done || landed {
        return Ok(false);
    }
    let detail = json!({
        "paths": back.paths, "output": back.output, "head": c.head, "attempt": c.attempt,
        "branch": c.branch, "into": into, "base": base, "brief": back.brief(into, base),
    });
    tasks::set_status(
        conn,
        act,
        changes,
        run,
        &c.key,
        Transition::new(TaskStatus::Done, TaskStatus::Blocked)
            .by(Some(c.attempt))
            .blocked(back.reason, &detail),
    )?;
    changes.emit(
        conn,
        act,
        NewEvent {
            kind: "task.land_rework",
            run: Some(run),
            task: Some(&c.key),
            attempt: Some(c.attempt.0),
            data: Some(json!({
                "reason": back.reason, "paths": back.paths, "output": back.output,
                "head": c.head, "into": into, "base": base,
            })),
            ..NewEvent::default()
        },
    )?;
    let ready: Vec<String> = conn
        .prepare_cached(
            "SELECT t.key FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.task
             WHERE d.run = ?1 AND d.depends_on = ?2 AND t.status = 'ready' ORDER BY t.id",
        )?
        .query_map(params![run, c.key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for dependent in ready {
        tasks::set_status(
            conn,
            act,
            changes,
            run,
            &dependent,
            Transition::new(TaskStatus::Ready, TaskStatus::Pending),
        )?;
    }
    Ok(true)
}
