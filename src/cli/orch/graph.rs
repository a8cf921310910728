//! `git orch graph`: the run's task DAG with statuses, as Mermaid (renders in markdown
//! on the forges) or Graphviz DOT.

use super::opts::RunOpt;
use crate::cli::ctx::Ctx;
use crate::cli::output::Out;
use crate::error::Result;
use crate::orch::tasks::{self, Select};
use crate::orch::{runs, Task};
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct GraphArgs {
    #[command(flatten)]
    pub run: RunOpt,
    /// mermaid (a `flowchart`) or dot (Graphviz)
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Mermaid,
    Dot,
}

#[derive(Serialize)]
struct Node<'a> {
    key: &'a str,
    title: &'a str,
    status: &'a str,
}

#[derive(Serialize)]
struct GraphData<'a> {
    run: &'a str,
    format: Format,
    nodes: Vec<Node<'a>>,
    /// `[dependency, dependent]`: the arrow points the way work flows.
    edges: Vec<[&'a str; 2]>,
    text: String,
}

pub fn run(ctx: &mut Ctx, out: &Out, args: GraphArgs) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let (run, tasks) = orch.read(|tx| {
        let row = runs::resolve(tx, args.run.run.as_deref())?;
        let tasks = tasks::load(tx, &row.name, Select::All)?;
        Ok((row.name, tasks))
    })?;
    let text = match args.format {
        Format::Mermaid => mermaid(&tasks),
        Format::Dot => dot(&run, &tasks),
    };
    let data = GraphData {
        run: &run,
        format: args.format,
        nodes: tasks
            .iter()
            .map(|t| Node {
                key: &t.key,
                title: &t.title,
                status: t.status.as_str(),
            })
            .collect(),
        edges: edges(&tasks),
        text,
    };
    out.success(&data, || data.text.clone())
}

fn edges(tasks: &[Task]) -> Vec<[&str; 2]> {
    tasks
        .iter()
        .flat_map(|t| {
            t.after
                .iter()
                .map(move |dep| [dep.as_str(), t.key.as_str()])
        })
        .collect()
}

/// Fill colours by status, shared by both formats.
fn colour(status: &str) -> &'static str {
    match status {
        "done" => "#c8e6c9",
        "failed" => "#ffcdd2",
        "cancelled" => "#eeeeee",
        "blocked" => "#ffe0b2",
        "running" | "dispatched" => "#bbdefb",
        "ready" => "#fff9c4",
        _ => "#ffffff",
    }
}

/// Node ids are `t0`, `t1`, …: task keys may be Mermaid keywords (`end`) or hold `-`
/// and `.`, which Mermaid reads as parts of an arrow.
fn mermaid(tasks: &[Task]) -> String {
    let id = |key: &str| {
        tasks
            .iter()
            .position(|t| t.key == key)
            .map_or_else(|| "missing".to_owned(), |i| format!("t{i}"))
    };
    let mut text = String::from("flowchart LR\n");
    for (i, task) in tasks.iter().enumerate() {
        text.push_str(&format!(
            "    t{i}[\"{}<br/>{}<br/><i>{}</i>\"]:::{}\n",
            mermaid_escape(&task.key),
            mermaid_escape(&task.title),
            task.status,
            task.status
        ));
    }
    for [from, to] in edges(tasks) {
        text.push_str(&format!("    {} --> {}\n", id(from), id(to)));
    }
    let mut statuses: Vec<&str> = tasks.iter().map(|t| t.status.as_str()).collect();
    statuses.sort_unstable();
    statuses.dedup();
    for status in statuses {
        text.push_str(&format!(
            "    classDef {status} fill:{},stroke:#555\n",
            colour(status)
        ));
    }
    text
}

/// Mermaid labels are HTML inside quotes: entities for what would end or break them.
fn mermaid_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn dot(run: &str, tasks: &[Task]) -> String {
    let mut text = format!(
        "digraph {} {{\n    rankdir=LR;\n    node [shape=box, style=\"rounded,filled\"];\n",
        dot_quote(run)
    );
    for task in tasks {
        text.push_str(&format!(
            "    {} [label={}, fillcolor=\"{}\"];\n",
            dot_quote(&task.key),
            dot_quote(&format!("{}\n{}\n{}", task.key, task.title, task.status)),
            colour(task.status.as_str())
        ));
    }
    for [from, to] in edges(tasks) {
        text.push_str(&format!("    {} -> {};\n", dot_quote(from), dot_quote(to)));
    }
    text.push_str("}\n");
    text
}

/// A DOT quoted string: `"` and `\` escaped, a newline as `\n` (a centred line break).
fn dot_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
