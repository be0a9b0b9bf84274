//! The `sandbox` command.

fn main() -> std::process::ExitCode {
    sandbox_cli::main(std::env::args_os())
}
