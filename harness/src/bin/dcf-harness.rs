//! `dcf-harness`: the command-line entry point of the test harness.
//!
//! A clap-derive CLI with one subcommand per concern; `check` is the first.
//! Others (`test`, `analyze`, `serve`) are added as new variants of
//! [`Command`] with their own module in the library.

use clap::{Parser, Subcommand};
use harness::check_cmd::{self, CheckArgs};

/// Jepsen-style fault-injection harness for DCF.
#[derive(Debug, Parser)]
#[command(name = "dcf-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check history files (ours or another tool's) and print one verdict per file.
    Check(CheckArgs),
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are not errors; everything else is bad usage (64).
            let code = if e.use_stderr() {
                check_cmd::EXIT_USAGE
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match &cli.command {
        Command::Check(args) => check_cmd::run(args),
    };
    std::process::exit(code);
}
