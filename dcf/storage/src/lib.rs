//! # dcf-storage
//!
//! Durable storage of a DCF node, synchronous (`std::fs`), meant to be
//! driven from a dedicated storage thread of the async engine:
//!
//! * [`StreamLog`]: the segmented, CRC32C-checked log of one stream, with
//!   buffered appends and group-commit [`StreamLog::sync`], suffix and
//!   prefix truncation, and torn-tail recovery ([`RecoveryReport`]).
//! * [`ControlFile`]: term, vote and work mode, in two alternating copies.
//! * [`Metadata`]: the configuration JSON, main copy plus backup.
//! * [`DataDir`]: the directory layout under DATA_PATH.
//!
//! Every write that is promised durable is fsynced, with its directory
//! when files are created, renamed or removed; the module docs explain the
//! crash-safety argument of each piece.

mod dualfile;
mod fsutil;

pub mod ctrl;
pub mod error;
pub mod layout;
pub mod log;
pub mod metadata;
pub mod segment;

pub use ctrl::{ControlFile, ControlState, HardState, StoredWorkMode};
pub use error::{Result, StorageError};
pub use layout::{DataDir, StreamDirs};
pub use log::{RecoveryReport, StreamLog, StreamLogOptions, DEFAULT_SEGMENT_SIZE};
pub use metadata::{Metadata, MetadataOrigin};
pub use segment::{encoded_len, ENTRY_HEADER_LEN};
