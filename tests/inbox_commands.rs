//! Every `git inbox` command doing its job, through the real binary.

use crate::common::{finish, wait_until_db_open, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

fn ids(messages: &Value) -> Vec<i64> {
    messages
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| m["id"].as_i64().unwrap())
        .collect()
}

fn kinds(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .expect("an array")
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn send_returns_thread_and_message_with_spec_fields() {
    let env = TestEnv::new();
    let sent = env
        .sending("leader", "worker-1", "Implement the lexer")
        .args([
            "--kind",
            "task",
            "--body",
            "tokens first",
            "--data",
            r#"{"priority": 2}"#,
        ])
        .ok();
    let thread = &sent["thread"];
    for field in [
        "id",
        "subject",
        "kind",
        "from",
        "to",
        "status",
        "claimed_by",
        "lease_expires_at",
        "claim_count",
        "awaiting_reply",
        "data",
        "result",
        "created_at",
        "updated_at",
    ] {
        assert!(
            thread.get(field).is_some(),
            "thread lacks {field}: {thread}"
        );
    }
    assert_eq!(thread["subject"], "Implement the lexer");
    assert_eq!(thread["kind"], "task");
    assert_eq!(thread["from"], "leader");
    assert_eq!(thread["to"], "worker-1");
    assert_eq!(thread["status"], "open");
    assert_eq!(thread["claimed_by"], Value::Null);
    assert_eq!(thread["claim_count"], 0);
    assert_eq!(thread["awaiting_reply"], false);
    assert_eq!(thread["data"], json!({"priority": 2}));
    assert_eq!(thread["result"], Value::Null);
    let created = thread["created_at"].as_str().unwrap();
    // RFC 3339 UTC with milliseconds: 2026-11-25T15:09:20.123Z
    assert_eq!(created.len(), 24, "{created}");
    assert!(
        created.ends_with('Z') && created.as_bytes()[19] == b'.',
        "{created}"
    );

    let message = &sent["message"];
    assert_eq!(message["thread"], thread["id"]);
    assert_eq!(message["author"], "leader");
    assert_eq!(message["kind"], "send");
    assert_eq!(message["body"], "tokens first");
    assert_eq!(message["artifacts"], json!([]));

    // The default kind is message; a queue address is kept with its @.
    let plain = env.sending("leader", "@workers", "hi").ok();
    assert_eq!(plain["thread"]["kind"], "message");
    assert_eq!(plain["thread"]["to"], "@workers");
    assert_eq!(plain["thread"]["data"], json!({}));
    assert!(plain["message"]["id"].as_i64() > message["id"].as_i64());
}

#[test]
fn send_reads_body_from_stdin_and_data_from_a_file() {
    let env = TestEnv::new();
    let body = "line one\nline two\n\u{e9}t\u{e9}\n";
    let sent = env
        .sending("leader", "w1", "s")
        .args(["--body-file", "-"])
        .stdin(body)
        .ok();
    assert_eq!(sent["message"]["body"], body);

    let data_file = env.root().join("data.json");
    std::fs::write(&data_file, r#"{"files": ["a.rs", "b.rs"], "n": 3}"#).unwrap();
    let body_file = env.root().join("body.txt");
    std::fs::write(&body_file, "from a file").unwrap();
    let sent = env
        .sending("leader", "w1", "s")
        .arg("--data-file")
        .arg(&data_file)
        .arg("--body-file")
        .arg(&body_file)
        .ok();
    assert_eq!(
        sent["thread"]["data"],
        json!({"files": ["a.rs", "b.rs"], "n": 3})
    );
    assert_eq!(sent["message"]["body"], "from a file");

    // --data-file - reads stdin too.
    let sent = env
        .sending("leader", "w1", "s")
        .args(["--data-file", "-"])
        .stdin(r#"{"via": "stdin"}"#)
        .ok();
    assert_eq!(sent["thread"]["data"], json!({"via": "stdin"}));
}

#[test]
fn fetch_peek_cursor_and_limit() {
    let env = TestEnv::new();
    let a = env.send("leader", "w1", "first");
    let b = env.send("leader", "w1", "second");
    env.send("leader", "w2", "not for w1");

    let peek = env.inbox().agent("w1").args(["fetch", "--peek"]).ok();
    assert_eq!(kinds(&peek["messages"]), ["send", "send"]);
    let threads: Vec<i64> = peek["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["thread"].as_i64().unwrap())
        .collect();
    assert_eq!(threads, [a, b], "oldest first");
    // --peek does not move the cursor: the same messages again.
    let again = env.inbox().agent("w1").args(["fetch", "--peek"]).ok();
    assert_eq!(ids(&again["messages"]), ids(&peek["messages"]));

    // --limit 1 returns the oldest and advances past it only.
    let one = env.inbox().agent("w1").args(["fetch", "--limit", "1"]).ok();
    let first_id = ids(&peek["messages"])[0];
    assert_eq!(ids(&one["messages"]), [first_id]);
    assert_eq!(one["cursor"], first_id);
    let rest = env.inbox().agent("w1").arg("fetch").ok();
    let second_id = ids(&peek["messages"])[1];
    assert_eq!(ids(&rest["messages"]), [second_id]);
    assert_eq!(rest["cursor"], second_id);
    // Nothing unread: empty, and the cursor stays where it was.
    let empty = env.inbox().agent("w1").arg("fetch").ok();
    assert_eq!(empty["messages"], json!([]));
    assert_eq!(empty["cursor"], second_id);

    // A new message shows up after the cursor.
    let c = env.send("leader", "w1", "third");
    let next = env.inbox().agent("w1").arg("fetch").ok();
    assert_eq!(next["messages"].as_array().unwrap().len(), 1);
    assert_eq!(next["messages"][0]["thread"], c);
}

#[test]
fn fetch_never_returns_my_own_messages_and_follows_visibility() {
    let env = TestEnv::new();
    let t = env.send("leader", "w1", "question");
    env.inbox()
        .agent("w1")
        .args(["reply", &t.to_string(), "--body", "my answer"])
        .ok();
    let w1 = env.inbox().agent("w1").arg("fetch").ok();
    assert_eq!(
        kinds(&w1["messages"]),
        ["send"],
        "w1 sees only leader's send"
    );
    let leader = env.inbox().agent("leader").arg("fetch").ok();
    assert_eq!(
        kinds(&leader["messages"]),
        ["reply"],
        "the sender sees the reply"
    );
    assert_eq!(leader["messages"][0]["body"], "my answer");

    // Queue threads are visible once subscribed (messages after the cursor).
    let q = env.send("leader", "@workers", "queued");
    assert_eq!(
        env.inbox().agent("w2").arg("fetch").ok()["messages"],
        json!([])
    );
    env.inbox().agent("w2").args(["subscribe", "@workers"]).ok();
    let w2 = env.inbox().agent("w2").arg("fetch").ok();
    assert_eq!(w2["messages"][0]["thread"], q);
    // Threads an agent held stay visible after it gave them back.
    env.inbox().agent("w3").args(["claim", &q.to_string()]).ok();
    env.inbox()
        .agent("w3")
        .args(["release", &q.to_string()])
        .ok();
    env.inbox()
        .agent("leader")
        .args(["reply", &q.to_string(), "--body", "thanks"])
        .ok();
    let w3 = env.inbox().agent("w3").arg("fetch").ok();
    assert!(
        w3["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["body"] == "thanks"),
        "{w3}"
    );
}

#[test]
fn the_cursor_is_one_position_so_a_late_subscription_does_not_replay() {
    let env = TestEnv::new();
    let old = env.send("leader", "@workers", "before w1 joined");
    let mine = env.send("leader", "w1", "direct");
    let fetched = env.inbox().agent("w1").arg("fetch").ok();
    assert_eq!(fetched["messages"].as_array().unwrap().len(), 1);
    assert_eq!(fetched["messages"][0]["thread"], mine);
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    // Older queue messages lie behind the cursor; new ones on that thread arrive.
    assert_eq!(
        env.inbox().agent("w1").arg("fetch").ok()["messages"],
        json!([])
    );
    env.inbox()
        .agent("leader")
        .args(["reply", &old.to_string(), "--body", "still open"])
        .ok();
    let fetched = env.inbox().agent("w1").arg("fetch").ok();
    assert_eq!(fetched["messages"][0]["body"], "still open");
    // A newcomer that never fetched starts from the beginning.
    env.inbox().agent("w2").args(["subscribe", "@workers"]).ok();
    let fetched = env.inbox().agent("w2").arg("fetch").ok();
    assert_eq!(kinds(&fetched["messages"]), ["send", "reply"]);
}

#[test]
fn fetch_wait_is_woken_by_a_send_from_another_process() {
    let env = TestEnv::new();
    let waiter = env
        .inbox()
        .agent("w1")
        .args(["fetch", "--wait", "20s"])
        .spawn_json();
    wait_until_db_open(&waiter);
    let t = env.send("leader", "w1", "wake up");
    let run = finish(waiter, Duration::from_secs(20));
    let data = run.data();
    assert_eq!(data["messages"][0]["thread"], t);
    // The waiting fetch advanced the cursor.
    assert_eq!(
        env.inbox().agent("w1").arg("fetch").ok()["messages"],
        json!([])
    );
    // With something already unread, --wait returns at once.
    env.send("leader", "w1", "already there");
    let now = env.inbox().agent("w1").args(["fetch", "--wait"]).ok();
    assert_eq!(now["messages"].as_array().unwrap().len(), 1);
}

#[test]
fn claim_by_id_next_queue_kind_and_reclaim_renews() {
    let env = TestEnv::new();
    let msg = env.send("leader", "@workers", "a message");
    let task1 = env.task("leader", "@workers", "task one");
    let task2 = env.task("leader", "@workers", "task two");
    let direct = env.task("leader", "w1", "for w1 only");
    let other_q = env.task("leader", "@reviewers", "a review");

    // Not subscribed: --next finds only what is addressed to w1 itself.
    let got = env.inbox().agent("w1").args(["claim", "--next"]).ok();
    assert_eq!(got["thread"]["id"], direct);
    assert_eq!(got["thread"]["status"], "claimed");
    assert_eq!(got["thread"]["claimed_by"], "w1");
    assert_eq!(got["thread"]["claim_count"], 1);
    assert_eq!(got["message"]["kind"], "claim");

    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    // --kind task skips the older message thread.
    let got = env
        .inbox()
        .agent("w1")
        .args(["claim", "--next", "--kind", "task"])
        .ok();
    assert_eq!(got["thread"]["id"], task1);
    // Without a filter: the oldest open one of my queues.
    let got = env.inbox().agent("w1").args(["claim", "--next"]).ok();
    assert_eq!(got["thread"]["id"], msg);
    // --queue names one queue, subscribed or not.
    let got = env
        .inbox()
        .agent("w1")
        .args(["claim", "--next", "--queue", "@reviewers"])
        .ok();
    assert_eq!(got["thread"]["id"], other_q);
    // By id.
    let got = env
        .inbox()
        .agent("w2")
        .args(["claim", &task2.to_string(), "--lease", "10m"])
        .ok();
    assert_eq!(got["thread"]["claimed_by"], "w2");
    let first_lease = got["thread"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // Re-claiming a thread I hold renews it: a renew message, same claim count.
    let again = env
        .inbox()
        .agent("w2")
        .args(["claim", &task2.to_string(), "--lease", "1h"])
        .ok();
    assert_eq!(again["message"]["kind"], "renew");
    assert_eq!(again["thread"]["claim_count"], 1);
    assert_eq!(again["thread"]["claimed_by"], "w2");
    assert!(again["thread"]["lease_expires_at"].as_str().unwrap() > first_lease.as_str());

    // Nothing left: not_found (exit 3).
    env.inbox()
        .agent("w1")
        .args(["claim", "--next"])
        .fails("not_found", 3);
}

#[test]
fn claim_next_wait_is_woken_by_a_send() {
    let env = TestEnv::new();
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    let waiter = env
        .inbox()
        .agent("w1")
        .args(["claim", "--next", "--wait", "20s", "--lease", "5m"])
        .spawn_json();
    wait_until_db_open(&waiter);
    let t = env.task("leader", "@workers", "come and get it");
    let data = finish(waiter, Duration::from_secs(20)).data();
    assert_eq!(data["thread"]["id"], t);
    assert_eq!(data["thread"]["claimed_by"], "w1");
    assert_eq!(env.show(t)["thread"]["status"], "claimed");
}

#[test]
fn renew_release_and_update_renews_the_lease() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    let claimed = env
        .inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "10m"])
        .ok();
    let lease0 = claimed["thread"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();

    let renewed = env
        .inbox()
        .agent("w1")
        .args(["renew", &id, "--lease", "1h"])
        .ok();
    assert_eq!(renewed["message"]["kind"], "renew");
    let lease1 = renewed["thread"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(lease1 > lease0, "{lease1} > {lease0}");

    let updated = env
        .inbox()
        .agent("w1")
        .args([
            "update",
            &id,
            "--body",
            "half way",
            "--data",
            r#"{"pct": 50}"#,
        ])
        .ok();
    assert_eq!(updated["message"]["kind"], "update");
    assert_eq!(updated["message"]["body"], "half way");
    assert_eq!(updated["message"]["data"], json!({"pct": 50}));
    let lease2 = updated["thread"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        lease2 > lease1,
        "update renews the lease: {lease2} > {lease1}"
    );

    let released = env.inbox().agent("w1").args(["release", &id]).ok();
    assert_eq!(released["message"]["kind"], "release");
    assert_eq!(released["thread"]["status"], "open");
    assert_eq!(released["thread"]["lease_expires_at"], Value::Null);
    // Open again: the addressee can take it back.
    let back = env.inbox().agent("w1").args(["claim", &id]).ok();
    assert_eq!(back["thread"]["claim_count"], 2);
}

#[test]
fn ask_reply_and_awaiting_reply() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let asked = env
        .inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "which parser?"])
        .ok();
    assert_eq!(asked["message"]["kind"], "ask");
    assert_eq!(asked["thread"]["awaiting_reply"], true);

    // The asker following up does not clear it.
    let follow = env
        .inbox()
        .agent("w1")
        .args(["reply", &id, "--body", "also: which lexer?"])
        .ok();
    assert_eq!(follow["message"]["kind"], "reply");
    assert_eq!(follow["thread"]["awaiting_reply"], true);

    // Anyone else answering clears it.
    let answer = env
        .inbox()
        .agent("leader")
        .args(["reply", &id, "--body-file", "-"])
        .stdin("use nom")
        .ok();
    assert_eq!(answer["message"]["body"], "use nom");
    assert_eq!(answer["thread"]["awaiting_reply"], false);
    assert_eq!(env.show(t)["thread"]["awaiting_reply"], false);
}

#[test]
fn wait_reply_returns_replies_before_and_after_it_started() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();

    // A reply that arrived before wait-reply started is returned, not missed.
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "q1"])
        .ok();
    env.inbox()
        .agent("leader")
        .args(["reply", &id, "--body", "a1"])
        .ok();
    let got = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "10s"])
        .ok();
    assert_eq!(got["message"]["body"], "a1");
    assert_eq!(got["message"]["author"], "leader");
    assert_eq!(got["thread"]["id"], t);

    // A reply written while it waits wakes it.
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "q2"])
        .ok();
    let waiter = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&waiter);
    env.inbox()
        .agent("leader")
        .args(["reply", &id, "--body", "a2"])
        .ok();
    let got = finish(waiter, Duration::from_secs(20)).data();
    assert_eq!(got["message"]["body"], "a2");

    // Nothing new: exit 5 timeout.
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "q3"])
        .ok();
    env.inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "150ms"])
        .fails("timeout", 5);
}

#[test]
fn wait_reply_is_not_fooled_by_my_own_renewals() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "q"])
        .ok();
    env.inbox()
        .agent("leader")
        .args(["reply", &id, "--body", "the answer"])
        .ok();
    // Renewing (or re-claiming) is bookkeeping, not a turn in the conversation: the
    // answer that came after my question is still the one to return.
    env.inbox().agent("w1").args(["renew", &id]).ok();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let got = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "5s"])
        .ok();
    assert_eq!(got["message"]["body"], "the answer");
}

#[test]
fn wait_reply_renews_the_waiting_claimants_lease() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "1s"])
        .ok();
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "q"])
        .ok();
    let waiter = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    // Two renewals by the waiter: it kept the lease across more than one lease length.
    crate::common::wait_until("two renewals", Duration::from_secs(10), || {
        let renews = env.show(t)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["kind"] == "renew")
            .count();
        (renews >= 2).then_some(())
    });
    let shown = env.show(t);
    assert_eq!(shown["thread"]["status"], "claimed");
    assert_eq!(shown["thread"]["claimed_by"], "w1");
    env.inbox()
        .agent("leader")
        .args(["reply", &id, "--body", "answer"])
        .ok();
    let got = finish(waiter, Duration::from_secs(20)).data();
    assert_eq!(got["message"]["body"], "answer");
    assert_eq!(got["thread"]["status"], "claimed");
}

#[test]
fn done_records_the_result_object() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let result = env.root().join("result.json");
    std::fs::write(&result, r#"{"tests": 12, "branch": "feat"}"#).unwrap();
    let done = env
        .inbox()
        .agent("w1")
        .args(["done", &id, "--body", "finished"])
        .arg("--result-file")
        .arg(&result)
        .ok();
    assert_eq!(done["thread"]["status"], "done");
    assert_eq!(
        done["thread"]["result"],
        json!({"tests": 12, "branch": "feat"})
    );
    assert_eq!(done["thread"]["lease_expires_at"], Value::Null);
    assert_eq!(done["message"]["kind"], "done");
    assert_eq!(done["message"]["body"], "finished");
    // Without --result the result stays null.
    let t2 = env.task("leader", "w1", "more");
    env.inbox()
        .agent("w1")
        .args(["claim", &t2.to_string()])
        .ok();
    let done = env.inbox().agent("w1").args(["done", &t2.to_string()]).ok();
    assert_eq!(done["thread"]["status"], "done");
    assert_eq!(done["thread"]["result"], Value::Null);
}

#[test]
fn fail_records_reason_and_retryable() {
    let env = TestEnv::new();
    for (retryable, subject) in [(true, "flaky"), (false, "hopeless")] {
        let t = env.task("leader", "w1", subject);
        let id = t.to_string();
        env.inbox().agent("w1").args(["claim", &id]).ok();
        let mut cmd = env
            .inbox()
            .agent("w1")
            .args(["fail", &id, "--reason", "network down"]);
        if retryable {
            cmd = cmd.arg("--retryable");
        }
        let failed = cmd.ok();
        assert_eq!(failed["thread"]["status"], "failed");
        assert_eq!(failed["message"]["kind"], "fail");
        assert_eq!(failed["message"]["body"], "network down");
        assert_eq!(
            failed["message"]["data"],
            json!({"reason": "network down", "retryable": retryable})
        );
        assert_eq!(
            failed["thread"]["failure"],
            json!({"reason": "network down", "retryable": retryable})
        );
    }
}

#[test]
fn cancel_by_sender_or_leader_only() {
    let env = TestEnv::new();
    let t = env.send("alice", "@workers", "from alice");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    // The holder is not the sender.
    env.inbox()
        .agent("w1")
        .args(["cancel", &id])
        .fails("conflict", 4);
    let cancelled = env
        .inbox()
        .agent("alice")
        .args(["cancel", &id, "--reason", "not needed"])
        .ok();
    assert_eq!(cancelled["thread"]["status"], "cancelled");
    assert_eq!(cancelled["message"]["kind"], "cancel");
    assert_eq!(cancelled["message"]["body"], "not needed");

    // The leader may cancel anyone's thread; orch.leader names the leader.
    let t2 = env.send("alice", "w1", "two");
    let by_leader = env
        .inbox()
        .agent("leader")
        .args(["cancel", &t2.to_string()])
        .ok();
    assert_eq!(by_leader["thread"]["status"], "cancelled");
    env.git(&["config", "orch.leader", "boss"]);
    let t3 = env.send("alice", "w1", "three");
    env.inbox()
        .agent("leader")
        .args(["cancel", &t3.to_string()])
        .fails("conflict", 4);
    env.inbox()
        .agent("boss")
        .args(["cancel", &t3.to_string()])
        .ok();
}

#[test]
fn list_filters() {
    let env = TestEnv::new();
    let a = env.send("leader", "w1", "a");
    let b = env.task("leader", "@workers", "b");
    let c = env.task("alice", "w2", "c");
    env.inbox().agent("w3").args(["claim", &b.to_string()]).ok();
    env.inbox().agent("w2").args(["claim", &c.to_string()]).ok();
    env.inbox().agent("w2").args(["done", &c.to_string()]).ok();

    let list = |args: &[&str]| -> Vec<i64> {
        let data = env.inbox().agent("w3").arg("list").args(args).ok();
        data["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(list(&[]), [a, b, c]);
    assert_eq!(list(&["--to", "w1"]), [a]);
    assert_eq!(list(&["--to", "@workers"]), [b]);
    assert_eq!(list(&["--from", "alice"]), [c]);
    assert_eq!(list(&["--status", "claimed"]), [b]);
    assert_eq!(list(&["--status", "done"]), [c]);
    assert_eq!(list(&["--status", "open"]), [a]);
    assert_eq!(list(&["--kind", "task"]), [b, c]);
    assert_eq!(list(&["--kind", "message"]), [a]);
    assert_eq!(list(&["--mine"]), [b], "w3 holds b");
    assert_eq!(
        list(&["--limit", "2"]),
        [b, c],
        "the newest two, oldest first"
    );
    assert_eq!(list(&["--from", "leader", "--kind", "task"]), [b]);
}

#[test]
fn show_returns_the_thread_with_all_messages() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["update", &id, "--body", "u"])
        .ok();
    env.inbox()
        .agent("w1")
        .args(["done", &id, "--result", "{}"])
        .ok();
    let shown = env.show(t);
    assert_eq!(shown["thread"]["id"], t);
    assert_eq!(shown["thread"]["status"], "done");
    assert_eq!(
        kinds(&shown["messages"]),
        ["send", "claim", "update", "done"]
    );
    let ids = ids(&shown["messages"]);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "strictly increasing: {ids:?}"
    );
}

#[test]
fn watch_since_count_thread_and_timeout() {
    let env = TestEnv::new();
    let t1 = env.send("leader", "w1", "one");
    let t2 = env.send("leader", "w2", "two");
    // --since 0 --count 3: the first three events, one JSON object per line.
    let run = env
        .inbox()
        .args(["watch", "--since", "0", "--count", "3", "--json"])
        .run();
    assert_eq!(run.code, 0, "{run:?}");
    let events = run.lines();
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[0]["kind"], "thread.status");
    assert_eq!(events[0]["to"], "open");
    assert_eq!(events[0]["thread"], t1);
    assert_eq!(events[1]["kind"], "message.created");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for field in ["id", "at", "kind", "thread", "from", "to", "actor", "data"] {
        assert!(events[0].get(field).is_some(), "event lacks {field}");
    }

    // --since skips what came before; --thread filters.
    let run = env
        .inbox()
        .args([
            "watch",
            "--since",
            &ids[2].to_string(),
            "--count",
            "1",
            "--json",
        ])
        .run();
    let events = run.lines();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["thread"], t2);
    let run = env
        .inbox()
        .args([
            "watch",
            "--since",
            "0",
            "--thread",
            &t2.to_string(),
            "--count",
            "2",
            "--json",
        ])
        .run();
    assert!(run.lines().iter().all(|e| e["thread"] == t2), "{run:?}");
    let run = env
        .inbox()
        .args([
            "watch",
            "--since",
            "0",
            "--to",
            "w2",
            "--timeout",
            "100ms",
            "--json",
        ])
        .run();
    let lines = run.lines();
    let (error, events) = lines.split_last().unwrap();
    assert_eq!(error["error"]["code"], "timeout");
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e["thread"] == t2), "{events:?}");

    // Live: a watcher from now on sees a later send.
    let watcher = env
        .inbox()
        .args(["watch", "--count", "1", "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&watcher);
    let t3 = env.send("leader", "w3", "three");
    let run = finish(watcher, Duration::from_secs(20));
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.lines()[0]["thread"], t3);

    // --timeout with nothing to see: exit 5, the stream ends with an error line.
    let run = env
        .inbox()
        .args(["watch", "--timeout", "150ms", "--json"])
        .run();
    assert_eq!(run.code, 5, "{run:?}");
    let lines = run.lines();
    let last = lines.last().expect("an error line");
    assert_eq!(last["ok"], false);
    assert_eq!(last["error"]["code"], "timeout");
    // --count not reached within --timeout is a timeout too.
    let run = env
        .inbox()
        .args([
            "watch",
            "--since",
            "0",
            "--count",
            "1000",
            "--timeout",
            "150ms",
            "--json",
        ])
        .run();
    assert_eq!(run.code, 5, "{run:?}");
    assert!(run.lines().len() > 1, "the events, then the error line");
}

#[test]
fn subscribe_and_unsubscribe() {
    let env = TestEnv::new();
    let sub = env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    assert_eq!(sub["changed"], true);
    assert_eq!(sub["queue"], "@workers");
    let again = env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    assert_eq!(again["changed"], false);
    let t = env.task("leader", "@workers", "queued");
    let unsub = env
        .inbox()
        .agent("w1")
        .args(["unsubscribe", "@workers"])
        .ok();
    assert_eq!(unsub["changed"], true);
    let unsub = env
        .inbox()
        .agent("w1")
        .args(["unsubscribe", "@workers"])
        .ok();
    assert_eq!(unsub["changed"], false);
    // No longer a member: --next does not see the queue's thread.
    env.inbox()
        .agent("w1")
        .args(["claim", "--next"])
        .fails("not_found", 3);
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    let got = env.inbox().agent("w1").args(["claim", "--next"]).ok();
    assert_eq!(got["thread"]["id"], t);
}

#[test]
fn whoami_reports_flag_and_env() {
    let env = TestEnv::new();
    let me = env.inbox().agent("w1").arg("whoami").ok();
    assert_eq!(
        me,
        json!({"agent": "w1", "source": "flag", "thread": null, "run": null, "task": null, "attempt": null,
               "n": null, "max_attempts": null})
    );
    let me = env.inbox().env("ORCH_AGENT", "w2").arg("whoami").ok();
    assert_eq!(me["agent"], "w2");
    assert_eq!(me["source"], "env");
    // The flag wins over the environment.
    let me = env
        .inbox()
        .env("ORCH_AGENT", "w2")
        .agent("w3")
        .arg("whoami")
        .ok();
    assert_eq!(me["agent"], "w3");
    assert_eq!(me["source"], "flag");
    // Human output names the source.
    let run = env.inbox().env("ORCH_AGENT", "w2").arg("whoami").run();
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("w2") && run.stdout.contains("ORCH_AGENT"),
        "{run:?}"
    );
}

#[test]
fn whoami_and_thread_defaults_inside_an_attempt_worktree() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let wt = env.root().join("wt");
    env.git(&[
        "worktree",
        "add",
        "-q",
        "-b",
        "attempt",
        wt.to_str().unwrap(),
    ]);
    // What `git orch dispatch` writes, written by hand here.
    let git_dir = env.git_in(&wt, &["rev-parse", "--absolute-git-dir"]);
    let marker = json!({"run": "r1", "task": "lexer", "attempt": 1, "thread": t, "agent": "w1"});
    std::fs::write(
        std::path::Path::new(&git_dir).join("orch-attempt"),
        marker.to_string(),
    )
    .unwrap();
    let me = env.inbox().dir(&wt).arg("whoami").ok();
    assert_eq!(
        me,
        json!({"agent": "w1", "source": "worktree", "thread": t, "run": "r1", "task": "lexer", "attempt": 1,
               "n": null, "max_attempts": null})
    );
    // No ids needed there.
    let claimed = env.inbox().dir(&wt).arg("claim").ok();
    assert_eq!(claimed["thread"]["id"], t);
    assert_eq!(claimed["thread"]["claimed_by"], "w1");
    env.inbox()
        .dir(&wt)
        .args(["update", "--body", "going"])
        .ok();
    let done = env
        .inbox()
        .dir(&wt)
        .args(["done", "--result", r#"{"ok": true}"#])
        .ok();
    assert_eq!(done["thread"]["id"], t);
    assert_eq!(done["thread"]["status"], "done");
    // Flag and env still win over the marker.
    assert_eq!(
        env.inbox()
            .dir(&wt)
            .env("ORCH_AGENT", "w9")
            .arg("whoami")
            .ok()["source"],
        "env"
    );
}

/// Deterministic bytes covering every value, NULs included.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    for i in 0..len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        bytes.push(if i % 97 == 0 { 0 } else { (seed >> 24) as u8 });
    }
    bytes
}

#[test]
fn artifacts_round_trip_byte_exact_and_share_blobs() {
    let env = TestEnv::new();
    let bytes = noise(300_000, 0x9e37_79b9_7f4a_7c15);
    assert!(bytes.contains(&0));
    let dir = env.root().join("files");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let log = dir.join("sub").join("test.log");
    std::fs::write(&log, &bytes).unwrap();
    let copy = dir.join("copy.bin");
    std::fs::write(&copy, &bytes).unwrap();
    let small = dir.join("small.txt");
    std::fs::write(&small, b"a\0b").unwrap();

    let sent = env
        .sending("leader", "w1", "logs")
        .arg("--attach")
        .arg(&log)
        .arg("--attach")
        .arg(&small)
        .ok();
    let arts = sent["message"]["artifacts"].as_array().unwrap().clone();
    assert_eq!(arts.len(), 2);
    // The base name, never the path.
    assert_eq!(arts[0]["name"], "test.log");
    assert_eq!(arts[0]["size"], 300_000);
    assert_eq!(arts[1]["name"], "small.txt");
    let t = sent["thread"]["id"].as_i64().unwrap();
    let replied = env
        .inbox()
        .agent("w1")
        .args(["reply", &t.to_string(), "--body", "same bytes", "--attach"])
        .arg(&copy)
        .ok();
    let shared = &replied["message"]["artifacts"][0];
    assert_eq!(shared["name"], "copy.bin");
    assert_eq!(
        shared["sha256"], arts[0]["sha256"],
        "same content, same hash"
    );
    assert_ne!(shared["id"], arts[0]["id"]);
    // One blob for both.
    let sha = arts[0]["sha256"].as_str().unwrap();
    let blob_dir = env.repo.join(".git/orch/artifacts").join(&sha[..2]);
    let blobs: Vec<_> = std::fs::read_dir(&blob_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(blobs, [std::ffi::OsString::from(sha)]);

    // -o PATH, for each artifact id.
    for (art, expected) in [(&arts[0], &bytes), (shared, &bytes)] {
        let out = env.root().join(format!("out-{}", art["id"]));
        let got = env
            .inbox()
            .args(["artifact", "get", &art["id"].to_string(), "-o"])
            .arg(&out)
            .ok();
        assert_eq!(got["artifact"]["sha256"], sha);
        assert_eq!(&std::fs::read(&out).unwrap(), expected);
    }
    // -o DIR writes into DIR under the artifact's name, like cp.
    let into = env.root().join("into");
    std::fs::create_dir_all(&into).unwrap();
    let got = env
        .inbox()
        .args(["artifact", "get", &arts[0]["id"].to_string(), "-o"])
        .arg(&into)
        .ok();
    assert_eq!(std::fs::read(into.join("test.log")).unwrap(), bytes);
    assert_eq!(
        got["path"].as_str().map(std::path::PathBuf::from),
        Some(into.join("test.log"))
    );
    // stdout, raw bytes.
    let raw = env
        .inbox()
        .args(["artifact", "get", &arts[1]["id"].to_string()])
        .raw();
    assert!(raw.status.success());
    assert_eq!(raw.stdout, b"a\0b");
    let raw = env
        .inbox()
        .args(["artifact", "get", &arts[0]["id"].to_string()])
        .raw();
    assert_eq!(raw.stdout, bytes);
    // `git inbox artifact get ID | head -c0`: a reader that is gone before the first byte
    // ends the command quietly with 0, like the text commands.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = env
        .inbox()
        .args(["artifact", "get", &arts[0]["id"].to_string()])
        .cmd;
    let out = cmd
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    // show lists artifacts on their messages.
    let shown = env.show(t);
    assert_eq!(
        shown["messages"][0]["artifacts"].as_array().unwrap().len(),
        2
    );
}

#[test]
fn update_and_done_carry_artifacts() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "work");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let file = env.root().join("report.md");
    std::fs::write(&file, "# report\n").unwrap();
    let updated = env
        .inbox()
        .agent("w1")
        .args(["update", &id, "--attach"])
        .arg(&file)
        .ok();
    assert_eq!(updated["message"]["artifacts"][0]["name"], "report.md");
    let done = env
        .inbox()
        .agent("w1")
        .args(["done", &id, "--attach"])
        .arg(&file)
        .ok();
    assert_eq!(done["message"]["artifacts"][0]["size"], 9);
}

#[test]
fn human_output_is_plain_text() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "Implement the lexer");
    let id = t.to_string();
    let human = |args: &[&str], expect: &str| {
        let run = env.inbox().agent("w1").args(args).run();
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(
            run.stdout.contains(expect),
            "{args:?} lacks {expect:?}: {run:?}"
        );
        assert!(!run.stdout.contains('\u{1b}'), "no colour into a pipe");
        assert!(
            !run.stdout.trim_start().starts_with('{'),
            "{args:?} printed JSON"
        );
    };
    human(&["subscribe", "@workers"], "@workers");
    human(&["fetch", "--peek"], &format!("thread {id}"));
    human(&["claim", &id, "--lease", "10m"], "Claimed thread");
    human(
        &["update", &id, "--body", "half way\nthere"],
        "Updated thread",
    );
    human(&["ask", &id, "--body", "which?"], "wait-reply");
    human(&["list"], "Implement the lexer");
    human(&["list", "--status", "done"], "No threads");
    human(&["show", &id], "half way");
    human(&["whoami"], "w1");
    human(&["watch", "--since", "0", "--count", "2"], "thread.status");
    human(&["done", &id], "done");
    human(&["fetch"], "leader send");
    human(&["fetch"], "No unread messages");
    // Errors go to stderr, with the code and a hint.
    let run = env.inbox().agent("w1").args(["show", "999"]).run();
    assert_eq!(run.code, 3);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("[not_found]") && run.stderr.contains("hint:"),
        "{run:?}"
    );
}

#[test]
fn watch_ends_quietly_when_its_reader_goes_away() {
    use std::io::BufRead;
    let env = TestEnv::new();
    env.send("leader", "w1", "one");
    let mut watcher = env
        .inbox()
        .args(["watch", "--since", "0", "--json"])
        .spawn();
    let mut stdout = std::io::BufReader::new(watcher.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.contains("thread.status"), "{first}");
    // `git inbox watch | head -1`: the reader is gone; the next event ends the stream.
    drop(stdout);
    env.send("leader", "w1", "two");
    let run = finish(watcher, Duration::from_secs(20));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stderr.contains("panicked"), "{run:?}");
}

/// Milliseconds since the epoch of an RFC 3339 UTC time as the inbox prints it.
fn epoch_ms(time: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| time[range].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + num(11..13)) * 60 + num(14..16)) * 60_000 + num(17..19) * 1000 + num(20..23)
}

#[test]
fn leases_default_to_thirty_minutes_or_orch_default_lease() {
    let env = TestEnv::new();
    let lease_of = |claimed: &Value| {
        epoch_ms(claimed["thread"]["lease_expires_at"].as_str().unwrap())
            - epoch_ms(claimed["message"]["created_at"].as_str().unwrap())
    };
    let t = env.task("leader", "w1", "a");
    let claimed = env.inbox().agent("w1").args(["claim", &t.to_string()]).ok();
    assert_eq!(lease_of(&claimed), 30 * 60 * 1000);
    env.git(&["config", "orch.defaultLease", "1h30m"]);
    let t = env.task("leader", "w1", "b");
    let claimed = env.inbox().agent("w1").args(["claim", &t.to_string()]).ok();
    assert_eq!(lease_of(&claimed), 90 * 60 * 1000);
    let claimed = env
        .inbox()
        .agent("w1")
        .args(["renew", &t.to_string(), "--lease", "90"])
        .ok();
    assert_eq!(lease_of(&claimed), 90 * 1000, "a bare number is seconds");
    env.git(&["config", "orch.defaultLease", "forever"]);
    env.inbox()
        .agent("w1")
        .args(["claim", "--next"])
        .fails("invalid_input", 2);
}

#[test]
fn durability_setting_is_checked() {
    let env = TestEnv::new();
    env.git(&["config", "orch.durability", "normal"]);
    env.send("leader", "w1", "fast");
    env.git(&["config", "orch.durability", "sloppy"]);
    let error = env.sending("leader", "w1", "s").fails("invalid_input", 2);
    assert!(error["hint"].as_str().unwrap().contains("orch.durability"));
    assert_eq!(env.count("threads"), 1);
}

#[test]
fn every_state_change_is_an_event() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "lifecycle");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox().agent("w1").args(["release", &id]).ok();
    env.inbox().agent("w2").args(["claim", &id]).ok();
    env.inbox().agent("w2").args(["done", &id]).ok();
    let t2 = env.send("leader", "w1", "withdrawn");
    env.inbox()
        .agent("leader")
        .args(["cancel", &t2.to_string()])
        .ok();
    let t3 = env.task("leader", "w1", "given up");
    env.inbox()
        .agent("w1")
        .args(["claim", &t3.to_string()])
        .ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &t3.to_string(), "--reason", "no"])
        .ok();
    let run = env
        .inbox()
        .args(["watch", "--since", "0", "--timeout", "100ms", "--json"])
        .run();
    let events = run.lines();
    let transitions = |thread: i64| -> Vec<(Value, Value, Value)> {
        events
            .iter()
            .filter(|e| e["kind"] == "thread.status" && e["thread"] == thread)
            .map(|e| (e["from"].clone(), e["to"].clone(), e["actor"].clone()))
            .collect()
    };
    assert_eq!(
        transitions(t),
        [
            (Value::Null, json!("open"), json!("leader")),
            (json!("open"), json!("claimed"), json!("w1")),
            (json!("claimed"), json!("open"), json!("w1")),
            (json!("open"), json!("claimed"), json!("w2")),
            (json!("claimed"), json!("done"), json!("w2")),
        ]
    );
    assert_eq!(transitions(t2).last().unwrap().1, "cancelled");
    assert_eq!(transitions(t3).last().unwrap().1, "failed");
    // One message.created per message.
    let created = events
        .iter()
        .filter(|e| e["kind"] == "message.created")
        .count() as i64;
    assert_eq!(created, env.count("messages"));
}
