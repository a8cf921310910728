//! The CLI's edge with the user's system: files named as output are never destroyed,
//! a directory where a file is read is the caller's mistake, and human output cannot
//! drive the reader's terminal.

use crate::common::TestEnv;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Sends a message with one small attachment; returns the artifact id and its bytes.
fn artifact(env: &TestEnv) -> (String, Vec<u8>) {
    let bytes: Vec<u8> = (0..200u8).collect();
    let file = env.root().join("notes.bin");
    std::fs::write(&file, &bytes).unwrap();
    let sent = env
        .sending("leader", "w1", "s")
        .arg("--attach")
        .arg(&file)
        .ok();
    (sent["message"]["artifacts"][0]["id"].to_string(), bytes)
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// `(type, inode, device number)` of what is at `path`, links not followed.
fn identity(path: &Path) -> (String, u64, u64) {
    let meta = std::fs::symlink_metadata(path).unwrap();
    let kind = meta.file_type();
    let kind = if kind.is_fifo() {
        "fifo"
    } else if kind.is_char_device() {
        "char device"
    } else if kind.is_symlink() {
        "symlink"
    } else if kind.is_file() {
        "file"
    } else {
        "other"
    };
    (kind.to_owned(), meta.ino(), meta.rdev())
}

#[test]
fn an_output_fifo_is_written_into_not_replaced() {
    let env = TestEnv::new();
    let (id, bytes) = artifact(&env);
    let fifo = env.root().join("pipe");
    mkfifo(&fifo);
    let before = identity(&fifo);
    // Read and write, so that neither side waits for the other to open (Linux).
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    env.inbox()
        .args(["artifact", "get", &id, "-o"])
        .arg(&fifo)
        .ok();
    assert_eq!(identity(&fifo), before, "the FIFO itself is still there");
    let mut got = vec![0u8; bytes.len()];
    reader.read_exact(&mut got).unwrap();
    assert_eq!(got, bytes);
}

#[test]
fn an_output_device_is_written_into_not_replaced() {
    let env = TestEnv::new();
    let (id, _) = artifact(&env);
    // A null device of our own where we may make one; else the system's, which an
    // unprivileged process could not replace anyway.
    let own = env.root().join("null");
    let made = Command::new("mknod")
        .arg(&own)
        .args(["c", "1", "3"])
        .status()
        .is_ok_and(|s| s.success());
    let device = if made {
        own
    } else {
        PathBuf::from("/dev/null")
    };
    let before = identity(&device);
    assert_eq!(before.0, "char device");
    let got = env
        .inbox()
        .args(["artifact", "get", &id, "-o"])
        .arg(&device)
        .ok();
    assert_eq!(got["path"], device.to_str().unwrap());
    assert_eq!(identity(&device), before);
}

#[test]
fn an_output_link_is_followed_and_stays_a_link() {
    let env = TestEnv::new();
    let (id, bytes) = artifact(&env);
    let real = env.root().join("real.bin");
    std::fs::write(&real, "old").unwrap();
    let link = env.root().join("link.bin");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    env.inbox()
        .args(["artifact", "get", &id, "-o"])
        .arg(&link)
        .ok();
    assert_eq!(identity(&link).0, "symlink");
    assert_eq!(std::fs::read(&real).unwrap(), bytes);
}

#[test]
fn an_output_directory_is_invalid_input() {
    let env = TestEnv::new();
    let (id, _) = artifact(&env);
    // `-o DIR` writes DIR/<name> like cp; a directory there is refused, not clobbered.
    let into = env.root().join("into");
    std::fs::create_dir_all(into.join("notes.bin")).unwrap();
    let err = env
        .inbox()
        .args(["artifact", "get", &id, "-o"])
        .arg(&into)
        .fails("invalid_input", 2);
    assert!(
        err["message"].as_str().unwrap().contains("directory"),
        "{err}"
    );
    assert!(into.join("notes.bin").is_dir());
    assert_eq!(
        std::fs::read_dir(&into).unwrap().count(),
        1,
        "no temp file left"
    );
    // A path that says it is a directory but is not there.
    env.inbox()
        .args(["artifact", "get", &id, "-o"])
        .arg(format!("{}/", env.root().join("missing").display()))
        .fails("invalid_input", 2);
}

#[test]
fn a_directory_where_a_file_is_read_is_invalid_input() {
    let env = TestEnv::new();
    let dir = env.root().join("a-dir");
    std::fs::create_dir_all(&dir).unwrap();
    let thread = env.task("leader", "w1", "t").to_string();
    env.inbox().agent("w1").args(["claim", &thread]).ok();
    let messages = env.count("messages");
    let send = || env.sending("leader", "w1", "s");
    for cmd in [
        send().arg("--body-file").arg(&dir),
        send().arg("--data-file").arg(&dir),
        send().arg("--attach").arg(&dir),
        env.inbox()
            .agent("w1")
            .args(["done", &thread, "--result-file"])
            .arg(&dir),
    ] {
        let err = cmd.fails("invalid_input", 2);
        assert!(err["message"].as_str().unwrap().contains("a-dir"), "{err}");
    }
    assert_eq!(env.count("messages"), messages, "nothing was written");
    env.orch().args(["run", "init", "r1", "--title", "T"]).ok();
    env.orch()
        .args(["task", "import"])
        .arg(&dir)
        .fails("invalid_input", 2);
    assert_eq!(env.count("tasks"), 0);
}

#[test]
fn process_substitution_still_reads() {
    let env = TestEnv::new();
    // /dev/stdin is what `<(…)` looks like: a /dev/fd path to a pipe.
    let sent = env
        .sending("leader", "w1", "s")
        .args(["--body-file", "/dev/stdin"])
        .stdin("from a pipe")
        .ok();
    assert_eq!(sent["message"]["body"], "from a pipe");
    // A named FIFO, filled by a writer that waits for the reader.
    let fifo = env.root().join("plan.fifo");
    mkfifo(&fifo);
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            std::fs::write(&fifo, r#"{"tasks": [{"key": "a", "title": "A"}]}"#).unwrap()
        })
    };
    env.orch().args(["run", "init", "r1", "--title", "T"]).ok();
    let imported = env.orch().args(["task", "import"]).arg(&fifo).ok();
    writer.join().unwrap();
    assert_eq!(imported["tasks"][0]["key"], "a", "{imported}");
}

/// No control character but newline and tab reaches the terminal.
fn assert_terminal_safe(what: &str, text: &str) {
    let bad: Vec<char> = text
        .chars()
        .filter(|&c| {
            (c.is_control() && c != '\n' && c != '\t') || ('\u{202a}'..='\u{202e}').contains(&c)
        })
        .collect();
    assert!(bad.is_empty(), "{what} printed {bad:?}:\n{text}");
}

#[test]
fn human_output_escapes_control_characters() {
    let env = TestEnv::new();
    let subject = "retitle\x1b]0;pwned\x07 clear\x1b[2J";
    let body = "line one\rOVERWRITE\nline two \u{202e}desrever\x1b[31m";
    let sent = env
        .sending("leader", "w1", subject)
        .args(["--body", body])
        .ok();
    let id = sent["thread"]["id"].to_string();
    env.inbox().agent("w1").args(["claim", &id]).ok();
    env.inbox()
        .agent("w1")
        .args(["fail", &id, "--reason", "bad\nforged line\x1b[1A"])
        .ok();
    env.orch()
        .args(["run", "init", "r1", "--title", "run\x1b[5m title"])
        .ok();
    env.orch()
        .args(["task", "add", "t1", "--title", "task\x1b[8m title\tsecond"])
        .args(["--body", "task body\x1b[0m"])
        .ok();

    let human = |cmd: crate::common::Cmd| {
        let run = cmd.run();
        assert_eq!(run.code, 0, "{run:?}");
        run.stdout
    };
    let show = human(env.inbox().agent("w1").args(["show", &id]));
    assert!(
        show.contains("retitle\\x1b]0;pwned\\x07 clear\\x1b[2J"),
        "{show}"
    );
    assert!(show.contains("line one\\rOVERWRITE"), "{show}");
    assert!(show.contains("\\u{202e}desrever"), "{show}");
    assert!(show.contains("failed: bad\\nforged line\\x1b[1A"), "{show}");
    let task = human(env.orch().args(["task", "show", "t1"]));
    assert!(task.contains("task\\x1b[8m title\\tsecond"), "{task}");
    for (what, text) in [
        ("show", show),
        ("list", human(env.inbox().agent("w1").args(["list"]))),
        ("fetch", human(env.inbox().agent("w1").args(["fetch"]))),
        (
            "watch",
            human(env.inbox().args(["watch", "--since", "0", "--count", "3"])),
        ),
        ("task show", task),
        ("task list", human(env.orch().args(["task", "list"]))),
        ("status", human(env.orch().args(["status"]))),
        ("run show", human(env.orch().args(["run", "show"]))),
        ("run list", human(env.orch().args(["run", "list"]))),
    ] {
        assert_terminal_safe(what, &text);
    }

    // --json is unchanged: the stored text, byte for byte.
    let shown = env.show(id.parse().unwrap());
    assert_eq!(shown["thread"]["subject"], subject);
    assert_eq!(shown["messages"][0]["body"], body);

    // Errors quote what the user gave; on a terminal that is escaped too.
    let run = env
        .sending("leader", "w1", "s")
        .arg("--body-file")
        .arg(env.root().join("no\x1b]0;x\x07such"))
        .run();
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains("no\\x1b]0;x\\x07such"),
        "{}",
        run.stderr
    );
    assert_terminal_safe("an error", &run.stderr);
}

#[test]
fn hook_lines_warnings_and_watched_status_are_escaped_too() {
    let env = TestEnv::new();
    // A hook's line lands on the terminal of whoever ran git; its name is the caller's.
    let run = env
        .inbox()
        .args(["hook", "post-\x1b]0;pwned\x07commit"])
        .run();
    assert_eq!(run.code, 0, "a hook never fails: {run:?}");
    assert!(
        run.stderr.contains("post-\\x1b]0;pwned\\x07commit"),
        "{}",
        run.stderr
    );
    assert_terminal_safe("the hook", &run.stderr);

    // A warning quotes the path of a changed file in the main worktree.
    let name = "dirty\x1b[31m.txt";
    std::fs::write(env.repo.join(name), "one\n").unwrap();
    env.git(&["add", "--", name]);
    env.git(&["commit", "-q", "-m", "a file with an odd name"]);
    std::fs::write(env.repo.join(name), "two\n").unwrap();
    env.orch()
        .args([
            "run",
            "init",
            "r1",
            "--title",
            "watched\x1b[2J title",
            "--base",
            "main",
        ])
        .ok();
    env.orch().args(["task", "add", "t1", "--title", "T"]).ok();
    let run = env.orch().args(["dispatch", "t1", "--to", "w1"]).run();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("dirty\\x1b[31m.txt"), "{}", run.stderr);
    assert_terminal_safe("the dirty-tree warning", &run.stderr);

    // status --watch into a pipe prints straight to stdout, past `Out`.
    env.orch().args(["cancel", "t1"]).ok();
    let run = env.orch().args(["status", "--watch"]).run();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("watched\\x1b[2J title"),
        "{}",
        run.stdout
    );
    assert_terminal_safe("status --watch", &run.stdout);
}
