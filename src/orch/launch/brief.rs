//! The brief a launched agent gets (SPEC §11): the task, where it stands, and the
//! protocol in at most ten lines; at most forty lines before the task's body. It names no
//! ids: inside its worktree `git inbox` finds the thread and the agent by itself.

use super::preset::{InboxVia, Protocol};
use crate::error::Result;
use crate::orch::{Attempt, Task};

/// Everything the brief says, gathered by the caller.
pub struct Brief<'a> {
    pub task: &'a Task,
    /// The attempt it is for; `None` to preview what the next attempt would get.
    pub attempt: Option<&'a Attempt>,
    /// The launched agent's name, when known.
    pub agent: Option<&'a str>,
    pub protocol: Protocol,
    /// How an `inbox` agent reaches the inbox: the protocol names commands or tools.
    pub inbox: InboxVia,
    /// What the attempt's thread was opened with, when it says more than the task's
    /// body: a rework for landing carries its note (paths, check output) there.
    pub body: Option<&'a str>,
}

/// The protocol lines for agents that report through `git inbox` (what a scripted
/// model endpoint checks for, so change them with care).
pub const INBOX_PROTOCOL: [&str; 5] = [
    "- Work only in this worktree, and commit as you go: `git add -A && git commit -m \"…\"`.",
    "- Need a decision? `git inbox ask --body \"your question\"`, then `git inbox wait-reply`; follow the answer.",
    "- Finished: commit, then `git inbox done --body \"summary of what you did\"`.",
    "- Cannot finish: `git inbox fail --reason \"why\"` (add `--retryable` if another attempt could succeed).",
    "- You need no ids and no claim: `git inbox` knows this worktree's task and your name.",
];

/// The protocol lines for agents given the `inbox` MCP server: the tools' names, never a
/// `git inbox` command (the scripted endpoint checks for the backquoted names).
pub const MCP_PROTOCOL: [&str; 6] = [
    "- Work only in this worktree, and commit as you go: `git add -A && git commit -m \"…\"`.",
    "- Report through the tools of the `inbox` MCP server, not the `git inbox` command: progress with `update`.",
    "- Need a decision? `ask` with your question, then `wait_reply` (it waits for the answer); follow the answer.",
    "- Finished: commit, then `done` with a `body` summing up what you did.",
    "- Cannot finish: `fail` with a `reason` (and `retryable: true` if another attempt could succeed).",
    "- You need no ids and no claim: the server knows this worktree's task and your name.",
];

/// The line that replaces the MCP protocol's second when the shell works too.
const BOTH_LINE: &str = "- Report through the tools of the `inbox` MCP server (or `git inbox` in the shell): progress with `update`.";

/// The protocol lines for agents that report by their exit status.
pub const EXIT_PROTOCOL: [&str; 4] = [
    "- Work only in this worktree, and commit everything you change: `git add -A && git commit -m \"…\"`.",
    "- Finished: exit with status 0; what you committed is the result (uncommitted changes do not count).",
    "- Cannot finish: exit with a non-zero status, and say why in your last line of output.",
    "- Do not ask questions: nobody reads them until you have exited.",
];

/// The body `attempt`'s thread was opened with (the task's body, plus a land rework's
/// note when it is one), so the brief says what the attempt was asked.
pub fn opening_body(conn: &rusqlite::Connection, attempt: &Attempt) -> Result<Option<String>> {
    let Some(thread) = attempt.thread else {
        return Ok(None);
    };
    let messages = crate::inbox::thread_messages(conn, thread)?;
    Ok(messages.into_iter().next().map(|m| m.body))
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

impl Brief<'_> {
    pub fn render(&self) -> String {
        let task = self.task;
        let mut lines: Vec<String> = Vec::new();
        lines.push(format!("# Task {}: {}", task.key, task.title));
        lines.push(String::new());
        let who = self.agent.unwrap_or("the agent");
        let n = self
            .attempt
            .map(|a| a.n.to_string())
            .unwrap_or_else(|| (task.attempts + 1).to_string());
        lines.push(format!(
            "You are {who}, launched by git-orch for attempt {n} of the {} task `{}` in run `{}`.",
            task.kind, task.key, task.run
        ));
        match self.attempt {
            Some(a) => {
                match &a.worktree {
                    Some(path) => lines.push(format!("Worktree: {path}")),
                    None => lines.push(
                        "Worktree: none; you work in the repository as it is and commit nothing."
                            .into(),
                    ),
                }
                if let Some(branch) = &a.branch {
                    let base = match (&a.base_ref, &a.base_sha) {
                        (Some(r), Some(sha)) => format!("{r} at {}", short(sha)),
                        (None, Some(sha)) => short(sha).to_owned(),
                        (Some(r), None) => r.clone(),
                        (None, None) => "its base".into(),
                    };
                    lines.push(format!("Branch: {branch}, started from {base}."));
                }
            }
            None => lines.push("Worktree and branch: made when the task is dispatched.".into()),
        }
        if !task.after.is_empty() {
            lines.push(format!(
                "It comes after {}: their committed work is already in your base.",
                task.after.join(", ")
            ));
        }
        if self.attempt.is_some_and(|a| a.n > 1) {
            lines
                .push("Earlier attempts did not finish; start from what your branch holds.".into());
        }
        lines.push(String::new());
        lines.push("## Protocol".into());
        match (self.protocol, self.inbox) {
            (Protocol::Inbox, InboxVia::Shell) => {
                lines.extend(INBOX_PROTOCOL.iter().map(|l| (*l).to_owned()));
                if task.kind == "review" {
                    lines.push("- If the task asks for a JSON result: `git inbox done --result-file FILE`.".into());
                }
            }
            (Protocol::Inbox, via) => {
                lines.extend(MCP_PROTOCOL.iter().enumerate().map(|(i, line)| {
                    match (i, via) {
                        (1, InboxVia::Both) => BOTH_LINE,
                        _ => line,
                    }
                    .to_owned()
                }));
                if task.kind == "review" {
                    lines.push(
                        "- If the task asks for a JSON result: `done` with it as `result`.".into(),
                    );
                }
            }
            (Protocol::Exit, _) => lines.extend(EXIT_PROTOCOL.iter().map(|l| (*l).to_owned())),
        }
        lines.push(String::new());
        lines.push("## The task".into());
        lines.push(String::new());
        let mut text = lines.join("\n");
        text.push('\n');
        let body = self.body.unwrap_or(&task.body);
        if body.trim().is_empty() {
            text.push_str(&task.title);
        } else {
            text.push_str(body.trim_end());
        }
        text.push('\n');
        text
    }
}
