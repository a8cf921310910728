//! `git orch`: the leader's scheduler (SPEC §6). One file per noun, each with its
//! commands' arguments, bodies and renderers; this one only dispatches.

mod cancel;
mod cleanup;
mod council;
mod dep;
mod dispatch;
mod drive;
mod graph;
mod land;
mod launch;
mod log;
mod opts;
mod retry;
mod run;
mod status;
mod task;
mod watch;

use crate::cli::ctx::{Ctx, GlobalArgs};
use crate::cli::output::Out;
use crate::error::Result;
use clap::{Parser, Subcommand};
use opts::RunOpt;

/// The leader's scheduler: runs, a task DAG, dispatch into worktrees, reconcile, council
#[derive(Parser, Debug)]
#[command(
    name = "git-orch",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct OrchCli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: OrchCommand,
}

// Deferred: a subcommand's arguments are built only when it is the one being run (as
// in every nested command enum). Building all of them cost every short command 0.4M
// instructions, a tenth of a `fetch --peek`; help and the generated docs build them all.
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum OrchCommand {
    /// Create the state in this repository and install the hooks (idempotent)
    Init,
    /// Remove the git-orch blocks from the hooks, and nothing else
    UninstallHooks,
    /// Start, list, show, switch and close runs
    #[command(subcommand)]
    Run(run::RunCommand),
    /// Add, import, list and show tasks
    #[command(subcommand)]
    Task(task::TaskCommand),
    /// Add or remove a dependency between two tasks
    #[command(subcommand)]
    Dep(dep::DepCommand),
    /// List ready tasks: priority high first, then oldest
    Ready(RunOpt),
    /// Start one new attempt per task, each as an inbox thread of kind task
    Dispatch(dispatch::DispatchArgs),
    /// Bring attempts and tasks in line with their inbox threads
    Reconcile,
    /// List blocked tasks with their open question and thread
    Blocked(RunOpt),
    /// The leader's loop: dispatch and launch ready tasks, report, until the run is done
    Drive(drive::DriveArgs),
    /// Reply to the question on a task's current thread
    Answer(status::AnswerArgs),
    /// Show the run at a glance: counts, then one line per task (--watch: as it changes)
    Status(status::StatusArgs),
    /// Start a new attempt for a failed or cancelled task
    Retry(retry::RetryArgs),
    /// Cancel a task's attempt in flight and start a new one for another agent
    Reassign(retry::ReassignArgs),
    /// Cancel a task (its attempt and thread too), or a whole run with --run
    Cancel(cancel::CancelArgs),
    /// Remove the worktrees of ended attempts, never losing work
    Cleanup(cleanup::CleanupArgs),
    /// Block until a condition holds; print the events that made it hold
    Wait(log::WaitArgs),
    /// Ask several reviewers the same question and tally what they recommend
    #[command(subcommand)]
    Council(council::CouncilCommand),
    /// Land done code tasks on the target branch: merged in dependency order without a
    /// work tree, checked, moved by compare-and-swap; conflicts go back for rework
    Land(land::LandArgs),
    /// Print the run's event log
    Log(log::LogArgs),
    /// Serve the leader's tools over MCP on stdin/stdout (see docs/mcp.md)
    Mcp,
    // Launch hook (SPEC §11): commands for launched agents, in launch.rs.
    /// List launch profiles, or show one with its resolved argv
    #[command(subcommand)]
    Profile(launch::ProfileCommand),
    /// Print the brief a launched agent gets for a task
    Brief(launch::BriefArgs),
    /// List the run's launched agents
    Agents(RunOpt),
    /// Print the agent log of a task's current attempt
    Logs(launch::LogsArgs),
    /// Supervise one launched agent (started by dispatch --launch)
    #[command(hide = true)]
    Supervise(launch::SuperviseArgs),
    /// Draw the run's task graph with statuses, as Mermaid or Graphviz DOT
    Graph(graph::GraphArgs),
    /// Install man pages and bash, zsh and fish completions for git orch and git inbox
    InstallDocs(crate::cli::docs::InstallDocsArgs),
}

pub fn run(ctx: &mut Ctx, out: &Out, command: OrchCommand) -> Result<()> {
    match command {
        OrchCommand::Init => crate::cli::setup::init(ctx, out, true),
        OrchCommand::UninstallHooks => crate::cli::setup::uninstall_hooks(ctx, out),
        OrchCommand::Run(command) => run::run(ctx, out, command),
        OrchCommand::Task(command) => task::run(ctx, out, command),
        OrchCommand::Dep(command) => dep::run(ctx, out, command),
        OrchCommand::Ready(args) => status::ready(ctx, out, args),
        OrchCommand::Dispatch(args) => dispatch::dispatch(ctx, out, args),
        OrchCommand::Reconcile => status::reconcile(ctx, out),
        OrchCommand::Blocked(args) => status::blocked(ctx, out, args),
        OrchCommand::Drive(args) => drive::drive(ctx, out, args),
        OrchCommand::Answer(args) => status::answer(ctx, out, args),
        OrchCommand::Status(args) if args.watch => watch::watch(ctx, out, args.run.run.as_deref()),
        OrchCommand::Status(args) => status::status(ctx, out, args),
        OrchCommand::Retry(args) => retry::retry(ctx, out, args),
        OrchCommand::Reassign(args) => retry::reassign(ctx, out, args),
        OrchCommand::Cancel(args) => cancel::run(ctx, out, args),
        OrchCommand::Cleanup(args) => cleanup::run(ctx, out, args),
        OrchCommand::Wait(args) => log::wait(ctx, out, args),
        OrchCommand::Council(command) => council::run(ctx, out, command),
        OrchCommand::Log(args) => log::log(ctx, out, args),
        OrchCommand::Land(args) => land::run(ctx, out, args),
        OrchCommand::Mcp => {
            use clap::CommandFactory;
            let cli = OrchCli::command();
            crate::cli::mcp::serve(ctx, crate::cli::mcp::tools::Side::Orch, &cli)
        }
        OrchCommand::Profile(command) => launch::profile_command(ctx, out, command),
        OrchCommand::Brief(args) => launch::brief(ctx, out, args),
        OrchCommand::Agents(args) => launch::agents(ctx, out, args),
        OrchCommand::Logs(args) => launch::logs(ctx, out, args),
        OrchCommand::Supervise(args) => launch::supervise(ctx, args),
        OrchCommand::Graph(args) => graph::run(ctx, out, args),
        OrchCommand::InstallDocs(args) => crate::cli::docs::install(ctx, out, args),
    }
}
