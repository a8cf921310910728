//! Claims, leases, lazy expiry, the fence, `claim_next`, and the `maxClaims` limit.

use super::*;
use std::collections::BTreeSet;

#[test]
fn a_claim_holds_the_thread_for_its_lease() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    let before = now_ms();
    let posted = bus.claim("w1", id, 10 * MINUTE).unwrap();
    let after = now_ms();

    assert_eq!(posted.thread.status, ThreadStatus::Claimed);
    assert_eq!(posted.thread.claimed_by.as_deref(), Some("w1"));
    assert_eq!(posted.thread.claim_count, 1);
    assert_eq!(posted.message.kind, "claim");
    assert_eq!(posted.message.data["epoch"], 1);
    let end = bus.lease_end(id);
    let lease = i64::try_from((10 * MINUTE).as_millis()).unwrap();
    assert!((before + lease..=after + lease).contains(&end), "{end}");
}

#[test]
fn a_claimed_thread_refuses_a_second_claimant_and_renews_for_its_holder() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    let first_end = bus.lease_end(id);

    assert_eq!(code(bus.claim("w2", id, MINUTE)), Code::AlreadyClaimed);
    assert_eq!(bus.thread(id).claimed_by.as_deref(), Some("w1"));

    let again = bus.claim("w1", id, 60 * MINUTE).unwrap();
    assert_eq!(again.message.kind, "renew");
    assert_eq!(again.thread.claim_count, 1, "a renewal is not a new claim");
    assert!(bus.lease_end(id) > first_end + 50 * 60 * 1000);
}

#[test]
fn a_thread_addressed_to_an_agent_is_claimed_only_by_it() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "w1");
    assert_eq!(code(bus.claim("w2", id, MINUTE)), Code::Conflict);
    assert_eq!(bus.thread(id).status, ThreadStatus::Open);
    bus.claim("w1", id, MINUTE).unwrap();
}

#[test]
fn a_zero_or_absurd_lease_is_refused_before_anything_is_written() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    assert_eq!(
        code(bus.claim("w1", id, Duration::ZERO)),
        Code::InvalidInput
    );
    let centuries = Duration::from_secs(200 * 365 * 24 * 3600);
    assert_eq!(code(bus.claim("w1", id, centuries)), Code::InvalidInput);
    assert_eq!(bus.thread(id).status, ThreadStatus::Open);
    assert_eq!(bus.kinds(id), ["send"]);
}

#[test]
fn renew_extends_by_the_claims_own_lease_and_needs_the_claim() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, 10 * MINUTE).unwrap();
    assert_eq!(
        code(bus.write(|tx, cfg| renew(tx, cfg, "w2", id, None))),
        Code::NotClaimant
    );

    let before = now_ms();
    let renewed = bus.write(|tx, cfg| renew(tx, cfg, "w1", id, None)).unwrap();
    assert_eq!(renewed.message.kind, "renew");
    // Not the 30-minute default: a bare renew keeps the length the claim was taken with.
    let end = bus.lease_end(id);
    assert!(
        end >= before + 10 * 60 * 1000 && end < before + 11 * 60 * 1000,
        "{end}"
    );
}

#[test]
fn release_reopens_the_thread_and_ends_the_hold() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    assert_eq!(
        code(bus.write(|tx, cfg| release(tx, cfg, "w2", id))),
        Code::NotClaimant
    );
    let released = bus.write(|tx, cfg| release(tx, cfg, "w1", id)).unwrap();
    assert_eq!(released.thread.status, ThreadStatus::Open);
    assert_eq!(released.thread.claimed_by, None);
    assert_eq!(released.message.kind, "release");
    // Giving a thread back is not losing it: the old holder is a plain non-claimant.
    assert_eq!(code(bus.update("w1", id, "more")), Code::NotClaimant);
    bus.claim("w2", id, MINUTE).unwrap();
}

#[test]
fn an_expired_lease_is_applied_lazily_by_the_next_command_that_looks() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, Duration::from_millis(1)).unwrap();
    let end = bus.lease_end(id);
    wait_past(end);

    // Nothing runs in the background: until someone looks, the row still says claimed.
    let stored: String = bus
        .read(|tx| {
            Ok(
                tx.query_row("SELECT status FROM threads WHERE id = ?1", [id], |r| {
                    r.get(0)
                })?,
            )
        })
        .unwrap();
    assert_eq!(stored, "claimed");

    let taken = bus.claim("w2", id, MINUTE).unwrap();
    assert_eq!(taken.thread.claimed_by.as_deref(), Some("w2"));
    assert_eq!(taken.thread.claim_count, 2);
    let messages = bus.read(|tx| thread_messages(tx, id)).unwrap();
    let expire = messages
        .iter()
        .find(|m| m.kind == "expire")
        .expect("expire");
    assert_eq!(
        expire.author, "w1",
        "the expiry is written in the lost holder's name"
    );
    assert_eq!(expire.data["expiries"], 1);
    let statuses: Vec<_> = bus
        .events(id)
        .into_iter()
        .filter(|e| e.kind == "thread.status")
        .map(|e| (e.from, e.to.unwrap_or_default()))
        .collect();
    assert_eq!(
        statuses,
        [
            (None, "open".to_owned()),
            (Some("open".to_owned()), "claimed".to_owned()),
            (Some("claimed".to_owned()), "open".to_owned()),
            (Some("open".to_owned()), "claimed".to_owned()),
        ]
    );
}

#[test]
fn expiry_happens_at_the_lease_end_and_not_a_millisecond_before() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    let end = bus.lease_end(id);
    assert_eq!(bus.expire_at(end - 1), 0);
    assert_eq!(bus.thread(id).status, ThreadStatus::Claimed);
    assert_eq!(bus.expire_at(end), 1);
    assert_eq!(bus.thread(id).status, ThreadStatus::Open);
    assert_eq!(bus.expire_at(end + 1), 0, "an expiry is applied once");
}

#[test]
fn the_old_holder_gets_lease_lost_after_expiry_and_a_reclaim_by_another() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    bus.expire_at(now_ms() + 2 * 60 * 1000);
    bus.claim("w2", id, MINUTE).unwrap();

    // Every act of the stale holder is refused by the fence, and names the cause.
    assert_eq!(code(bus.update("w1", id, "late")), Code::LeaseLost);
    assert_eq!(code(bus.done("w1", id)), Code::LeaseLost);
    assert_eq!(
        code(bus.write(|tx, cfg| ask(tx, cfg, "w1", id, "still mine?"))),
        Code::LeaseLost
    );
    assert_eq!(
        code(bus.write(|tx, cfg| fail(tx, cfg, "w1", id, "gave up", true))),
        Code::LeaseLost
    );
    assert_eq!(
        code(bus.write(|tx, cfg| renew(tx, cfg, "w1", id, None))),
        Code::LeaseLost
    );
    assert_eq!(
        code(bus.write(|tx, cfg| release(tx, cfg, "w1", id))),
        Code::LeaseLost
    );

    // The valid holder is untouched, and there is exactly one done.
    bus.done("w2", id).unwrap();
    assert_eq!(code(bus.done("w1", id)), Code::LeaseLost);
    let kinds = bus.kinds(id);
    assert_eq!(kinds.iter().filter(|k| *k == "done").count(), 1);
    assert!(!kinds.contains(&"update".to_owned()));
    assert_eq!(bus.thread(id).claimed_by.as_deref(), Some("w2"));
}

#[test]
fn a_holder_that_lost_its_lease_can_claim_again_and_act() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    bus.expire_at(now_ms() + 2 * 60 * 1000);
    assert_eq!(code(bus.update("w1", id, "late")), Code::LeaseLost);

    bus.claim("w1", id, MINUTE).unwrap();
    let posted = bus.update("w1", id, "back at it").unwrap();
    assert_eq!(posted.message.kind, "update");
}

#[test]
fn the_max_claims_th_expiry_fails_the_thread() {
    let mut bus = Bus::with(Config {
        max_claims: 2,
        ..Config::default()
    });
    let id = bus.send("leader", "@q");
    // Releases are not expiries and do not count towards the limit.
    for _ in 0..3 {
        bus.claim("w1", id, MINUTE).unwrap();
        bus.write(|tx, cfg| release(tx, cfg, "w1", id)).unwrap();
    }
    bus.claim("w1", id, MINUTE).unwrap();
    let end = bus.lease_end(id);
    assert_eq!(bus.expire_at(end), 1);
    assert_eq!(bus.thread(id).status, ThreadStatus::Open);

    bus.claim("w2", id, MINUTE).unwrap();
    let end = bus.lease_end(id);
    assert_eq!(bus.expire_at(end), 1);
    let thread = bus.thread(id);
    assert_eq!(thread.status, ThreadStatus::Failed);
    let failure = thread.failure.expect("failure");
    assert_eq!(failure.reason, "lease_expired_too_often");
    assert!(!failure.retryable);
    assert_eq!(bus.kinds(id).last().map(String::as_str), Some("fail"));
    assert_eq!(code(bus.claim("w3", id, MINUTE)), Code::ThreadClosed);
    // The last holder hears that its lease ran out, not merely that the thread closed.
    assert_eq!(code(bus.update("w2", id, "late")), Code::LeaseLost);
}

#[test]
fn claim_next_takes_the_oldest_open_thread_among_mine_and_my_queues() {
    let mut bus = Bus::new();
    let other_queue = bus.send("leader", "@other");
    let q1 = bus.send("leader", "@q");
    let someone_elses = bus.send("leader", "w2");
    let mine = bus.send("leader", "w1");
    let q2 = bus.send_kind("leader", "@q", "message", "a note");
    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "q")).unwrap();

    let next = |bus: &mut Bus, filter: NextFilter<'_>| {
        bus.write(|tx, cfg| claim_next(tx, cfg, "w1", &filter, Some(MINUTE)))
            .unwrap()
            .map(|p| p.thread.id)
    };
    let any = || NextFilter {
        queue: None,
        kind: None,
    };
    let messages = NextFilter {
        queue: None,
        kind: Some("message"),
    };
    assert_eq!(next(&mut bus, messages), Some(q2), "the kind filter");
    assert_eq!(next(&mut bus, any()), Some(q1));
    assert_eq!(next(&mut bus, any()), Some(mine));
    assert_eq!(next(&mut bus, any()), None);
    // A named queue is open to anyone, subscribed or not.
    let other = NextFilter {
        queue: Some("other"),
        kind: None,
    };
    assert_eq!(next(&mut bus, other), Some(other_queue));
    assert_eq!(bus.thread(someone_elses).status, ThreadStatus::Open);
}

#[test]
fn claim_next_looks_only_at_open_threads_of_its_own_addresses_oldest_first() {
    let mut bus = Bus::new();
    let a1 = bus.send("leader", "@a");
    let b1 = bus.send("leader", "@b");
    let mine = bus.send("leader", "w1");
    let a2 = bus.send("leader", "@a");
    for _ in 0..3 {
        bus.send("leader", "@elsewhere");
    }
    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "b")).unwrap();
    bus.write(|tx, cfg| subscribe(tx, cfg, "w1", "a")).unwrap();
    let any = NextFilter {
        queue: None,
        kind: None,
    };
    let mut order = Vec::new();
    while let Some(p) = bus
        .write(|tx, cfg| claim_next(tx, cfg, "w1", &any, Some(MINUTE)))
        .unwrap()
    {
        order.push(p.thread.id);
    }
    assert_eq!(
        order,
        [a1, b1, mine, a2],
        "oldest first across every address"
    );

    // Each look at `threads` is one range of the (status, to_addr, id) index.
    let plan: Vec<String> = bus
        .store
        .read(|tx| {
            let mut stmt = tx.prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::super::lease::CLAIM_NEXT_SQL
            ))?;
            let rows = stmt.query_map(rusqlite::params!["w1", None::<String>], |r| r.get(3))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
        .unwrap();
    let threads: Vec<&String> = plan.iter().filter(|s| s.contains("threads")).collect();
    assert_eq!(threads.len(), 2, "{plan:?}");
    assert!(
        threads
            .iter()
            .all(|s| s.contains("(status=? AND to_addr=?)")),
        "{plan:?}"
    );
}

#[test]
fn claim_next_from_two_connections_never_hands_one_thread_out_twice() {
    let mut bus = Bus::new();
    let sent: BTreeSet<i64> = (0..40).map(|_| bus.send("leader", "@q")).collect();
    let cfg = bus.cfg.clone();
    let workers: Vec<_> = ["w1", "w2"]
        .into_iter()
        .map(|agent| {
            let mut store = bus.open_again();
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let filter = NextFilter {
                    queue: Some("q"),
                    kind: None,
                };
                let mut taken = Vec::new();
                while let Some(posted) = store
                    .write(|tx| claim_next(tx, &cfg, agent, &filter, Some(MINUTE)))
                    .expect("claim_next")
                {
                    assert_eq!(posted.thread.claimed_by.as_deref(), Some(agent));
                    taken.push(posted.thread.id);
                }
                taken
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.join().expect("worker"));
    }
    let unique: BTreeSet<i64> = all.iter().copied().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "a thread was claimed twice: {all:?}"
    );
    assert_eq!(unique, sent);
    for id in sent {
        assert_eq!(bus.thread(id).claim_count, 1);
    }
}
