//! Unit tests at the library boundary: the inbox's command functions against a real
//! `Store` (a real SQLite file in a temp dir), each in its own transaction as the CLI
//! runs them. Time moves in two honest ways: `expire_due` takes the clock as an argument,
//! and short leases are waited out by polling the clock against a deadline.

mod delivery;
mod lease;
mod status;
mod thread;

use super::model::Posted;
use super::*;
use crate::error::{Code, Result};
use crate::names::Address;
use crate::store::events::Event;
use crate::store::{Durability, Store};
use crate::time::now_ms;
use rusqlite::Connection;
use std::time::{Duration, Instant};

/// A fresh inbox in a temp dir, and shorthands for the commands the tests repeat.
struct Bus {
    store: Store,
    cfg: Config,
    dir: tempfile::TempDir,
}

impl Bus {
    fn new() -> Bus {
        Bus::with(Config::default())
    }

    fn with(cfg: Config) -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, created) = Store::init(dir.path(), Durability::Normal).expect("init");
        assert!(created);
        Bus { store, cfg, dir }
    }

    /// A second connection to the same database, as another process would have.
    fn open_again(&self) -> Store {
        Store::open(self.dir.path(), Durability::Normal).expect("open")
    }

    fn write<T>(&mut self, f: impl FnOnce(&Connection, &Config) -> Result<T>) -> Result<T> {
        let cfg = &self.cfg;
        self.store.write(|tx| f(tx, cfg))
    }

    fn read<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.store.read(|tx| f(tx))
    }

    /// Sends a thread of `kind` from `from` to `to` (an agent or `@queue`); its id.
    fn send_kind(&mut self, from: &str, to: &str, kind: &str, subject: &str) -> i64 {
        let to = Address::parse(to).expect("address");
        self.write(|tx, cfg| {
            send(
                tx,
                cfg,
                from,
                NewThread {
                    to: &to,
                    subject,
                    kind,
                    body: "please",
                    data: None,
                    artifacts: &[],
                },
            )
        })
        .expect("send")
        .thread
        .id
    }

    fn send(&mut self, from: &str, to: &str) -> i64 {
        self.send_kind(from, to, "task", "a task")
    }

    fn claim(&mut self, agent: &str, id: i64, lease: Duration) -> Result<Posted> {
        self.write(|tx, cfg| claim(tx, cfg, agent, id, Some(lease)))
    }

    fn update(&mut self, agent: &str, id: i64, body: &str) -> Result<Posted> {
        let note = Note {
            body,
            ..Note::default()
        };
        self.write(|tx, cfg| update(tx, cfg, agent, id, note))
    }

    fn done(&mut self, agent: &str, id: i64) -> Result<Posted> {
        let result = serde_json::json!({"ok": true});
        self.write(|tx, cfg| done(tx, cfg, agent, id, Note::default(), Some(&result), None))
    }

    fn thread(&mut self, id: i64) -> Thread {
        self.read(|tx| get_thread(tx, id)).expect("thread")
    }

    /// The kinds of the thread's messages, oldest first.
    fn kinds(&mut self, id: i64) -> Vec<String> {
        self.read(|tx| thread_messages(tx, id))
            .expect("messages")
            .into_iter()
            .map(|m| m.kind)
            .collect()
    }

    /// The stored lease end in milliseconds (the JSON carries it rendered).
    fn lease_end(&mut self, id: i64) -> i64 {
        self.read(|tx| {
            Ok(tx.query_row(
                "SELECT lease_expires_at FROM threads WHERE id = ?1",
                [id],
                |r| r.get(0),
            )?)
        })
        .expect("lease end")
    }

    /// Applies every expiry due at `at` (a clock of the test's choosing).
    fn expire_at(&mut self, at: i64) -> usize {
        self.write(|tx, cfg| expire_due(tx, cfg, at))
            .expect("expire")
    }

    fn events(&mut self, id: i64) -> Vec<Event> {
        let filter = EventFilter {
            thread: Some(id),
            ..EventFilter::default()
        };
        self.read(|tx| events_after(tx, &filter, 0, 1000))
            .expect("events")
    }
}

/// The error code of a result that must have failed.
fn code<T: std::fmt::Debug>(result: Result<T>) -> Code {
    match result {
        Ok(value) => panic!("expected an error, got {value:?}"),
        Err(e) => e.code,
    }
}

/// Waits until the wall clock has passed `ms`, polling against a deadline.
fn wait_past(ms: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while now_ms() <= ms {
        assert!(Instant::now() < deadline, "the clock did not reach {ms}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

const MINUTE: Duration = Duration::from_secs(60);
