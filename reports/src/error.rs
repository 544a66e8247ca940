//! Why a report or index could not be written. Report problems are never a
//! verdict on the system; the harness prints them as warnings.

use std::path::PathBuf;

/// An error while reading a run folder or writing a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A file of the run could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A file of the run is not what the harness writes.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// The report or index could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Plotters failed to draw a figure.
    #[error("drawing the {plot} plot: {message}")]
    Plot { plot: &'static str, message: String },
}

/// Writes `contents` to `path` atomically (temp file, then rename), so a
/// reader never sees half a report.
pub(crate) fn write_atomic(path: &std::path::Path, contents: &[u8]) -> Result<(), ReportError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let err = |source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}
