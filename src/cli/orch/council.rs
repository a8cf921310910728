//! `git orch council`: N reviewers answer one brief; a tally groups what they recommend
//! (SPEC §8).

use crate::cli::ctx::Ctx;
use crate::cli::input::{deadline, BodyArgs};
use crate::cli::outfile::OutputFile;
use crate::cli::output::Out;
use crate::cli::render::{escape, Table};
use crate::council::run::{self as council, Council, StartSpec};
use crate::council::{parse_threshold, Tally, DEFAULT_THRESHOLD};
use crate::error::{Code, Error, Result};
use crate::inbox::artifacts;
use crate::orch::dispatch::NoWorkspaces;
use clap::Subcommand;
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum CouncilCommand {
    /// Ask N reviewers the same question: one review task each, dispatched at once
    Start(StartArgs),
    /// Block until every reviewer is done or failed
    Wait(WaitArgs),
    /// Group the reviewers' recommendations into consensus, majority and minority
    Tally(TallyArgs),
    /// Print the tally as a markdown report (also stored as an artifact)
    Report(ReportArgs),
}

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// What to review, one line
    #[arg(long)]
    pub topic: String,
    /// The brief
    #[command(flatten)]
    pub body: BodyArgs,
    /// Reviewers, comma-separated (default orch.council.reviewers, else reviewer-1,reviewer-2,reviewer-3)
    #[arg(long, value_name = "A,B,C")]
    pub reviewers: Option<String>,
    /// The commit every reviewer reads (default HEAD)
    #[arg(long, value_name = "REV")]
    pub base: Option<String>,
    /// The council's run name (default: the first free r1, r2, …)
    #[arg(long)]
    pub name: Option<String>,
    /// Start each reviewer as an agent with PROFILE (default: orch.launch); its brief asks for the review JSON
    #[arg(long, value_name = "PROFILE", num_args = 0..=1, default_missing_value = "")]
    pub launch: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct WaitArgs {
    /// The council (default: the current run, if it is a council)
    pub name: Option<String>,
    /// Give up after D (exit 5)
    #[arg(long, value_name = "D")]
    pub timeout: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct TallyArgs {
    /// The council
    pub name: Option<String>,
    /// Similarity from 0 to 1 at which two recommendations are the same (default orch.council.threshold, 0.6)
    #[arg(long, value_name = "X")]
    pub threshold: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReportArgs {
    /// The council
    pub name: Option<String>,
    /// Also write the report to FILE
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Similarity threshold, as for tally
    #[arg(long, value_name = "X")]
    pub threshold: Option<String>,
}

fn threshold(ctx: &mut Ctx, given: Option<&str>) -> Result<f64> {
    match given {
        Some(text) => parse_threshold(text),
        None => match ctx.config("orch.council.threshold")? {
            Some(text) => parse_threshold(text.trim())
                .map_err(|e| e.hint("fix it: git config orch.council.threshold 0.6")),
            None => Ok(DEFAULT_THRESHOLD),
        },
    }
}

pub fn run(ctx: &mut Ctx, out: &Out, command: CouncilCommand) -> Result<()> {
    match command {
        CouncilCommand::Start(args) => {
            let body = args.body.read()?;
            let reviewers_text = match args.reviewers {
                Some(text) => text,
                None => ctx
                    .config("orch.council.reviewers")?
                    .unwrap_or_else(|| "reviewer-1,reviewer-2,reviewer-3".to_owned()),
            };
            let reviewers = council::parse_reviewers(&reviewers_text)?;
            let base_given = args.base.unwrap_or_else(|| "HEAD".to_owned());
            let base = ctx.repo()?.resolve_commit(&base_given)?;
            let plan = match args.launch.as_deref() {
                Some(given) => Some(super::launch::plan_of(ctx, Vec::new(), Some(given))?),
                None => None,
            };
            let spec = StartSpec {
                name: args.name.as_deref(),
                topic: &args.topic,
                body: &body,
                reviewers: &reviewers,
                base_ref: &base.given,
                base_sha: &base.sha,
                launch: plan.as_ref(),
            };
            let started = match &plan {
                None => council::start(&mut ctx.orch()?, &NoWorkspaces, &spec)?,
                Some(_) => {
                    let supervisors = super::launch::Supervisors::find(ctx)?;
                    let mut orch = ctx.orch()?;
                    council::start(&mut orch, &supervisors.launching(&NoWorkspaces), &spec)?
                }
            };
            out.success(&started, || {
                format!(
                    "Council {} started on {} ({}): {} reviewers asked ({})\nWait for them with `git orch council wait {}`",
                    started.council,
                    escape(&base.given),
                    &base.sha[..12.min(base.sha.len())],
                    reviewers.len(),
                    reviewers.join(", "),
                    started.council
                )
            })
        }
        CouncilCommand::Wait(args) => {
            let until = deadline(args.timeout.as_deref())?;
            let done =
                council::wait(&mut ctx.orch()?, args.name.as_deref(), until)?.ok_or_else(|| {
                    Error::new(Code::Timeout, "timed out waiting for the reviewers")
                        .hint("see who is missing with `git orch status --run NAME`")
                })?;
            out.success(&done, || render_council(&done))
        }
        CouncilCommand::Tally(args) => {
            let threshold = threshold(ctx, args.threshold.as_deref())?;
            let tally = council::tally_council(&mut ctx.orch()?, args.name.as_deref(), threshold)?;
            out.success(&tally, || render_tally(&tally))
        }
        CouncilCommand::Report(args) => {
            let threshold = threshold(ctx, args.threshold.as_deref())?;
            // Checked first, so a path that cannot be written stores no report either.
            let file = args
                .output
                .as_deref()
                .map(OutputFile::prepare)
                .transpose()?;
            let (tally, text) =
                council::report_council(&mut ctx.orch()?, args.name.as_deref(), threshold)?;
            let state_dir = ctx.store()?.state_dir().to_path_buf();
            let staged = artifacts::stage_bytes(
                &state_dir,
                &format!("council-{}.md", tally.council),
                text.as_bytes(),
            )?;
            let (thread, artifact) =
                council::store_report(&mut ctx.orch()?, &tally.council, &tally.topic, &staged)?;
            if let Some(file) = &file {
                file.write_with(|w| w.write_all(text.as_bytes()))?;
            }
            let data = json!({"council": tally.council, "markdown": text, "thread": thread, "artifact": artifact, "path": args.output.as_deref().map(crate::paths::lossy)});
            out.success(&data, || text.clone())
        }
    }
}

fn render_council(council: &Council) -> String {
    let mut table = Table::new(&["REVIEWER", "STATUS", "THREAD"]);
    for task in &council.tasks {
        let thread = task
            .current_attempt
            .as_ref()
            .and_then(|a| a.thread)
            .map_or("-".to_owned(), |t| t.to_string());
        table.row(vec![task.key.clone(), task.status.to_string(), thread]);
    }
    format!(
        "Council {}: {}\n\n{}",
        council.council,
        escape(&council.topic),
        table.render()
    )
}

fn render_tally(tally: &Tally) -> String {
    let mut text = format!(
        "Council {}: {}\n{} of {} reviewers responded\n\n",
        tally.council,
        escape(&tally.topic),
        tally.responded.len(),
        tally.reviewers.len()
    );
    if tally.groups.is_empty() {
        text.push_str("No recommendations.\n");
        return text;
    }
    let mut table = Table::new(&["LEVEL", "SUPPORT", "PRIORITY", "TITLE"]);
    for group in &tally.groups {
        table.row(vec![
            group.level.as_str().to_owned(),
            format!("{}/{}", group.support, tally.responded.len()),
            group.priority.as_str().to_owned(),
            group.title.clone(),
        ]);
    }
    text.push_str(&table.render());
    text
}
