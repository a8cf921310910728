//! `cargo xtask e2e mcp`: the MCP servers against a real client, the Python `mcp` SDK,
//! installed from `fixtures/mcp/requirements.txt` into a venv under `target/` (made once,
//! remade when the requirements change). The client script is
//! `fixtures/mcp/worker_flow.py`; this side prepares the repository and checks what it saw.

use crate::util::{workspace_root, Bins, Sandbox};
use anyhow::{bail, ensure, Context, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    let release = args.iter().any(|a| a == "--release");
    let bins = crate::util::build(release)?;
    let summary = scenario(&bins)?;
    println!("e2e ok   mcp with the Python SDK: {summary}");
    Ok(())
}

/// A task dispatched to worker-1 and claimed (as the launcher does), then the worker's
/// whole flow and the leader's status through the SDK.
pub fn scenario(bins: &Bins) -> Result<String> {
    let python = venv()?;
    let sb = Sandbox::new(bins)?;
    sb.data(&bins.orch, &["init"])?;
    sb.data(&bins.orch, &["run", "init", "r1", "--title", "MCP"])?;
    sb.data(
        &bins.orch,
        &[
            "task", "add", "lexer", "--title", "Lexer", "--to", "worker-1",
        ],
    )?;
    let dispatched = sb.data(&bins.orch, &["dispatch", "lexer"])?;
    let worktree = dispatched["attempts"][0]["worktree"]
        .as_str()
        .context("the attempt's worktree")?
        .to_owned();
    let claim = sb
        .command(&bins.inbox)
        .args(["claim", "--json"])
        .current_dir(&worktree)
        .output()?;
    crate::util::data_of(&String::from_utf8_lossy(&claim.stdout)).context("claim")?;

    let script = workspace_root().join("fixtures/mcp/worker_flow.py");
    let out = sb
        .command(&python)
        .arg(&script)
        .arg(&bins.inbox)
        .arg(&bins.orch)
        .arg(&worktree)
        .arg(&sb.repo)
        .arg("lexer")
        .output()?;
    if !out.status.success() {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .with_context(|| format!("the script's summary: {stdout:?}"))?;
    let expect = |key: &str, want: Value| -> Result<()> {
        ensure!(
            summary[key] == want,
            "{key}: got {}, want {want}",
            summary[key]
        );
        Ok(())
    };
    expect("server", json!("git-inbox"))?;
    expect(
        "inbox_tools",
        json!([
            "whoami",
            "show",
            "update",
            "ask",
            "wait_reply",
            "done",
            "fail",
            "fetch"
        ]),
    )?;
    expect("whoami", json!({"agent": "worker-1", "source": "worktree"}))?;
    expect("reply", json!({"author": "leader", "body": "Yes, hex too"}))?;
    ensure!(
        summary["cancelled"] != "the wait returned",
        "a timed-out wait_reply was not cancelled"
    );
    expect("done", json!("done"))?;
    expect("refused", json!("thread_closed"))?;
    expect("status", json!({"lexer": "done"}))?;
    let orch_tools = summary["orch_tools"].as_array().context("orch_tools")?;
    ensure!(
        orch_tools.len() >= 6 && orch_tools.iter().any(|t| t == "wait"),
        "the leader's tools: {orch_tools:?}"
    );
    Ok(format!(
        "protocol {}, worker flow whoami..done, cancel by client timeout ({}), leader status",
        summary["protocol"].as_str().unwrap_or("?"),
        summary["cancelled"].as_str().unwrap_or("?"),
    ))
}

/// The venv's python, with the pinned requirements installed.
fn venv() -> Result<PathBuf> {
    let root = workspace_root();
    let requirements = root.join("fixtures/mcp/requirements.txt");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let dir = target.join("mcp-venv");
    let python = dir.join("bin/python");
    let stamp = dir.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements)?;
    if python.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&wanted) {
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let made = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .context("running python3 -m venv (Python 3.10 or newer is needed)")?;
    ensure!(made.success(), "python3 -m venv {} failed", dir.display());
    let installed = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements)
        .status()?;
    ensure!(
        installed.success(),
        "pip install -r {} failed",
        requirements.display()
    );
    std::fs::write(&stamp, wanted)?;
    Ok(python)
}
