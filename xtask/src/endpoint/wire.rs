//! The four wire formats the agent CLIs speak: what a request tells us (offered tools,
//! tool results so far, the user's prompt) and how one scripted reply is streamed back.

use serde_json::{json, Value};
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// Anthropic Messages (`POST /v1/messages`): Claude Code.
    Anthropic,
    /// OpenAI Responses (`POST /v1/responses`): Codex.
    Responses,
    /// Gemini `models/M:streamGenerateContent` and `:generateContent`: Gemini CLI.
    Gemini,
    /// OpenAI chat completions (`POST /v1/chat/completions`): opencode and aider.
    Chat,
}

impl Wire {
    pub fn of(path: &str) -> Option<Wire> {
        if path.ends_with("/messages") {
            Some(Wire::Anthropic)
        } else if path.ends_with("/responses") {
            Some(Wire::Responses)
        } else if path.ends_with(":streamGenerateContent") || path.ends_with(":generateContent") {
            Some(Wire::Gemini)
        } else if path.ends_with("/chat/completions") {
            Some(Wire::Chat)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Wire::Anthropic => "anthropic",
            Wire::Responses => "responses",
            Wire::Gemini => "gemini",
            Wire::Chat => "chat",
        }
    }
}

/// What the endpoint needs from a request.
#[derive(Debug, Default)]
pub struct Conversation {
    /// Names of the tools offered (for Codex's MCP namespaces: `namespace/tool`).
    pub tools: Vec<String>,
    /// The text of each tool result, oldest first: the scripted step is their count.
    pub results: Vec<String>,
    /// The text of the user's messages, tool results left out: where the brief is.
    pub prompt: String,
    /// Every system/developer text, for telling apart a CLI's side requests.
    pub system: String,
    pub stream: bool,
    pub model: String,
}

fn texts(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| texts(i, out)),
        Value::Object(map) => {
            for key in ["text", "content", "input_text"] {
                if let Some(inner) = map.get(key) {
                    texts(inner, out);
                }
            }
        }
        _ => {}
    }
}

/// Every string inside `v`: Gemini CLI wraps a tool's output in an object of its own.
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
        }
        Value::Array(items) => items.iter().for_each(|i| strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| strings(i, out)),
        _ => {}
    }
}

fn text_of(v: &Value) -> String {
    let mut s = String::new();
    texts(v, &mut s);
    s
}

pub fn parse(wire: Wire, req: &Value, path: &str) -> Conversation {
    let mut c = Conversation {
        stream: req["stream"].as_bool().unwrap_or(false),
        model: req["model"].as_str().unwrap_or("scripted-model").to_owned(),
        ..Conversation::default()
    };
    let empty = Vec::new();
    match wire {
        Wire::Anthropic => {
            c.tools = names(req["tools"].as_array().unwrap_or(&empty), &["name"]);
            c.system = text_of(&req["system"]);
            for m in req["messages"].as_array().unwrap_or(&empty) {
                match &m["content"] {
                    Value::Array(blocks) => {
                        for b in blocks {
                            if b["type"] == "tool_result" {
                                c.results.push(text_of(&b["content"]));
                            } else if m["role"] == "user" && b["type"] == "text" {
                                c.prompt.push_str(&text_of(&b["text"]));
                            }
                        }
                    }
                    other if m["role"] == "user" => c.prompt.push_str(&text_of(other)),
                    _ => {}
                }
            }
        }
        Wire::Responses => {
            for t in req["tools"].as_array().unwrap_or(&empty) {
                let ns = t["name"].as_str().unwrap_or("");
                match t["tools"].as_array() {
                    Some(inner) => c.tools.extend(
                        names(inner, &["name"])
                            .into_iter()
                            .map(|n| format!("{ns}/{n}")),
                    ),
                    None => c.tools.push(ns.to_owned()),
                }
            }
            c.system = text_of(&req["instructions"]);
            for item in req["input"].as_array().unwrap_or(&empty) {
                let kind = item["type"].as_str().unwrap_or("message");
                if kind.ends_with("_call_output") {
                    c.results.push(text_of(&item["output"]));
                } else if kind == "message" && item["role"] == "user" {
                    c.prompt.push_str(&text_of(&item["content"]));
                } else if kind == "message" && item["role"] == "developer" {
                    c.system.push_str(&text_of(&item["content"]));
                }
            }
        }
        Wire::Gemini => {
            c.stream = path.ends_with(":streamGenerateContent");
            if let Some(model) = path.rsplit('/').next().and_then(|m| m.split(':').next()) {
                c.model = model.to_owned();
            }
            for t in req["tools"].as_array().unwrap_or(&empty) {
                c.tools.extend(names(
                    t["functionDeclarations"].as_array().unwrap_or(&empty),
                    &["name"],
                ));
            }
            c.system = text_of(&req["systemInstruction"]["parts"]);
            for m in req["contents"].as_array().unwrap_or(&empty) {
                for p in m["parts"].as_array().unwrap_or(&empty) {
                    if let Some(r) = p.get("functionResponse") {
                        let mut out = String::new();
                        strings(&r["response"], &mut out);
                        c.results.push(out);
                    } else if m["role"] == "user" {
                        c.prompt.push_str(&text_of(&p["text"]));
                    }
                }
            }
        }
        Wire::Chat => {
            for t in req["tools"].as_array().unwrap_or(&empty) {
                if let Some(n) = t["function"]["name"].as_str() {
                    c.tools.push(n.to_owned());
                }
            }
            for m in req["messages"].as_array().unwrap_or(&empty) {
                match m["role"].as_str() {
                    Some("tool") => c.results.push(text_of(&m["content"])),
                    Some("user") => c.prompt.push_str(&text_of(&m["content"])),
                    Some("system") => c.system.push_str(&text_of(&m["content"])),
                    _ => {}
                }
            }
        }
    }
    c
}

fn names(items: &[Value], keys: &[&str]) -> Vec<String> {
    items
        .iter()
        .filter_map(|t| keys.iter().find_map(|k| t[*k].as_str()))
        .map(str::to_owned)
        .collect()
}

/// One scripted turn of the model.
#[derive(Clone, Debug)]
pub enum Reply {
    Tool {
        name: String,
        /// Codex routes a call to an MCP server by this namespace (`mcp__<server>`).
        namespace: Option<String>,
        args: Value,
    },
    Text(String),
}

/// Writes the reply in the wire's streaming form (or plain JSON when not streaming).
/// Returns the content type to send, then the body bytes.
pub fn render(wire: Wire, reply: &Reply, c: &Conversation, step: usize) -> (&'static str, Vec<u8>) {
    let mut out = Vec::new();
    let model = &c.model;
    let usage_in = 10;
    match wire {
        Wire::Anthropic => {
            let block = match reply {
                Reply::Tool { name, args, .. } => (
                    json!({"type":"tool_use","id":format!("toolu_{step}"),"name":name,"input":{}}),
                    json!({"type":"input_json_delta","partial_json":args.to_string()}),
                    "tool_use",
                ),
                Reply::Text(t) => (
                    json!({"type":"text","text":""}),
                    json!({"type":"text_delta","text":t}),
                    "end_turn",
                ),
            };
            if !c.stream {
                let content = match reply {
                    Reply::Tool { name, args, .. } => {
                        json!([{"type":"tool_use","id":format!("toolu_{step}"),"name":name,"input":args}])
                    }
                    Reply::Text(t) => json!([{"type":"text","text":t}]),
                };
                let body = json!({"id":format!("msg_{step}"),"type":"message","role":"assistant","model":model,
                    "content":content,"stop_reason":block.2,"stop_sequence":null,
                    "usage":{"input_tokens":usage_in,"output_tokens":5}});
                return ("application/json", body.to_string().into_bytes());
            }
            let events = [
                (
                    "message_start",
                    json!({"type":"message_start","message":{"id":format!("msg_{step}"),"type":"message","role":"assistant","model":model,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":usage_in,"output_tokens":1}}}),
                ),
                (
                    "content_block_start",
                    json!({"type":"content_block_start","index":0,"content_block":block.0}),
                ),
                (
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":block.1}),
                ),
                (
                    "content_block_stop",
                    json!({"type":"content_block_stop","index":0}),
                ),
                (
                    "message_delta",
                    json!({"type":"message_delta","delta":{"stop_reason":block.2,"stop_sequence":null},"usage":{"output_tokens":5}}),
                ),
                ("message_stop", json!({"type":"message_stop"})),
            ];
            for (name, data) in events {
                let _ = write!(out, "event: {name}\ndata: {data}\n\n");
            }
        }
        Wire::Responses => {
            let item = match reply {
                Reply::Tool {
                    name,
                    namespace,
                    args,
                } => {
                    let mut item = json!({"type":"function_call","id":format!("fc_{step}"),"call_id":format!("call_{step}"),
                        "name":name,"arguments":args.to_string(),"status":"completed"});
                    if let Some(ns) = namespace {
                        item["namespace"] = json!(ns);
                    }
                    item
                }
                Reply::Text(t) => {
                    json!({"type":"message","id":format!("msg_{step}"),"role":"assistant","status":"completed",
                    "content":[{"type":"output_text","text":t,"annotations":[]}]})
                }
            };
            let id = format!("resp_{step}");
            let mut added = item.clone();
            added["status"] = json!("in_progress");
            let usage = json!({"input_tokens":usage_in,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15});
            let events = [
                (
                    "response.created",
                    json!({"type":"response.created","response":{"id":id,"object":"response","status":"in_progress","model":model,"output":[]}}),
                ),
                (
                    "response.output_item.added",
                    json!({"type":"response.output_item.added","output_index":0,"item":added}),
                ),
                (
                    "response.output_item.done",
                    json!({"type":"response.output_item.done","output_index":0,"item":item}),
                ),
                (
                    "response.completed",
                    json!({"type":"response.completed","response":{"id":id,"object":"response","status":"completed","model":model,"output":[item],"usage":usage}}),
                ),
            ];
            for (name, data) in events {
                let _ = write!(out, "event: {name}\ndata: {data}\n\n");
            }
        }
        Wire::Gemini => {
            let part = match reply {
                Reply::Tool { name, args, .. } => json!({"functionCall":{"name":name,"args":args}}),
                Reply::Text(t) => json!({"text":t}),
            };
            let body = json!({"candidates":[{"content":{"role":"model","parts":[part]},"finishReason":"STOP","index":0}],
                "usageMetadata":{"promptTokenCount":usage_in,"candidatesTokenCount":5,"totalTokenCount":15},"modelVersion":model});
            if !c.stream {
                return ("application/json", body.to_string().into_bytes());
            }
            let _ = write!(out, "data: {body}\n\n");
        }
        Wire::Chat => {
            let id = format!("chatcmpl-{step}");
            let (delta, finish) = match reply {
                Reply::Tool { name, args, .. } => (
                    json!({"role":"assistant","tool_calls":[{"index":0,"id":format!("call_{step}"),"type":"function","function":{"name":name,"arguments":args.to_string()}}]}),
                    "tool_calls",
                ),
                Reply::Text(t) => (json!({"role":"assistant","content":t}), "stop"),
            };
            let usage = json!({"prompt_tokens":usage_in,"completion_tokens":5,"total_tokens":15});
            if !c.stream {
                let mut message = delta.clone();
                if let Some(calls) = message["tool_calls"].as_array_mut() {
                    calls.iter_mut().for_each(|c| {
                        c.as_object_mut().map(|o| o.remove("index"));
                    });
                }
                let body = json!({"id":id,"object":"chat.completion","created":0,"model":model,
                    "choices":[{"index":0,"message":message,"finish_reason":finish}],"usage":usage});
                return ("application/json", body.to_string().into_bytes());
            }
            let first = json!({"id":id,"object":"chat.completion.chunk","created":0,"model":model,
                "choices":[{"index":0,"delta":delta,"finish_reason":null}]});
            let last = json!({"id":id,"object":"chat.completion.chunk","created":0,"model":model,
                "choices":[{"index":0,"delta":{},"finish_reason":finish}],"usage":usage});
            let _ = write!(out, "data: {first}\n\ndata: {last}\n\ndata: [DONE]\n\n");
        }
    }
    ("text/event-stream", out)
}
