use std::process::ExitCode;

fn main() -> ExitCode {
    git_orch::cli::inbox_main(std::env::args_os().collect())
}
