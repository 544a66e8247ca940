//! `dcf-harness`: the command-line entry point of the test harness.
//!
//! A clap-derive CLI with one subcommand per concern (`test`, `analyze`,
//! `check`, `campaign`, `zoo`, `bench`, `serve`,
//! `cleanup`), each with its own module in the library.
//! Options are validated while parsing: a usage error is one line on
//! stderr and exit status 64, before anything is created.

use anyhow::Context;
use clap::{Parser, Subcommand};
use harness::analyze_cmd::{self, AnalyzeArgs};
use harness::bench::{self, BenchArgs};
use harness::campaign::{self, CampaignArgs};
use harness::check_cmd::{self, CheckArgs};
use harness::serve_cmd::{self, ServeArgs};
use harness::test_cmd::{self, TestArgs, TestOutcome};
use harness::zoo::{self, ZooArgs};
use harness::{cli, exit};
use std::path::{Path, PathBuf};

/// Jepsen-style fault-injection harness for DCF.
#[derive(Debug, Parser)]
#[command(name = "dcf-harness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a fault-injection test against a local dcf-node cluster and
    /// store its checked history (exit 0 valid, 1 invalid, 2 unknown,
    /// 255 harness failure).
    Test(Box<TestArgs>),
    /// Re-check a stored run's history from scratch and rewrite its results.json.
    Analyze(AnalyzeArgs),
    /// Check history files (ours or another tool's) and print one verdict per file.
    Check(CheckArgs),
    /// Run the campaigns of a TOML file one run at a time within an
    /// optional budget and write a summary, a page and a JUnit file (exit 0
    /// when every run met its expected verdict, 3 when one did not, 130
    /// when interrupted, 64 for a bad file).
    Campaign(CampaignArgs),
    /// Serve the store read-only over HTTP (reports, histories, node logs).
    Serve(ServeArgs),
    /// Run every planted bug of dcf-node with the faults that expose it,
    /// over several seeds, plus the correct node as a control; print
    /// caught k/N and the median time to detect per bug, write zoo.json
    /// and zoo.html (exit 0 only if every bug was caught in every seed and
    /// every control run stayed valid; a bug whose recipe states a
    /// limitation may be missed).
    Zoo(ZooArgs),
    /// Measure throughput and latency of 3-node clusters on loopback
    /// (fsync on) under the same closed-loop load, one row per system and
    /// client count, with the ratio of the first system to the others;
    /// writes bench.json in the store.
    Bench(BenchArgs),
    /// Remove what a killed harness left behind for a run (processes,
    /// namespaces, rules: whatever its deployment recorded).
    Cleanup {
        /// The run folder (store/<test>/<timestamp>).
        run_dir: PathBuf,
    },
}

fn test(args: TestArgs) -> i32 {
    let outcome = test_cmd::run(args, std::env::args().collect());
    match &outcome {
        TestOutcome::Verdict { valid, run } => {
            println!("{} {}", valid.as_str(), run.join("results.json").display());
        }
        TestOutcome::HarnessFailure { cause, run } => {
            eprintln!("dcf-harness: harness failure: {cause}");
            if let Some(run) = run {
                println!("harness-failure {}", run.display());
            }
        }
    }
    outcome.exit_code()
}

/// Removes what the run's deployment recorded and did not remove, whatever
/// kind of deployment it was.
fn cleanup(run_dir: &Path) -> anyhow::Result<()> {
    let nodes = run_dir.join(reports::run_folder::NODES_DIR);
    let target = if nodes.is_dir() {
        nodes
    } else {
        run_dir.to_path_buf()
    };
    let report = harness::deploy::cleanup_leftovers(&target)
        .with_context(|| format!("cleaning up {}", run_dir.display()))?;
    for r in &report.removed {
        println!("removed {r}");
    }
    Ok(())
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        // Everything else is bad usage: one line, exit 64, nothing created.
        Err(e) => {
            eprintln!("{}", cli::one_line(&e.render().to_string()));
            std::process::exit(exit::USAGE);
        }
    };
    if let Command::Test(args) = &cli.command {
        if let Err(why) = args.validate() {
            eprintln!("error: {why}");
            std::process::exit(exit::USAGE);
        }
    }
    let code = match cli.command {
        Command::Test(args) => test(*args),
        Command::Analyze(args) => analyze_cmd::run(&args),
        Command::Check(args) => check_cmd::run(&args),
        Command::Cleanup { run_dir } => match cleanup(&run_dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("dcf-harness cleanup: {e:#}");
                1
            }
        },
        Command::Serve(args) => serve_cmd::run(&args),
        Command::Zoo(args) => zoo::run(&args),
        Command::Campaign(args) => campaign::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    std::process::exit(code);
}
