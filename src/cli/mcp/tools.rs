//! The two tool tables. A tool is one CLI subcommand and its parameters are that
//! command's flags, so a call becomes an argv and its answer is the command's `--json`
//! document: results, identity and thread defaults and errors are the CLI's by
//! construction. Adding a tool (e.g. `land`) is one more `Tool` in a table.

use crate::error::{Code, Error, Result};
use serde_json::{json, Map, Value};
use std::ffi::OsString;
use std::io::Write;

/// Which binary's tools a server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Inbox,
    Orch,
}

#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Int,
    Text,
    Bool,
    /// A JSON object, passed to the command as JSON text.
    Object,
    /// An array of strings.
    List,
    /// One of these strings.
    OneOf(&'static [&'static str]),
}

#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// A positional value, placed after `--` so that no value is ever read as a flag.
    Positional,
    /// `--NAME=VALUE`.
    Value(&'static str),
    /// `--NAME=VALUE`, or `--NAME-file=PATH` for a value too long for one argument
    /// (Linux refuses a single argument over 128 KiB; a body may be 1 MiB).
    ValueOrFile(&'static str),
    /// `--NAME` when true.
    Switch(&'static str),
    /// `--NAME=ITEM` for every item.
    Repeat(&'static str),
}

#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub flag: Flag,
    pub required: bool,
    pub about: &'static str,
}

#[derive(Debug)]
pub struct Tool {
    pub name: &'static str,
    pub about: &'static str,
    /// The subcommand of the server's own binary.
    pub command: &'static str,
    pub params: &'static [Param],
    pub blocks: Blocks,
}

/// Whether a call may wait on others for as long as it likes. When the client goes
/// away such calls are ended; every other call is bounded and runs to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    Never,
    Always,
    /// When this argument is given.
    With(&'static str),
}

impl Tool {
    pub fn blocks(&self, args: &Map<String, Value>) -> bool {
        match self.blocks {
            Blocks::Never => false,
            Blocks::Always => true,
            Blocks::With(name) => args.get(name).is_some_and(|v| !v.is_null()),
        }
    }
}

/// A tool named as its subcommand, that never blocks: most of them.
const fn tool(name: &'static str, about: &'static str, params: &'static [Param]) -> Tool {
    Tool {
        name,
        about,
        command: name,
        params,
        blocks: Blocks::Never,
    }
}

const fn param(name: &'static str, kind: Kind, flag: Flag, about: &'static str) -> Param {
    Param {
        name,
        kind,
        flag,
        required: false,
        about,
    }
}

const fn required(name: &'static str, kind: Kind, flag: Flag, about: &'static str) -> Param {
    Param {
        name,
        kind,
        flag,
        required: true,
        about,
    }
}

const THREAD: Param = param(
    "thread",
    Kind::Int,
    Flag::Positional,
    "Thread id; default: this worktree's",
);
const ATTACH: Param = param(
    "attach",
    Kind::List,
    Flag::Repeat("attach"),
    "Files to attach (paths)",
);
const DURATION: &str = "e.g. 90s, 15m, 2h; on expiry a timeout error";
const RUN: Param = param(
    "run",
    Kind::Text,
    Flag::Value("run"),
    "Run name; default: the current run",
);

pub const INBOX_TOOLS: &[Tool] = &[
    tool(
        "whoami",
        "Who I act as, how that was resolved, and this worktree's thread, run, task and attempt.",
        &[],
    ),
    tool("show", "A thread with all its messages.", &[THREAD]),
    tool(
        "update",
        "Post a progress note on a thread I hold; renews my lease.",
        &[
            THREAD,
            required("body", Kind::Text, Flag::ValueOrFile("body"), "The note"),
            param("data", Kind::Object, Flag::ValueOrFile("data"), "JSON object to carry"),
            ATTACH,
        ],
    ),
    tool(
        "ask",
        "Ask a question on a thread I hold; then wait_reply for the answer.",
        &[
            THREAD,
            required("body", Kind::Text, Flag::ValueOrFile("body"), "The question"),
        ],
    ),
    Tool {
        command: "wait-reply",
        blocks: Blocks::Always,
        ..tool(
            "wait_reply",
            "Block until someone else posts on the thread (a reply that came earlier returns at once); returns that message.",
            &[
                THREAD,
                param("timeout", Kind::Text, Flag::Value("timeout"), DURATION),
            ],
        )
    },
    tool(
        "done",
        "Complete a thread I hold, with an optional result.",
        &[
            THREAD,
            param("body", Kind::Text, Flag::ValueOrFile("body"), "Closing note"),
            param("result", Kind::Object, Flag::ValueOrFile("result"), "JSON object: the result"),
            ATTACH,
        ],
    ),
    tool(
        "fail",
        "Give up on a thread I hold.",
        &[
            THREAD,
            required("reason", Kind::Text, Flag::Value("reason"), "Why"),
            param("retryable", Kind::Bool, Flag::Switch("retryable"), "Another attempt may succeed"),
        ],
    ),
    Tool {
        blocks: Blocks::With("wait"),
        ..tool(
            "fetch",
            "Unread messages on threads visible to me, oldest first; advances my read cursor unless peek.",
            &[
                param("peek", Kind::Bool, Flag::Switch("peek"), "Keep them unread"),
                param("limit", Kind::Int, Flag::Value("limit"), "At most N (default 100)"),
                param("wait", Kind::Text, Flag::Value("wait"), "Block until one arrives, for at most this long (e.g. 15m)"),
            ],
        )
    },
];

pub const ORCH_TOOLS: &[Tool] = &[
    tool(
        "status",
        "The run at a glance: counts, then every task with status, agent and attempt.",
        &[RUN],
    ),
    tool("ready", "Tasks that can start now, high priority first, then oldest.", &[RUN]),
    tool(
        "dispatch",
        "Start one attempt per task (named, or all ready), each with its own inbox thread and, for code tasks, branch and worktree.",
        &[
            param("tasks", Kind::List, Flag::Positional, "Task keys"),
            param("all_ready", Kind::Bool, Flag::Switch("all-ready"), "Every ready task"),
            param("max", Kind::Int, Flag::Value("max"), "At most N tasks"),
            param("to", Kind::Text, Flag::Value("to"), "Agent or @queue instead of the task's"),
            param("base", Kind::Text, Flag::Value("base"), "Start from this revision"),
            param("force", Kind::Bool, Flag::Switch("force"), "Named tasks even if not ready"),
            RUN,
        ],
    ),
    tool(
        "answer",
        "Reply to the open question of a blocked task.",
        &[
            required("task", Kind::Text, Flag::Positional, "Task key"),
            required("body", Kind::Text, Flag::ValueOrFile("body"), "The answer"),
            RUN,
        ],
    ),
    tool("blocked", "Blocked tasks with their open question.", &[RUN]),
    Tool {
        blocks: Blocks::Always,
        ..tool(
            "wait",
            "Block until a condition holds; returns the events that made it hold.",
            &[
                param(
                    "until",
                    Kind::OneOf(&["change", "done", "blocked", "ready"]),
                    Flag::Value("until"),
                    "Default: change",
                ),
                param("task", Kind::Text, Flag::Value("task"), "Only this task"),
                param("timeout", Kind::Text, Flag::Value("timeout"), DURATION),
                param("since", Kind::Int, Flag::Value("since"), "Count changes after this event id"),
                RUN,
            ],
        )
    },
    // Offered only once the binary has `git orch land` (see `available`).
    tool(
        "land",
        "Merge done tasks' results into the target branch; conflicts and failed checks go back for rework.",
        &[
            param("into", Kind::Text, Flag::Value("into"), "Target branch"),
            param("tasks", Kind::List, Flag::Repeat("task"), "Only these task keys"),
            param("dry_run", Kind::Bool, Flag::Switch("dry-run"), "Change nothing"),
            RUN,
        ],
    ),
];

/// The tools a server offers: its table, less those whose subcommand this binary's
/// command tree `cli` lacks. The tree comes from the caller, the command group that
/// starts the server, so that this module never reaches back into the groups.
pub fn available(side: Side, cli: &clap::Command) -> Vec<&'static Tool> {
    table(side)
        .iter()
        .filter(|tool| cli.find_subcommand(tool.command).is_some())
        .collect()
}

fn table(side: Side) -> &'static [Tool] {
    match side {
        Side::Inbox => INBOX_TOOLS,
        Side::Orch => ORCH_TOOLS,
    }
}

/// A tool as `tools/list` shows it: name, description and a compact JSON Schema.
pub fn describe(tool: &Tool) -> Value {
    let mut properties = Map::new();
    for p in tool.params {
        let mut schema = match p.kind {
            Kind::Int => json!({"type": "integer"}),
            Kind::Text => json!({"type": "string"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Object => json!({"type": "object"}),
            Kind::List => json!({"type": "array", "items": {"type": "string"}}),
            Kind::OneOf(values) => json!({"type": "string", "enum": values}),
        };
        schema["description"] = p.about.into();
        properties.insert(p.name.to_owned(), schema);
    }
    let mut schema =
        json!({"type": "object", "properties": properties, "additionalProperties": false});
    let required: Vec<&str> = tool
        .params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    if !required.is_empty() {
        schema["required"] = json!(required);
    }
    json!({"name": tool.name, "description": tool.about, "inputSchema": schema})
}

/// Values longer than this go through a file (`--NAME-file`); well under Linux's
/// 128 KiB limit on one argument.
pub const ARG_LIMIT: usize = 64 * 1024;

/// A command line for one call, and the temporary files it names (kept until it ends).
pub struct Argv {
    pub args: Vec<OsString>,
    pub files: Vec<tempfile::NamedTempFile>,
}

/// Turns a call's arguments into the subcommand's argv (without `--json` and the global
/// flags, which the caller adds before `--`). Unknown or mistyped arguments are refused,
/// as the CLI refuses unknown flags, so a typo is never silently dropped.
pub fn argv(tool: &Tool, args: &Map<String, Value>) -> Result<Argv> {
    if let Some(unknown) = args
        .keys()
        .find(|k| !tool.params.iter().any(|p| p.name == k.as_str()))
    {
        let known: Vec<&str> = tool.params.iter().map(|p| p.name).collect();
        return Err(
            bad_arg(tool, unknown, "is not an argument of this tool").hint(if known.is_empty() {
                "it takes no arguments".to_owned()
            } else {
                format!("it takes: {}", known.join(", "))
            }),
        );
    }
    let mut out = Argv {
        args: vec![tool.command.into()],
        files: Vec::new(),
    };
    let mut positional = Vec::new();
    for p in tool.params {
        let value = match args.get(p.name) {
            None | Some(Value::Null) if p.required => {
                return Err(bad_arg(tool, p.name, "is required"))
            }
            None | Some(Value::Null) => continue,
            Some(value) => value,
        };
        let values = texts(tool, p, value)?;
        match p.flag {
            Flag::Positional => positional.extend(values),
            Flag::Switch(name) => {
                if value == &Value::Bool(true) {
                    out.args.push(format!("--{name}").into());
                }
            }
            Flag::Value(name) | Flag::Repeat(name) => {
                for text in values {
                    if text.len() > ARG_LIMIT {
                        return Err(Error::new(
                            Code::TooLarge,
                            format!(
                                "{} of {} is longer than {ARG_LIMIT} bytes",
                                p.name, tool.name
                            ),
                        ));
                    }
                    out.args.push(format!("--{name}={text}").into());
                }
            }
            Flag::ValueOrFile(name) => {
                for text in values {
                    if text.len() <= ARG_LIMIT {
                        out.args.push(format!("--{name}={text}").into());
                    } else {
                        let file = spill(&text)?;
                        let mut arg = OsString::from(format!("--{name}-file="));
                        arg.push(file.path());
                        out.args.push(arg);
                        out.files.push(file);
                    }
                }
            }
        }
    }
    if !positional.is_empty() {
        out.args.push("--".into());
        out.args.extend(positional.into_iter().map(OsString::from));
    }
    Ok(out)
}

/// A parameter's value as the text(s) the command line carries.
fn texts(tool: &Tool, p: &Param, value: &Value) -> Result<Vec<String>> {
    let wrong = |expected: &str| bad_arg(tool, p.name, &format!("must be {expected}"));
    let one = match (p.kind, value) {
        (Kind::Int, Value::Number(n)) if n.is_i64() => n.to_string(),
        // Models sometimes quote numbers; a string of digits means the same thing.
        (Kind::Int, Value::String(s)) if s.trim().parse::<i64>().is_ok() => s.trim().to_owned(),
        (Kind::Int, _) => return Err(wrong("an integer")),
        (Kind::Text, Value::String(s)) => s.clone(),
        (Kind::Text, _) => return Err(wrong("a string")),
        (Kind::Bool, Value::Bool(b)) => b.to_string(),
        (Kind::Bool, _) => return Err(wrong("true or false")),
        (Kind::Object, Value::Object(_)) => value.to_string(),
        (Kind::Object, _) => return Err(wrong("a JSON object")),
        (Kind::OneOf(allowed), Value::String(s)) if allowed.contains(&s.as_str()) => s.clone(),
        (Kind::OneOf(allowed), _) => return Err(wrong(&format!("one of {}", allowed.join(", ")))),
        (Kind::List, Value::Array(items)) => {
            return items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(wrong("an array of strings")),
                })
                .collect()
        }
        (Kind::List, _) => return Err(wrong("an array of strings")),
    };
    Ok(vec![one])
}

fn bad_arg(tool: &Tool, name: &str, what: &str) -> Error {
    Error::invalid_input(format!("argument {name:?} of {} {what}", tool.name))
        .detail("tool", tool.name)
        .detail("argument", name)
}

fn spill(text: &str) -> Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new()
        .prefix("git-orch-mcp-")
        .tempfile()
        .map_err(|e| Error::io("creating a temporary file", e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|e| Error::io("writing a temporary file", e))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(tool: &str, args: Value) -> Result<Vec<String>> {
        let tool = INBOX_TOOLS
            .iter()
            .chain(ORCH_TOOLS)
            .find(|t| t.name == tool)
            .unwrap();
        let Value::Object(args) = args else { panic!() };
        argv(tool, &args).map(|a| {
            a.args
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect()
        })
    }

    #[test]
    fn arguments_become_flags_and_positionals_after_a_double_dash() {
        assert_eq!(
            call(
                "update",
                json!({"thread": 7, "body": "-rf /", "data": {"a": 1}})
            )
            .unwrap(),
            ["update", "--body=-rf /", r#"--data={"a":1}"#, "--", "7"]
        );
        assert_eq!(
            call(
                "dispatch",
                json!({"tasks": ["a", "b"], "all_ready": false, "force": true})
            )
            .unwrap(),
            ["dispatch", "--force", "--", "a", "b"]
        );
        assert_eq!(call("whoami", json!({})).unwrap(), ["whoami"]);
        assert_eq!(
            call("wait_reply", json!({"thread": "12", "timeout": null})).unwrap(),
            ["wait-reply", "--", "12"]
        );
    }

    #[test]
    fn bad_arguments_are_refused_with_invalid_input() {
        for (tool, args) in [
            ("show", json!({"thread": "x"})),
            ("update", json!({"thread": 1})),
            ("update", json!({"body": "b", "colour": "red"})),
            ("done", json!({"result": "[1]"})),
            ("wait", json!({"until": "forever"})),
            ("dispatch", json!({"tasks": [1]})),
            ("whoami", json!({"agent": "x"})),
        ] {
            let err = call(tool, args.clone()).unwrap_err();
            assert_eq!(err.code, Code::InvalidInput, "{tool} {args}: {err}");
        }
    }

    #[test]
    fn a_long_body_goes_through_a_file() {
        let tool = &INBOX_TOOLS[2];
        let body = "x".repeat(ARG_LIMIT + 1);
        let Value::Object(args) = json!({"body": body}) else {
            panic!()
        };
        let argv = argv(tool, &args).unwrap();
        let flag = argv.args[1].to_string_lossy().into_owned();
        let path = flag.strip_prefix("--body-file=").expect("a file flag");
        assert_eq!(std::fs::read_to_string(path).unwrap(), body);
        let reason = json!({"reason": "y".repeat(ARG_LIMIT + 1)});
        assert_eq!(call("fail", reason).unwrap_err().code, Code::TooLarge);
    }

    /// The bound holds for whole tables, `land` included, whatever this binary offers.
    #[test]
    fn whole_tables_list_in_under_6_kib() {
        for table in [INBOX_TOOLS, ORCH_TOOLS] {
            let tools: Vec<Value> = table.iter().map(describe).collect();
            let line = json!({"jsonrpc": "2.0", "id": 1, "result": {"tools": tools}}).to_string();
            println!("{} tools: tools/list is {} bytes", table.len(), line.len());
            assert!(line.len() <= 6 * 1024, "{} bytes", line.len());
        }
    }

    /// Every flag a tool can emit exists on its subcommand, so the tables cannot drift
    /// from the CLI (a tool whose subcommand is missing is not offered at all).
    #[test]
    fn every_flag_of_every_offered_tool_exists_on_its_command() {
        for side in [Side::Inbox, Side::Orch] {
            use clap::CommandFactory;
            let (table, mut cli) = match side {
                Side::Inbox => (INBOX_TOOLS, crate::cli::inbox::InboxCli::command()),
                Side::Orch => (ORCH_TOOLS, crate::cli::orch::OrchCli::command()),
            };
            // The subcommands are deferred: their arguments exist once built.
            cli.build();
            let offered = available(side, &cli);
            assert!(offered.len() <= 8, "at most 8 tools");
            for tool in table {
                let Some(cmd) = cli.find_subcommand(tool.command) else {
                    assert!(!offered.iter().any(|t| t.name == tool.name));
                    continue;
                };
                for p in tool.params {
                    let longs: Vec<String> = match p.flag {
                        Flag::Positional => {
                            assert!(
                                cmd.get_positionals().next().is_some(),
                                "{} takes a positional",
                                tool.command
                            );
                            continue;
                        }
                        Flag::Value(n) | Flag::Switch(n) | Flag::Repeat(n) => vec![n.into()],
                        Flag::ValueOrFile(n) => vec![n.into(), format!("{n}-file")],
                    };
                    for long in longs {
                        assert!(
                            cmd.get_arguments()
                                .chain(cli.get_arguments())
                                .any(|a| a.get_long() == Some(long.as_str())),
                            "{} has no --{long} (tool {})",
                            tool.command,
                            tool.name
                        );
                    }
                }
            }
        }
    }
}
