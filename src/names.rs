//! Names of agents, runs, tasks and queues: they become branch names, paths and
//! argv, so the grammar is strict.

use crate::error::{Code, Error, Result};

/// `^[a-z0-9][a-z0-9._-]{0,62}$`, and never `..` (a path component).
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
        && !name.contains("..")
        && !name.ends_with(".lock")
}

/// Checks `name` and says what a valid one looks like. `what` is "agent", "run", ….
pub fn check_name(what: &str, name: &str) -> Result<()> {
    if is_valid_name(name) {
        return Ok(());
    }
    Err(Error::new(Code::InvalidName, format!("invalid {what} name {name:?}"))
        .hint("names are 1-63 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit, without '..'")
        .detail("name", name))
}

/// Where a thread is addressed: one agent or a queue (`@name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Agent(String),
    Queue(String),
}

impl Address {
    pub fn parse(text: &str) -> Result<Address> {
        match text.strip_prefix('@') {
            Some(queue) => check_name("queue", queue).map(|()| Address::Queue(queue.to_owned())),
            None => check_name("agent", text).map(|()| Address::Agent(text.to_owned())),
        }
    }

    /// The stored form: `worker-1` or `@workers`.
    pub fn to_stored(&self) -> String {
        match self {
            Address::Agent(a) => a.clone(),
            Address::Queue(q) => format!("@{q}"),
        }
    }
}

/// A queue given on the command line must carry its `@`.
pub fn parse_queue(text: &str) -> Result<String> {
    match Address::parse(text)? {
        Address::Queue(q) => Ok(q),
        Address::Agent(_) => Err(
            Error::new(Code::InvalidName, format!("{text:?} is not a queue"))
                .hint(format!("queues are written with an @, like @{text}")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        for ok in ["a", "worker-1", "r1.v2", "0_x", &"a".repeat(63)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a/b",
            "a..b",
            "a b",
            "a\n",
            ".a",
            "x.lock",
            &"a".repeat(64),
            "é",
        ] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
