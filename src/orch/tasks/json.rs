//! Tasks written as JSON straight from their rows, for the commands that print a run's
//! worth of them (`status --json`, `ready --json`, what `task import --json` wrote).
//! The bytes are those serde writes for the [`Task`](crate::orch::Task) that
//! [`super::load`] builds from the same row; building one per row (a dozen owned
//! strings, three timestamps through jiff) and serializing it field by field was most
//! of a 100k-task `status --json` (docs/performance.md). The tests hold the two to the
//! same output, so a field added to `Task` and not here fails them.

use super::load::{each_row, Current, Select};
use crate::error::{Error, Result};
use crate::orch::status::TaskStatus;
use crate::time::write_rfc3339;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row};
use serde_json::Value;
use std::io::Write;

/// The tasks `select` names, in its order, as one JSON array written to `out` as they
/// are read.
pub fn write_tasks(
    conn: &Connection,
    run: &str,
    select: Select<'_>,
    out: &mut dyn Write,
) -> Result<()> {
    // One task at a time into a buffer that is reused, then handed over whole: the
    // writer behind `out` sees one call per task, not one per field.
    let mut task = Vec::with_capacity(1024);
    let mut separator = b'[';
    each_row(conn, run, select, |row, current| {
        task.clear();
        task.push(separator);
        separator = b',';
        write_task(&mut task, row, &current)?;
        out.write_all(&task).map_err(Error::output)
    })?;
    if separator == b'[' {
        out.write_all(b"[").map_err(Error::output)?;
    }
    out.write_all(b"]").map_err(Error::output)
}

/// One row of [`each_row`] as the object serde writes for its `Task`, field for field
/// in the struct's order. Columns by their place in `TASK_COLUMNS`.
fn write_task(out: &mut Vec<u8>, row: &Row<'_>, current: &Current) -> Result<()> {
    out.extend_from_slice(b"{\"run\":");
    text_column(out, row, 0, false)?;
    out.extend_from_slice(b",\"key\":");
    text_column(out, row, 1, false)?;
    out.extend_from_slice(b",\"title\":");
    text_column(out, row, 2, false)?;
    out.extend_from_slice(b",\"body\":");
    text_column(out, row, 3, false)?;
    out.extend_from_slice(b",\"kind\":");
    text_column(out, row, 4, false)?;
    out.extend_from_slice(b",\"status\":");
    string(out, row.get::<_, TaskStatus>(5)?.as_str())?;
    out.extend_from_slice(b",\"to\":");
    text_column(out, row, 6, false)?;
    out.extend_from_slice(b",\"after\":");
    after(out, optional_text(row, 17)?.map(str::as_bytes))?;
    out.extend_from_slice(b",\"priority\":");
    integer(out, row.get(7)?);
    out.extend_from_slice(b",\"max_attempts\":");
    integer(out, row.get(8)?);
    out.extend_from_slice(b",\"attempts\":");
    integer(out, row.get(9)?);
    out.extend_from_slice(b",\"current_attempt\":");
    match current {
        Some((attempt, _)) => serde_json::to_writer(&mut *out, attempt)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"blocked_reason\":");
    text_column(out, row, 10, true)?;
    out.extend_from_slice(b",\"blocked_detail\":");
    // Parsed and written again, as `Task` does: serde_json orders an object's keys.
    let detail = optional_text(row, 11)?.and_then(|d| serde_json::from_str::<Value>(d).ok());
    match detail {
        Some(detail) => serde_json::to_writer(&mut *out, &detail)?,
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"base\":");
    text_column(out, row, 12, true)?;
    out.extend_from_slice(b",\"landed_at\":");
    match row.get::<_, Option<i64>>(15)? {
        Some(ms) => time(out, ms),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"landed_commit\":");
    text_column(out, row, 16, true)?;
    out.extend_from_slice(b",\"profile\":");
    text_column(out, row, 18, true)?;
    out.extend_from_slice(b",\"created_at\":");
    time(out, row.get(13)?);
    out.extend_from_slice(b",\"updated_at\":");
    let updated_at = out.len();
    time(out, row.get(14)?);
    let updated_at = updated_at..out.len();
    out.extend_from_slice(b",\"last_activity_at\":");
    // The later of the task's change and what reconcile saw of its attempt's thread, as
    // `Task` has it: RFC 3339 of fixed width compares like the times it names.
    let seen = current.as_ref().and_then(|(_, seen)| seen.as_ref());
    match seen {
        Some((seen, _)) if quoted_after(seen, &out[updated_at.clone()]) => string(out, seen)?,
        _ => out.extend_from_within(updated_at),
    }
    out.push(b'}');
    Ok(())
}

/// Whether `text` sorts after the JSON string `quoted` (a time, which needs no escape).
fn quoted_after(text: &str, quoted: &[u8]) -> bool {
    let inner = quoted
        .strip_prefix(b"\"")
        .and_then(|q| q.strip_suffix(b"\""))
        .unwrap_or(quoted);
    text.as_bytes() > inner
}

/// A time as `Task` holds it, quoted.
fn time(out: &mut Vec<u8>, ms: i64) {
    out.push(b'"');
    write_rfc3339(out, ms);
    out.push(b'"');
}

/// `text` as a JSON string, escaped as serde_json escapes it (control characters, `"`
/// and `\`).
fn string(out: &mut Vec<u8>, text: &str) -> Result<()> {
    if !plain_string(out, text.as_bytes()) {
        serde_json::to_writer(&mut *out, text)?;
    }
    Ok(())
}

/// Writes `bytes` as a JSON string if they are printable ASCII without `"` or `\`, as
/// most text is: checked in one pass with no branch per byte (so it runs a word or a
/// vector at a time) and copied whole, with no UTF-8 check needed. `false` (and
/// nothing written) when they need serde_json's escapes.
fn plain_string(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let special = bytes.iter().fold(0_u8, |special, &b| {
        special | u8::from(!(0x20..0x7f).contains(&b)) | u8::from(b == b'"') | u8::from(b == b'\\')
    });
    if special != 0 {
        return false;
    }
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
    true
}

/// Text column `column` as a JSON string, as serde writes the `String` rusqlite would
/// read from it; `null` when it is null and `nullable`.
fn text_column(out: &mut Vec<u8>, row: &Row<'_>, column: usize, nullable: bool) -> Result<()> {
    match row.get_ref(column)? {
        ValueRef::Null if nullable => out.extend_from_slice(b"null"),
        ValueRef::Text(bytes) => {
            if !plain_string(out, bytes) {
                let text = std::str::from_utf8(bytes).map_err(|e| {
                    rusqlite::Error::FromSqlConversionFailure(
                        column,
                        rusqlite::types::Type::Text,
                        Box::new(e),
                    )
                })?;
                serde_json::to_writer(&mut *out, text)?;
            }
        }
        other => return Err(wrong_type(column, other.data_type())),
    }
    Ok(())
}

fn wrong_type(column: usize, found: rusqlite::types::Type) -> Error {
    Error::from(rusqlite::Error::InvalidColumnType(
        column,
        String::new(),
        found,
    ))
}

/// `value` in decimal, as serde_json writes an integer.
fn integer(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0_u8; 20];
    let mut at = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        at -= 1;
        // `rest % 10` is a digit.
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// The dependencies' keys (`after_keys`, newline-separated, in no promised order) as
/// the sorted array `Task::after` is. Import stores them in order, so they are written
/// as they come, and again from a sorted vector only when one is out of order.
fn after(out: &mut Vec<u8>, keys: Option<&[u8]>) -> Result<()> {
    let Some(keys) = keys else {
        out.extend_from_slice(b"[]");
        return Ok(());
    };
    // Split by byte, not by `str::split`'s search, which costs more than the few
    // bytes of a key.
    let split = || keys.split(|&b| b == b'\n');
    let start = out.len();
    out.push(b'[');
    let mut previous: Option<&[u8]> = None;
    for key in split() {
        if let Some(previous) = previous.replace(key) {
            if previous > key {
                out.truncate(start);
                let mut sorted: Vec<&[u8]> = split().collect();
                sorted.sort_unstable();
                return key_array(out, sorted.into_iter());
            }
            out.push(b',');
        }
        key_string(out, key)?;
    }
    out.push(b']');
    Ok(())
}

fn key_array<'k>(out: &mut Vec<u8>, keys: impl Iterator<Item = &'k [u8]>) -> Result<()> {
    out.push(b'[');
    for (i, key) in keys.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        key_string(out, key)?;
    }
    out.push(b']');
    Ok(())
}

/// A piece of a text column split at a newline (so still UTF-8) as a JSON string.
fn key_string(out: &mut Vec<u8>, key: &[u8]) -> Result<()> {
    if !plain_string(out, key) {
        serde_json::to_writer(&mut *out, &String::from_utf8_lossy(key))?;
    }
    Ok(())
}

/// A text column borrowed from the row, without the copy `String` makes.
fn optional_text<'r>(row: &'r Row<'_>, column: usize) -> Result<Option<&'r str>> {
    match row.get_ref(column)? {
        ValueRef::Null => Ok(None),
        value => value.as_str().map(Some).map_err(|e| {
            Error::from(rusqlite::Error::FromSqlConversionFailure(
                column,
                value.data_type(),
                Box::new(e),
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inbox;
    use crate::orch::changes::Changes;
    use crate::orch::runs;
    use crate::orch::tasks::{self, TaskSpec};
    use crate::orch::TaskStatus;
    use crate::store::Store;

    /// What `write_tasks` writes, and what serde writes for the loaded tasks.
    fn both(store: &mut Store, select: Select<'_>) -> (String, String) {
        store
            .read(|tx| {
                let mut written = Vec::new();
                write_tasks(tx, "r1", select, &mut written)?;
                let loaded = tasks::load(tx, "r1", select)?;
                Ok((
                    String::from_utf8(written).unwrap(),
                    serde_json::to_string(&loaded)?,
                ))
            })
            .unwrap()
    }

    #[test]
    fn writes_what_serde_writes_for_the_loaded_tasks() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut store, _) = crate::orch::fixtures::store_with_task(&tmp.path().join("orch"));
        let cfg = inbox::Config::default();
        store
            .write(|tx| {
                let mut changes = Changes::default();
                let run = runs::get(tx, "r1")?;
                let specs = [
                    TaskSpec {
                        key: "b".into(),
                        title: "Quotes \" and \\ and tabs\t, é ✓".into(),
                        body: "line one\nline two\u{1}\u{7f}".into(),
                        after: vec!["a".into()],
                        priority: Some(-3),
                        profile: Some("claude".into()),
                        base: Some("main".into()),
                        ..TaskSpec::default()
                    },
                    TaskSpec {
                        key: "c".into(),
                        title: "C".into(),
                        after: vec!["b".into(), "a".into()],
                        priority: Some(12_345),
                        ..TaskSpec::default()
                    },
                    TaskSpec {
                        key: "d".into(),
                        title: "D".into(),
                        ..TaskSpec::default()
                    },
                ];
                for spec in &specs {
                    tasks::add(tx, &cfg, &mut changes, &run, spec)?;
                }
                // An attempt with every optional part, its launch and a thread seen
                // after the task's last change; one seen before it; a current attempt
                // that does not exist; a question with its keys out of order; a task
                // landed; dependencies stored out of order.
                tx.execute_batch(
                    "INSERT INTO attempts (id, run, task, n, agent, to_addr, status, worktree,
                         branch, base_ref, base_sha, head_sha, commits, started_at, ended_at,
                         data, fail_reason, fail_retryable, seen_updated_at, seen_updated_ms)
                     VALUES (7, 'r1', 'b', 2, 'w\"1', '@workers', 'failed', '/tmp/wt', 'orch/r1/b-2',
                         'main', 'aaaa', 'bbbb', 3, 1700000000000, 1700000001000,
                         '{\"bases_ref\": \"refs/orch/bases/r1/b-2\", \"rescue_ref\": \"refs/x\",
                           \"worktree_removed_at\": 1700000002000, \"branch_deleted_at\": 1700000003000}',
                         'tests fail', 1, '2099-01-01T00:00:00.000Z', 4070908800000);
                     INSERT INTO launches (attempt_id, profile, agent, log, supervisor_pid, pid,
                         started_at, exit_code, signal, ended_at, stalled, created_at)
                     VALUES (7, 'claude', 'claude-7', '/tmp/log', 11, 12, 1700000000500, 1, 15,
                         1700000004000, 1, 1700000000000);
                     INSERT INTO attempts (id, run, task, n, to_addr, status, started_at,
                         seen_updated_at, seen_updated_ms)
                     VALUES (8, 'r1', 'c', 1, 'w2', 'running', 1700000000000,
                         '2000-01-01T00:00:00.000Z', 946684800000);
                     UPDATE tasks SET current_attempt = 7, attempts = 2, status = 'ready'
                         WHERE key = 'b';
                     UPDATE tasks SET current_attempt = 8, attempts = 1, status = 'running',
                         after_keys = 'b' || char(10) || 'a' WHERE key = 'c';
                     UPDATE tasks SET current_attempt = 999 WHERE key = 'd';
                     UPDATE tasks SET status = 'blocked', blocked_reason = 'question',
                         blocked_detail = '{\"thread\": 3, \"question\": \"why?\", \"asked_by\": \"w\"}',
                         landed_at = 1700000005000, landed_commit = 'cccc' WHERE key = 'a';",
                )?;
                Ok(())
            })
            .unwrap();

        for select in [
            Select::All,
            Select::Ready,
            Select::Status(TaskStatus::Running),
            Select::Status(TaskStatus::Done),
            Select::Key("b"),
            Select::Ids { after: 1, last: 3 },
        ] {
            let (written, serialized) = both(&mut store, select);
            assert_eq!(written, serialized, "{select:?}");
        }
        let (all, _) = both(&mut store, Select::All);
        // The cases above are in it: the test would pass on tasks without them.
        for part in [
            r#""launch":{"#,
            r#""after":["a","b"]"#,
            r#""blocked_detail":{"asked_by":"w","question":"why?","thread":3}"#,
            r#""last_activity_at":"2099-01-01T00:00:00.000Z""#,
            r#"\"#,
            r#""current_attempt":null"#,
            r#""landed_at":"2023-11-14T22:13:25.000Z""#,
        ] {
            assert!(all.contains(part), "{part} not in {all}");
        }
    }

    #[test]
    fn keys_out_of_order_are_sorted_and_odd_text_escaped() {
        let mut out = Vec::new();
        after(&mut out, Some(b"t2\nt10\nt1")).unwrap();
        assert_eq!(out, br#"["t1","t10","t2"]"#);
        out.clear();
        after(&mut out, None).unwrap();
        assert_eq!(out, b"[]");
        for text in ["", "plain", "tab\t", "q\"", "b\\", "\u{0}", "\u{7f}", "é"] {
            let mut out = Vec::new();
            string(&mut out, text).unwrap();
            assert_eq!(out, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
        for value in [0, 7, -1, 10, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            integer(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }
}
