//! The council's pure core (docs/council.md): what a reviewer's result must look like, the
//! deterministic tally that groups the recommendations of several reviewers, and the
//! markdown report. Only [`run`] touches state: it makes a council an orch run of kind
//! `council`, feeds the tally the reviewers' results and stores the report.
//!
//! Review threads are marked by a `council` key in the thread's `data` (the council's
//! run name, set by dispatch); [`check_result`] refuses a `done` on such a thread whose
//! result is not a valid review.

mod report;
pub(crate) mod run;
mod similarity;
mod tally;
#[cfg(test)]
mod tests;
mod validate;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use report::report;
pub use tally::tally;
pub use validate::validate_review;
pub(crate) use validate::MAX_TITLE_CHARS;

/// The key in a thread's `data` that marks it as a council review thread.
pub(crate) const REVIEW_MARKER: &str = "council";

/// The similarity threshold when neither `--threshold` nor `orch.council.threshold` says.
pub const DEFAULT_THRESHOLD: f64 = 0.6;

/// How urgent a recommendation is. Ordered most urgent first, so sorting ascending puts
/// `high` on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    High,
    Medium,
    Low,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    pub fn parse(text: &str) -> Option<Priority> {
        match text {
            "high" => Some(Priority::High),
            "medium" => Some(Priority::Medium),
            "low" => Some(Priority::Low),
            _ => None,
        }
    }
}

/// One item of a reviewer's result.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Recommendation {
    pub title: String,
    pub rationale: String,
    pub priority: Priority,
}

/// What one reviewer of the council produced. `recommendations` is `None` when the
/// reviewer did not respond (its task failed, was cancelled, or is not done yet): such a
/// reviewer is listed in `reviewers` but not in `responded`, and does not count towards R.
/// `Some(vec![])` is a reviewer who responded with nothing to recommend: it counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewerResult {
    pub reviewer: String,
    pub recommendations: Option<Vec<Recommendation>>,
}

impl ReviewerResult {
    pub fn responded(reviewer: impl Into<String>, recommendations: Vec<Recommendation>) -> Self {
        ReviewerResult {
            reviewer: reviewer.into(),
            recommendations: Some(recommendations),
        }
    }

    pub fn missing(reviewer: impl Into<String>) -> Self {
        ReviewerResult {
            reviewer: reviewer.into(),
            recommendations: None,
        }
    }
}

/// Everything the tally needs. The order of `results` does not matter: reviewers are
/// taken in name order, so the tally does not depend on who finished first.
#[derive(Debug, Clone)]
pub struct TallyInput {
    /// The council's name (its run).
    pub council: String,
    pub topic: String,
    pub results: Vec<ReviewerResult>,
    /// Pairs scoring at least this much may share a group; see [`check_threshold`].
    pub threshold: f64,
}

/// How many of the responding reviewers back a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Every reviewer that responded.
    Consensus,
    /// More than half of them.
    Majority,
    /// The rest.
    Minority,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Consensus => "consensus",
            Level::Majority => "majority",
            Level::Minority => "minority",
        }
    }

    /// The level of a group backed by `support` of `responded` reviewers.
    pub fn of(support: usize, responded: usize) -> Level {
        if support >= responded {
            Level::Consensus
        } else if support * 2 > responded {
            Level::Majority
        } else {
            Level::Minority
        }
    }
}

/// The result of a tally, serialized as `git orch council tally --json` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub council: String,
    pub topic: String,
    /// Every reviewer of the council, in name order.
    pub reviewers: Vec<String>,
    /// The reviewers whose result counted, in name order.
    pub responded: Vec<String>,
    pub groups: Vec<Group>,
}

/// Recommendations of different reviewers that say the same thing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub level: Level,
    /// The number of members, one per reviewer.
    pub support: usize,
    /// The title of the member that is most similar to the others.
    pub title: String,
    /// The most urgent priority among the members.
    pub priority: Priority,
    /// In reviewer name order.
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub reviewer: String,
    pub title: String,
    pub rationale: String,
    pub priority: Priority,
}

/// Refuses a threshold that is not a number in [0, 1].
pub(crate) fn check_threshold(value: f64) -> Result<f64> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(
            Error::invalid_input(format!("the threshold {value} is not between 0 and 1"))
                .hint("pass a number such as 0.6 (higher groups fewer recommendations)"),
        )
    }
}

/// Parses a threshold from `--threshold` or `orch.council.threshold`.
pub fn parse_threshold(text: &str) -> Result<f64> {
    let value: f64 = text.trim().parse().map_err(|_| {
        Error::invalid_input(format!("the threshold {text:?} is not a number"))
            .hint("pass a number between 0 and 1, such as 0.6")
    })?;
    check_threshold(value)
}

/// Whether a thread's `data` marks it as a council review thread.
pub(crate) fn is_review_thread(data: &Value) -> bool {
    data.get(REVIEW_MARKER).is_some_and(|v| !v.is_null())
}

/// The check `git inbox done` runs in its transaction: a review thread's result must be
/// a valid review (see [`validate_review`]); other threads accept any object.
pub(crate) fn check_result(thread_data: &Value, result: &Value) -> Result<()> {
    if is_review_thread(thread_data) {
        validate_review(result)?;
    }
    Ok(())
}
