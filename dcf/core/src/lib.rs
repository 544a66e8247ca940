//! # dcf-core
//!
//! The pure consensus state machine of DCF, one instance per stream. It
//! takes events (a message, a clock tick, a client proposal, "storage made
//! these entries durable") and returns actions (send, persist, apply,
//! reply). It has no tokio, sockets, files or clocks, so it can be unit
//! tested and run in a seeded deterministic simulation.

pub mod config;
pub mod types;

pub use config::{
    ClusterConfig, ConfigError, Member, MemberKind, NodeId, Role, StreamId, StreamMembers,
};
pub use types::{Entry, EntryKind, Envelope, Index, Message, Term};
pub mod log;
pub mod quorum;
pub mod stream;

pub use stream::{
    Action, CoreOptions, Exception, HardState, Progress, ProposeError, Restored, RunMode,
    StreamCore, StreamStatus, WorkMode,
};
