//! Input checks. Every command checks all of its input before its first write, and the
//! CLI runs the same checks before it stages attachments, so bad input leaves nothing.

use super::model::Note;
use super::{MAX_BODY_BYTES, MAX_DATA_BYTES, MAX_SUBJECT_CHARS};
use crate::error::{Code, Error, Result};
use serde_json::Value;
use std::time::Duration;

pub fn check_subject(subject: &str) -> Result<()> {
    if subject.trim().is_empty() {
        return Err(
            Error::invalid_input("the subject is empty").hint("give a short one-line --subject")
        );
    }
    if subject.contains(['\n', '\r']) {
        return Err(
            Error::invalid_input("the subject must be one line").hint("put details in --body")
        );
    }
    let chars = subject.chars().count();
    if chars > MAX_SUBJECT_CHARS {
        return Err(Error::new(
            Code::TooLarge,
            format!("the subject is {chars} characters; at most {MAX_SUBJECT_CHARS}"),
        )
        .hint("shorten the subject and put details in --body"));
    }
    Ok(())
}

pub fn check_body(body: &str) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::new(
            Code::TooLarge,
            format!("the body is {} bytes; at most 1 MiB", body.len()),
        )
        .hint("attach large text as a file with --attach")
        .detail("size", body.len())
        .detail("limit", MAX_BODY_BYTES));
    }
    Ok(())
}

/// `data` and `result` are JSON objects of at most 256 KiB.
pub fn check_object(what: &str, value: &Value) -> Result<()> {
    if !value.is_object() {
        return Err(
            Error::invalid_input(format!("{what} must be a JSON object"))
                .hint("wrap the value: {\"value\": …}")
                .detail("pointer", ""),
        );
    }
    let size = value.to_string().len();
    if size > MAX_DATA_BYTES {
        return Err(Error::new(
            Code::TooLarge,
            format!("{what} is {size} bytes; at most 256 KiB"),
        )
        .hint("attach large data as a file with --attach")
        .detail("size", size)
        .detail("limit", MAX_DATA_BYTES));
    }
    Ok(())
}

/// Parses JSON text given on the command line or in a file.
pub fn parse_json(what: &str, text: &str) -> Result<Value> {
    if text.len() > MAX_DATA_BYTES * 4 {
        return Err(Error::new(
            Code::TooLarge,
            format!("{what} is {} bytes; at most 256 KiB", text.len()),
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        Error::invalid_input(format!("{what} is not valid JSON: {e}"))
            .hint("quote the JSON for your shell, e.g. --data '{\"key\": 1}'")
    })
}

/// A lease in milliseconds: longer than zero, and short enough that its end stays an
/// exact integer column (100 years is more than any claim needs).
pub(super) fn check_lease(lease: Duration) -> Result<i64> {
    const MAX_LEASE_MS: i64 = 100 * 365 * 24 * 60 * 60 * 1000;
    match i64::try_from(lease.as_millis()) {
        Ok(0) => {
            Err(Error::invalid_input("a lease must be longer than zero").hint("e.g. --lease 30m"))
        }
        Ok(ms) if ms <= MAX_LEASE_MS => Ok(ms),
        _ => Err(Error::invalid_input("a lease may last at most 100 years")
            .hint("renew a long claim as you go: git inbox renew")),
    }
}

/// Checks a note's body and data; callers run it before staging attachments too, so
/// that bad input never leaves a stored blob behind.
pub fn check_note(note: &Note<'_>) -> Result<()> {
    check_body(note.body)?;
    if let Some(data) = note.data {
        check_object("data", data)?;
    }
    Ok(())
}

/// [`check_note`] for a reply, which must say something.
pub fn check_reply(note: &Note<'_>) -> Result<()> {
    check_note(note)?;
    if note.body.trim().is_empty() {
        return Err(
            Error::invalid_input("the reply is empty").hint("pass it with --body or --body-file")
        );
    }
    Ok(())
}
