//! The registry itself: every object the commands print and the `data` of each command.
//! Kept by hand beside the code it describes; [`super::json`] explains the type language,
//! and the integration tests fail when a command prints something this file does not say.

use super::schema::Object;

/// `data` of each command (of each line, for `watch`-like streams: see [`STREAMS`]).
pub(crate) const DATA: &[(&str, &str)] = &[
    ("git inbox init", "Initialized"),
    ("git inbox send", "Posted"),
    ("git inbox fetch", "Fetched"),
    ("git inbox claim", "Posted"),
    ("git inbox renew", "Posted"),
    ("git inbox release", "Posted"),
    ("git inbox update", "Posted"),
    ("git inbox ask", "Posted"),
    ("git inbox reply", "Posted"),
    ("git inbox wait-reply", "Posted"),
    ("git inbox done", "Posted"),
    ("git inbox fail", "Posted"),
    ("git inbox cancel", "Posted"),
    ("git inbox list", "ThreadList"),
    ("git inbox show", "ThreadShown"),
    ("git inbox subscribe", "Subscription"),
    ("git inbox unsubscribe", "Subscription"),
    ("git inbox artifact get", "ArtifactSaved"),
    ("git inbox whoami", "Whoami"),
    ("git orch init", "OrchInitialized"),
    ("git orch uninstall-hooks", "HooksChanged"),
    ("git orch run init", "RunShown"),
    ("git orch run list", "RunList"),
    ("git orch run show", "RunShown"),
    ("git orch run use", "RunShown"),
    ("git orch run close", "RunShown"),
    ("git orch run set-base", "RunShown"),
    ("git orch task add", "TaskShown"),
    ("git orch task import", "TaskList"),
    ("git orch task list", "TaskList"),
    ("git orch task show", "TaskDetail"),
    ("git orch dep add", "TaskChanged"),
    ("git orch dep rm", "TaskChanged"),
    ("git orch ready", "TaskList"),
    ("git orch dispatch", "Dispatched"),
    ("git orch reconcile", "Reconciled"),
    ("git orch blocked", "TaskList"),
    ("git orch drive", "DriveEnded"),
    ("git orch answer", "Posted"),
    ("git orch status", "Status"),
    ("git orch retry", "AttemptList"),
    ("git orch reassign", "AttemptList"),
    ("git orch cancel", "TaskChanged | RunShown"),
    ("git orch cleanup", "Cleanup"),
    ("git orch wait", "EventList"),
    ("git orch council start", "Council"),
    ("git orch council wait", "Council"),
    ("git orch council tally", "Tally"),
    ("git orch council report", "CouncilReport"),
    ("git orch land", "Landing"),
    ("git orch log", "EventList"),
    ("git orch profile list", "ProfileList"),
    ("git orch profile show", "ProfileShown"),
    ("git orch brief", "Brief"),
    ("git orch agents", "AgentList"),
    ("git orch logs", "AgentLog"),
    ("git orch graph", "Graph"),
    ("git orch install-docs", "DocsInstalled"),
];

/// Commands that print one bare object per line while they run (`--follow`, `watch`),
/// before the final document (if any) or the error line that ends the stream.
pub(crate) const STREAMS: &[(&str, &str)] = &[
    ("git inbox watch", "Event"),
    ("git orch log", "Event"),
    ("git orch drive", "DriveEvent"),
    ("git orch logs", "LogLine"),
];

/// Commands whose stdout is not a `--json` document at all.
#[cfg(test)]
pub(crate) const NOT_JSON: &[(&str, &str)] = &[
    (
        "git inbox mcp",
        "speaks MCP (JSON-RPC 2.0) on stdin and stdout",
    ),
    (
        "git orch mcp",
        "speaks MCP (JSON-RPC 2.0) on stdin and stdout",
    ),
];

/// Every object, the bus's first.
pub(crate) const OBJECTS: &[&[Object]] = &[super::inbox_objects::INBOX, super::orch_objects::ORCH];
