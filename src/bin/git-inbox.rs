fn main() {
    std::process::exit(git_orch::cli::inbox_main(std::env::args_os().collect()));
}
