fn main() {
    std::process::exit(git_orch::cli::orch_main(std::env::args_os().collect()));
}
