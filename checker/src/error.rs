//! Errors of the checker crate. A bad input is always an error value with a
//! location, never a panic, so the CLI can print one clear line.

use thiserror::Error;

/// Why a history could not be read or checked.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CheckError {
    /// The file could not be read.
    #[error("cannot read: {0}")]
    Io(String),
    /// The text is not valid in its format.
    #[error("{location}: {message}")]
    Malformed {
        /// `line N` (or `line N, column M`, or an operation index).
        location: String,
        /// What is wrong there.
        message: String,
    },
    /// The history is well-formed but does not fit the model or checker.
    #[error("{location}: {message}")]
    Unsupported {
        /// Where the offending event is.
        location: String,
        /// What the model cannot handle.
        message: String,
    },
    /// Bad options (unknown model or format name, bad initial value).
    #[error("{0}")]
    Usage(String),
}
