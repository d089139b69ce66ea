//! The `charaka` binary: parses the command line and hands over to the library.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = charaka::cli::Cli::parse();
    match charaka::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("charaka: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
