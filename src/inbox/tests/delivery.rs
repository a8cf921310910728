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
