//! Text for people: aligned tables and short lines, and the renderers more than one
//! command group prints with.

use crate::inbox::Message;
use crate::store::events::Event;

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

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
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
