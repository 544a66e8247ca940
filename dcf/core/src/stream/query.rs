//! Read-only views of a stream: accessors and [`StreamStatus`].

use super::{CoreOptions, HardState, RunMode, StreamCore, WorkMode};
use crate::config::{NodeId, Role, StreamId, StreamMembers};
use crate::types::{Entry, Index, Term};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Per-peer replication progress on the leader.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Progress {
    pub next_index: Index,
    pub match_index: Index,
    pub apply_index: Index,
    /// Sending one message at a time until the peer's log position is known.
    pub probing: bool,
    /// Last time (ms) any response from the peer arrived in this term.
    pub last_response: u64,
    /// Last time (ms) the peer's match index moved or it was caught up.
    pub last_progress: u64,
    /// Highest heartbeat round the peer has echoed.
    pub seq_acked: u64,
    /// The peer's last reported work mode was minority.
    pub minority: bool,
    /// When (ms) the peer last reported its work mode (0 = never).
    pub mode_reported_at: u64,
    /// Until when (ms) replication of entries to the peer is paused
    /// (`pause_rep`); heartbeats still go out so leadership is kept.
    #[serde(default)]
    pub paused_until: u64,
    /// When (ms) a checkpoint was last asked for on the peer's behalf.
    #[serde(default)]
    pub snapshot_requested_at: Option<u64>,
}

/// A snapshot of the stream's state for queries (DCF stream info).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StreamStatus {
    pub stream_id: StreamId,
    pub node_id: NodeId,
    pub role: Role,
    pub term: Term,
    pub voted_for: Option<NodeId>,
    pub leader_id: Option<NodeId>,
    pub run_mode: RunMode,
    pub work_mode: WorkMode,
    pub commit_index: Index,
    pub applied_index: Index,
    pub first_index: Index,
    pub last_index: Index,
    pub durable_index: Index,
    pub cluster_min_applied: Index,
    pub members: StreamMembers,
    pub peers: BTreeMap<NodeId, Progress>,
    pub leader_ready: bool,
    /// Send-pacing control value 0..=100 (gap of value × 100 µs between
    /// appends to one peer; 0 when pacing is off or not leading).
    #[serde(default)]
    pub pacing_value: u32,
    /// Multiplier of entries per message to PASSIVE peers (0.8^k).
    #[serde(default = "one")]
    pub passive_batch_factor: f64,
}

pub(super) fn one() -> f64 {
    1.0
}

impl StreamCore {
    pub fn node_id(&self) -> NodeId {
        self.opts.node_id
    }

    pub fn stream_id(&self) -> StreamId {
        self.opts.stream_id
    }

    pub fn role(&self) -> Role {
        self.role.role()
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    pub fn commit_index(&self) -> Index {
        self.commit
    }

    pub fn applied_index(&self) -> Index {
        self.applied
    }

    pub fn last_index(&self) -> Index {
        self.log.last_index()
    }

    pub fn first_index(&self) -> Index {
        self.log.first_index()
    }

    pub fn durable_index(&self) -> Index {
        self.durable
    }

    pub fn members(&self) -> &StreamMembers {
        &self.members
    }

    /// The configuration entries in the log, oldest first, as (index,
    /// membership). The first one is the committed configuration the
    /// stream was (re)started with or took from a checkpoint (index 0: the
    /// configuration it was first started with).
    pub fn config_entries(&self) -> &[(Index, StreamMembers)] {
        &self.config_history
    }

    /// The newest configuration whose entry this node knows committed.
    pub fn committed_members(&self) -> &StreamMembers {
        self.committed_config()
    }

    /// True if this node may campaign now (see the crate docs on
    /// membership: a node being removed may until its removal commits).
    pub fn may_campaign(&self) -> bool {
        self.may_lead()
    }

    pub fn is_leader_ready(&self) -> bool {
        self.leader_state().is_some_and(|ls| ls.ready)
    }

    pub fn entry(&self, index: Index) -> Option<&Entry> {
        self.log.get(index)
    }

    pub fn options(&self) -> &CoreOptions {
        &self.opts
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
        }
    }

    pub fn status(&self) -> StreamStatus {
        StreamStatus {
            stream_id: self.opts.stream_id,
            node_id: self.opts.node_id,
            role: self.role(),
            term: self.term,
            voted_for: self.voted_for,
            leader_id: self.leader,
            run_mode: self.opts.run_mode,
            work_mode: self.work_mode,
            commit_index: self.commit,
            applied_index: self.applied,
            first_index: self.log.first_index(),
            last_index: self.log.last_index(),
            durable_index: self.durable,
            cluster_min_applied: self.cluster_min_applied,
            members: self.members.clone(),
            peers: self
                .leader_state()
                .map(|ls| ls.peers.clone())
                .unwrap_or_default(),
            leader_ready: self.is_leader_ready(),
            pacing_value: match self.leader_state() {
                Some(ls) if self.opts.latency_pacing => ls.flow.pacing.value(),
                _ => 0,
            },
            passive_batch_factor: self.passive.factor(),
        }
    }
}
