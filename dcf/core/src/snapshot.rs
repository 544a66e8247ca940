//! Checkpoints ("snapshots") of a host's state machine, and how the core
//! uses them.
//!
//! DCF itself keeps no snapshots: the host truncates the log with
//! `dcf_truncate` once it has a checkpoint, and a follower that falls
//! behind the leader's first index only raises MISSING_LOG. This core goes
//! further, for hosts that can produce and install checkpoints
//! ([`crate::stream::CoreOptions::snapshot_transfer`]):
//!
//! - a leader whose peer needs entries below its first index emits
//!   [`crate::Action::SendSnapshot`]; the host sends its newest checkpoint
//!   (whose index is at least the first index minus one, since the log is
//!   only truncated below a checkpoint);
//! - the receiving host makes the checkpoint its durable state, then calls
//!   [`crate::StreamCore::install_snapshot`]: the log continues after the
//!   checkpoint, which counts as committed and applied, and its
//!   configuration becomes the committed one;
//! - a checkpoint holds only committed (applied) entries, so it matches
//!   the log of every leader up to its index: installing one is safe
//!   whoever sent it.
//!
//! A restarting host passes its newest checkpoint's index as the applied
//! index; the log must reach back to it (the engine refuses to start
//! otherwise, as entries would be missing from the state machine).

use crate::config::StreamMembers;
use crate::types::{Index, Term};
use serde::{Deserialize, Serialize};

/// What identifies a checkpoint: the last entry it covers and the
/// membership committed at that entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry applied into the checkpoint.
    pub index: Index,
    /// Term of that entry.
    pub term: Term,
    /// The membership in force at `index` (the newest configuration entry
    /// at or below it).
    pub members: StreamMembers,
}
