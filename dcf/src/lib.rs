//! # dcf
//!
//! A reference implementation, in Rust, of openGauss's DCF (Distributed
//! Consensus Framework): a replicated log organised in streams, with DCF's
//! roles (LEADER, FOLLOWER, LOGGER, PASSIVE), pre-vote elections, weighted
//! and policy-based quorums, a durable segmented log and a TCP transport.
//!
//! The work is split into crates, one concern each:
//! - `dcf-core` ([`core`]): the pure (sans-IO) consensus state machine and the
//!   config JSON; it cannot touch tokio, files or clocks.
//! - `dcf-storage` ([`storage`]): segmented log files, control file, metadata.
//! - `dcf-transport` ([`transport`]): versioned binary frames over tokio TCP.
//! - this crate: the engine that drives the core with real storage,
//!   transport and clocks and offers DCF's library API, plus `dcf-node` (a
//!   key-value server on stream 1) and `dcfctl` (its client and admin tool).

pub use dcf_core as core;
pub use dcf_storage as storage;
pub use dcf_transport as transport;

pub mod engine;
pub mod kv;
pub mod params;
pub mod planted;

pub use engine::{Dcf, DcfCallbacks, DcfError, StartOptions};
