//! The JSON the commands print, as a registry the reference is rendered from and every
//! `--json` document is checked against.
//!
//! A type is written in a small language: `string`, `integer`, `number`, `boolean`,
//! `time` (an RFC 3339 string), `sha` (40 hex digits), `any` (whatever JSON the user put
//! in), `object` (a map of the user's keys), an object's name from [`OBJECTS`], `[T]`
//! for an array of `T`, `T?` for `T` or `null`, and `A | B` for either. An object lists
//! every key it may have; a key marked `optional` may be absent, every other key is
//! always present. The check is strict both ways: a key the registry does not name, a
//! key it names that is missing, or a value of another type is a difference.
//!
//! The integration tests run every command they start through [`check_document`], so the
//! registry cannot drift from what the binaries print; a unit test checks that every
//! command has an entry and every name a type uses is registered.

use serde_json::Value;

#[cfg(test)]
pub(crate) use super::objects::NOT_JSON;
pub(crate) use super::objects::{DATA, OBJECTS, STREAMS};
use super::schema::Object;

/// The type of a command's `data` (per line, for a command that streams), by its path
/// as the reference names it (`git orch run init`).
pub(crate) fn data_type(path: &str) -> Option<&'static str> {
    DATA.iter().find(|(p, _)| *p == path).map(|&(_, ty)| ty)
}

/// The type of each bare line a streaming command prints.
pub(crate) fn stream_type(path: &str) -> Option<&'static str> {
    STREAMS.iter().find(|(p, _)| *p == path).map(|&(_, ty)| ty)
}

pub(crate) fn object(name: &str) -> Option<&'static Object> {
    OBJECTS
        .iter()
        .flat_map(|o| o.iter())
        .find(|o| o.name == name)
}

/// The command path (`git orch run init`) an argument vector runs, by clap's own
/// parser; `None` for a command line clap refuses.
pub(crate) fn command_path(argv: &[String]) -> Option<String> {
    let mut program = std::path::Path::new(argv.first()?).file_name()?.to_str()?;
    let mut argv = argv;
    // `git [-C DIR] inbox …` runs git-inbox with the arguments after `inbox`.
    if program == "git" {
        let mut i = 1;
        while let Some(arg) = argv.get(i) {
            match arg.as_str() {
                "-C" | "-c" => i += 2,
                a if a.starts_with('-') => i += 1,
                _ => break,
            }
        }
        program = match argv.get(i).map(String::as_str) {
            Some("inbox") => "git-inbox",
            Some("orch") => "git-orch",
            _ => return None,
        };
        argv = &argv[i..];
    }
    let [inbox, orch] = crate::cli::command_trees();
    let tree = match program {
        "git-inbox" => inbox,
        "git-orch" => orch,
        _ => return None,
    };
    let matches = tree.try_get_matches_from(argv).ok()?;
    let mut path = program.replacen("git-", "git ", 1);
    let mut at = &matches;
    while let Some((name, sub)) = at.subcommand() {
        path.push(' ');
        path.push_str(name);
        at = sub;
    }
    Some(path)
}

/// Checks one `--json` document (one line of a streaming command) of the command that
/// `argv` runs against the registry; the differences, each with its JSON path.
pub fn check_document(argv: &[String], doc: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    match doc.get("ok") {
        Some(Value::Bool(true)) => match command_path(argv) {
            Some(path) => match data_type(&path) {
                Some(ty) => {
                    check_keys(doc, &["ok", "data"], "", &mut problems);
                    check(&doc["data"], ty, "data", &mut problems);
                }
                None => problems.push(format!("{path} has no entry in the JSON registry")),
            },
            None => problems.push("a successful document of a command clap refuses".into()),
        },
        Some(Value::Bool(false)) => {
            check_keys(doc, &["ok", "error"], "", &mut problems);
            check(&doc["error"], "Error", "error", &mut problems);
        }
        None => match command_path(argv).and_then(|p| stream_type(&p)) {
            // A stream's own lines are bare objects; its last line is a document.
            Some(ty) => check(doc, ty, "line", &mut problems),
            None => problems.push("no boolean `ok`, and the command does not stream".into()),
        },
        Some(other) => problems.push(format!("`ok` is {other}, not a boolean")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

fn check_keys(value: &Value, keys: &[&str], at: &str, problems: &mut Vec<String>) {
    if let Some(map) = value.as_object() {
        for key in map.keys() {
            if !keys.contains(&key.as_str()) {
                problems.push(format!("{at}: unexpected key `{key}`"));
            }
        }
    }
}

/// Whether `value` has type `ty`; the differences go to `problems`.
pub(crate) fn check(value: &Value, ty: &str, at: &str, problems: &mut Vec<String>) {
    let alternatives = split_union(ty);
    if alternatives.len() > 1 {
        let mut best: Option<Vec<String>> = None;
        for alt in alternatives {
            let mut mine = Vec::new();
            check(value, alt, at, &mut mine);
            if mine.is_empty() {
                return;
            }
            if best.as_ref().is_none_or(|b| mine.len() < b.len()) {
                best = Some(mine);
            }
        }
        problems.extend(best.unwrap_or_default());
        return;
    }
    let ty = ty.trim();
    if let Some(inner) = ty.strip_suffix('?') {
        if !value.is_null() {
            check(value, inner, at, problems);
        }
        return;
    }
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(item, inner, &format!("{at}[{i}]"), problems);
                }
            }
            None => problems.push(format!("{at}: expected an array of {inner}, got {value}")),
        }
        return;
    }
    let fits = match ty {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "time" => value.as_str().is_some_and(looks_like_time),
        "sha" => value
            .as_str()
            .is_some_and(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())),
        "any" => true,
        "object" => value.is_object(),
        name => {
            let Some(object) = object(name) else {
                problems.push(format!("{at}: the registry has no type `{name}`"));
                return;
            };
            let Some(map) = value.as_object() else {
                problems.push(format!("{at}: expected {name}, got {value}"));
                return;
            };
            for key in map.keys() {
                if !object.fields.iter().any(|f| f.name == key) {
                    problems.push(format!("{at}: unexpected key `{key}` in {name}"));
                }
            }
            for field in object.fields {
                match map.get(field.name) {
                    Some(v) => check(v, field.ty, &format!("{at}.{}", field.name), problems),
                    None if field.optional => {}
                    None => problems.push(format!("{at}: {name} lacks `{}`", field.name)),
                }
            }
            return;
        }
    };
    if !fits {
        problems.push(format!("{at}: expected {ty}, got {value}"));
    }
}

/// `A | [B | C]` splits at the top level only.
fn split_union(ty: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in ty.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '|' if depth == 0 => {
                parts.push(ty[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(ty[start..].trim());
    parts
}

/// `2026-11-25T15:09:20.123Z`: what [`crate::time`] prints.
fn looks_like_time(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 20 && b[4] == b'-' && b[10] == b'T' && s.ends_with('Z')
}

/// Every object name a type expression mentions.
#[cfg(test)]
fn names_in(ty: &str) -> Vec<&str> {
    ty.split(['[', ']', '|', '?', ' '])
        .filter(|w| !w.is_empty())
        .filter(|w| {
            !matches!(
                *w,
                "string" | "integer" | "number" | "boolean" | "time" | "sha" | "any" | "object"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn leaves(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        let name = if path.is_empty() {
            cmd.get_name().replacen("git-", "git ", 1)
        } else {
            format!("{path} {}", cmd.get_name())
        };
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            out.push(name.clone());
        }
        for sub in subs {
            leaves(sub, &name, out);
        }
    }

    #[test]
    fn every_command_says_what_it_prints() {
        let mut all = Vec::new();
        for tree in crate::cli::commands() {
            leaves(&tree, "", &mut all);
        }
        let missing: Vec<&String> = all
            .iter()
            .filter(|p| {
                data_type(p).is_none()
                    && stream_type(p).is_none()
                    && !NOT_JSON.iter().any(|(n, _)| n == p)
            })
            .collect();
        assert!(missing.is_empty(), "no JSON registry entry: {missing:?}");
        let stale: Vec<&str> = DATA
            .iter()
            .chain(STREAMS)
            .map(|(p, _)| *p)
            .filter(|p| !all.iter().any(|a| a == p))
            .collect();
        assert!(
            stale.is_empty(),
            "registry entries of no command: {stale:?}"
        );
    }

    #[test]
    fn every_type_named_is_registered_once() {
        let mut names: Vec<&str> = OBJECTS
            .iter()
            .flat_map(|o| o.iter())
            .map(|o| o.name)
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "an object name is registered twice");
        let used = DATA.iter().chain(STREAMS).map(|(_, ty)| *ty).chain(
            OBJECTS
                .iter()
                .flat_map(|o| o.iter())
                .flat_map(|o| o.fields.iter().map(|f| f.ty)),
        );
        for ty in used.chain(["Error"]) {
            for name in names_in(ty) {
                assert!(object(name).is_some(), "`{ty}` names no registered object");
            }
        }
    }

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn command_paths_come_from_clap() {
        let path = command_path(&argv(&[
            "/x/git-orch",
            "--json",
            "-C",
            "d",
            "run",
            "use",
            "r1",
        ]));
        assert_eq!(path.as_deref(), Some("git orch run use"));
        let path = command_path(&argv(&["git-inbox", "fetch", "--peek"]));
        assert_eq!(path.as_deref(), Some("git inbox fetch"));
        let path = command_path(&argv(&[
            "git", "-C", "d", "inbox", "--agent", "a", "whoami",
        ]));
        assert_eq!(path.as_deref(), Some("git inbox whoami"));
        assert_eq!(command_path(&argv(&["git-orch", "no-such-command"])), None);
    }

    #[test]
    fn drift_either_way_is_caught_with_its_path() {
        let subscribe = argv(&["git-inbox", "subscribe", "@q"]);
        let good = json!({"ok": true, "data": {"agent": "a", "queue": "@q", "changed": true}});
        assert_eq!(check_document(&subscribe, &good), Ok(()));

        let mut extra = good.clone();
        extra["data"]["new_key"] = json!(1);
        let err = check_document(&subscribe, &extra).unwrap_err();
        assert!(
            err.contains("unexpected key `new_key` in Subscription"),
            "{err}"
        );

        let mut missing = good.clone();
        missing["data"].as_object_mut().unwrap().remove("changed");
        let err = check_document(&subscribe, &missing).unwrap_err();
        assert!(err.contains("data: Subscription lacks `changed`"), "{err}");

        let mut wrong = good.clone();
        wrong["data"]["changed"] = json!("yes");
        let err = check_document(&subscribe, &wrong).unwrap_err();
        assert!(err.contains("data.changed: expected boolean"), "{err}");

        let error = json!({"ok": false, "error": {"code": "usage", "message": "m", "hint": null, "details": {}}});
        assert_eq!(check_document(&subscribe, &error), Ok(()));
        let bad_error = json!({"ok": false, "error": {"code": "usage", "message": "m"}});
        assert!(check_document(&subscribe, &bad_error).is_err());
    }

    #[test]
    fn nested_arrays_nulls_unions_and_streams() {
        let mut problems = Vec::new();
        check(&json!([["a", "b"]]), "[[string]]", "x", &mut problems);
        check(&json!(null), "Thread?", "x", &mut problems);
        check(&json!(["a"]), "integer | [string]", "x", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        check(&json!(true), "integer | [string]", "x", &mut problems);
        assert_eq!(problems.len(), 1, "{problems:?}");

        let log = argv(&["git-orch", "logs", "t1", "--follow"]);
        assert_eq!(check_document(&log, &json!({"line": "hello"})), Ok(()));
        assert!(check_document(&log, &json!({"line": 3})).is_err());
        let fetch = argv(&["git-inbox", "fetch"]);
        assert!(check_document(&fetch, &json!({"messages": []})).is_err());
    }
}
