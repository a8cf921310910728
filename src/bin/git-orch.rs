use std::process::ExitCode;

fn main() -> ExitCode {
    git_orch::cli::orch_main(std::env::args_os().collect())
}
