//! The command-line edge: parse, build a context, call the library, print the result as
//! JSON or for people, and map errors to exit statuses. Nothing below this module prints.

mod ctx;
mod docs;
pub(crate) mod hook;
mod inbox;
mod input;
pub(crate) mod mcp;
mod orch;
mod outfile;
mod output;
mod render;
mod setup;

use ctx::{Ctx, Env, GlobalArgs};
use output::{report_error, Out};

use crate::error::{Code, Error, Result};
use std::ffi::OsString;
use std::process::ExitCode;

/// Parses argv with clap; a usage error becomes our `usage` error (exit 2, JSON when
/// `--json` is among the arguments), help and version print as usual.
fn parse_args<P: clap::Parser>(args: Vec<OsString>) -> std::result::Result<P, ExitCode> {
    match P::try_parse_from(&args) {
        Ok(parsed) => Ok(parsed),
        Err(err) => {
            use clap::error::ErrorKind;
            if matches!(
                err.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = err.print();
                return Err(
                    if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                        ExitCode::from(Code::Usage.exit_status())
                    } else {
                        ExitCode::SUCCESS
                    },
                );
            }
            let json_mode = args.iter().any(|a| a == "--json");
            if json_mode {
                let message = err.kind().to_string();
                let rendered = err.render().to_string();
                let detail = rendered
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim_start_matches("error: ")
                    .to_owned();
                let error = Error::new(
                    Code::Usage,
                    if detail.is_empty() { message } else { detail },
                )
                .hint("see --help for the command's usage");
                Err(report_error(&error, true))
            } else {
                let _ = err.print();
                Err(ExitCode::from(Code::Usage.exit_status()))
            }
        }
    }
}

/// Runs a parsed command: `-C`, the context, the call, error reporting. Returns the exit
/// status for the binary to exit with.
fn execute(global: GlobalArgs, run: impl FnOnce(&mut Ctx, &Out) -> Result<()>) -> ExitCode {
    let out = Out { json: global.json };
    if let Some(dir) = &global.dir {
        if let Err(e) = std::env::set_current_dir(dir) {
            let err = Error::new(
                Code::NotFound,
                format!("cannot change to {}: {e}", dir.display()),
            );
            return report_error(&err, out.json);
        }
    }
    let mut ctx = Ctx::new(global, Env::from_process());
    let status = match run(&mut ctx, &out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report_error(&err, out.json),
    };
    // The process exits next, and exit frees all of it at once: closing the connection
    // frees SQLite's parsed schema piece by piece (0.14M instructions, 4% of a `fetch
    // --peek`). Every write is committed by now, and the kernel drops the file locks.
    std::mem::forget(ctx);
    status
}

/// The whole of `git-inbox`: returns the exit status.
pub fn inbox_main(args: Vec<OsString>) -> ExitCode {
    let parsed: inbox::InboxCli = match parse_args(args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    execute(parsed.global, |ctx, out| {
        inbox::run(ctx, out, parsed.command)
    })
}

/// The command trees of `git inbox` and `git orch` as declared, not yet built: clap's
/// completion generator names the subcommands itself, from the root's name.
pub(crate) fn command_trees() -> [clap::Command; 2] {
    use clap::CommandFactory;
    [inbox::InboxCli::command(), orch::OrchCli::command()]
}

/// The command trees of `git inbox` and `git orch`, built, for generated documentation.
#[cfg(test)]
pub(crate) fn commands() -> [clap::Command; 2] {
    let mut trees = command_trees();
    for tree in &mut trees {
        tree.build();
    }
    trees
}

/// The whole of `git-orch`: returns the exit status.
pub fn orch_main(args: Vec<OsString>) -> ExitCode {
    let parsed: orch::OrchCli = match parse_args(args) {
        Ok(p) => p,
        Err(status) => return status,
    };
    execute(parsed.global, |ctx, out| {
        orch::run(ctx, out, parsed.command)
    })
}

#[cfg(test)]
mod help_reference {
    //! The whole `--help` tree of both binaries, snapshotted so that any change to the
    //! command-line surface shows up in review. Regenerate with
    //! `UPDATE_SNAPSHOTS=1 cargo test --lib help_reference`.

    use clap::CommandFactory;

    fn render(cmd: &mut clap::Command, path: &str, out: &mut String) {
        let name = if path.is_empty() {
            cmd.get_name().to_owned()
        } else {
            format!("{path} {}", cmd.get_name())
        };
        out.push_str(&format!(
            "## {name}\n\n```\n{}\n```\n\n",
            cmd.render_long_help().to_string().trim_end()
        ));
        let mut subs: Vec<clap::Command> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .cloned()
            .collect();
        for sub in &mut subs {
            render(sub, &name, out);
        }
    }

    #[test]
    fn the_help_tree_matches_the_snapshot() {
        let mut text = String::from("# Command-line reference (generated from --help)\n\n");
        for mut cmd in [
            super::inbox::InboxCli::command(),
            super::orch::OrchCli::command(),
        ] {
            cmd.build();
            render(&mut cmd.term_width(100), "", &mut text);
        }
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots/cli-reference.md");
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(stored == text, "the --help tree changed; review it and run UPDATE_SNAPSHOTS=1 cargo test --lib help_reference");
    }
}
