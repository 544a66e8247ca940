//! # reports
//!
//! Turns a checked run into a `report.html` a person can read in a minute:
//! the verdict, latency and throughput plots with fault periods shaded, a
//! timeline of operations and the failing window. Also writes the index of
//! all runs in a store.
//!
//! The crate reads the run folder itself (`test.json`, `results.json`,
//! `history.jsonl`, `nodes/`, typed in [`run_folder`]) and depends only on
//! `checker` and, for the fault kinds' colours and labels, on `nemesis`'s
//! registry, so any tool that writes the same folder layout gets the same
//! report.
//!
//! ```no_run
//! let run = std::path::Path::new("store/register-partition/20260101T000000.000Z");
//! let report = reports::write_run_report(run)?;
//! reports::write_index(std::path::Path::new("store"))?;
//! # Ok::<(), reports::ReportError>(())
//! ```

pub mod error;
pub mod failure;
pub mod html;
pub mod index;
pub mod logs;
pub mod minority;
pub mod model;
pub mod page;
pub mod plots;
pub mod run_folder;
pub mod style;
pub mod synthetic;
pub mod timeline;

use std::path::{Path, PathBuf};

pub use error::ReportError;
pub use index::RunSummary;
pub use model::{FaultBand, Operation, Outcome, RunData, Verdict};
pub use run_folder::{ResultsFile, TestFile, TestOptions, FORMAT_VERSION};

/// Name of the report file in a run folder.
pub const REPORT_FILE: &str = "report.html";

/// Renders the report of a loaded run as one self-contained HTML page.
pub fn render_run_report(run: &RunData) -> Result<String, ReportError> {
    page::render(run)
}

/// Reads the run folder and writes `report.html` into it; returns its path.
pub fn write_run_report(run_dir: &Path) -> Result<PathBuf, ReportError> {
    let run = RunData::load(run_dir)?;
    let html = render_run_report(&run)?;
    let path = run_dir.join(REPORT_FILE);
    error::write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Regenerates `store/index.html` listing every run, newest first.
pub fn write_index(store: &Path) -> Result<PathBuf, ReportError> {
    index::write(store)
}

/// The store a run folder belongs to (`store/<test>/<timestamp>` → `store`).
pub fn store_of_run(run_dir: &Path) -> Option<PathBuf> {
    let abs = if run_dir.is_absolute() {
        run_dir.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(run_dir)
    };
    abs.parent()?.parent().map(Path::to_path_buf)
}
