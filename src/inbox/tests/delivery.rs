//! Queues and read cursors: what `fetch` returns, and when the cursor moves.

use super::*;

fn unread_ids(bus: &mut Bus, agent: &str) -> (Vec<i64>, i64) {
    let (messages, cursor) = bus.read(|tx| unread(tx, agent, 100)).unwrap();
    (messages.into_iter().map(|m| m.thread).collect(), cursor)
}

#[test]
fn fetching_advances_the_cursor_and_peeking_does_not() {
    let mut bus = Bus::new();
    let a = bus.send("leader", "w1");
    let b = bus.send("leader", "w1");

    // A peek is a read without the advance: asking twice gives the same answer.
    let (peeked, cursor) = unread_ids(&mut bus, "w1");
    assert_eq!(peeked, [a, b]);
    assert_eq!(unread_ids(&mut bus, "w1").0, [a, b]);

    bus.write(|tx, _| advance_cursor(tx, "w1", cursor)).unwrap();
    assert_eq!(unread_ids(&mut bus, "w1"), (vec![], cursor));

    // The cursor never moves back.
    bus.write(|tx, _| advance_cursor(tx, "w1", 0)).unwrap();
    assert!(unread_ids(&mut bus, "w1").0.is_empty());

    let c = bus.send("leader", "w1");
    assert_eq!(unread_ids(&mut bus, "w1").0, [c]);
}

#[test]
fn fetch_shows_visible_threads_but_never_my_own_messages() {
    let mut bus = Bus::new();
    let mine = bus.send("w1", "leader");
    let queued = bus.send("leader", "@q");
    let elsewhere = bus.send("leader", "w2");
    assert_eq!(unread_ids(&mut bus, "w1").0, Vec::<i64>::new());

    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "q")).unwrap();
    assert_eq!(unread_ids(&mut bus, "w1").0, [queued]);

    let note = Note {
        body: "on it",
        ..Note::default()
    };
    bus.write(|tx, cfg| reply(tx, cfg, "leader", mine, note))
        .unwrap();
    assert_eq!(unread_ids(&mut bus, "w1").0, [queued, mine]);
    assert!(!unread_ids(&mut bus, "w2").0.is_empty());
    assert!(unread_ids(&mut bus, "w2").0.iter().all(|t| *t == elsewhere));
}

#[test]
fn subscribing_late_does_not_replay_what_the_cursor_passed() {
    let mut bus = Bus::new();
    bus.send("leader", "@q");
    let direct = bus.send("leader", "w1");
    let (seen, cursor) = unread_ids(&mut bus, "w1");
    assert_eq!(seen, [direct]);
    bus.write(|tx, _| advance_cursor(tx, "w1", cursor)).unwrap();

    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "q")).unwrap();
    assert!(unread_ids(&mut bus, "w1").0.is_empty());
    let later = bus.send("leader", "@q");
    assert_eq!(unread_ids(&mut bus, "w1").0, [later]);
}

#[test]
fn subscribe_and_unsubscribe_report_whether_membership_changed() {
    let mut bus = Bus::new();
    let sub = |bus: &mut Bus, on: bool| {
        bus.write(|tx, cfg| {
            if on {
                subscribe(tx, cfg, "w1", "q")
            } else {
                unsubscribe(tx, cfg, "w1", "q")
            }
        })
        .unwrap()
    };
    assert!(sub(&mut bus, true));
    assert!(!sub(&mut bus, true));
    assert!(sub(&mut bus, false));
    assert!(!sub(&mut bus, false));
    let logged = bus
        .read(|tx| events_after(tx, &EventFilter::default(), 0, 100))
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "subscription")
        .count();
    assert_eq!(logged, 2, "only changes are logged");
}

#[test]
fn list_filters_by_status_and_refuses_an_unknown_one() {
    let mut bus = Bus::new();
    let open = bus.send("leader", "@q");
    let claimed = bus.send("leader", "@q");
    bus.claim("w1", claimed, MINUTE).unwrap();
    let by_status = |bus: &mut Bus, status: &str| {
        let filter = ListFilter {
            status: Some(status),
            limit: 100,
            ..ListFilter::default()
        };
        bus.read(|tx| list(tx, &filter))
    };
    let ids = |threads: Vec<Thread>| threads.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(by_status(&mut bus, "open").unwrap()), [open]);
    assert_eq!(ids(by_status(&mut bus, "claimed").unwrap()), [claimed]);
    assert_eq!(code(by_status(&mut bus, "sleeping")), Code::InvalidInput);

    let newest = ListFilter {
        limit: 1,
        ..ListFilter::default()
    };
    assert_eq!(ids(bus.read(|tx| list(tx, &newest)).unwrap()), [claimed]);
}

/// What `unread` must return, by the visibility rule applied to every message in order.
fn unread_by_full_scan(bus: &mut Bus, agent: &str, limit: i64) -> Vec<i64> {
    bus.read(|tx| {
        let mut stmt = tx.prepare(
            "SELECT m.id FROM messages m JOIN threads t ON t.id = m.thread_id
             WHERE m.author <> ?1 AND (t.to_addr = ?1 OR t.from_agent = ?1
                OR t.to_addr IN (SELECT '@' || queue FROM subscriptions WHERE agent = ?1)
                OR EXISTS (SELECT 1 FROM holders h WHERE h.thread_id = t.id AND h.agent = ?1))
             ORDER BY m.id LIMIT ?2",
        )?;
        let ids = stmt
            .query_map(rusqlite::params![agent, limit], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?;
        Ok(ids)
    })
    .unwrap()
}

fn unread_message_ids(bus: &mut Bus, agent: &str, limit: i64) -> Vec<i64> {
    let (messages, _) = bus.read(|tx| unread(tx, agent, limit)).unwrap();
    messages.into_iter().map(|m| m.id).collect()
}

/// Sends `count` threads from `from` to `to` in one transaction.
fn bulk(bus: &mut Bus, from: &str, to: &str, count: usize) {
    let to = Address::parse(to).expect("address");
    bus.write(|tx, cfg| {
        for i in 0..count {
            let new = NewThread {
                to: &to,
                subject: &format!("bulk {i}"),
                kind: "message",
                body: "noise",
                data: None,
                artifacts: &[],
            };
            send(tx, cfg, from, new)?;
        }
        Ok(())
    })
    .unwrap();
}

#[test]
fn unread_agrees_with_a_full_scan_when_the_cursor_lags_far_behind() {
    let mut bus = Bus::new();
    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "q")).unwrap();
    // Every way a thread becomes visible to w1, spread through thousands of messages of
    // other agents' threads, so the first window after the cursor holds none of them.
    bulk(&mut bus, "leader", "w9", 700);
    let to_me = bus.send("leader", "w1");
    bulk(&mut bus, "leader", "w8", 900);
    let queued = bus.send("leader", "@q");
    let held = bus.send("leader", "@other");
    bus.claim("w1", held, Duration::from_secs(600)).unwrap();
    bus.update("w1", held, "mine, not shown").unwrap();
    bulk(&mut bus, "w7", "w6", 900);
    let asked = bus.send("w1", "w2");
    bus.claim("w2", asked, Duration::from_secs(600)).unwrap();
    bus.update("w2", asked, "an answer w1 sees").unwrap();
    let later = bus.send("leader", "w1");
    bulk(&mut bus, "leader", "w5", 300);

    let everything = unread_by_full_scan(&mut bus, "w1", 1000);
    assert!(everything.len() >= 5, "{everything:?}");
    for limit in [1, 2, 3, everything.len() as i64, 100] {
        assert_eq!(
            unread_message_ids(&mut bus, "w1", limit),
            unread_by_full_scan(&mut bus, "w1", limit),
            "limit {limit}"
        );
    }
    let threads: Vec<i64> = unread_ids(&mut bus, "w1").0;
    for id in [to_me, queued, asked, later] {
        assert!(
            threads.contains(&id),
            "thread {id} missing from {threads:?}"
        );
    }
    // Halfway through, from a cursor in the middle of the noise.
    let (first, cursor) = bus.read(|tx| unread(tx, "w1", 2)).unwrap();
    assert_eq!(first.len(), 2);
    bus.write(|tx, _| advance_cursor(tx, "w1", cursor)).unwrap();
    assert_eq!(
        unread_message_ids(&mut bus, "w1", 100),
        everything[2..].to_vec()
    );
}

#[test]
fn a_new_subscriber_of_a_busy_queue_reads_its_oldest_messages_first() {
    let mut bus = Bus::new();
    bulk(&mut bus, "leader", "@q", 400);
    bulk(&mut bus, "leader", "w9", 400);
    bulk(&mut bus, "leader", "@q", 400);
    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "q")).unwrap();
    for limit in [10, 100, 500] {
        assert_eq!(
            unread_message_ids(&mut bus, "w1", limit),
            unread_by_full_scan(&mut bus, "w1", limit),
            "limit {limit}"
        );
    }
}
