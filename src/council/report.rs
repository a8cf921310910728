//! The markdown report of a tally: what people read after a council.

use super::{Group, Level, Tally};
use std::fmt::Write;

/// Renders the tally as markdown. Deterministic: the same tally gives the same text.
pub fn report(tally: &Tally) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Council {}: {}",
        one_line(&tally.council),
        one_line(&tally.topic)
    );
    out.push('\n');
    let missing: Vec<&str> = tally
        .reviewers
        .iter()
        .filter(|r| !tally.responded.contains(r))
        .map(String::as_str)
        .collect();
    let _ = writeln!(
        out,
        "- Reviewers: {}",
        if tally.reviewers.is_empty() {
            "none".to_owned()
        } else {
            tally.reviewers.join(", ")
        }
    );
    let _ = write!(
        out,
        "- Responded: {} of {}",
        tally.responded.len(),
        tally.reviewers.len()
    );
    if !tally.responded.is_empty() {
        let _ = write!(out, " ({})", tally.responded.join(", "));
    }
    out.push('\n');
    if !missing.is_empty() {
        let _ = writeln!(
            out,
            "- No result from: {} (not counted)",
            missing.join(", ")
        );
    }
    let recommendations: usize = tally.groups.iter().map(|g| g.members.len()).sum();
    let _ = writeln!(
        out,
        "- {} recommendation{} in {} group{}",
        recommendations,
        plural(recommendations),
        tally.groups.len(),
        plural(tally.groups.len())
    );

    let total = tally.responded.len();
    let mut number = 0;
    for (level, heading, meaning) in [
        (
            Level::Consensus,
            "Consensus",
            "Raised by every reviewer that responded.",
        ),
        (
            Level::Majority,
            "Majority",
            "Raised by more than half of the reviewers that responded.",
        ),
        (
            Level::Minority,
            "Minority",
            "Raised by half of them or fewer.",
        ),
    ] {
        let groups: Vec<&Group> = tally.groups.iter().filter(|g| g.level == level).collect();
        out.push('\n');
        let _ = writeln!(out, "## {heading} ({})", groups.len());
        out.push('\n');
        if groups.is_empty() {
            let _ = writeln!(out, "_None._");
            continue;
        }
        let _ = writeln!(out, "_{meaning}_");
        for group in groups {
            number += 1;
            out.push('\n');
            render_group(&mut out, number, group, total);
        }
    }
    out
}

fn render_group(out: &mut String, number: usize, group: &Group, total: usize) {
    let _ = writeln!(out, "### {number}. {}", one_line(&group.title));
    out.push('\n');
    let who: Vec<&str> = group.members.iter().map(|m| m.reviewer.as_str()).collect();
    let _ = write!(out, "Priority **{}** · ", group.priority.as_str());
    if group.support == 1 {
        let _ = writeln!(out, "raised by {}", who.join(", "));
    } else {
        let _ = writeln!(
            out,
            "raised by {} of {}: {}",
            group.support,
            total,
            who.join(", ")
        );
    }
    out.push('\n');
    for member in &group.members {
        let _ = write!(
            out,
            "- **{}** ({})",
            member.reviewer,
            member.priority.as_str()
        );
        if member.title != group.title {
            let _ = write!(out, " — _{}_", one_line(&member.title));
        }
        out.push(':');
        let mut lines = member.rationale.trim().lines();
        match lines.next() {
            Some(first) => {
                let _ = writeln!(out, " {}", first.trim_end());
            }
            None => out.push('\n'),
        }
        // Continuation lines stay inside the list item.
        for line in lines {
            if line.trim().is_empty() {
                out.push('\n');
            } else {
                let _ = writeln!(out, "  {}", line.trim_end());
            }
        }
    }
}

/// Whitespace (newlines included) collapsed, so a title cannot break the layout.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
