//! What a newcomer sees first: man pages and completions from `install-docs`, the
//! task graph, and `status --watch` in a real terminal (tmux) and through a pipe.

use crate::common::{wait_until, TestEnv, INBOX, ORCH};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// A prefix laid out like `~/.cargo`: the binaries in `bin/`, then `install-docs` run
/// from there without `--prefix`, so the default prefix is what is tested.
fn installed_prefix(env: &TestEnv) -> (PathBuf, Value) {
    let prefix = env.root().join("prefix");
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    for bin in [ORCH, INBOX] {
        let to = prefix.join("bin").join(Path::new(bin).file_name().unwrap());
        std::fs::hard_link(bin, &to)
            .or_else(|_| std::fs::copy(bin, &to).map(drop))
            .unwrap();
    }
    let out = Command::new(prefix.join("bin/git-orch"))
        .args(["install-docs", "--json"])
        .env("HOME", &env.home)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], true, "{doc}");
    (prefix, doc["data"].clone())
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn install_docs_writes_a_page_per_command_that_git_help_renders() {
    let env = TestEnv::new();
    let (prefix, data) = installed_prefix(&env);
    let man1 = prefix.join("share/man/man1");
    assert_eq!(Path::new(data["man_dir"].as_str().unwrap()), man1);
    for page in [
        "git-orch.1",
        "git-inbox.1",
        "git-orch-dispatch.1",
        "git-orch-run-init.1",
        "git-orch-council-start.1",
        "git-orch-install-docs.1",
        "git-inbox-claim.1",
    ] {
        assert!(man1.join(page).is_file(), "{page} is missing");
    }
    assert!(!man1.join("git-orch-help.1").exists());
    let pages = std::fs::read_dir(&man1).unwrap().count();
    assert_eq!(data["man_pages"], pages as u64);
    let roff = std::fs::read_to_string(man1.join("git-orch-dispatch.1")).unwrap();
    assert!(roff.contains("\\-\\-all\\-ready"), "{roff}");

    // `git help orch` as a user types it: git finds our page through man's PATH rule
    // (`<dir of a PATH entry>/../share/man`), with no MANPATH set.
    assert!(
        have("man"),
        "man is not installed: `apt-get install man-db` (.ci/run does)"
    );
    let path = format!("{}:/usr/bin:/bin", prefix.join("bin").display());
    let help = Command::new("git")
        .args(["help", "orch"])
        .current_dir(&env.repo)
        .env_clear()
        .env("PATH", &path)
        .env("HOME", &env.home)
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env("MANWIDTH", "80")
        .env("LC_ALL", "C")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.status.success(),
        "git help orch failed: {}",
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(text.contains("git-orch"), "{text}");
    assert!(text.contains("dispatch"), "{text}");
    // And `man -l` renders a subcommand's page from its file.
    let local = Command::new("man")
        .args(["-l", man1.join("git-orch-dispatch.1").to_str().unwrap()])
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "80")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&local.stdout);
    assert!(
        local.status.success() && text.contains("--all-ready"),
        "{text}"
    );
}

/// Runs bash with git's completion (if installed) and ours, sets the words as if the
/// user typed `words` and pressed Tab (bash passes the command, the current word and
/// the one before it), and returns COMPREPLY.
fn complete(prefix: &Path, func: &str, words: &[&str]) -> Vec<String> {
    let completions = prefix.join("share/bash-completion/completions");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        r#"
        [ -f /usr/share/bash-completion/completions/git ] && source /usr/share/bash-completion/completions/git
        source '{orch}'
        source '{inbox}'
        COMP_WORDS=({words})
        COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        COMP_LINE="${{COMP_WORDS[*]}}"
        COMP_POINT=${{#COMP_LINE}}
        {func} "${{COMP_WORDS[0]}}" "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
        printf '%s\n' "${{COMPREPLY[@]}}"
        "#,
        orch = completions.join("git-orch").display(),
        inbox = completions.join("git-inbox").display(),
        words = quoted.join(" "),
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", prefix.join("bin").display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bash: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_completes_subcommands_directly_and_through_git() {
    let env = TestEnv::new();
    let (prefix, data) = installed_prefix(&env);
    for file in [
        "share/bash-completion/completions/git-orch",
        "share/zsh/site-functions/_git-orch",
        "share/fish/vendor_completions.d/git-inbox.fish",
    ] {
        let path = prefix.join(file);
        assert!(path.is_file(), "{file} is missing");
        let listed = data["completions"].as_array().unwrap();
        assert!(listed.iter().any(|p| p == path.to_str().unwrap()), "{data}");
    }
    let direct = complete(&prefix, "_gitorch", &["git-orch", "dis"]);
    assert_eq!(direct, ["dispatch"]);
    let nested = complete(&prefix, "_gitorch", &["git-orch", "council", "ta"]);
    assert_eq!(nested, ["tally"]);

    // git's completion calls `_git_orch` with the words git saw, `-C dir` included.
    let through_git = complete(&prefix, "_git_orch", &["git", "-C", ".", "orch", "ca"]);
    assert_eq!(through_git, ["cancel"]);
    let inbox = complete(&prefix, "_git_inbox", &["git", "inbox", "wait"]);
    assert_eq!(inbox, ["wait-reply"]);
    if Path::new("/usr/share/bash-completion/completions/git").is_file() {
        // The whole way: git's own entry point dispatches `git orch` to our function.
        let all = complete(&prefix, "__git_wrap__git_main", &["git", "orch", "rea"]);
        assert!(all.contains(&"ready".to_owned()), "{all:?}");
        assert!(all.contains(&"reassign".to_owned()), "{all:?}");
    } else {
        eprintln!("NOTE: git's bash completion is not installed; checked _git_orch alone");
    }
}

fn plan(env: &TestEnv) {
    env.orch()
        .args(["run", "init", "calc", "--title", "Calc"])
        .ok();
    env.orch()
        .args(["task", "import", "-"])
        .stdin(
            r#"{"tasks": [{"key": "end", "title": "A \"quoted\" <title>"},
                         {"key": "lexer", "title": "Lexer", "after": ["end"]},
                         {"key": "parser.v2", "title": "Parser", "after": ["lexer", "end"]}]}"#,
        )
        .ok();
}

#[test]
fn graph_draws_the_dag_as_dot_and_mermaid() {
    let env = TestEnv::new();
    plan(&env);
    let data = env.orch().args(["graph", "--format", "dot"]).ok();
    assert_eq!(data["format"], "dot");
    let dot = data["text"].as_str().unwrap();
    // Parse the edges back out of the DOT text.
    let mut edges: Vec<(String, String)> = dot
        .lines()
        .filter_map(|l| l.trim().strip_suffix(';')?.split_once(" -> "))
        .map(|(a, b)| (a.trim_matches('"').into(), b.trim_matches('"').into()))
        .collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            ("end".into(), "lexer".into()),
            ("end".into(), "parser.v2".into()),
            ("lexer".into(), "parser.v2".into())
        ]
    );
    assert!(
        dot.contains(r#"label="end\nA \"quoted\" <title>\nready""#),
        "{dot}"
    );
    if have("dot") {
        let mut child = Command::new("dot")
            .arg("-Tplain")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(dot.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plain = String::from_utf8_lossy(&out.stdout);
        let nodes = plain.lines().filter(|l| l.starts_with("node ")).count();
        let drawn = plain.lines().filter(|l| l.starts_with("edge ")).count();
        assert_eq!((nodes, drawn), (3, 3), "{plain}");
    } else {
        eprintln!("NOTE: Graphviz is not installed (`apt-get install graphviz`); DOT only parsed");
    }

    let mermaid = env.orch().args(["graph"]).ok();
    let text = mermaid["text"].as_str().unwrap();
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    // Keys are never node ids (`end` is a Mermaid keyword); labels escape quotes.
    assert!(
        text.contains(
            r#"t0["end<br/>A #quot;quoted#quot; #lt;title#gt;<br/><i>ready</i>"]:::ready"#
        ),
        "{text}"
    );
    assert!(
        text.contains("t0 --> t1") && text.contains("t1 --> t2") && text.contains("t0 --> t2"),
        "{text}"
    );
    assert_eq!(mermaid["edges"].as_array().unwrap().len(), 3);
    env.orch()
        .args(["graph", "--format", "svg"])
        .fails("usage", 2);
}

#[test]
fn status_watch_through_a_pipe_prints_a_status_per_change_and_ends_when_settled() {
    let env = TestEnv::new();
    env.orch().args(["run", "init", "w", "--title", "W"]).ok();
    env.orch()
        .args([
            "task", "add", "a", "--title", "A", "--kind", "chore", "--to", "w1",
        ])
        .ok();
    let mut child = env.orch().args(["--json", "status", "--watch"]).spawn();
    let stdout = child.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            if send.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    // A dispatch commits in several steps, so a step may show up in between: read on
    // until the status of interest comes (each line is one change, never a repeat).
    let mut last = Value::Null;
    let mut until = |status: &str| loop {
        let doc = lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("no status {status} printed: {e}"));
        assert_eq!(doc["ok"], true, "{doc}");
        assert_ne!(doc, last, "the same status printed twice");
        last = doc.clone();
        if doc["data"]["tasks"][0]["status"] == status {
            return doc;
        }
    };
    until("ready");
    let thread = env.orch().args(["dispatch", "a"]).ok()["attempts"][0]["thread"]
        .as_i64()
        .unwrap();
    until("dispatched");
    env.inbox()
        .agent("w1")
        .args(["claim", &thread.to_string()])
        .ok();
    until("running");
    env.inbox()
        .agent("w1")
        .args(["done", &thread.to_string()])
        .ok();
    assert_eq!(until("done")["data"]["counts"]["done"], 1);
    // Nothing is left in flight: the stream ends by itself, with exit 0.
    let run = crate::common::finish(child, Duration::from_secs(20));
    assert_eq!(run.code, 0, "{}", run.stderr);
}

fn tmux(socket: &Path, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn status_watch_on_a_terminal_redraws_on_change_and_q_leaves() {
    assert!(
        have("tmux"),
        "tmux is not installed: `apt-get install tmux` (.ci/run does)"
    );
    let env = TestEnv::new();
    env.orch()
        .args(["run", "init", "live", "--title", "Live"])
        .ok();
    env.orch()
        .args([
            "task", "add", "probe", "--title", "Probe", "--kind", "chore", "--to", "w1",
        ])
        .ok();
    let socket = env.root().join("tmux.sock");
    let done_file = env.root().join("watch.exit");
    let command = format!(
        "cd '{}' && HOME='{}' GIT_CONFIG_NOSYSTEM=1 '{ORCH}' status --watch; echo $? > '{}'",
        env.repo.display(),
        env.home.display(),
        done_file.display()
    );
    tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            "w",
            &command,
        ],
    );
    let screen = || tmux(&socket, &["capture-pane", "-p", "-t", "w"]);
    let seen = |what: &str| {
        let what = what.to_owned();
        wait_until(
            &format!("the screen shows {what}"),
            Duration::from_secs(20),
            || {
                let text = screen();
                text.contains(&what).then_some(text)
            },
        )
    };
    let first = seen("q to leave");
    assert!(first.contains("Run live (Live), active"), "{first}");
    assert!(
        first.contains("probe") && first.contains("ready"),
        "{first}"
    );

    let thread = env.orch().args(["dispatch", "probe"]).ok()["attempts"][0]["thread"]
        .as_i64()
        .unwrap();
    env.inbox()
        .agent("w1")
        .args(["claim", &thread.to_string()])
        .ok();
    env.inbox()
        .agent("w1")
        .args([
            "ask",
            &thread.to_string(),
            "--body",
            "Which probe shall I use?",
        ])
        .ok();
    let asked = seen("Open questions:");
    assert!(asked.contains("Which probe shall I use?"), "{asked}");
    assert!(asked.contains("Newest events:"), "{asked}");

    tmux(&socket, &["send-keys", "-t", "w", "q"]);
    let status = wait_until("watch to leave on q", Duration::from_secs(20), || {
        std::fs::read_to_string(&done_file).ok()
    });
    assert_eq!(status.trim(), "0");
    let _ = Command::new("tmux")
        .arg("-S")
        .arg(&socket)
        .arg("kill-server")
        .status();
}
