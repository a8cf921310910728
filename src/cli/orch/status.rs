//! `git orch ready`, `blocked`, `status`, `answer` and `reconcile`: the run at a glance,
//! and the leader's answers to what blocks it.

use super::dispatch::render_conflict;
use super::opts::RunOpt;
use super::run::counts_line;
use super::task::{render_tasks, stream_tasks, TasksData};
use crate::cli::ctx::Ctx;
use crate::cli::input::BodyArgs;
use crate::cli::output::Out;
use crate::cli::render::{escape, or_dash, preview, render_events, Table};
use crate::error::{Code, Error, Result};
use crate::inbox::{self, Note};
use crate::orch::tasks::{self, Select};
use crate::orch::{reconcile, runs, Counts, Orch, Run, RunStatus, Task, TaskStatus};
use serde::Serialize;
use serde_json::json;

pub fn ready(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    if out.json {
        // Streamed like `status --json`: a plan's roots can be tens of thousands.
        return orch.read(|tx| {
            let run = runs::resolve(tx, args.run.as_deref())?;
            stream_tasks(out, tx, &run.name, Select::Ready)
        });
    }
    let tasks = orch.read(|tx| {
        let run = runs::resolve(tx, args.run.as_deref())?;
        tasks::load(tx, &run.name, Select::Ready)
    })?;
    out.success(&TasksData { tasks: &tasks }, || {
        if tasks.is_empty() {
            "No task is ready.".into()
        } else {
            render_tasks(&tasks)
        }
    })
}

pub fn blocked(ctx: &mut Ctx, out: &Out, args: RunOpt) -> Result<()> {
    let mut orch = ctx.orch()?;
    orch.reconcile()?;
    let tasks = orch.read(|tx| {
        let run = runs::resolve(tx, args.run.as_deref())?;
        tasks::load(tx, &run.name, Select::Status(TaskStatus::Blocked))
    })?;
    out.success(&TasksData { tasks: &tasks }, || render_blocked(&tasks))
}

#[derive(Serialize)]
pub(super) struct StatusData<'a> {
    run: &'a Run,
    counts: &'a Counts,
    tasks: &'a [Task],
}

/// A run and its tasks, as `status` shows them.
pub(super) struct Status {
    pub run: Run,
    pub tasks: Vec<Task>,
}

impl Status {
    pub fn data(&self) -> StatusData<'_> {
        StatusData {
            run: &self.run,
            counts: &self.run.counts,
            tasks: &self.tasks,
        }
    }

    /// Over, or with nothing pending, ready or in flight: no change will come by itself.
    pub fn settled(&self) -> bool {
        let c = &self.run.counts;
        self.run.status != RunStatus::Active || (c.total > 0 && c.open() == 0)
    }
}

pub(super) fn load_status(orch: &mut Orch<'_>, run: Option<&str>) -> Result<Status> {
    orch.reconcile()?;
    orch.read(|tx| {
        let row = runs::resolve(tx, run)?;
        let tasks = tasks::load(tx, &row.name, Select::All)?;
        let mut counts = Counts::default();
        for task in &tasks {
            counts.add(task.status, 1);
        }
        Ok(Status {
            run: runs::to_json(&row, counts),
            tasks,
        })
    })
}

/// `status --json`: the same document as [`Status::data`], with the counts aggregated in
/// SQL and each task written out as it is read, inside one read snapshot, so memory
/// does not grow with the run (at 100k tasks the loaded vector alone was 250 MB).
fn stream_status(orch: &mut Orch<'_>, out: &Out, run: Option<&str>) -> Result<()> {
    orch.reconcile()?;
    orch.read(|tx| {
        let row = runs::resolve(tx, run)?;
        let run = runs::to_json(&row, runs::counts(tx, &row.name)?);
        // The fields of `StatusData`, in its order.
        out.success_streamed(|doc| {
            doc.raw(r#"{"run":"#)?;
            doc.value(&run)?;
            doc.raw(r#","counts":"#)?;
            doc.value(&run.counts)?;
            doc.raw(r#","tasks":"#)?;
            tasks::write_tasks(tx, &row.name, Select::All, doc.writer())?;
            doc.raw("}")
        })
    })
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub run: RunOpt,
    /// Keep watching: on a terminal a live view (q leaves), else a new status per change
    #[arg(long)]
    pub watch: bool,
}

pub fn status(ctx: &mut Ctx, out: &Out, args: StatusArgs) -> Result<()> {
    if out.json {
        return stream_status(&mut ctx.orch()?, out, args.run.run.as_deref());
    }
    stream_status_text(&mut ctx.orch()?, out, args.run.run.as_deref())
}

#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// The blocked task
    pub key: String,
    #[command(flatten)]
    pub body: BodyArgs,
    #[command(flatten)]
    pub run: RunOpt,
}

pub fn answer(ctx: &mut Ctx, out: &Out, args: AnswerArgs) -> Result<()> {
    let body = args.body.read()?;
    if body.trim().is_empty() {
        return Err(
            Error::invalid_input("the answer is empty").hint("pass it with --body or --body-file")
        );
    }
    inbox::check_body(&body)?;
    let key = args.key;
    let posted = ctx.orch()?.write(|tx, cfg, changes| {
        let run = runs::resolve(tx, args.run.run.as_deref())?;
        let task = tasks::get_row(tx, &run.name, &key)?;
        let thread = task
            .current_attempt
            .map(|id| crate::orch::get_attempt(tx, id))
            .transpose()?
            .and_then(|a| a.thread)
            .map(|id| inbox::get_thread(tx, id))
            .transpose()?
            .filter(|t| t.awaiting_reply && !t.is_closed());
        let Some(thread) = thread else {
            return Err(Error::new(
                Code::InvalidTransition,
                format!("task {key} has no open question"),
            )
            .hint("see blocked tasks with `git orch blocked`")
            .detail("task", key.clone())
            .detail("status", task.status));
        };
        let posted = inbox::reply(
            tx,
            cfg,
            &cfg.leader,
            thread.id,
            Note {
                body: &body,
                ..Note::default()
            },
        )?;
        reconcile::reconcile_tx(tx, cfg, changes)?;
        Ok(posted)
    })?;
    out.success(&posted, || {
        format!(
            "Answered the question on thread {} (task {key})",
            posted.thread.id
        )
    })
}

pub fn reconcile(ctx: &mut Ctx, out: &Out) -> Result<()> {
    let changes = ctx.orch()?.reconcile_thorough()?;
    out.success(&json!({ "changes": changes }), || {
        if changes.is_empty() {
            "No changes.".into()
        } else {
            render_events(&changes)
        }
    })
}

/// "5s", "3m", "2h", "4d": how long before `now`.
fn age(now: i64, ms: i64) -> String {
    let secs = (now - ms).max(0) / 1000;
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The open questions among `tasks` (blocked ones), as `git orch blocked` lists them;
/// empty when there are none.
pub(super) fn render_questions(tasks: &[Task]) -> String {
    let blocked: Vec<Task> = tasks
        .iter()
        .filter(|t| t.status == TaskStatus::Blocked)
        .cloned()
        .collect();
    if blocked.is_empty() {
        String::new()
    } else {
        render_blocked(&blocked)
    }
}

fn render_blocked(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "No task is blocked.".into();
    }
    let mut table = Table::new(&["KEY", "THREAD", "BY", "QUESTION"]);
    let mut conflicts = Vec::new();
    for task in tasks {
        if task.blocked_reason.as_deref() == Some("base_conflict") {
            conflicts.push(render_conflict(task));
            continue;
        }
        if let Some(reason @ ("land_conflict" | "land_check")) = task.blocked_reason.as_deref() {
            conflicts.push(render_land_rework(task, reason));
            continue;
        }
        let detail = &task.blocked_detail;
        table.row(vec![
            task.key.clone(),
            detail["thread"]
                .as_i64()
                .map_or("-".into(), |t| t.to_string()),
            or_dash(detail["asked_by"].as_str()),
            preview(detail["question"].as_str().unwrap_or(""), 70),
        ]);
    }
    let mut text = String::new();
    if conflicts.len() < tasks.len() {
        text.push_str(&table.render());
        text.push_str("Answer with `git orch answer KEY --body …`.");
    }
    for line in conflicts {
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(&line);
    }
    text
}

/// A task `git orch land` sent back, waiting for its rework attempt to be dispatched.
fn render_land_rework(task: &Task, reason: &str) -> String {
    let detail = &task.blocked_detail;
    let list = |key: &str| -> Vec<String> {
        detail[key]
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let what = match reason {
        "land_conflict" => format!("conflicts with the target in {}", list("paths").join(", ")),
        _ => format!(
            "fails the land check: {}",
            list("output").last().map(String::as_str).unwrap_or("")
        ),
    };
    format!(
        "{}: its result {what}; `git orch land` (or `git orch dispatch {}`) starts the rework.",
        task.key, task.key
    )
}

/// The run's name, title and status, and its counts.
pub(super) fn status_header(run: &Run) -> String {
    format!(
        "Run {} ({}), {}\n{}",
        run.name,
        escape(&run.title),
        run.status,
        counts_line(&run.counts)
    )
}

/// The task table and what to do next.
pub(super) fn status_table(run: &Run, tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return NO_TASKS.into();
    }
    let now = crate::time::now_ms();
    let rows: Vec<StatusRow> = tasks.iter().map(|t| status_row(t, now)).collect();
    let mut columns = StatusColumns::default();
    rows.iter().for_each(|r| columns.measure(r));
    let mut text = columns.line(&STATUS_HEADER.map(String::from));
    for row in &rows {
        text.push('\n');
        text.push_str(&columns.line(&row.cells));
    }
    text.push('\n');
    text.push_str(&next_steps(run));
    text
}

const NO_TASKS: &str = "Add tasks with `git orch task add KEY --title T`.";

/// Every column the status table can have. BRANCH and COMMITS show when some task's
/// attempt has a branch, NOTE when some task has a note.
const STATUS_HEADER: [&str; 8] = [
    "KEY", "STATUS", "AGENT", "ATTEMPT", "BRANCH", "COMMITS", "ACTIVITY", "NOTE",
];
const BRANCH: usize = 4;
const COMMITS: usize = 5;
const NOTE: usize = 7;

/// One task's cells in every column, escaped, and whether it needs the optional ones.
struct StatusRow {
    cells: [String; 8],
    branch: bool,
    note: bool,
}

fn status_row(task: &Task, now: i64) -> StatusRow {
    let attempt = task.current_attempt.as_ref();
    let note = note(task);
    let status = match (&task.blocked_reason, &task.landed_commit) {
        (Some(reason), _) => format!("{} ({reason})", task.status),
        (None, Some(commit)) => {
            format!(
                "{} (landed {})",
                task.status,
                &commit[..commit.len().min(8)]
            )
        }
        (None, None) => task.status.to_string(),
    };
    let cells = [
        task.key.clone(),
        status,
        or_dash(attempt.and_then(|a| a.agent.as_deref())),
        attempt.map_or("-".into(), |a| format!("{}/{}", a.n, task.max_attempts)),
        or_dash(attempt.and_then(|a| a.branch.as_deref())),
        attempt.map_or("-".into(), |a| a.commits.to_string()),
        format!("{} ago", age(now, task.last_activity_ms)),
        note.clone().unwrap_or_else(|| "-".into()),
    ]
    .map(|cell| match escape(&cell) {
        std::borrow::Cow::Borrowed(_) => cell,
        std::borrow::Cow::Owned(escaped) => escaped,
    });
    StatusRow {
        cells,
        branch: attempt.is_some_and(|a| a.branch.is_some()),
        note: note.is_some(),
    }
}

/// The widths of the status table's columns and which of them show, measured row by
/// row: the table is aligned like `Table` aligns one, without holding its rows.
struct StatusColumns {
    widths: [usize; 8],
    branches: bool,
    notes: bool,
}

impl Default for StatusColumns {
    fn default() -> Self {
        StatusColumns {
            widths: STATUS_HEADER.map(str::len),
            branches: false,
            notes: false,
        }
    }
}

impl StatusColumns {
    fn measure(&mut self, row: &StatusRow) {
        for (width, cell) in self.widths.iter_mut().zip(&row.cells) {
            *width = (*width).max(cell.chars().count());
        }
        self.branches |= row.branch;
        self.notes |= row.note;
    }

    /// One line of the table (no newline): every shown cell but the last padded to its
    /// column's width and two spaces.
    fn line(&self, cells: &[String; 8]) -> String {
        let shown: Vec<usize> = (0..cells.len())
            .filter(|&c| match c {
                BRANCH | COMMITS => self.branches,
                NOTE => self.notes,
                _ => true,
            })
            .collect();
        let mut line = String::new();
        for (i, &c) in shown.iter().enumerate() {
            line.push_str(&cells[c]);
            if i + 1 < shown.len() {
                let pad = self.widths[c] - cells[c].chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line.truncate(line.trim_end().len());
        line
    }
}

/// The human `status`, written as the tasks are read: two passes over one read snapshot,
/// the first measuring the columns, the second writing the lines, so memory stays flat
/// in the run's size (the table of a 100k-task run held every task and every row).
fn stream_status_text(orch: &mut Orch<'_>, out: &Out, run: Option<&str>) -> Result<()> {
    orch.reconcile()?;
    orch.read(|tx| {
        let row = runs::resolve(tx, run)?;
        let run = runs::to_json(&row, runs::counts(tx, &row.name)?);
        // One clock for both passes, so no age changes width between them.
        let now = crate::time::now_ms();
        let mut columns = StatusColumns::default();
        tasks::each(tx, &row.name, Select::All, |task| {
            columns.measure(&status_row(&task, now));
            Ok(())
        })?;
        out.text_stream(|sink| {
            sink.line(&status_header(&run))?;
            if run.counts.total == 0 {
                return sink.line(NO_TASKS);
            }
            sink.line(&columns.line(&STATUS_HEADER.map(String::from)))?;
            tasks::each(tx, &row.name, Select::All, |task| {
                sink.line(&columns.line(&status_row(&task, now).cells))
            })?;
            let next = next_steps(&run);
            match next.strip_suffix('\n') {
                Some(next) => sink.line(next),
                None => Ok(()),
            }
        })
    })
}

/// Why a task reads as it does when its status alone would mislead: a `ready` task whose
/// last attempt failed, or one whose worktree was deleted under it.
fn note(task: &Task) -> Option<String> {
    let attempt = task.current_attempt.as_ref()?;
    let reason = attempt.failure.as_ref().map(|f| f.reason.as_str());
    match (attempt.status.as_str(), reason) {
        ("lost", Some("worktree_deleted")) => {
            Some(format!("attempt {}: worktree deleted", attempt.n))
        }
        ("lost", Some("lease_expired_too_often")) => Some(format!(
            "attempt {}: lost, its lease expired too often",
            attempt.n
        )),
        ("lost", _) => Some(format!("attempt {} lost", attempt.n)),
        ("failed", reason) => Some(format!(
            "attempt {} failed: {}",
            attempt.n,
            escape(&preview(reason.unwrap_or("no reason given"), 50))
        )),
        ("cancelled", _) if task.status != TaskStatus::Cancelled => {
            Some(format!("attempt {} cancelled", attempt.n))
        }
        _ => None,
    }
}

/// What the leader can do next, judged from the counts.
fn next_steps(run: &Run) -> String {
    let c = &run.counts;
    let mut text = String::new();
    if c.blocked > 0 {
        text.push_str("Blocked tasks wait for you: `git orch blocked`.\n");
    }
    if c.ready > 0 {
        text.push_str("Ready tasks: `git orch dispatch --all-ready`.\n");
    }
    if c.open() == 0 && c.total > 0 && run.kind == "plan" {
        let mut finished = format!("The run is finished ({} done", c.done);
        if c.failed > 0 {
            finished.push_str(&format!(", {} failed", c.failed));
        }
        if c.cancelled > 0 {
            finished.push_str(&format!(", {} cancelled", c.cancelled));
        }
        finished.push_str(").\n");
        text.push_str(&finished);
        if c.failed > 0 {
            text.push_str("Give a failed task another attempt: `git orch retry KEY`.\n");
        }
        if c.done > 0 {
            text.push_str(&format!(
                "Next: merge the results into your branch (`git orch land --run {0}`, or `git merge` \
                 their branches), then remove the worktrees: `git orch cleanup --run {0}`.\n",
                run.name
            ));
        } else {
            text.push_str(&format!(
                "Remove its worktrees with `git orch cleanup --run {}`.\n",
                run.name
            ));
        }
    }
    text
}
