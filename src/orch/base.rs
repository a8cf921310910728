//! Where an attempt starts from: the choice made at allocation, before anything is
//! resolved, and the dependencies' results it may start from.

use crate::error::Result;
use rusqlite::{params, Connection};

/// Where an attempt starts from, in SPEC §7's order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseChoice {
    /// `--base` on dispatch, or the task's base: a revspec as given.
    Given(String),
    /// The results of the code tasks a code task depends on (done ones, by key).
    Deps(Vec<DepHead>),
    /// The run's base.
    Run(String),
    /// Nothing named one: `HEAD`, where strict mode applies.
    Head,
}

/// A dependency's result: its succeeded attempt's branch and the head recorded for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepHead {
    pub task: String,
    pub branch: Option<String>,
    pub sha: String,
}

/// The results of the done code tasks `key` depends on, by key: each one's latest
/// succeeded attempt, its branch and its head (its base when it made no commits).
pub(crate) fn dep_heads(conn: &Connection, run: &str, key: &str) -> Result<Vec<DepHead>> {
    let rows = conn
        .prepare_cached(
            "SELECT t.key, a.branch, coalesce(a.head_sha, a.base_sha)
             FROM deps d JOIN tasks t ON t.run = d.run AND t.key = d.depends_on
             JOIN attempts a ON a.run = t.run AND a.task = t.key
             WHERE d.run = ?1 AND d.task = ?2 AND t.kind = 'code' AND t.status = 'done'
               AND a.n = (SELECT max(n) FROM attempts
                          WHERE run = t.run AND task = t.key AND status = 'succeeded')
             ORDER BY t.key",
        )?
        .query_map(params![run, key], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(task, branch, sha)| sha.map(|sha| DepHead { task, branch, sha }))
        .collect())
}
