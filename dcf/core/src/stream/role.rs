//! The state that only one role has.
//!
//! A node's role and the state that belongs to it are one value
//! ([`RoleState`]): taking a role creates its state fresh and leaving it
//! drops it, so nothing of a former leadership (heartbeat rounds, peer
//! progress, pending reads, a transfer) or candidacy (votes) can leak into
//! the next one. State that outlives roles (term, vote, log, commit and
//! apply indexes, configuration, tickets, exception report times) stays in
//! [`super::StreamCore`].

use super::flow_control::LeaderFlow;
use super::leader::PendingRead;
use super::leadership::Transfer;
use super::membership::CatchUp;
use super::Progress;
use crate::config::{NodeId, Role};
use crate::types::Index;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A node's role with the state only that role has.
#[derive(Debug)]
pub(super) enum RoleState {
    Follower(FollowerState),
    PreCandidate(CandidateState),
    Candidate(CandidateState),
    /// Boxed: a leader's state is much larger than the others'.
    Leader(Box<LeaderState>),
}

impl RoleState {
    pub(super) fn role(&self) -> Role {
        match self {
            RoleState::Follower(_) => Role::Follower,
            RoleState::PreCandidate(_) => Role::PreCandidate,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }
}

/// What a follower knows about its current leader's messages; started
/// afresh whenever it follows another leader (or the same one again after
/// an election), so nothing is acknowledged or echoed to the wrong leader.
#[derive(Clone, Debug, Default)]
pub(super) struct FollowerState {
    /// Highest index known to match the current leader's log.
    pub(super) ack_upto: Index,
    /// Highest index acknowledged to the current leader.
    pub(super) acked: Index,
    /// The current leader's newest heartbeat round seen, echoed in
    /// acknowledgements (rounds are counted per leader: echoing another
    /// leader's round would confirm reads that were never seen).
    pub(super) last_seq_seen: u64,
}

/// The votes of one (pre-)campaign.
#[derive(Clone, Debug, Default)]
pub(super) struct CandidateState {
    /// Answers received so far (this node's own vote included).
    pub(super) votes: BTreeMap<NodeId, bool>,
}

impl CandidateState {
    /// A campaign that starts with this node's own vote.
    pub(super) fn voting_for_self(me: NodeId) -> CandidateState {
        CandidateState {
            votes: BTreeMap::from([(me, true)]),
        }
    }
}

/// A leader's state, for one leadership.
#[derive(Debug)]
pub(super) struct LeaderState {
    /// Replication progress of every peer the leader replicates to.
    pub(super) peers: BTreeMap<NodeId, Progress>,
    /// Peers that may have entries to send at the next flush.
    pub(super) dirty_peers: BTreeSet<NodeId>,
    pub(super) heartbeat_deadline: u64,
    /// Heartbeat round; followers echo it, which confirms read indexes.
    pub(super) seq: u64,
    /// Read indexes waiting for a quorum to confirm a heartbeat round.
    pub(super) reads: VecDeque<PendingRead>,
    /// A read is waiting for the next round: send one at the next flush.
    pub(super) read_round_wanted: bool,
    /// Index of this leadership's first entry (its configuration entry).
    pub(super) start_index: Index,
    /// Everything up to `start_index` is committed and handed to the host:
    /// writes are accepted.
    pub(super) ready: bool,
    pub(super) transfer: Option<Transfer>,
    pub(super) catching_up: Option<CatchUp>,
    /// Until when (ms) the leader looks for a node of higher priority.
    pub(super) priority_check_until: u64,
    /// Hand-overs to a node of higher priority still allowed.
    pub(super) priority_attempts: u32,
    pub(super) flow: LeaderFlow,
}

impl LeaderState {
    /// A new leadership whose first entry will be at `start_index`.
    pub(super) fn new(start_index: Index) -> LeaderState {
        LeaderState {
            peers: BTreeMap::new(),
            dirty_peers: BTreeSet::new(),
            heartbeat_deadline: 0,
            seq: 0,
            reads: VecDeque::new(),
            read_round_wanted: false,
            start_index,
            ready: false,
            transfer: None,
            catching_up: None,
            priority_check_until: 0,
            priority_attempts: 0,
            flow: LeaderFlow::default(),
        }
    }
}
