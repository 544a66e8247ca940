//! Options, run and work modes, and what a stream restarts from.

use crate::config::{NodeId, StreamId};
use crate::flow::LoadThresholds;
use crate::types::{Entry, Index, Term};
use serde::{Deserialize, Serialize};

/// DCF's RUN_MODE parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunMode {
    /// Elections on timeout (0).
    Auto,
    /// No timeout elections; leadership changes only by promote (1). The
    /// configured LEADER still campaigns once at start-up.
    Manual,
    /// No elections at all except promote (2).
    Disable,
}

impl RunMode {
    pub fn from_param(v: u64) -> Option<RunMode> {
        match v {
            0 => Some(RunMode::Auto),
            1 => Some(RunMode::Manual),
            2 => Some(RunMode::Disable),
            _ => None,
        }
    }
    pub fn as_param(self) -> u64 {
        match self {
            RunMode::Auto => 0,
            RunMode::Manual => 1,
            RunMode::Disable => 2,
        }
    }
}

/// DCF's work mode: normal majority, or minority (emergency) mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkMode {
    Normal,
    Minority { vote_num: u64 },
}

/// The term and vote that must survive a crash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<NodeId>,
}

/// Tunables of one stream (DCF parameters that the core needs).
#[derive(Clone, Debug)]
pub struct CoreOptions {
    pub node_id: NodeId,
    pub stream_id: StreamId,
    /// ELECTION_TIMEOUT in ms.
    pub election_timeout_ms: u64,
    /// HEARTBEAT_INTERVAL in ms.
    pub heartbeat_interval_ms: u64,
    pub run_mode: RunMode,
    /// MAJORITY_GROUPS.
    pub majority_groups: Vec<u32>,
    /// Most entries in one append message.
    pub max_batch_entries: usize,
    /// Most entries sent to a peer beyond its acknowledged match index.
    pub max_inflight_entries: u64,
    /// Seed of the randomised election timeouts.
    pub seed: u64,
    /// A node being added (or made a voter) counts as caught up, and the
    /// configuration entry is appended, once its match index is within
    /// this many entries of the leader's last index.
    pub catchup_max_lag: u64,
    /// A catching-up node that is not caught up after this many election
    /// timeouts makes the change fail ([`ConfigChangeError::CatchUpTimeout`](crate::ConfigChangeError::CatchUpTimeout)).
    pub catchup_timeout_elections: u64,
    /// AUTO_ELC_PRIORITY_EN: a new leader hands over to a reachable,
    /// caught-up node of higher priority.
    pub auto_priority_election: bool,
    /// Commit-latency-driven send pacing ([`crate::flow::PacingController`]);
    /// DCF turns it on when MEC_BATCH_SIZE = 0.
    pub latency_pacing: bool,
    /// FLOW_CONTROL_* thresholds for throttling PASSIVE peers.
    pub load_thresholds: LoadThresholds,
    /// The host can send and install checkpoints: a leader asks for one
    /// ([`Action::SendSnapshot`](crate::Action::SendSnapshot)) when a peer needs entries it compacted
    /// away. Off, such a peer only raises MISSING_LOG (DCF's behaviour).
    pub snapshot_transfer: bool,
    /// Most applied entries kept in memory beyond what replication still
    /// needs; older ones are read back from storage
    /// ([`Action::SendWithStoredEntries`](crate::Action::SendWithStoredEntries)).
    pub cache_max_entries: usize,
    /// Most bytes of applied entry data kept in memory.
    pub cache_max_bytes: usize,
    /// Deliberate defects for harness tests (all off by default).
    pub planted: crate::planted::PlantedBugs,
}

impl CoreOptions {
    pub fn new(node_id: NodeId, stream_id: StreamId) -> CoreOptions {
        CoreOptions {
            node_id,
            stream_id,
            election_timeout_ms: 3000,
            heartbeat_interval_ms: 1000,
            run_mode: RunMode::Auto,
            majority_groups: Vec::new(),
            max_batch_entries: 256,
            max_inflight_entries: 8192,
            seed: node_id as u64 ^ ((stream_id as u64) << 32),
            catchup_max_lag: 16,
            catchup_timeout_elections: 10,
            auto_priority_election: true,
            latency_pacing: true,
            load_thresholds: LoadThresholds::default(),
            snapshot_transfer: false,
            cache_max_entries: 4096,
            cache_max_bytes: 32 << 20,
            planted: crate::planted::PlantedBugs::default(),
        }
    }
}

/// What a stream remembers across a restart, as loaded from storage.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub hard_state: HardState,
    /// First index of the log (1 unless a prefix was truncated).
    pub first_index: Index,
    /// Term of the entry at `first_index - 1`.
    pub prev_term: Term,
    /// Every durable entry from `first_index` on.
    pub entries: Vec<Entry>,
    /// The host's applied index (DCF does not persist it; the host passes
    /// it with `set_applied_index` before start).
    pub applied_index: Index,
    /// The index of the committed configuration entry that the membership
    /// passed to [`StreamCore::new`](crate::StreamCore::new) comes from (0: the configuration the
    /// stream was first started with). Configuration entries of the log at
    /// or below it are older and ignored.
    pub config_index: Index,
}
