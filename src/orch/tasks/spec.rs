//! The plan format: one task as `task add` or a plan file gives it, its checks and its
//! defaults.

use crate::error::{Code, Error, Result};
use crate::inbox;
use crate::names::{check_name, Address};
use crate::repo::check_ref_text;
use serde::Deserialize;

pub const DEFAULT_TO: &str = "@workers";
pub const DEFAULT_KIND: &str = "code";
pub const DEFAULT_MAX_ATTEMPTS: i64 = 3;
/// More attempts than this is a typo, not a plan.
pub const MAX_MAX_ATTEMPTS: i64 = 100;
/// A plan larger than this is refused before anything is parsed into rows.
pub const MAX_PLAN_TASKS: usize = 100_000;

/// One task as given by `task add` or in a plan file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    pub key: String,
    pub title: String,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub max_attempts: Option<i64>,
    #[serde(default)]
    pub base: Option<String>,
    /// The launch profile of its attempts (`orch.agent.<profile>.*` or a preset), checked
    /// as a name here and resolved at the launch, so config may come after the plan.
    #[serde(default)]
    pub profile: Option<String>,
}

/// A plan file: `{"tasks": [TaskSpec…]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub tasks: Vec<TaskSpec>,
}

impl Plan {
    pub fn parse(text: &str) -> Result<Plan> {
        serde_json::from_str(text).map_err(|e| {
            Error::invalid_input(format!("the plan is not valid: {e}"))
                .hint(r#"a plan is {"tasks": [{"key": "lexer", "title": "…", "after": ["spec"]}]}"#)
                .detail("line", e.line())
                .detail("column", e.column())
        })
    }
}

/// A spec after validation, with defaults filled in.
pub(super) struct Checked<'a> {
    pub spec: &'a TaskSpec,
    pub kind: &'a str,
    pub to: String,
    pub priority: i64,
    pub max_attempts: i64,
    pub after: Vec<&'a str>,
}

pub(super) fn check_spec(spec: &TaskSpec) -> Result<Checked<'_>> {
    check_name("task", &spec.key)?;
    inbox::check_subject(&spec.title).map_err(|e| e.detail("field", "title"))?;
    inbox::check_body(&spec.body).map_err(|e| e.detail("field", "body"))?;
    let kind = spec.kind.as_deref().unwrap_or(DEFAULT_KIND);
    if !matches!(kind, "code" | "review" | "chore") {
        return Err(Error::invalid_input(format!("unknown task kind {kind:?}"))
            .hint("use code, review or chore")
            .detail("field", "kind"));
    }
    let to = Address::parse(spec.to.as_deref().unwrap_or(DEFAULT_TO))?.to_stored();
    let max_attempts = spec.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
    if !(1..=MAX_MAX_ATTEMPTS).contains(&max_attempts) {
        return Err(Error::invalid_input(format!(
            "max_attempts is {max_attempts}; it must be between 1 and {MAX_MAX_ATTEMPTS}"
        ))
        .hint("e.g. --max-attempts 3")
        .detail("field", "max_attempts"));
    }
    if let Some(base) = &spec.base {
        check_ref_text(base)?;
    }
    if let Some(profile) = &spec.profile {
        check_name("profile", profile).map_err(|e| e.detail("field", "profile"))?;
    }
    let mut after: Vec<&str> = Vec::with_capacity(spec.after.len());
    for dep in &spec.after {
        check_name("task", dep)?;
        if dep == &spec.key {
            return Err(Error::new(
                Code::Cycle,
                format!("task {} cannot depend on itself", spec.key),
            )
            .hint("remove it from its own --after list")
            .detail("cycle", vec![spec.key.clone(), spec.key.clone()]));
        }
        if !after.contains(&dep.as_str()) {
            after.push(dep);
        }
    }
    Ok(Checked {
        spec,
        kind,
        to,
        priority: spec.priority.unwrap_or(0),
        max_attempts,
        after,
    })
}
