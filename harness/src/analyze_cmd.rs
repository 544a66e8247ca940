//! `dcf-harness analyze RUN_DIR`: re-checks a stored history from scratch
//! (the node logs are scanned again too) and rewrites `results.json`.

use crate::analysis;
use crate::exit;
use crate::logscan;
use crate::store::RunDir;
use reports::run_folder::ResultsFile;
use std::path::PathBuf;
use std::time::Duration;

/// Options of `dcf-harness analyze`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// A run folder (store/<test>/<timestamp>) holding history.jsonl.
    pub run_dir: PathBuf,
    /// Time limit of the checker, in seconds (then the verdict is unknown).
    #[arg(long, default_value_t = 120)]
    pub check_timeout: u64,
}

/// Runs `analyze`; returns the exit code (255 when the run cannot be analysed).
pub fn run(args: &AnalyzeArgs) -> i32 {
    let run = match RunDir::open(&args.run_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dcf-harness analyze: {e}");
            return exit::HARNESS_FAILURE;
        }
    };
    // Keep what only the live run could observe; scan the logs again.
    let mut known = ResultsFile {
        run: run.read_results().map(|old| old.run).unwrap_or_default(),
        ..ResultsFile::default()
    };
    logscan::record(&mut known, &run.nodes());
    let analysis = analysis::analyze(&run, Duration::from_secs(args.check_timeout.max(1)), known);
    if let Some(store) = reports::store_of_run(&run.path) {
        if let Some(report) = crate::test_cmd::write_reports(&run.path, &store) {
            eprintln!("report: {}", report.display());
        }
    }
    match analysis {
        Ok(a) => {
            println!(
                "{} {}",
                a.valid.as_str(),
                run.path.join("results.json").display()
            );
            exit::exit_code(a.valid)
        }
        Err(e) => {
            eprintln!("dcf-harness analyze: {e}");
            exit::HARNESS_FAILURE
        }
    }
}
