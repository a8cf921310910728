//! The store's waits against a real database file in a temp dir, with a second
//! connection (as another process would have) doing the writes.

use super::doorbell::Bell;
use super::{Durability, Store};
use std::time::{Duration, Instant};

fn insert_subscription(store: &mut Store, agent: &str) {
    store
        .write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO subscriptions (agent, queue) VALUES (?1, 'q')",
                [agent],
            )?;
            Ok(())
        })
        .expect("write");
}

#[cfg(target_os = "linux")]
#[test]
fn a_commit_that_changed_rows_rings_and_one_that_did_not_stays_silent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, _) = Store::init(dir.path(), Durability::Full).expect("init");
    let bell = Bell::watch(dir.path()).expect("inotify is available on Linux");
    assert!(
        !bell.drain(),
        "nothing has committed since the watch was armed"
    );

    writer.write(|_| Ok(())).expect("an empty write");
    assert!(
        !bell.drain(),
        "a commit that changed nothing must not wake waiters"
    );

    insert_subscription(&mut writer, "w1");
    assert!(bell.drain(), "a commit that changed a row rings");
    // The same row again changes nothing (INSERT OR IGNORE).
    insert_subscription(&mut writer, "w1");
    assert!(!bell.drain());
}

#[cfg(target_os = "linux")]
#[test]
fn a_sleeping_bell_wakes_on_another_connections_commit_long_before_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, _) = Store::init(dir.path(), Durability::Full).expect("init");
    let bell = Bell::watch(dir.path()).expect("inotify");
    let started = Instant::now();
    let handle = std::thread::spawn(move || insert_subscription(&mut writer, "w1"));
    assert!(bell.sleep(Some(started + Duration::from_secs(30))));
    handle.join().expect("writer");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woke by its deadline, not by the commit: {:?}",
        started.elapsed()
    );
}

#[test]
fn wait_for_commit_returns_on_a_commit_by_another_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, _) = Store::init(dir.path(), Durability::Full).expect("init");
    let waiter = Store::open(dir.path(), Durability::Full).expect("open");
    let version = waiter.data_version().expect("version");
    let started = Instant::now();
    let handle = std::thread::spawn(move || {
        insert_subscription(&mut writer, "w1");
        writer
    });
    let committed = waiter
        .wait_for_commit(version, Some(started + Duration::from_secs(30)))
        .expect("wait");
    handle.join().expect("writer");
    assert!(committed);
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nothing more commits: the wait ends at its deadline with false.
    let version = waiter.data_version().expect("version");
    let deadline = Instant::now() + Duration::from_millis(50);
    assert!(!waiter
        .wait_for_commit(version, Some(deadline))
        .expect("wait"));
    assert!(Instant::now() >= deadline);
}

#[test]
fn a_commit_between_reading_the_version_and_arming_the_watch_is_not_missed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut writer, _) = Store::init(dir.path(), Durability::Full).expect("init");
    let waiter = Store::open(dir.path(), Durability::Full).expect("open");
    let version = waiter.data_version().expect("version");
    // The commit lands before the first wait arms its watch, so no ring reaches it: the
    // re-read of the version must catch it, or this would sleep to its deadline.
    insert_subscription(&mut writer, "w1");
    let started = Instant::now();
    let committed = waiter
        .wait_for_commit(version, Some(started + Duration::from_secs(30)))
        .expect("wait");
    assert!(committed);
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Short writers one after another (as commands are) keep the WAL near its limit: the
/// writer that finds it long checkpoints and its transaction starts the log over, even
/// though a checkpoint within `CHECKPOINT_EVERY` of the last one is skipped.
#[test]
fn the_wal_starts_over_under_short_writers() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(Store::init(dir.path(), Durability::Full).expect("init"));
    let value = "x".repeat(8192);
    for i in 0..300 {
        let mut store = Store::open(dir.path(), Durability::Full).expect("open");
        store
            .write(|tx| {
                tx.execute(
                    "INSERT OR REPLACE INTO orch_settings (key, value) VALUES (?1, ?2)",
                    rusqlite::params![format!("k{}", i % 20), value],
                )?;
                Ok(())
            })
            .expect("write");
    }
    // Without a restart the log would hold every write: 8 KB each, 2.4 MB in all.
    let len = std::fs::metadata(dir.path().join("state.db-wal"))
        .expect("the WAL is kept")
        .len();
    assert!(
        len <= 3 * super::WAL_LIMIT_BYTES,
        "the WAL grew to {len} bytes"
    );
}
