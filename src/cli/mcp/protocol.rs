//! JSON-RPC 2.0 as MCP frames it on stdio: one message per line, UTF-8, never a raw
//! newline inside (serde_json escapes them). Only what a tools-only server needs.

use serde_json::{json, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// The handshake revisions we speak, newest first. Our subset (tools, ping,
/// cancellation) reads the same in all of them; only `structuredContent` is newer.
pub const VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// One line from the client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Request {
        id: Value,
        method: String,
        params: Value,
    },
    Notification {
        method: String,
        params: Value,
    },
    /// Not a request we can serve: answered with this error.
    Invalid {
        id: Value,
        code: i64,
        message: String,
    },
    /// A response (we send no requests) or anything else that needs no answer.
    Ignored,
}

pub fn parse(line: &[u8]) -> Incoming {
    let invalid = |id: Value, code, message: &str| Incoming::Invalid {
        id,
        code,
        message: message.to_owned(),
    };
    let msg: Value = match serde_json::from_slice(line) {
        Ok(msg) => msg,
        Err(e) => return invalid(Value::Null, PARSE_ERROR, &format!("not JSON: {e}")),
    };
    let Value::Object(mut msg) = msg else {
        return invalid(
            Value::Null,
            INVALID_REQUEST,
            "expected one JSON-RPC object (batches are not supported)",
        );
    };
    let id = msg.remove("id");
    let params = msg.remove("params").unwrap_or(Value::Null);
    match (msg.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) if id.is_string() || id.is_number() => {
            Incoming::Request { id, method, params }
        }
        (Some(Value::String(method)), None) => Incoming::Notification { method, params },
        (Some(_), id) => invalid(
            id.unwrap_or(Value::Null),
            INVALID_REQUEST,
            "a request needs a string method and a string or number id",
        ),
        (None, _) if msg.contains_key("result") || msg.contains_key("error") => Incoming::Ignored,
        (None, id) => invalid(id.unwrap_or(Value::Null), INVALID_REQUEST, "no method"),
    }
}

pub fn response(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

pub fn error(id: &Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// The client's revision when we speak it, else our newest (the client then decides).
pub fn negotiate(requested: Option<&str>) -> &'static str {
    VERSIONS
        .iter()
        .find(|v| Some(**v) == requested)
        .copied()
        .unwrap_or(VERSIONS[0])
}

/// Whether a revision has `structuredContent` in tool results (2025-06-18 and later).
pub fn has_structured_content(version: &str) -> bool {
    VERSIONS
        .iter()
        .position(|v| *v == version)
        .is_some_and(|i| i <= 1)
}

pub fn initialize_result(version: &str, name: &str, instructions: &str) -> Value {
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": name, "version": env!("CARGO_PKG_VERSION")},
        "instructions": instructions,
    })
}

/// A `tools/call` result: the command's `data` on success, its `error` object as a tool
/// error otherwise, as text (what models read) and, where the revision has it, as
/// structured content.
pub fn tool_result(outcome: Result<Value, Value>, structured: bool) -> Value {
    let (value, is_error) = match outcome {
        Ok(data) => (data, false),
        Err(error) => (error, true),
    };
    let mut result = json!({
        "content": [{"type": "text", "text": value.to_string()}],
        "isError": is_error,
    });
    if structured && value.is_object() {
        result["structuredContent"] = value;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_into_requests_notifications_and_errors() {
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#),
            Incoming::Request {
                id: json!(3),
                method: "ping".into(),
                params: Value::Null
            }
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"a"}}"#),
            Incoming::Notification {
                method: "notifications/cancelled".into(),
                params: json!({"requestId": "a"})
            }
        );
        assert_eq!(
            parse(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#),
            Incoming::Ignored
        );
        for (line, code) in [
            (&b"{oops"[..], PARSE_ERROR),
            (
                br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                INVALID_REQUEST,
            ),
            (
                br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (br#"{"jsonrpc":"2.0","id":1}"#, INVALID_REQUEST),
        ] {
            match parse(line) {
                Incoming::Invalid { code: got, .. } => assert_eq!(got, code),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn versions_are_negotiated_down_to_what_we_speak() {
        assert_eq!(negotiate(Some("2025-06-18")), "2025-06-18");
        assert_eq!(negotiate(Some("2099-01-01")), VERSIONS[0]);
        assert_eq!(negotiate(None), VERSIONS[0]);
        assert!(has_structured_content("2025-11-25"));
        assert!(!has_structured_content("2025-03-26"));
    }
}
