//! What a reviewer's result must look like:
//! `{"recommendations": [{"title", "rationale", "priority"}]}`.
//!
//! Unknown extra fields (at the top or in a recommendation) are accepted and ignored:
//! every field we read is required, so a misspelt one still shows up as a missing one,
//! and reviewers may carry more (a file, a line, a category) without being refused.

use super::{Priority, Recommendation};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

pub const MAX_RECOMMENDATIONS: usize = 500;
pub const MAX_TITLE_CHARS: usize = 200;
pub const MAX_RATIONALE_CHARS: usize = 8000;

const SHAPE: &str = r#"a review result looks like {"recommendations": [{"title": "…", "rationale": "…", "priority": "high|medium|low"}]}"#;

fn refuse(pointer: &str, message: impl Into<String>, hint: &str) -> Error {
    Error::invalid_input(message)
        .hint(hint)
        .detail("pointer", pointer)
}

/// Checks a reviewer's result and returns its recommendations, in the given order.
/// Anything that does not fit is `invalid_input` with `details.pointer`, a JSON pointer
/// (RFC 6901) to the offending value.
pub fn validate_review(value: &Value) -> Result<Vec<Recommendation>> {
    let Some(root) = value.as_object() else {
        let message = if value.is_null() {
            "a review needs a result".to_owned()
        } else {
            format!("the review result is {}, not an object", kind(value))
        };
        return Err(refuse("", message, SHAPE));
    };
    let Some(list) = root.get("recommendations") else {
        return Err(refuse(
            "/recommendations",
            "the review result has no \"recommendations\"",
            SHAPE,
        ));
    };
    let Some(items) = list.as_array() else {
        return Err(refuse(
            "/recommendations",
            format!("\"recommendations\" is {}, not an array", kind(list)),
            SHAPE,
        ));
    };
    if items.len() > MAX_RECOMMENDATIONS {
        return Err(refuse(
            "/recommendations",
            format!(
                "the review has {} recommendations; at most {MAX_RECOMMENDATIONS}",
                items.len()
            ),
            "keep the most important ones",
        )
        .detail("limit", MAX_RECOMMENDATIONS));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| recommendation(i, item))
        .collect()
}

fn recommendation(i: usize, item: &Value) -> Result<Recommendation> {
    let at = format!("/recommendations/{i}");
    let Some(fields) = item.as_object() else {
        return Err(refuse(
            &at,
            format!("recommendation {i} is {}, not an object", kind(item)),
            SHAPE,
        ));
    };
    let title = text_field(fields, &at, i, "title", MAX_TITLE_CHARS)?;
    if title.contains(|c: char| c.is_control()) {
        return Err(refuse(
            &format!("{at}/title"),
            format!("the title of recommendation {i} must be one line"),
            "put details in the rationale",
        ));
    }
    let rationale = text_field(fields, &at, i, "rationale", MAX_RATIONALE_CHARS)?;
    let pointer = format!("{at}/priority");
    let priority = match fields.get("priority") {
        None => {
            return Err(refuse(
                &pointer,
                format!("recommendation {i} has no priority"),
                "set \"priority\" to \"high\", \"medium\" or \"low\"",
            ))
        }
        Some(value) => value.as_str().and_then(Priority::parse).ok_or_else(|| {
            refuse(
                &pointer,
                format!(
                    "the priority of recommendation {i} is {}; it must be \"high\", \"medium\" or \"low\"",
                    short(value)
                ),
                "set \"priority\" to \"high\", \"medium\" or \"low\" (lowercase)",
            )
        })?,
    };
    Ok(Recommendation {
        title: title.to_owned(),
        rationale: rationale.to_owned(),
        priority,
    })
}

/// A required, non-blank string of at most `max` characters.
fn text_field<'a>(
    fields: &'a Map<String, Value>,
    at: &str,
    i: usize,
    name: &str,
    max: usize,
) -> Result<&'a str> {
    let pointer = format!("{at}/{name}");
    let hint = format!("give each recommendation a non-empty \"{name}\" string");
    let value = fields
        .get(name)
        .ok_or_else(|| refuse(&pointer, format!("recommendation {i} has no {name}"), &hint))?;
    let text = value.as_str().ok_or_else(|| {
        refuse(
            &pointer,
            format!(
                "the {name} of recommendation {i} is {}, not a string",
                kind(value)
            ),
            &hint,
        )
    })?;
    if text.trim().is_empty() {
        return Err(refuse(
            &pointer,
            format!("the {name} of recommendation {i} is empty"),
            &hint,
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(refuse(
            &pointer,
            format!("the {name} of recommendation {i} is {chars} characters; at most {max}"),
            &format!("shorten the {name}"),
        )
        .detail("limit", max));
    }
    Ok(text)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value for an error message, cut short.
fn short(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::council::Priority;
    use serde_json::json;

    fn pointer_of(value: Value) -> String {
        let err = validate_review(&value).unwrap_err();
        assert_eq!(err.code, crate::error::Code::InvalidInput);
        assert!(err.hint.is_some(), "{err:?}");
        assert!(!err.message.is_empty());
        err.details["pointer"].as_str().unwrap().to_owned()
    }

    #[test]
    fn validation_points_at_the_offending_field() {
        let good = json!({"title": "t", "rationale": "r", "priority": "low"});
        assert_eq!(pointer_of(Value::Null), "");
        assert_eq!(pointer_of(json!([])), "");
        assert_eq!(pointer_of(json!({})), "/recommendations");
        assert_eq!(
            pointer_of(json!({"recommendations": {}})),
            "/recommendations"
        );
        assert_eq!(
            pointer_of(json!({"recommendations": [good, 3]})),
            "/recommendations/1"
        );
        assert_eq!(
            pointer_of(json!({"recommendations": [{"rationale": "r", "priority": "low"}]})),
            "/recommendations/0/title"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": "  ", "rationale": "r", "priority": "low"}]})
            ),
            "/recommendations/0/title"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": "a\nb", "rationale": "r", "priority": "low"}]})
            ),
            "/recommendations/0/title"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": 7, "rationale": "r", "priority": "low"}]})
            ),
            "/recommendations/0/title"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [good, {"title": "t", "rationale": "", "priority": "low"}]})
            ),
            "/recommendations/1/rationale"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": "t", "rationale": "r", "priority": "urgent"}]})
            ),
            "/recommendations/0/priority"
        );
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": "t", "rationale": "r", "priority": "High"}]})
            ),
            "/recommendations/0/priority"
        );
        assert_eq!(
            pointer_of(json!({"recommendations": [{"title": "t", "rationale": "r"}]})),
            "/recommendations/0/priority"
        );
        let long_title = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            pointer_of(
                json!({"recommendations": [{"title": long_title, "rationale": "r", "priority": "low"}]})
            ),
            "/recommendations/0/title"
        );
        let many: Vec<Value> = (0..=MAX_RECOMMENDATIONS).map(|_| good.clone()).collect();
        assert_eq!(
            pointer_of(json!({ "recommendations": many })),
            "/recommendations"
        );
    }

    #[test]
    fn validation_accepts_extra_fields_and_keeps_order() {
        let recs = validate_review(&json!({
            "recommendations": [
                {"title": "B", "rationale": "r", "priority": "high", "file": "src/x.rs", "line": 3},
                {"title": "A", "rationale": "r", "priority": "low"}
            ],
            "summary": "two things"
        }))
        .unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].title, "B");
        assert_eq!(recs[0].priority, Priority::High);
        assert!(validate_review(&json!({"recommendations": []}))
            .unwrap()
            .is_empty());
    }
}
