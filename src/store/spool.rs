//! The spool: records a process could not write because another held the write lock,
//! left as files in `<common>/orch/spool/` for the next writer to take in.
//!
//! A hook must never hold up a commit, so it gives up on the lock quickly and spools. A
//! file appears only complete (written under a dot-name, then renamed). Names start
//! with the time in milliseconds, so name order is the order records were made. The next
//! `Store::write` takes every file in, in that order, in one transaction that also stores
//! each file's key in `spool_taken`; files are deleted only after the commit, and a file
//! whose key is there already is only deleted. So a record is applied once, whatever
//! crashes where. A record its handler refuses (its thread is gone, say) would have been
//! refused without the spool too: it moves to `spool/rejected/` instead of blocking
//! every later write.

use crate::error::{Code, Error, Result};
use rusqlite::{params, Connection, TransactionBehavior};
use serde_json::{json, Value};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// The spool directory of a state dir.
pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("spool")
}

/// One spool file: its key (the file name without `.json`) and the record.
#[derive(Debug, Clone, PartialEq)]
pub struct Spooled {
    pub key: String,
    pub record: Value,
}

/// Leaves `record` in the spool, atomically; returns its key.
pub fn put(state_dir: &Path, record: &Value) -> Result<String> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let dir = dir(state_dir);
    fs::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let key = format!(
        "{:013}-{:010}-{:04}",
        crate::time::now_ms(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed) % 10_000
    );
    let text = serde_json::to_vec(&json!({ "key": key, "record": record }))?;
    let tmp = dir.join(format!(".{key}.tmp"));
    let path = dir.join(format!("{key}.json"));
    // No fsync: the commit this records is no more durable than that (git does not
    // fsync by default), and the rename alone makes the file appear whole or not at all.
    let write = || -> std::io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&text)?;
        drop(file);
        fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(format!("spooling to {}", path.display()), e)
    })?;
    Ok(key)
}

/// The complete spool files, oldest first (temp files and anything else are skipped).
pub fn pending(state_dir: &Path) -> Result<Vec<PathBuf>> {
    let dir = dir(state_dir);
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(format!("reading {}", dir.display()), e)),
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n.ends_with(".json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads one spool file; `None` when it is gone (another writer took it in) or is not a
/// spool record (then it is moved to `rejected/`, never read again).
fn read(path: &Path) -> Result<Option<Spooled>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
    };
    let parsed = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
        let key = v.get("key")?.as_str()?.to_owned();
        let record = v.get("record")?.clone();
        Some(Spooled { key, record })
    });
    if parsed.is_none() {
        reject(path);
    }
    Ok(parsed)
}

fn reject(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let rejected = dir.join("rejected");
    if fs::create_dir_all(&rejected).is_ok() {
        let _ = fs::rename(path, rejected.join(name));
    }
}

/// Takes in every pending record with `handler`, in one write transaction; returns how
/// many were applied. A no-op (one directory read) when the spool is empty.
pub fn take_in(
    conn: &mut Connection,
    state_dir: &Path,
    handler: super::SpoolHandler,
) -> Result<usize> {
    if pending(state_dir)?.is_empty() {
        return Ok(0);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Listed again under the lock: what another writer took in before us is gone or keyed.
    let files = pending(state_dir)?;
    let mut done = Vec::new();
    let mut refused = Vec::new();
    let mut applied = 0;
    for path in files {
        let Some(spooled) = read(&path)? else {
            continue;
        };
        let taken: bool = tx
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM spool_taken WHERE key = ?1)")?
            .query_row([&spooled.key], |row| row.get(0))?;
        if !taken {
            tx.execute_batch("SAVEPOINT spooled")?;
            match handler(&tx, &spooled.record) {
                Ok(()) => {
                    tx.execute_batch("RELEASE spooled")?;
                    applied += 1;
                }
                Err(err) if refusal(&err) => {
                    tx.execute_batch("ROLLBACK TO spooled; RELEASE spooled")?;
                    refused.push(path);
                    continue;
                }
                Err(err) => return Err(err),
            }
            tx.prepare_cached("INSERT INTO spool_taken (key, taken_at) VALUES (?1, ?2)")?
                .execute(params![spooled.key, crate::time::now_ms()])?;
        }
        done.push(path);
    }
    tx.commit()?;
    for path in done {
        let _ = fs::remove_file(path);
    }
    for path in refused {
        reject(&path);
    }
    Ok(applied)
}

/// The record's own fault (bad input, gone, state forbids): kept aside, not retried.
fn refusal(err: &Error) -> bool {
    matches!(err.code.exit_status(), 2..=4) && err.code != Code::NotInitialized
}
