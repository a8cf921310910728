//! What a land works on: the target branch, and the candidates (done code tasks not yet
//! landed) in dependency order, then by completion time.

use crate::error::{Code, Error, Result};
use crate::orch::model::AttemptId;
use crate::orch::runs::RunRow;
use crate::orch::status::TaskStatus;
use crate::orch::tasks;
use crate::repo::{AttemptName, Repo};
use rusqlite::{params, Connection};
use std::collections::{HashMap, HashSet};

fn bad_target(message: String, reason: &str, given: &str) -> Error {
    Error::new(Code::BadRef, message)
        .hint("pass the branch to land on with --into BRANCH (e.g. --into main)")
        .detail("into", given)
        .detail("reason", reason)
}

/// The branch to land on (without `refs/heads/`): `into`, else the run's base when it
/// names a branch, else the branch checked out in the main worktree. A missing branch,
/// something that is not a branch (a tag, a sha, a remote branch) and an attempt's
/// branch are `bad_ref` (exit 6).
pub fn resolve_target(repo: &Repo, run: &RunRow, into: Option<&str>) -> Result<String> {
    if let Some(given) = into {
        let branch = given.strip_prefix("refs/heads/").unwrap_or(given);
        crate::repo::check_ref_text(branch)?;
        if AttemptName::from_branch(branch).is_some() {
            return Err(bad_target(
                format!("{branch} is an attempt's branch; land onto the branch the work is for"),
                "attempt_branch",
                given,
            ));
        }
        if repo.branch_tip(branch)?.is_some() {
            return Ok(branch.to_owned());
        }
        let other = repo.resolve_commit(given).is_ok();
        return Err(bad_target(
            if other {
                format!("{given} is not a branch (a tag, a commit or a remote branch)")
            } else {
                format!("there is no branch {given}")
            },
            if other { "not_a_branch" } else { "missing" },
            given,
        ));
    }
    if let Some(base) = &run.base_ref {
        let branch = base.strip_prefix("refs/heads/").unwrap_or(base);
        if AttemptName::from_branch(branch).is_none() && repo.branch_tip(branch)?.is_some() {
            return Ok(branch.to_owned());
        }
    }
    match repo.main_branch()? {
        Some(branch) if AttemptName::from_branch(&branch).is_none() => Ok(branch),
        _ => Err(bad_target(
            "no target: the run's base is not a branch and the main worktree has no branch checked out".into(),
            "no_default",
            "",
        )),
    }
}

/// A done code task whose result is not on the target yet.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub key: String,
    pub title: String,
    pub attempt: AttemptId,
    pub n: i64,
    pub agent: Option<String>,
    pub branch: Option<String>,
    /// Its latest succeeded attempt's head (its base when it made no commits).
    pub head: String,
    /// Code tasks it depends on.
    pub deps: Vec<String>,
}

/// The candidates in landing order, and the code dependencies that have landed.
pub struct Plan {
    pub candidates: Vec<Candidate>,
    pub landed: HashSet<String>,
}

/// Reads the candidates of `run` (only `only` when given: each must exist, be a code
/// task and be done) in dependency order, then completion time, then creation.
pub fn candidates(conn: &Connection, run: &str, only: &[String]) -> Result<Plan> {
    for key in only {
        let task = tasks::get_row(conn, run, key)?;
        if task.kind != "code" {
            return Err(Error::invalid_input(format!(
                "task {key} is a {} task; only code tasks land",
                task.kind
            ))
            .detail("task", key.as_str()));
        }
        if task.status != TaskStatus::Done && !task.is_land_rework() {
            return Err(crate::orch::model::invalid_transition(format!(
                "task {key} is {}, not done",
                task.status
            ))
            .hint("a task lands once it is done; see `git orch status`")
            .detail("task", key.as_str())
            .detail("status", task.status));
        }
    }
    let mut rows: Vec<(Candidate, i64, i64)> = conn
        .prepare_cached(
            "SELECT t.key, t.title, a.id, a.n, a.agent, a.branch, coalesce(a.head_sha, a.base_sha),
                    coalesce(a.ended_at, 0), t.id
             FROM tasks t JOIN attempts a ON a.run = t.run AND a.task = t.key
             WHERE t.run = ?1 AND t.kind = 'code' AND t.status = 'done' AND t.landed_at IS NULL
               AND a.n = (SELECT max(n) FROM attempts
                          WHERE run = t.run AND task = t.key AND status = 'succeeded')",
        )?
        .query_map([run], |r| {
            Ok((
                Candidate {
                    key: r.get(0)?,
                    title: r.get(1)?,
                    attempt: r.get(2)?,
                    n: r.get(3)?,
                    agent: r.get(4)?,
                    branch: r.get(5)?,
                    head: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
                    deps: Vec::new(),
                },
                r.get(7)?,
                r.get(8)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.retain(|(c, _, _)| !c.head.is_empty() && (only.is_empty() || only.contains(&c.key)));
    let mut deps: HashMap<String, Vec<String>> = HashMap::new();
    let mut landed = HashSet::new();
    let mut stmt = conn.prepare_cached(
        "SELECT d.task, d.depends_on, t.landed_at IS NOT NULL
         FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.depends_on
         WHERE d.run = ?1 AND t.kind = 'code' ORDER BY d.task, d.depends_on",
    )?;
    for row in stmt.query_map(params![run], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?))
    })? {
        let (task, dep, dep_landed): (String, String, bool) = row?;
        if dep_landed {
            landed.insert(dep.clone());
        }
        deps.entry(task).or_default().push(dep);
    }
    for (c, _, _) in &mut rows {
        c.deps = deps.remove(&c.key).unwrap_or_default();
    }
    Ok(Plan {
        candidates: order(rows),
        landed,
    })
}

/// The keys of `run`'s candidates in landing order: what a land would try now (drive
/// `--land` lands until this is empty).
pub fn unlanded(conn: &Connection, run: &str) -> Result<Vec<String>> {
    Ok(candidates(conn, run, &[])?
        .candidates
        .into_iter()
        .map(|c| c.key)
        .collect())
}

/// Dependencies first (among the candidates), then completion time, then creation.
fn order(mut rows: Vec<(Candidate, i64, i64)>) -> Vec<Candidate> {
    rows.sort_by_key(|(_, ended, id)| (*ended, *id));
    let keys: HashSet<String> = rows.iter().map(|(c, _, _)| c.key.clone()).collect();
    let mut placed: HashSet<String> = HashSet::new();
    let mut out = Vec::with_capacity(rows.len());
    let mut left: Vec<Candidate> = rows.into_iter().map(|(c, _, _)| c).collect();
    while !left.is_empty() {
        // The earliest-finished candidate whose candidate dependencies are all placed.
        let next = left
            .iter()
            .position(|c| {
                c.deps
                    .iter()
                    .all(|d| !keys.contains(d) || placed.contains(d))
            })
            // The DAG has no cycles; should one appear, completion order still holds.
            .unwrap_or(0);
        let c = left.remove(next);
        placed.insert(c.key.clone());
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(key: &str, deps: &[&str]) -> Candidate {
        Candidate {
            key: key.into(),
            title: key.into(),
            attempt: AttemptId(1),
            n: 1,
            agent: None,
            branch: None,
            head: "x".into(),
            deps: deps.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn dependencies_first_then_completion_time() {
        let rows = vec![
            (cand("late", &[]), 30, 1),
            (cand("child", &["parent"]), 10, 2),
            (cand("parent", &[]), 20, 3),
            (cand("outside", &["not-a-candidate"]), 5, 4),
        ];
        let keys: Vec<String> = order(rows).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["outside", "parent", "child", "late"]);
    }
}
