//! A council as an orch run of kind `council`: one `review` task per reviewer, dispatched
//! at once, whose thread data carries the [`REVIEW_MARKER`] so `git inbox done` checks
//! the result's shape. Tally and report read the reviewers' results back from the threads.

use super::{report, tally, Recommendation, ReviewerResult, Tally, TallyInput, REVIEW_MARKER};
use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::names::{check_name, Address};
use crate::orch::dispatch::{self, Request, Workspaces};
use crate::orch::launch::Plan;
use crate::orch::runs::{self, NewRun};
use crate::orch::tasks::{self, Select, TaskSpec};
use crate::orch::waits::{self, Until, WaitFor};
use crate::orch::{Attempt, Orch, Task, TaskStatus};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::time::Instant;

/// What `council start` needs, with the base already resolved by the caller.
pub struct StartSpec<'a> {
    pub name: Option<&'a str>,
    pub topic: &'a str,
    pub body: &'a str,
    pub reviewers: &'a [String],
    /// The base as given and its sha: every reviewer reads this commit.
    pub base_ref: &'a str,
    pub base_sha: &'a str,
    /// Start each reviewer as a launched agent with this plan's profile.
    pub launch: Option<&'a Plan>,
}

#[derive(Debug, Serialize)]
pub struct Council {
    pub council: String,
    pub topic: String,
    pub status: String,
    pub base_ref: Option<String>,
    pub reviewers: Vec<String>,
    pub tasks: Vec<Task>,
}

/// Parses `a,b,c` into reviewer names: each valid, none twice, at least one.
pub fn parse_reviewers(text: &str) -> Result<Vec<String>> {
    let mut reviewers: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        check_name("reviewer", name)?;
        if reviewers.iter().any(|r| r == name) {
            return Err(
                Error::invalid_input(format!("reviewer {name} is named twice"))
                    .hint("name each reviewer once, e.g. --reviewers reviewer-1,reviewer-2"),
            );
        }
        reviewers.push(name.to_owned());
    }
    if reviewers.is_empty() {
        return Err(
            Error::invalid_input("a council needs at least one reviewer")
                .hint("e.g. --reviewers reviewer-1,reviewer-2,reviewer-3"),
        );
    }
    Ok(reviewers)
}

/// The brief a reviewer gets: the topic, the leader's text, the commit to read, and how
/// to answer from where a reviewer stands (no worktree, so no marker names it). A
/// launched reviewer holds its thread already (its supervisor claimed it), and its
/// `git inbox` knows the thread from `ORCH_THREAD`: it is told only how to answer.
fn brief(spec: &StartSpec<'_>, reviewer: &str) -> String {
    let mut text = format!("Council review: {}\n\n", spec.topic);
    if !spec.body.trim().is_empty() {
        text.push_str(spec.body.trim_end());
        text.push_str("\n\n");
    }
    text.push_str(&format!(
        "Read the repository at {} (commit {}), so that every reviewer reads the same code.\n\n",
        spec.base_ref, spec.base_sha
    ));
    if spec.launch.is_some() {
        text.push_str(
            "Change nothing in the repository. Write your review to a file outside it (under\n\
             $TMPDIR, say) and finish with `git inbox done --result-file FILE`, where FILE is\n",
        );
    } else {
        text.push_str(&format!(
            "As {reviewer} (`--agent {reviewer}`, or ORCH_AGENT={reviewer}), from any directory of\n\
             the repository: take this review with `git inbox claim --next`, then finish with\n\
             `git inbox done --result-file review.json` (the thread you hold is the default), where\n\
             review.json is\n"
        ));
    }
    text.push_str(
        "{\"recommendations\": [{\"title\": \"…\", \"rationale\": \"…\", \"priority\": \"high|medium|low\"}]}\n",
    );
    text
}

/// Creates the council run and dispatches one review per reviewer. The run that was
/// current before stays current: a council is a side trip, not the leader's plan.
/// `workspaces` makes none (a review has no worktree) but, for a launched council,
/// starts each reviewer's supervisor.
pub fn start(
    orch: &mut Orch<'_>,
    workspaces: &dyn Workspaces,
    spec: &StartSpec<'_>,
) -> Result<Council> {
    for reviewer in spec.reviewers {
        check_name("reviewer", reviewer)?;
    }
    for reviewer in spec.reviewers {
        inbox::check_body(&brief(spec, reviewer))?;
    }
    if let Some(plan) = spec.launch {
        plan.check()?;
    }
    let run = orch.write(|tx, cfg, changes| {
        let previous = runs::current_name(tx)?;
        let run = runs::create(
            tx,
            cfg,
            changes,
            &NewRun {
                name: spec.name,
                title: spec.topic,
                base_ref: Some(spec.base_ref),
                kind: "council",
            },
        )?;
        let row = runs::get(tx, &run.name)?;
        for reviewer in spec.reviewers {
            let task = TaskSpec {
                key: reviewer.clone(),
                title: format!("Review: {}", spec.topic)
                    .chars()
                    .take(200)
                    .collect(),
                body: brief(spec, reviewer),
                kind: Some("review".into()),
                to: Some(reviewer.clone()),
                max_attempts: Some(1),
                base: Some(spec.base_sha.to_owned()),
                ..TaskSpec::default()
            };
            tasks::add(tx, cfg, changes, &row, &task)?;
        }
        if let Some(previous) = previous {
            runs::use_run(tx, &previous)?;
        }
        Ok(row)
    })?;
    let mut extra = Map::new();
    extra.insert(REVIEW_MARKER.to_owned(), json!(run.name));
    extra.insert("base_ref".to_owned(), json!(spec.base_ref));
    for reviewer in spec.reviewers {
        let to = Address::Agent(reviewer.clone());
        let req = Request {
            key: reviewer,
            to: Some(&to),
            base: None,
            force: false,
            extra: extra.clone(),
            launch: spec.launch,
        };
        dispatch::dispatch_one(orch, workspaces, &run, &req)?;
    }
    show(orch, Some(&run.name))
}

/// The council named; without a name, the current run when it is a council, else the
/// newest council: `council start` leaves a plan run current, and `council wait` right
/// after it must still find the council it started.
fn resolve(conn: &rusqlite::Connection, name: Option<&str>) -> Result<runs::RunRow> {
    let row = match name {
        Some(_) => runs::resolve(conn, name)?,
        None => match runs::current_name(conn)? {
            Some(current) if runs::get(conn, &current)?.kind == "council" => {
                runs::get(conn, &current)?
            }
            _ => {
                let newest = runs::list(conn)?.into_iter().rfind(|r| r.kind == "council");
                match newest {
                    Some(run) => runs::get(conn, &run.name)?,
                    None => {
                        return Err(Error::not_found("there is no council yet")
                            .hint("start one with `git orch council start --topic T`"))
                    }
                }
            }
        },
    };
    if row.kind != "council" {
        return Err(
            Error::new(Code::NotFound, format!("run {} is not a council", row.name))
                .hint("name the council: git orch council tally NAME (see git orch run list)")
                .detail("run", row.name.clone()),
        );
    }
    Ok(row)
}

pub fn show(orch: &mut Orch<'_>, name: Option<&str>) -> Result<Council> {
    orch.read(|tx| {
        let row = resolve(tx, name)?;
        let tasks = tasks::load(tx, &row.name, Select::All)?;
        Ok(Council {
            council: row.name.clone(),
            topic: row.title.clone(),
            status: row.status.to_string(),
            base_ref: row.base_ref.clone(),
            reviewers: tasks.iter().map(|t| t.key.clone()).collect(),
            tasks,
        })
    })
}

/// Blocks until every reviewer is done or failed; `None` when the deadline passed.
pub fn wait(
    orch: &mut Orch<'_>,
    name: Option<&str>,
    deadline: Option<Instant>,
) -> Result<Option<Council>> {
    let run = orch.read(|tx| resolve(tx, name))?.name;
    let waited = waits::wait(
        orch,
        &WaitFor {
            run: Some(&run),
            until: Until::Done,
            task: None,
            deadline,
            since: None,
        },
    )?;
    match waited {
        Some(_) => show(orch, Some(&run)).map(Some),
        None => Ok(None),
    }
}

/// The reviewers' results as the tally reads them: a done review's recommendations, or
/// "missing" for a review that failed, was cancelled or is not finished.
fn results(conn: &rusqlite::Connection, tasks: &[Task]) -> Result<Vec<ReviewerResult>> {
    tasks
        .iter()
        .map(|task| {
            let thread = task
                .current_attempt
                .as_ref()
                .filter(|_| task.status == TaskStatus::Done)
                .and_then(|a: &Attempt| a.thread);
            let Some(thread) = thread else {
                return Ok(ReviewerResult::missing(task.key.clone()));
            };
            let result = inbox::get_thread(conn, thread)?.result;
            let recommendations: Vec<Recommendation> = match result.get("recommendations") {
                Some(list) => serde_json::from_value(list.clone()).map_err(|e| {
                    Error::internal(format!(
                        "the stored review of {} does not parse: {e}",
                        task.key
                    ))
                })?,
                None => Vec::new(),
            };
            Ok(ReviewerResult::responded(task.key.clone(), recommendations))
        })
        .collect()
}

pub fn tally_council(orch: &mut Orch<'_>, name: Option<&str>, threshold: f64) -> Result<Tally> {
    orch.reconcile()?;
    orch.read(|tx| {
        let row = resolve(tx, name)?;
        let tasks = tasks::load(tx, &row.name, Select::All)?;
        let input = TallyInput {
            council: row.name.clone(),
            topic: row.title.clone(),
            results: results(tx, &tasks)?,
            threshold,
        };
        Ok(tally(&input))
    })
}

/// The markdown report of a council's tally.
pub fn report_council(
    orch: &mut Orch<'_>,
    name: Option<&str>,
    threshold: f64,
) -> Result<(Tally, String)> {
    let tally = tally_council(orch, name, threshold)?;
    let text = report(&tally);
    Ok((tally, text))
}

/// Stores the report as an artifact on a thread of the council's own (from the leader
/// to the leader, its data naming the council), so it travels with the council's state.
/// Returns the thread id and the artifact.
pub fn store_report(
    orch: &mut Orch<'_>,
    council: &str,
    topic: &str,
    staged: &inbox::artifacts::StagedArtifact,
) -> Result<(i64, Value)> {
    let to = Address::Agent(orch.cfg.leader.clone());
    let subject: String = format!("Council report: {topic}")
        .chars()
        .take(200)
        .collect();
    let data = json!({"council_report": council});
    // The orch settings, not defaults: the send applies due lease expiries with them.
    let posted = orch.write(|tx, cfg, _| {
        inbox::send(
            tx,
            cfg,
            &cfg.leader,
            inbox::NewThread {
                to: &to,
                subject: &subject,
                kind: "message",
                body: "The council's tally as a markdown report.",
                data: Some(&data),
                artifacts: std::slice::from_ref(staged),
            },
        )
    })?;
    Ok((posted.thread.id, json!(posted.message.artifacts.first())))
}
