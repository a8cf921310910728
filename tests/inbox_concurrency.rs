//! Real processes racing: atomic claims, strict leases with lazy expiry, waits woken or
//! ended by other processes.

use crate::common::{finish, wait_until, wait_until_db_open, Run, TestEnv};
use serde_json::Value;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(30);

fn status(env: &TestEnv, id: i64) -> Value {
    env.show(id)["thread"].clone()
}

fn message_kinds(env: &TestEnv, id: i64) -> Vec<String> {
    env.show(id)["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap().to_owned())
        .collect()
}

/// Starts all `commands` before waiting for any, so they really run at once.
fn race(commands: Vec<crate::common::Cmd>) -> Vec<Run> {
    let children: Vec<_> = commands.into_iter().map(|c| c.spawn_json()).collect();
    children.into_iter().map(|c| finish(c, LONG)).collect()
}

#[test]
fn eight_processes_race_for_one_thread_and_exactly_one_wins() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "contended");
    let id = t.to_string();
    let runs = race(
        (1..=8)
            .map(|n| env.inbox().agent(&format!("w{n}")).args(["claim", &id]))
            .collect(),
    );
    let winners: Vec<&Run> = runs.iter().filter(|r| r.code == 0).collect();
    assert_eq!(winners.len(), 1, "{runs:#?}");
    let winner = winners[0].data()["thread"]["claimed_by"]
        .as_str()
        .unwrap()
        .to_owned();
    for run in runs.iter().filter(|r| r.code != 0) {
        let error = run.error("already_claimed", 4);
        assert_eq!(error["details"]["claimed_by"], winner.as_str());
    }
    let thread = status(&env, t);
    assert_eq!(thread["claimed_by"], winner.as_str());
    assert_eq!(thread["claim_count"], 1);
    assert_eq!(message_kinds(&env, t), ["send", "claim"]);
}

#[test]
fn racing_claim_next_hands_each_thread_to_exactly_one_worker() {
    let env = TestEnv::new();
    let threads: Vec<i64> = (0..3)
        .map(|n| env.task("leader", "@workers", &format!("job {n}")))
        .collect();
    let runs = race(
        (1..=6)
            .map(|n| {
                env.inbox()
                    .agent(&format!("w{n}"))
                    .args(["claim", "--next", "--queue", "@workers"])
            })
            .collect(),
    );
    let mut taken: Vec<i64> = runs
        .iter()
        .filter(|r| r.code == 0)
        .map(|r| r.data()["thread"]["id"].as_i64().unwrap())
        .collect();
    taken.sort();
    assert_eq!(taken, threads, "{runs:#?}");
    for run in runs.iter().filter(|r| r.code != 0) {
        run.error("not_found", 3);
    }
}

#[test]
fn racing_done_completes_a_thread_exactly_once() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "finish me");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let runs = race(
        (0..4)
            .map(|n| {
                env.inbox()
                    .agent("w1")
                    .args(["done", &id, "--result", &format!(r#"{{"n": {n}}}"#)])
            })
            .collect(),
    );
    assert_eq!(runs.iter().filter(|r| r.code == 0).count(), 1, "{runs:#?}");
    for run in runs.iter().filter(|r| r.code != 0) {
        run.error("thread_closed", 4);
    }
    let kinds = message_kinds(&env, t);
    assert_eq!(kinds.iter().filter(|k| *k == "done").count(), 1);
}

#[test]
fn an_expired_lease_reopens_the_thread_and_fences_the_old_holder() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "slow work");
    let id = t.to_string();
    let claimed = env
        .inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "300ms"])
        .ok();
    assert_eq!(claimed["thread"]["status"], "claimed");
    // Any command that looks applies the expiry; no daemon.
    wait_until("the lease to run out", LONG, || {
        (status(&env, t)["status"] == "open").then_some(())
    });
    let thread = status(&env, t);
    assert_eq!(thread["claimed_by"], Value::Null);
    assert_eq!(thread["lease_expires_at"], Value::Null);
    let shown = env.show(t);
    let expire = shown["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "expire")
        .expect("an expire message")
        .clone();
    assert_eq!(expire["data"]["holder"], "w1");
    assert_eq!(expire["author"], "w1");
    assert_eq!(expire["data"]["expiries"], 1);
    assert_eq!(
        expire["data"]["lease_expired_at"],
        claimed["thread"]["lease_expires_at"]
    );
    // The change is an event too.
    let events = env
        .inbox()
        .args([
            "watch",
            "--since",
            "0",
            "--thread",
            &id,
            "--timeout",
            "200ms",
            "--json",
        ])
        .run()
        .lines();
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "thread.status" && e["from"] == "claimed" && e["to"] == "open"),
        "{events:?}"
    );

    // The old holder's next act fails with lease_lost, whatever it is.
    for args in [
        vec!["update", &id, "--body", "still here"],
        vec!["renew", &id],
        vec!["ask", &id, "--body", "q"],
        vec!["done", &id],
        vec!["fail", &id, "--reason", "x"],
        vec!["release", &id],
    ] {
        let error = env.inbox().agent("w1").args(&args).fails("lease_lost", 4);
        assert_eq!(error["details"]["thread"], t);
    }
    // Waiting for an answer is an act of the holder too.
    env.inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "5s"])
        .fails("lease_lost", 4);
    // Someone else takes it; the old holder stays fenced out.
    let taken = env.inbox().agent("w2").args(["claim", &id]).ok();
    assert_eq!(taken["thread"]["claim_count"], 2);
    env.inbox()
        .agent("w1")
        .args(["done", &id])
        .fails("lease_lost", 4);
    env.inbox().agent("w2").args(["done", &id]).ok();
    assert_eq!(status(&env, t)["status"], "done");
}

#[test]
fn the_old_holder_may_claim_again_after_expiry() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "retry me");
    let id = t.to_string();
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "200ms"])
        .ok();
    wait_until("the lease to run out", LONG, || {
        (status(&env, t)["status"] == "open").then_some(())
    });
    // Expiry is also applied inside the claim itself, without a read before it.
    let again = env.inbox().agent("w1").args(["claim", &id]).ok();
    assert_eq!(again["message"]["kind"], "claim");
    assert_eq!(again["thread"]["claim_count"], 2);
    env.inbox()
        .agent("w1")
        .args(["update", &id, "--body", "back"])
        .ok();
}

#[test]
fn expiry_is_applied_by_a_write_that_comes_first() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "x");
    let id = t.to_string();
    let claimed = env
        .inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "200ms"])
        .ok();
    let expires = claimed["thread"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait on the clock only (a read would apply the expiry itself).
    wait_until("the lease end to pass", LONG, || {
        let now = env.sending("w2", "nobody", "tick").ok();
        (now["message"]["created_at"].as_str().unwrap() > expires.as_str()).then_some(())
    });
    let taken = env.inbox().agent("w2").args(["claim", &id]).ok();
    assert_eq!(taken["thread"]["claimed_by"], "w2");
    assert_eq!(message_kinds(&env, t), ["send", "claim", "expire", "claim"]);
}

#[test]
fn max_claims_fails_a_thread_that_expires_too_often() {
    let env = TestEnv::new();
    env.git(&["config", "orch.maxClaims", "2"]);
    let t = env.task("leader", "@workers", "cursed");
    let id = t.to_string();
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "200ms"])
        .ok();
    wait_until("the first expiry", LONG, || {
        (status(&env, t)["status"] == "open").then_some(())
    });
    env.inbox()
        .agent("w2")
        .args(["claim", &id, "--lease", "200ms"])
        .ok();
    wait_until("the second expiry", LONG, || {
        let thread = status(&env, t);
        (thread["status"] != "claimed").then_some(())
    });
    let thread = status(&env, t);
    assert_eq!(thread["status"], "failed");
    assert_eq!(thread["failure"]["reason"], "lease_expired_too_often");
    assert_eq!(thread["failure"]["retryable"], false);
    assert_eq!(
        message_kinds(&env, t),
        ["send", "claim", "expire", "claim", "expire", "fail"]
    );
    env.inbox()
        .agent("w3")
        .args(["claim", &id])
        .fails("thread_closed", 4);
    env.inbox()
        .agent("w2")
        .args(["update", &id, "--body", "x"])
        .fails("lease_lost", 4);
}

#[test]
fn claim_next_wait_is_woken_when_a_lease_runs_out() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "abandoned");
    env.inbox()
        .agent("w1")
        .args(["claim", &t.to_string(), "--lease", "300ms"])
        .ok();
    // Nobody writes after this: the waiter must wake on the lease end by itself.
    let waiter = env
        .inbox()
        .agent("w2")
        .args(["claim", "--next", "--queue", "@workers", "--wait", "20s"])
        .spawn_json();
    let got = finish(waiter, LONG).data();
    assert_eq!(got["thread"]["id"], t);
    assert_eq!(got["thread"]["claimed_by"], "w2");
    assert_eq!(got["thread"]["claim_count"], 2);
}

#[test]
fn cancel_ends_a_running_wait_reply_in_another_process() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "doomed");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "what now?"])
        .ok();
    // The holder waits for an answer, and so does the sender on another thread question.
    let holder = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    let sender = env
        .inbox()
        .agent("leader")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&holder);
    wait_until_db_open(&sender);
    env.inbox()
        .agent("leader")
        .args(["cancel", &id, "--reason", "scrapped"])
        .ok();
    let error = finish(holder, LONG).error("thread_closed", 4);
    assert_eq!(error["details"]["status"], "cancelled");
    // The sender had an unseen question: that is its reply, not the cancel.
    let got = finish(sender, LONG).data();
    assert_eq!(got["message"]["kind"], "ask");

    // With nothing unseen, a waiting sender ends with thread_closed too.
    let t2 = env.task("leader", "w1", "doomed too");
    let sender = env
        .inbox()
        .agent("leader")
        .args(["wait-reply", &t2.to_string(), "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&sender);
    env.inbox()
        .agent("leader")
        .args(["cancel", &t2.to_string()])
        .ok();
    finish(sender, LONG).error("thread_closed", 4);
}

#[test]
fn wait_reply_by_a_holder_whose_lease_is_lost_fails() {
    let env = TestEnv::new();
    let t = env.task("leader", "@workers", "x");
    let id = t.to_string();
    env.inbox()
        .agent("w1")
        .args(["claim", &id, "--lease", "10m"])
        .ok();
    let waiter = env
        .inbox()
        .agent("w1")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&waiter);
    // The holder gives the thread back from another process: the wait cannot go on as holder.
    env.inbox().agent("w1").args(["release", &id]).ok();
    finish(waiter, LONG).error("not_claimant", 4);
}

/// Deadlines hold while other processes keep committing things the waiter does not want.
#[test]
fn waits_time_out_on_time_while_others_keep_writing() {
    let env = TestEnv::new();
    let quiet = env.task("leader", "w1", "quiet");
    let id = quiet.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["ask", &id, "--body", "anyone?"])
        .ok();
    let waiters = vec![
        env.inbox()
            .args(["watch", "--thread", &id, "--timeout", "300ms"])
            .spawn_json(),
        env.inbox()
            .agent("w1")
            .args(["wait-reply", &id, "--timeout", "300ms"])
            .spawn_json(),
        env.inbox()
            .agent("w9")
            .args(["fetch", "--wait", "300ms"])
            .spawn_json(),
        env.inbox()
            .agent("w9")
            .args(["claim", "--next", "--wait", "300ms"])
            .spawn_json(),
    ];
    let started = Instant::now();
    // Busy writers on other threads until every waiter has ended (or clearly overran).
    let mut children = waiters;
    let mut runs = Vec::new();
    let mut writes = 0;
    while !children.is_empty() && started.elapsed() < Duration::from_secs(8) {
        env.send("noise", "w2", "noise");
        writes += 1;
        let mut still = Vec::new();
        for mut child in children {
            match child.try_wait().unwrap() {
                Some(_) => runs.push(finish(child, LONG)),
                None => still.push(child),
            }
        }
        children = still;
    }
    let overran = children.len();
    for child in children {
        runs.push(finish(child, LONG));
    }
    assert_eq!(
        overran, 0,
        "waits overran their 300ms timeout by seconds ({writes} writes meanwhile): {runs:#?}"
    );
    for run in &runs {
        run.error("timeout", 5);
    }
}

#[test]
fn one_send_wakes_exactly_one_of_several_claim_waiters() {
    let env = TestEnv::new();
    let waiters: Vec<_> = (1..=3)
        .map(|n| {
            env.inbox()
                .agent(&format!("w{n}"))
                .args(["claim", "--next", "--queue", "@workers", "--wait", "800ms"])
                .spawn_json()
        })
        .collect();
    for waiter in &waiters {
        wait_until_db_open(waiter);
    }
    let t = env.task("leader", "@workers", "only one");
    let runs: Vec<Run> = waiters.into_iter().map(|w| finish(w, LONG)).collect();
    let winners: Vec<&Run> = runs.iter().filter(|r| r.code == 0).collect();
    assert_eq!(winners.len(), 1, "{runs:#?}");
    assert_eq!(winners[0].data()["thread"]["id"], t);
    for run in runs.iter().filter(|r| r.code != 0) {
        run.error("timeout", 5);
    }
}

#[test]
fn done_by_the_worker_ends_the_senders_wait_reply() {
    let env = TestEnv::new();
    let t = env.task("leader", "w1", "report back");
    let id = t.to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    let sender = env
        .inbox()
        .agent("leader")
        .args(["wait-reply", &id, "--timeout", "20s"])
        .spawn_json();
    wait_until_db_open(&sender);
    env.inbox()
        .agent("w1")
        .args(["done", &id, "--result", r#"{"ok": true}"#])
        .ok();
    let error = finish(sender, LONG).error("thread_closed", 4);
    assert_eq!(error["details"]["status"], "done");
}
