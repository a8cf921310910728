//! A thread's life after its claim: validation, updates, questions and replies, and the
//! done/fail/cancel transitions with their refusals.

use super::*;
use serde_json::json;

fn count_threads(bus: &mut Bus) -> i64 {
    bus.read(|tx| Ok(tx.query_row("SELECT count(*) FROM threads", [], |r| r.get(0))?))
        .unwrap()
}

#[test]
fn send_checks_everything_before_writing_anything() {
    let mut bus = Bus::new();
    let to = Address::parse("@q").unwrap();
    let not_object = json!([1, 2]);
    let long = "x".repeat(MAX_SUBJECT_CHARS + 1);
    let cases: [(&str, &str, Option<&serde_json::Value>, Code); 5] = [
        ("", "task", None, Code::InvalidInput),
        ("two\nlines", "task", None, Code::InvalidInput),
        (&long, "task", None, Code::TooLarge),
        ("fine", "epic", None, Code::InvalidInput),
        ("fine", "task", Some(&not_object), Code::InvalidInput),
    ];
    for (subject, kind, data, expected) in cases {
        let new = NewThread {
            to: &to,
            subject,
            kind,
            body: "",
            data,
            artifacts: &[],
        };
        let result = bus.write(|tx, cfg| send(tx, cfg, "leader", new));
        assert_eq!(code(result), expected, "{subject:?} {kind:?}");
    }
    assert_eq!(count_threads(&mut bus), 0);
}

#[test]
fn a_new_thread_is_open_with_its_first_message_and_an_event() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    let thread = bus.thread(id);
    assert_eq!(thread.status, ThreadStatus::Open);
    assert_eq!((thread.from.as_str(), thread.to.as_str()), ("leader", "@q"));
    assert_eq!(thread.data, json!({}));
    assert_eq!(bus.kinds(id), ["send"]);
    let events = bus.events(id);
    assert_eq!(events[0].kind, "thread.status");
    assert_eq!(events[0].to.as_deref(), Some("open"));
}

#[test]
fn update_is_the_holders_and_renews_the_lease() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    assert_eq!(code(bus.update("w1", id, "early")), Code::NotClaimant);
    bus.claim("w1", id, MINUTE).unwrap();
    let claimed_end = bus.lease_end(id);
    assert_eq!(code(bus.update("w2", id, "not mine")), Code::NotClaimant);

    // The lease runs again from the update; let the clock move so the end must too.
    wait_past(now_ms());
    let posted = bus.update("w1", id, "halfway").unwrap();
    assert_eq!(posted.message.kind, "update");
    assert_eq!(posted.message.body, "halfway");
    assert!(bus.lease_end(id) > claimed_end, "update renews the lease");
}

#[test]
fn a_question_waits_for_an_answer_from_someone_else() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    let asked = bus
        .write(|tx, cfg| ask(tx, cfg, "w1", id, "hex literals?"))
        .unwrap();
    assert!(asked.thread.awaiting_reply);
    assert_eq!(
        code(bus.write(|tx, cfg| ask(tx, cfg, "w1", id, "  "))),
        Code::InvalidInput
    );

    let reply_as = |bus: &mut Bus, agent: &str| {
        let note = Note {
            body: "yes",
            ..Note::default()
        };
        bus.write(|tx, cfg| reply(tx, cfg, agent, id, note))
    };
    assert_eq!(code(reply_as(&mut bus, "stranger")), Code::Conflict);
    // The asker adding to its own question does not answer it.
    assert!(reply_as(&mut bus, "w1").unwrap().thread.awaiting_reply);
    let answered = reply_as(&mut bus, "leader").unwrap();
    assert!(!answered.thread.awaiting_reply);
    assert_eq!(answered.message.kind, "reply");
}

#[test]
fn done_records_the_result_once_and_closes_the_thread() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();

    let refuse = |_: &Thread, _: &serde_json::Value| -> Result<()> {
        Err(crate::error::Error::invalid_input("not a review"))
    };
    let result = json!({"tests": 42});
    let refused = bus.write(|tx, cfg| {
        done(
            tx,
            cfg,
            "w1",
            id,
            Note::default(),
            Some(&result),
            Some(&refuse),
        )
    });
    assert_eq!(code(refused), Code::InvalidInput);
    assert_eq!(
        bus.thread(id).status,
        ThreadStatus::Claimed,
        "a refused result changes nothing"
    );

    let finished = bus
        .write(|tx, cfg| done(tx, cfg, "w1", id, Note::default(), Some(&result), None))
        .unwrap();
    assert_eq!(finished.thread.status, ThreadStatus::Done);
    assert_eq!(finished.thread.result, result);
    assert_eq!(finished.thread.lease_expires_at, None);
    let last = bus.events(id).pop().unwrap();
    assert_eq!(last.kind, "message.created");
    let status = bus
        .events(id)
        .into_iter()
        .rfind(|e| e.kind == "thread.status")
        .unwrap();
    assert_eq!(
        (status.from.as_deref(), status.to.as_deref()),
        (Some("claimed"), Some("done"))
    );

    assert_eq!(code(bus.done("w1", id)), Code::ThreadClosed);
    assert_eq!(code(bus.claim("w2", id, MINUTE)), Code::ThreadClosed);
    assert_eq!(code(bus.update("w1", id, "one more")), Code::ThreadClosed);
    assert_eq!(bus.kinds(id).iter().filter(|k| *k == "done").count(), 1);
}

#[test]
fn fail_keeps_the_reason_and_whether_to_retry() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    bus.claim("w1", id, MINUTE).unwrap();
    assert_eq!(
        code(bus.write(|tx, cfg| fail(tx, cfg, "w1", id, " ", true))),
        Code::InvalidInput
    );
    let failed = bus
        .write(|tx, cfg| fail(tx, cfg, "w1", id, "tests do not build", true))
        .unwrap();
    assert_eq!(failed.thread.status, ThreadStatus::Failed);
    assert_eq!(
        failed.thread.failure,
        Some(Failure {
            reason: "tests do not build".into(),
            retryable: true
        })
    );
    assert_eq!(
        failed.message.data,
        json!({"reason": "tests do not build", "retryable": true})
    );
    assert_eq!(code(bus.done("w1", id)), Code::ThreadClosed);
}

#[test]
fn cancel_is_for_the_sender_or_the_leader_and_closes_the_thread() {
    let mut bus = Bus::new();
    let by_worker = bus.send("w9", "@q");
    let by_leader = bus.send("leader", "@q");
    bus.claim("w1", by_worker, MINUTE).unwrap();
    let cancel_as = |bus: &mut Bus, agent: &str, id: i64| {
        bus.write(|tx, cfg| cancel(tx, cfg, agent, id, "not needed"))
    };

    assert_eq!(
        code(cancel_as(&mut bus, "w1", by_worker)),
        Code::Conflict,
        "the holder"
    );
    let cancelled = cancel_as(&mut bus, "w9", by_worker).unwrap();
    assert_eq!(cancelled.thread.status, ThreadStatus::Cancelled);
    assert_eq!(cancelled.message.kind, "cancel");
    cancel_as(&mut bus, "leader", by_leader).unwrap();

    assert_eq!(
        code(cancel_as(&mut bus, "w9", by_worker)),
        Code::ThreadClosed
    );
    assert_eq!(code(bus.done("w1", by_worker)), Code::ThreadClosed);
    assert_eq!(code(bus.claim("w1", by_leader, MINUTE)), Code::ThreadClosed);
    let note = Note {
        body: "too late",
        ..Note::default()
    };
    let replied = bus.write(|tx, cfg| reply(tx, cfg, "leader", by_worker, note));
    assert_eq!(code(replied), Code::ThreadClosed);
}

#[test]
fn progress_is_written_in_the_holders_name_and_never_fenced() {
    let mut bus = Bus::new();
    let id = bus.send("leader", "@q");
    let data = json!({"sha": "abc"});
    let unclaimed = bus
        .write(|tx, cfg| progress(tx, cfg, "committer", id, "commit", &data))
        .unwrap();
    assert_eq!(unclaimed.message.author, "committer");
    bus.claim("w1", id, MINUTE).unwrap();
    let claimed = bus
        .write(|tx, cfg| progress(tx, cfg, "committer", id, "commit", &data))
        .unwrap();
    assert_eq!(claimed.message.author, "w1");
    assert_eq!(claimed.message.kind, "progress");
}
