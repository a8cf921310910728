//! The registry's objects of the bus (and the error envelope every command shares).

use super::schema::{f, obj, Object};

const THREAD_STATUS: &str = "`open`, `claimed`, `done`, `failed` or `cancelled`";

/// The bus: threads, messages, identity, events, and the error envelope.
pub(crate) const INBOX: &[Object] = &[
    obj(
        "Error",
        "`error` of a failed command: `{\"ok\": false, \"error\": Error}`.",
        &[
            f("code", "string", "stable error code (table below)"),
            f("message", "string", "what went wrong, for people"),
            f("hint", "string?", "what to do about it"),
            f("details", "object", "machine-readable particulars, by code"),
        ],
    ),
    obj(
        "Thread",
        "A conversation on the bus: a message or a task.",
        &[
            f("id", "integer", "thread id"),
            f("subject", "string", ""),
            f("kind", "string", "`message` or `task`"),
            f("from", "string", "sending agent"),
            f("to", "string", "an agent, or `@queue`"),
            f("status", "string", THREAD_STATUS),
            f("claimed_by", "string?", "holder of the claim"),
            f("lease_expires_at", "time?", "when the claim runs out"),
            f("claim_count", "integer", "claims so far"),
            f(
                "awaiting_reply",
                "boolean",
                "an `ask` waits for its `reply`",
            ),
            f("data", "any", "the sender's JSON (`{}` when none)"),
            f("result", "any", "the `done` result, null before"),
            f("failure", "Failure?", "why it failed, when it did"),
            f("created_at", "time", ""),
            f("updated_at", "time", ""),
        ],
    ),
    obj(
        "Failure",
        "Why a thread or attempt failed.",
        &[
            f("reason", "string", ""),
            f(
                "retryable",
                "boolean",
                "whether another attempt may succeed",
            ),
        ],
    ),
    obj(
        "Message",
        "One entry of a thread; ids are global and strictly increasing.",
        &[
            f("id", "integer", ""),
            f("thread", "integer", "its thread's id"),
            f("author", "string", ""),
            f(
                "kind",
                "string",
                "`send`, `update`, `ask`, `reply`, `claim`, `renew`, `release`, `expire`, \
                 `progress`, `done`, `fail`, `cancel`",
            ),
            f("body", "string", ""),
            f("data", "any", "the author's JSON, null when none"),
            f("created_at", "time", ""),
            f("artifacts", "[ArtifactRef]", "files attached"),
        ],
    ),
    obj(
        "ArtifactRef",
        "A file stored by content with a message.",
        &[
            f("id", "integer", ""),
            f("name", "string", "file name as attached"),
            f("sha256", "string", "content hash, hex"),
            f("size", "integer", "bytes"),
        ],
    ),
    obj(
        "Posted",
        "What a write to a thread returns.",
        &[
            f("thread", "Thread", "the thread after the change"),
            f("message", "Message", "the message written (or woken on)"),
        ],
    ),
    obj(
        "Fetched",
        "New messages for the caller.",
        &[
            f("messages", "[Message]", "oldest first"),
            f(
                "cursor",
                "integer",
                "the last message id seen; `--peek` leaves it stored as was",
            ),
        ],
    ),
    obj("ThreadList", "", &[f("threads", "[Thread]", "")]),
    obj(
        "ThreadShown",
        "",
        &[
            f("thread", "Thread", ""),
            f("messages", "[Message]", "oldest first"),
        ],
    ),
    obj(
        "Initialized",
        "",
        &[
            f("created", "boolean", "false when the state already existed"),
            f("state_dir", "string", "`<git common dir>/orch`"),
            f("schema_version", "integer", ""),
        ],
    ),
    obj(
        "OrchInitialized",
        "",
        &[
            f("created", "boolean", "false when the state already existed"),
            f("state_dir", "string", "`<git common dir>/orch`"),
            f("schema_version", "integer", ""),
            f("hooks", "HooksReport", ""),
        ],
    ),
    obj("HooksChanged", "", &[f("hooks", "HooksReport", "")]),
    obj(
        "HooksReport",
        "What installing or removing the git hooks did, hook by hook.",
        &[
            f(
                "dir",
                "string?",
                "the hooks directory (`core.hooksPath` honoured)",
            ),
            f("installed", "[string]", "hooks given our block"),
            f("unchanged", "[string]", "hooks that had it already"),
            f("removed", "[string]", "hooks whose block was taken out"),
            f(
                "deleted",
                "[string]",
                "hook files deleted because nothing else was in them",
            ),
            f("skipped", "[HookSkip]", "hooks left alone"),
        ],
    ),
    obj(
        "HookSkip",
        "",
        &[f("hook", "string", ""), f("reason", "string", "")],
    ),
    obj(
        "Subscription",
        "",
        &[
            f("agent", "string", ""),
            f("queue", "string", "`@name`"),
            f("changed", "boolean", "false when it already was so"),
        ],
    ),
    obj(
        "ArtifactSaved",
        "",
        &[
            f("artifact", "ArtifactRef", ""),
            f("path", "string", "where it was written"),
        ],
    ),
    obj(
        "Whoami",
        "The caller's identity and, in an attempt worktree, its attempt.",
        &[
            f("agent", "string", ""),
            f("source", "string", "`flag`, `env` or `worktree`"),
            f("thread", "integer?", "the attempt's thread"),
            f("run", "string?", ""),
            f("task", "string?", ""),
            f("attempt", "integer?", "attempt id"),
            f("n", "integer?", "which attempt of the task"),
            f("max_attempts", "integer?", "the task's limit"),
        ],
    ),
    obj(
        "Event",
        "One state change from the append-only log (`watch`, `wait`, `log`).",
        &[
            f("id", "integer", ""),
            f("at", "time", ""),
            f(
                "kind",
                "string",
                "`message.created`, `thread.status`, `task.status`, `attempt.status`, …",
            ),
            f("thread", "integer?", ""),
            f("run", "string?", ""),
            f("task", "string?", ""),
            f("attempt", "integer?", ""),
            f("from", "string?", "status before"),
            f("to", "string?", "status after"),
            f("actor", "string?", "who acted"),
            f("data", "any", "the change's particulars"),
        ],
    ),
    obj("EventList", "", &[f("events", "[Event]", "oldest first")]),
];
