//! Text for people: aligned tables and short lines, and the renderers more than one
//! command group prints with.
//!
//! User data (subjects, bodies, titles, reasons, paths) is escaped here before it reaches a
//! terminal, so a stored `ESC ]…` or a carriage return cannot retitle, recolour or overwrite
//! the reader's screen: [`escape`] for a field on one line, [`escape_lines`] for a body or a
//! whole rendered page. `Out` runs every page through [`escape_lines`] too, so a renderer
//! that forgets a field still cannot leak a control character. `--json` is never escaped.

use crate::inbox::Message;
use crate::store::events::Event;
use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` for one line of a table or a sentence: every control character escaped,
/// newlines and tabs included.
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_chars(text, false)
}

/// `text` as lines: like [`escape`], but newlines and tabs stay what they are.
pub fn escape_lines(text: &str) -> Cow<'_, str> {
    escape_chars(text, true)
}

/// The one escaping rule. `\n`, `\r`, `\t` by name; other ASCII controls and DEL as
/// `\xNN` (ESC is `\x1b`); the C1 controls, which some terminals obey as well, and the
/// characters that reorder or break what is displayed (bidirectional overrides and
/// isolates, line and paragraph separators) as `\u{NNNN}`. A backslash is left alone:
/// the output stays readable, at the price that a literal `\x1b` looks like an escaped one.
fn escape_chars(text: &str, keep_layout: bool) -> Cow<'_, str> {
    let needs = |c: char| needs_escape(c) && !(keep_layout && (c == '\n' || c == '\t'));
    if !text.chars().any(needs) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !needs(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

/// A path for people: [`escape`] of its lossy text.
pub fn escape_path(path: &std::path::Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Columns padded to their widest cell; the last column is left unpadded.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row; each cell is escaped, so user data cannot break the table's lines.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|cell| match escape(&cell) {
                    Cow::Borrowed(_) => cell,
                    Cow::Owned(escaped) => escaped,
                })
                .collect(),
        );
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(
                        ' ',
                        widths[c] - cell.chars().count() + 2,
                    ));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A one-line preview of a body for tables and feeds.
pub fn preview(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(max).collect();
    if line.chars().count() > max || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

pub fn or_dash(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

pub fn render_messages(messages: &[Message]) -> String {
    if messages.is_empty() {
        return "No unread messages.".into();
    }
    let mut text = String::new();
    for m in messages {
        text.push_str(&format!(
            "#{} thread {} {} {}:",
            m.id, m.thread, m.author, m.kind
        ));
        if !m.body.is_empty() {
            for line in m.body.lines() {
                text.push_str("\n    ");
                text.push_str(line);
            }
        }
        for a in &m.artifacts {
            text.push_str(&format!(
                "\n    [artifact {}: {}, {} bytes]",
                a.id, a.name, a.size
            ));
        }
        text.push('\n');
    }
    text
}

pub fn render_event(event: &Event) -> String {
    let mut text = format!("{} #{} {}", event.at, event.id, event.kind);
    if let Some(thread) = event.thread {
        text.push_str(&format!(" thread {thread}"));
    }
    if let (Some(run), Some(task)) = (&event.run, &event.task) {
        text.push_str(&format!(" {run}/{task}"));
    }
    if let Some(to) = &event.to {
        text.push_str(&format!(
            " {} -> {to}",
            event.from.as_deref().unwrap_or("(new)")
        ));
    }
    if let Some(actor) = &event.actor {
        text.push_str(&format!(" by {actor}"));
    }
    if event.data.as_object().is_some_and(|d| !d.is_empty()) && event.to.is_none() {
        text.push_str(&format!(" {}", event.data));
    }
    text
}

pub fn render_events(events: &[Event]) -> String {
    events
        .iter()
        .map(render_event)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_borrowed() {
        assert!(matches!(escape("plain text, ünïcode…"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb\x07\x7f"), "a\\x1b[2Jb\\x07\\x7f");
        assert_eq!(escape("one\ntwo\tthree\rfour"), "one\\ntwo\\tthree\\rfour");
        assert_eq!(escape("c1 \u{9b}31m"), "c1 \\u{009b}31m");
        assert_eq!(escape("abc\u{202e}fed\u{2066}"), "abc\\u{202e}fed\\u{2066}");
        // Bodies keep their lines and indentation, nothing else.
        assert_eq!(escape_lines("a\n\tb\r\x1b"), "a\n\tb\\r\\x1b");
        // Escaping escaped text changes nothing, so a second pass (Out's) is harmless.
        let once = escape("x\x1by\nz").into_owned();
        assert_eq!(escape_lines(&once), once);
    }

    #[test]
    fn a_table_escapes_its_cells_and_keeps_its_columns() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["x\ny".into(), "z".into()]);
        let text = table.render();
        assert_eq!(text, "A     B\nx\\ny  z\n");
    }
}
