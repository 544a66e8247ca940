//! Why calls are refused, and how configuration changes are followed.

use crate::config::NodeId;
use crate::types::{Index, Term};

/// Why a proposal or read was refused. All of these are definite: nothing
/// was appended.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("leader has not yet applied its own term's first entry")]
    NotReady,
    #[error("leadership transfer in progress")]
    Transferring,
}

/// Why a membership, role or priority change was refused or failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigChangeError {
    #[error("not the leader (leader: {leader:?}); configuration changes are made on the leader")]
    NotLeader { leader: Option<NodeId> },
    #[error("the leader has not yet committed an entry of its own term")]
    NotReady,
    #[error(
        "another configuration change is in progress (ticket {ticket:?}, config entry {index:?})"
    )]
    ChangeInProgress {
        ticket: Option<u64>,
        index: Option<Index>,
    },
    #[error("a leadership transfer is in progress")]
    Transferring,
    #[error("configuration changes are refused in minority mode")]
    MinorityMode,
    #[error("node {0} is not a member of the stream")]
    UnknownNode(NodeId),
    #[error("node {0} is already a member of the stream")]
    AlreadyMember(NodeId),
    #[error("invalid member: {0}")]
    InvalidMember(String),
    #[error("the change would not change anything")]
    NoChange,
    #[error("the leader cannot change its own role")]
    LeaderOwnRole,
    #[error("role changes to or from LOGGER are not supported (a LOGGER has no state machine); remove the node and add it again with a fresh data directory")]
    LoggerRoleChange,
    #[error("switching a voter to PASSIVE needs more than 3 voters (there are {voters})")]
    TooFewVoters { voters: usize },
    #[error("unsafe quorum change: old quorum {old_quorum} and new quorum {new_quorum} need not overlap (change weights one unit at a time)")]
    UnsafeQuorumChange { old_quorum: u64, new_quorum: u64 },
    #[error("the new configuration would have no voter that may lead")]
    NoLeaderCandidate,
    #[error("node {node} did not catch up in time (match index {match_index}, leader's last index {last_index})")]
    CatchUpTimeout {
        node: NodeId,
        match_index: Index,
        last_index: Index,
    },
    #[error("leadership was lost before the configuration entry was appended; nothing changed")]
    LeadershipLost,
    #[error("the configuration entry was overwritten by another leader's log; nothing changed")]
    Overwritten,
}

/// What a successful change call started. Keep the ticket to follow it
/// with [`StreamCore::config_change_status`](crate::StreamCore::config_change_status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigChangeStarted {
    /// The configuration entry was appended at (`term`, `index`); the
    /// change is in effect on the leader and done once it commits.
    Appended {
        ticket: u64,
        term: Term,
        index: Index,
    },
    /// A new voter is catching up from the leader's log; the entry is
    /// appended once it is within `catchup_max_lag` of the leader.
    CatchingUp { ticket: u64, node: NodeId },
}

impl ConfigChangeStarted {
    pub fn ticket(&self) -> u64 {
        match self {
            ConfigChangeStarted::Appended { ticket, .. }
            | ConfigChangeStarted::CatchingUp { ticket, .. } => *ticket,
        }
    }
}

/// Where a configuration change stands (DCF's wait_timeout polling: the
/// host polls this until `Committed` or `Failed`, or gives up with a
/// TIMEOUT that may still succeed while the status is `CatchingUp` /
/// `Appended`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigChangeStatus {
    /// Waiting for the new voter to catch up; nothing appended yet.
    CatchingUp { node: NodeId },
    /// The entry is in this node's log but not yet known committed. It may
    /// still commit, even after this node lost leadership.
    Appended { term: Term, index: Index },
    /// The entry is committed: the change is done.
    Committed { term: Term, index: Index },
    /// Definitely not done (nothing of it is or will be committed).
    Failed(ConfigChangeError),
    /// The ticket is unknown (never issued by this core, forgotten after
    /// more than 128 newer changes, or its entry was compacted away before
    /// its outcome was seen here).
    Unknown,
}

/// The change in flight on a leader, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingConfigChange {
    /// The ticket, if this leader started the change (an uncommitted entry
    /// inherited from an earlier leader has none).
    pub ticket: Option<u64>,
    pub status: ConfigChangeStatus,
}

/// Why promote / demote / timeout_notify was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeadershipError {
    #[error("not the leader (leader: {leader:?})")]
    NotLeader { leader: Option<NodeId> },
    #[error("this node is the leader")]
    IsLeader,
    #[error("node {0} is not a member that may lead")]
    NotEligible(NodeId),
    #[error("a leadership transfer is already in progress (to node {0})")]
    TransferInProgress(NodeId),
    #[error("leadership transfer is not available in minority mode")]
    MinorityMode,
}

/// Why `set_work_mode` was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkModeError {
    #[error("vote_num {vote_num} must be in 1..={voters} (the number of voters; weights count as 1 in minority mode)")]
    BadVoteNum { vote_num: u64, voters: u64 },
}
