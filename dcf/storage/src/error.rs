//! The one error type of the crate. Every variant names the file or
//! directory it is about, so an operator reading a log line knows which
//! file to inspect (or restore) without a debugger.

use std::io;
use std::path::{Path, PathBuf};

/// An error of DCF's durable storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system call failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Bytes on disk fail a check (CRC, magic, sequence) in a place where
    /// dropping them could lose acknowledged data, so we refuse to start.
    #[error("corrupt data in {path} at offset {offset}: {reason}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
    },
    /// The files of a directory do not fit together (a missing segment,
    /// overlapping segments, a log-control file that disagrees with them).
    #[error("inconsistent storage in {path}: {reason}")]
    Inconsistent { path: PathBuf, reason: String },
    /// Both copies of a doubly-stored record (control file, metadata) are
    /// unreadable.
    #[error("both copies are unreadable: {path}: {first}; {other_path}: {second}")]
    BothCopiesLost {
        path: PathBuf,
        first: String,
        other_path: PathBuf,
        second: String,
    },
    /// The caller asked for something the log cannot do (a gap in an
    /// append, a read below the first index, ...). Nothing was changed.
    #[error("invalid request on {path}: {reason}")]
    InvalidArgument { path: PathBuf, reason: String },
    /// The requested index is outside `[first_index, last_index]`.
    #[error("index {index} out of range [{first}, {last}] in {path}")]
    IndexOutOfRange {
        path: PathBuf,
        index: u64,
        first: u64,
        last: u64,
    },
    /// An earlier write or fsync failed. After a failed fsync the page
    /// cache can no longer be trusted to match the disk, so the log
    /// refuses further work until it is reopened (re-read from disk).
    #[error("log in {path} is unusable after an earlier I/O failure; reopen it")]
    Poisoned { path: PathBuf },
}

/// Result alias of the crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    pub(crate) fn io(path: &Path, source: io::Error) -> StorageError {
        StorageError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn inconsistent(path: &Path, reason: impl Into<String>) -> StorageError {
        StorageError::Inconsistent {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid(path: &Path, reason: impl Into<String>) -> StorageError {
        StorageError::InvalidArgument {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// The path this error is about.
    pub fn path(&self) -> &Path {
        match self {
            StorageError::Io { path, .. }
            | StorageError::Corrupt { path, .. }
            | StorageError::Inconsistent { path, .. }
            | StorageError::BothCopiesLost { path, .. }
            | StorageError::InvalidArgument { path, .. }
            | StorageError::IndexOutOfRange { path, .. }
            | StorageError::Poisoned { path } => path,
        }
    }
}

/// Attaches a path to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, path: &Path) -> Result<T> {
        self.map_err(|e| StorageError::io(path, e))
    }
}
