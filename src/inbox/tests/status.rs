//! `ThreadStatus` agrees with the schema and with the wire.

use super::*;
use rusqlite::params;

#[test]
fn every_status_round_trips_through_the_threads_table() {
    let bus = Bus::new();
    let conn = bus.store.conn();
    for status in ThreadStatus::ALL {
        // A claimed row needs a holder and a lease (the table's CHECK), the others none.
        let (holder, lease) = match status {
            ThreadStatus::Claimed => (Some("w1"), Some(1_i64)),
            _ => (None, None),
        };
        conn.execute(
            "INSERT INTO threads (subject, kind, from_agent, to_addr, status, claimed_by,
                                  lease_expires_at, created_at, updated_at)
             VALUES ('s', 'task', 'leader', '@q', ?1, ?2, ?3, 0, 0)",
            params![status, holder, lease],
        )
        .unwrap_or_else(|e| panic!("the schema refused {status}: {e}"));
        let id = conn.last_insert_rowid();
        let thread = get_thread(conn, id).unwrap();
        assert_eq!(thread.status, status);
        assert_eq!(
            serde_json::to_value(thread.status).unwrap(),
            status.as_str()
        );
        assert_eq!(ThreadStatus::parse(status.as_str()).unwrap(), status);
    }
    let closed: Vec<_> = ThreadStatus::ALL
        .into_iter()
        .filter(|s| s.is_closed())
        .collect();
    assert_eq!(
        closed,
        [
            ThreadStatus::Done,
            ThreadStatus::Failed,
            ThreadStatus::Cancelled
        ]
    );
}

#[test]
fn an_unknown_status_is_refused_by_the_schema_and_by_the_type() {
    let bus = Bus::new();
    let conn = bus.store.conn();
    let stored = conn.execute(
        "INSERT INTO threads (subject, kind, from_agent, to_addr, status, created_at, updated_at)
         VALUES ('s', 'task', 'leader', '@q', 'sleeping', 0, 0)",
        [],
    );
    assert!(stored.is_err());
    let read: rusqlite::Result<ThreadStatus> =
        conn.query_row("SELECT 'sleeping'", [], |r| r.get(0));
    assert!(read.is_err());
    assert_eq!(code(ThreadStatus::parse("sleeping")), Code::InvalidInput);
    assert!(serde_json::from_str::<ThreadStatus>("\"sleeping\"").is_err());
    assert_eq!(
        serde_json::from_str::<ThreadStatus>("\"cancelled\"").unwrap(),
        ThreadStatus::Cancelled
    );
}
