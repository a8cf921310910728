use crate::common::TestEnv;

#[test]
fn send_claim_done_round_trip() {
    let env = TestEnv::new();
    let sent = env
        .sending("leader", "@workers", "Lexer")
        .args(["--kind", "task"])
        .ok();
    let id = sent["thread"]["id"].as_i64().unwrap();
    env.inbox().agent("w1").args(["subscribe", "@workers"]).ok();
    let claimed = env.inbox().agent("w1").args(["claim", "--next"]).ok();
    assert_eq!(claimed["thread"]["id"], id);
    assert_eq!(claimed["thread"]["status"], "claimed");
    let done = env
        .inbox()
        .agent("w1")
        .args(["done", &id.to_string(), "--result", r#"{"ok":true}"#])
        .ok();
    assert_eq!(done["thread"]["status"], "done");
    assert_eq!(done["thread"]["result"]["ok"], true);
}
