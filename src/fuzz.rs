//! Property tests of every parser of untrusted text: durations, names, revspecs, plan
//! files, review results, thread data and results, attempt markers, the hook's
//! arguments and its spooled records, launch command templates, profile config values,
//! the land check and mode, and MCP's JSON-RPC lines. For each: no panic, a refusal
//! writes nothing, and what is accepted round-trips. Cases come from `PROPTEST_CASES`
//! (proptest's default 256 in `cargo test`; `cargo xtask fuzz` runs many more).

use crate::council::validate_review;
use crate::inbox::{self, Config, NewThread, Note};
use crate::names::{self, Address};
use crate::orch::runs::{self, NewRun};
use crate::orch::tasks::{self, Plan, Select};
use crate::orch::Changes;
use crate::repo::testing::TempRepo;
use crate::repo::{read_attempt_marker, write_attempt_marker, AttemptMarker, AttemptName};
use crate::store::{spool, Durability, Store};
use crate::time::parse_duration;
use proptest::prelude::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::time::Duration;

/// Any JSON value, a few levels deep, with the odd strings that break parsers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        "[\u{0}-\u{1f}\"\\\\/]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Text that is JSON some of the time: a value serialized, then maybe cut or spliced.
fn json_text() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        (json_value(), any::<prop::sample::Index>()).prop_map(|(v, cut)| {
            let text = v.to_string();
            let at = cut.index(text.len() + 1);
            text.get(..at).unwrap_or(&text).to_owned()
        }),
        "\\PC{0,40}",
    ]
}

fn name_like() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9._-]{0,8}",
        "[a-zA-Z0-9 ./@_-]{0,10}",
        "\\PC{0,8}",
        Just("a".repeat(64))
    ]
}

/// Rows of every table a command could write, to prove a refusal wrote none.
fn footprint(conn: &Connection) -> Vec<i64> {
    [
        "threads", "messages", "events", "runs", "tasks", "deps", "attempts",
    ]
    .iter()
    .map(|t| {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    })
    .collect()
}

fn store_with_run() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (mut store, _) = Store::init(dir.path(), Durability::Normal).unwrap();
    store
        .write(|tx| {
            let new = NewRun {
                name: Some("r1"),
                title: "Run",
                base_ref: None,
                kind: "plan",
            };
            runs::create(tx, &Config::default(), &mut Changes::default(), &new).map(drop)
        })
        .unwrap();
    (dir, store)
}

proptest! {
    #[test]
    fn durations(text in prop_oneof!["\\PC{0,12}", "[0-9]{0,4}(ms|s|m|h|d|x|)[0-9]{0,3}(ms|s|m|h|)", "[ 0-9smhd]{0,8}"]) {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(!text.trim().is_empty());
            let ms = d.as_millis();
            prop_assert_eq!(parse_duration(&format!("{ms}ms")).unwrap(), d);
        }
    }

    #[test]
    fn durations_accept_what_they_promise(h in 0u64..1000, m in 0u64..60, s in 0u64..60) {
        let want = Duration::from_secs(h * 3600 + m * 60 + s);
        prop_assert_eq!(parse_duration(&format!("{h}h{m}m{s}s")).unwrap(), want);
        prop_assert_eq!(parse_duration(&(h * 3600 + m * 60 + s).to_string()).unwrap(), want);
    }

    #[test]
    fn names(text in name_like(), n in any::<u32>()) {
        let valid = names::check_name("agent", &text).is_ok();
        prop_assert_eq!(valid, names::is_valid_name(&text));
        match Address::parse(&text) {
            Ok(address) => prop_assert_eq!(address.to_stored(), text.clone()),
            Err(err) => prop_assert_eq!(err.code.as_str(), "invalid_name"),
        }
        if valid {
            prop_assert_eq!(names::parse_queue(&format!("@{text}")).unwrap(), text.clone());
            prop_assert!(!text.contains('/') && !text.starts_with('-') && !text.contains(".."));
        }
        if let Ok(name) = AttemptName::new(&text, &text, n) {
            prop_assert_eq!(AttemptName::from_branch(&name.branch()), Some(name));
        }
    }

    #[test]
    fn branch_names_of_attempts(text in "(orch/)?[a-z0-9./-]{0,12}-?[0-9]{0,3}") {
        if let Some(name) = AttemptName::from_branch(&text) {
            prop_assert_eq!(AttemptName::from_branch(&name.branch()), Some(name));
        }
    }

    #[test]
    fn hook_arguments(name in prop_oneof!["\\PC{0,14}", "post-[a-z]{0,8}"],
                      pairs in prop::collection::vec(("[0-9a-f]{1,8}", "[0-9a-f]{1,8}", "\\PC{0,6}"), 0..6),
                      junk in "\\PC{0,40}") {
        let known = crate::orch::worktrees::check_hook_name(&name).is_ok();
        prop_assert_eq!(known, crate::repo::HOOK_NAMES.contains(&name.as_str()));
        // post-rewrite's stdin: every `old new [extra]` line is one pair, in order;
        // anything else is at most ignored.
        use crate::cli::hook::parse_rewritten;
        let text: String = pairs.iter().map(|(o, n, extra)| format!("{o} {n} {extra}\n")).collect();
        let got = parse_rewritten(&text);
        let want: Vec<Value> = pairs.iter().map(|(o, n, _)| json!({"old": o, "new": n})).collect();
        prop_assert_eq!(got, want);
        let any = parse_rewritten(&junk);
        prop_assert!(any.len() <= junk.lines().count());
    }

    #[test]
    fn review_results(value in prop_oneof![
        json_value(),
        prop::collection::vec(
            (prop_oneof!["\\PC{0,10}", Just(String::new())], "\\PC{0,10}", prop_oneof![Just("high"), Just("medium"), Just("low"), Just("urgent")]),
            0..4,
        ).prop_map(|items| json!({"recommendations": items.into_iter()
            .map(|(t, r, p)| json!({"title": t, "rationale": r, "priority": p})).collect::<Vec<_>>()})),
    ]) {
        if let Ok(recs) = validate_review(&value) {
            let again = json!({ "recommendations": recs });
            prop_assert_eq!(validate_review(&again).unwrap(), recs);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases / 4 + 1, ..ProptestConfig::default() })]

    #[test]
    fn plan_files(text in prop_oneof![
        json_text(),
        prop::collection::vec(("[a-e]{1,2}", prop::collection::vec("[a-e]{1,2}", 0..3), prop_oneof![Just(None), Just(Some("code")), Just(Some("bogus"))]), 0..6)
            .prop_map(|tasks| json!({"tasks": tasks.into_iter().map(|(key, after, kind)|
                json!({"key": key, "title": format!("Do {key}"), "after": after, "kind": kind})).collect::<Vec<_>>()}).to_string()),
    ]) {
        let (_dir, mut store) = store_with_run();
        let before = footprint(store.conn());
        let cfg = Config::default();
        let outcome = Plan::parse(&text).and_then(|plan| {
            store.write(|tx| {
                let run = runs::get(tx, "r1")?;
                tasks::import(tx, &cfg, &mut Changes::default(), &run, &plan)
            }).map(|imported| (plan, imported))
        });
        match outcome {
            Err(_) => prop_assert_eq!(footprint(store.conn()), before),
            Ok((plan, _)) => {
                let stored = store.read(|tx| tasks::load(tx, "r1", Select::All)).unwrap();
                let mut want: Vec<(String, Vec<String>)> = plan.tasks.iter()
                    .map(|t| { let mut a = t.after.clone(); a.sort(); a.dedup(); (t.key.clone(), a) }).collect();
                let mut got: Vec<(String, Vec<String>)> = stored.iter()
                    .map(|t| { let mut a = t.after.clone(); a.sort(); (t.key.clone(), a) }).collect();
                want.sort();
                got.sort();
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn thread_data_and_results(data in json_text(), result in json_text()) {
        let (_dir, mut store) = store_with_run();
        let cfg = Config::default();
        let parse = |text: &str| serde_json::from_str::<Value>(text)
            .map_err(|e| crate::error::Error::invalid_input(e.to_string()));
        // data on a new thread
        let before = footprint(store.conn());
        let sent = parse(&data).and_then(|data| store.write(|tx| {
            let to = Address::Agent("w1".into());
            let new = NewThread { to: &to, subject: "s", kind: "task", body: "", data: Some(&data), artifacts: &[] };
            inbox::send(tx, &cfg, "leader", new).map(|p| (p.thread.id, data.clone()))
        }));
        let (id, data) = match sent {
            Err(_) => { prop_assert_eq!(footprint(store.conn()), before); return Ok(()); }
            Ok(sent) => sent,
        };
        let thread = store.read(|tx| inbox::get_thread(tx, id)).unwrap();
        prop_assert_eq!(&thread.data, &data);
        store.write(|tx| inbox::claim(tx, &cfg, "w1", id, None).map(drop)).unwrap();
        let before = footprint(store.conn());
        let done = parse(&result).and_then(|result| store.write(|tx| {
            let note = Note { body: "", data: None, artifacts: &[] };
            inbox::done(tx, &cfg, "w1", id, note, Some(&result), None).map(|_| result.clone())
        }));
        match done {
            Err(_) => prop_assert_eq!(footprint(store.conn()), before),
            Ok(result) => {
                let thread = store.read(|tx| inbox::get_thread(tx, id)).unwrap();
                prop_assert_eq!(thread.result, result);
            }
        }
    }

    #[test]
    fn attempt_markers(bytes in prop_oneof![
        json_text().prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
    ], run in "[a-z0-9]{1,6}", task in "[a-z0-9]{1,6}", attempt in any::<i64>(), thread in any::<i64>(), agent in prop::option::of("[a-z0-9]{1,6}")) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::repo::ATTEMPT_MARKER), &bytes).unwrap();
        if let Err(err) = read_attempt_marker(dir.path()) {
            prop_assert_eq!(err.code.as_str(), "invalid_input");
        }
        let marker = AttemptMarker { run, task, attempt, thread, agent };
        write_attempt_marker(dir.path(), &marker).unwrap();
        prop_assert_eq!(read_attempt_marker(dir.path()).unwrap(), Some(marker));
    }

    #[test]
    fn spooled_records(records in prop::collection::vec(json_value(), 1..4), junk in "\\PC{0,30}") {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = Store::init(dir.path(), Durability::Normal).unwrap();
        let mut keys = Vec::new();
        for record in &records {
            keys.push(spool::put(dir.path(), &json!({ "kind": "probe", "value": record })).unwrap());
        }
        std::fs::write(spool::dir(dir.path()).join("0000000000000-junk.json"), junk).unwrap();
        // The handler sees every record once, in the order spooled; junk is set aside.
        fn probe(tx: &Connection, record: &Value) -> crate::error::Result<()> {
            let n: i64 = tx.query_row("SELECT count(*) FROM orch_settings", [], |r| r.get(0))?;
            tx.execute("INSERT INTO orch_settings (key, value) VALUES (?1, ?2)",
                [format!("probe-{n:06}"), record["value"].to_string()])?;
            Ok(())
        }
        store.take_spool_with(probe);
        store.write(|_| Ok(())).unwrap();
        store.write(|_| Ok(())).unwrap();
        let seen: Vec<Value> = store.read(|tx| {
            let mut stmt = tx.prepare("SELECT value FROM orch_settings WHERE key LIKE 'probe-%' ORDER BY key")?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows.into_iter().map(|t| serde_json::from_str(&t).unwrap()).collect())
        }).unwrap();
        prop_assert_eq!(seen, records);
        prop_assert!(spool::pending(dir.path()).unwrap().is_empty());
        let taken: i64 = store.conn().query_row("SELECT count(*) FROM spool_taken", [], |r| r.get(0)).unwrap();
        prop_assert_eq!(taken as usize, keys.len());
    }
}

#[test]
fn revspecs() {
    let repo = TempRepo::new();
    repo.commit_file("a.txt", "a\n", "second");
    repo.git(&["tag", "v1"]);
    repo.git(&["branch", "side", "HEAD~1"]);
    let opened = repo.open();
    let alphabet = "[a-zA-Z0-9~^@{}.:!/ -]{0,10}";
    let pieces = prop_oneof![
        Just("HEAD"),
        Just("main"),
        Just("side"),
        Just("v1"),
        Just("~"),
        Just("^"),
        Just("1"),
        Just(".."),
        Just("..."),
        Just("^!"),
        Just("^@"),
        Just("^{commit}"),
        Just(":"),
        Just("@"),
    ];
    let strategy = prop_oneof![
        alphabet.prop_map(|s| s),
        prop::collection::vec(pieces, 1..5).prop_map(|p| p.concat()),
    ];
    let mut runner = proptest::test_runner::TestRunner::default();
    runner
        .run(&strategy, |given| {
            if let Ok(base) = opened.resolve_commit(&given) {
                // One commit, the one git names, and its sha resolves to itself.
                let git = repo.git(&[
                    "rev-parse",
                    "--verify",
                    "--end-of-options",
                    &format!("{given}^{{commit}}"),
                ]);
                prop_assert_eq!(&base.sha, &git);
                prop_assert_eq!(opened.resolve_commit(&base.sha).unwrap().sha, base.sha);
                prop_assert!(!given.contains("..") && !given.ends_with("^!"), "{given}");
            }
            Ok(())
        })
        .unwrap();
}

/// A word of a template as written and as it must come out filled in: literal text
/// (braces doubled), and placeholders filled from [`fill_vars`].
fn template_word() -> impl Strategy<Value = (String, String)> {
    let piece = prop_oneof![
        "[^{}\u{0}]{0,6}".prop_map(|t| (t.clone(), t)),
        Just(("{{".to_owned(), "{".to_owned())),
        Just(("}}".to_owned(), "}".to_owned())),
        (0..crate::orch::launch::template::PLACEHOLDERS.len()).prop_map(|i| {
            let name = crate::orch::launch::template::PLACEHOLDERS[i];
            (format!("{{{name}}}"), filled(name).to_owned())
        }),
    ];
    prop::collection::vec(piece, 0..4).prop_map(|pieces| {
        pieces
            .into_iter()
            .fold((String::new(), String::new()), |(mut a, mut b), (x, y)| {
                a.push_str(&x);
                b.push_str(&y);
                (a, b)
            })
    })
}

fn filled(name: &str) -> &'static str {
    match name {
        "brief" => "the brief: 'quoted' \"and\" $HOME `ls`",
        "brief_file" => "/tmp/a b/brief.md",
        "worktree" => "/tmp/a b/wt",
        "agent" => "claude-7",
        "model" => "opus",
        "common_dir" => "/tmp/a b/.git",
        _ => "/tmp/a b/.git/worktrees/wt",
    }
}

fn fill_vars() -> crate::orch::launch::template::Vars<'static> {
    use std::path::Path;
    crate::orch::launch::template::Vars {
        brief: filled("brief"),
        brief_file: Path::new(filled("brief_file")),
        worktree: Path::new(filled("worktree")),
        agent: filled("agent"),
        model: Some(filled("model")),
        common_dir: Path::new(filled("common_dir")),
        git_dir: Path::new(filled("git_dir")),
    }
}

proptest! {
    #[test]
    fn launch_templates(text in prop_oneof!["\\PC{0,30}", "[a-z {}'\"\\\\_]{0,24}"],
                        words in prop::collection::vec(template_word(), 1..5)) {
        use crate::orch::launch::template;
        // Anything: a template or invalid_input, never a panic.
        if let Err(err) = template::parse("t", &text) {
            prop_assert_eq!(err.code.as_str(), "invalid_input");
        }
        // Words quoted like a shell would: split back into the same words, each filled
        // in with exactly the values (quotes and spaces in a value stay one argument).
        let quoted: Vec<String> = words.iter()
            .map(|(source, _)| shlex::try_quote(source).unwrap().into_owned())
            .collect();
        let parsed = template::parse("t", &quoted.join(" ")).unwrap();
        prop_assert_eq!(parsed.len(), words.len());
        for (word, (_, want)) in parsed.iter().zip(&words) {
            prop_assert_eq!(&word.fill(&fill_vars()).unwrap(), want);
        }
    }

    #[test]
    fn land_check_and_mode(text in prop_oneof!["\\PC{0,24}", "[a-z '\"\\\\-]{0,20}"],
                           timeout in prop::option::of(prop_oneof!["\\PC{0,6}", "[0-9]{1,3}(s|m|h)"]),
                           mode in prop_oneof!["\\PC{0,12}", Just("merge".to_owned()), Just("ff-or-merge".to_owned())]) {
        use crate::orch::land::{check, Mode};
        match check::from_config(Some(&text), timeout.as_deref()) {
            Err(err) => prop_assert_eq!(err.code.as_str(), "invalid_input"),
            Ok(None) => prop_assert!(text.trim().is_empty()),
            Ok(Some(parsed)) => {
                // The argv a shell would split, and it survives being quoted again.
                prop_assert_eq!(Some(parsed.argv.clone()), shlex::split(&text));
                let again = shlex::try_join(parsed.argv.iter().map(String::as_str)).unwrap();
                prop_assert_eq!(check::Check::parse(&again, parsed.timeout).unwrap(), parsed.clone());
                if let Some(t) = &timeout {
                    prop_assert_eq!(parsed.timeout, parse_duration(t).unwrap());
                }
            }
        }
        match Mode::parse(&mode) {
            Ok(m) => prop_assert_eq!(m == Mode::Merge, mode == "merge"),
            Err(err) => {
                prop_assert_eq!(err.code.as_str(), "invalid_input");
                prop_assert!(mode != "merge" && mode != "ff-or-merge");
            }
        }
    }

    #[test]
    fn mcp_requests(line in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        json_text().prop_map(String::into_bytes),
        (json_value(), prop_oneof![Just(json!(1)), Just(json!("a\nb")), Just(json!(null)), Just(json!([1])), json_value()],
         prop_oneof![Just(json!("tools/call")), Just(json!("ping")), json_value()], any::<bool>())
            .prop_map(|(params, id, method, with_id)| {
                let mut msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
                if with_id { msg["id"] = id; }
                msg.to_string().into_bytes()
            }),
    ]) {
        use crate::cli::mcp::protocol::{self, Incoming};
        let (id, answer) = match protocol::parse(&line) {
            Incoming::Request { id, method, .. } => {
                prop_assert!(id.is_string() || id.is_number());
                (id, protocol::response(&Value::Null, json!({"method": method})))
            }
            Incoming::Invalid { id, code, message } => {
                prop_assert!([protocol::PARSE_ERROR, protocol::INVALID_REQUEST].contains(&code));
                let answer = protocol::error(&id, code, &message);
                (id, answer)
            }
            Incoming::Notification { .. } | Incoming::Ignored => return Ok(()),
        };
        // Every answer is one line of JSON naming the id it answers.
        prop_assert!(!answer.contains('\n'));
        let doc: Value = serde_json::from_str(&answer).unwrap();
        prop_assert!(doc["id"] == id || doc["id"].is_null());
    }
}

/// Every profile key with hostile values: a profile or a clear refusal, and what is
/// accepted is what was written. One repository; each case rewrites its config file.
#[test]
fn profile_config_values() {
    use crate::orch::launch::{preset::Protocol, profile};
    let repo = TempRepo::new();
    let config = repo.path().join(".git/config");
    let base = std::fs::read_to_string(&config).unwrap();
    let value = || prop_oneof!["\\PC{0,10}", "[a-z0-9 ]{0,6}"];
    let strategy = (
        prop::option::of(prop_oneof![
            Just("script".to_owned()),
            Just("claude".to_owned()),
            value()
        ]),
        prop::option::of(prop_oneof![
            Just("./agent.sh {brief_file}".to_owned()),
            Just("a {model}".to_owned()),
            value()
        ]),
        prop::collection::vec(prop_oneof!["[A-Z_]{1,4}=\\PC{0,5}", value()], 0..3),
        prop::option::of(prop_oneof![
            Just("inbox".to_owned()),
            Just("exit".to_owned()),
            value()
        ]),
        prop::option::of(prop_oneof!["[0-9]{1,3}(s|m|h)", value()]),
        prop::option::of("[a-z0-9.-]{0,6}"),
    );
    let cases = ProptestConfig::default().cases / 4 + 1;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    runner
        .run(
            &strategy,
            |(preset, command, env, protocol, timeout, model)| {
                // git's config syntax: quoted, with backslash and quote escaped.
                let q = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
                let mut text = format!("{base}[orch \"agent.p\"]\n");
                let mut put = |key: &str, v: &Option<String>| {
                    if let Some(v) = v {
                        text.push_str(&format!("\t{key} = {}\n", q(v)));
                    }
                };
                put("preset", &preset);
                put("command", &command);
                put("protocol", &protocol);
                put("timeout", &timeout);
                put("model", &model);
                for entry in &env {
                    text.push_str(&format!("\tenv = {}\n", q(entry)));
                }
                std::fs::write(&config, text).unwrap();
                match profile::resolve(&repo.open(), "p") {
                    Err(err) => prop_assert_eq!(err.code.as_str(), "invalid_input", "{:?}", err),
                    Ok(p) => {
                        if let Some(t) = &timeout {
                            prop_assert_eq!(p.timeout, parse_duration(t).unwrap());
                        }
                        if let Some(given) = &protocol {
                            prop_assert_eq!(Some(p.protocol), Protocol::parse(given));
                        }
                        for entry in &env {
                            let (k, v) = entry.split_once('=').unwrap();
                            let last = env
                                .iter()
                                .rev()
                                .find_map(|e| e.split_once('=').filter(|(key, _)| key == &k))
                                .unwrap()
                                .1;
                            prop_assert!(
                                p.env.iter().any(|(key, value)| key == k && value == last),
                                "{k}={v}"
                            );
                        }
                        prop_assert_eq!(p.custom_command, command.is_some());
                        prop_assert!(!p.words.is_empty());
                    }
                }
                Ok(())
            },
        )
        .unwrap();
}
