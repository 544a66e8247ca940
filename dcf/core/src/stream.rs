//! The consensus state machine of one stream.
//!
//! [`StreamCore`] is driven by its host through a handful of calls
//! ([`StreamCore::tick`], [`StreamCore::step`], [`StreamCore::propose`],
//! [`StreamCore::read_index`], [`StreamCore::on_persisted`],
//! [`StreamCore::on_applied`]) and answers with [`Action`]s that the host
//! must carry out **in order**: a [`Action::SaveHardState`] must be durable
//! before any later [`Action::Send`] leaves the node, because a vote or a
//! term must never be forgotten after another node relied on it.
//!
//! Rules implemented (see DESIGN.md §2 and DCF-NOTES.md):
//! - pre-vote, then vote; one vote per term; up-to-date log check;
//! - weighted quorum, plus one node of every `MAJORITY_GROUPS` group for
//!   commits;
//! - a node that heard from a live leader within the election timeout
//!   refuses (pre-)votes; a leader steps down when voters holding a quorum
//!   of weight were silent for 2 × election timeout (AUTO run mode);
//! - a new leader appends a configuration entry and accepts writes only
//!   after it has applied everything up to it;
//! - pipelined appends in batches, next/match index per peer, probing
//!   with fast back-off after a rejection;
//! - only entries of the current term are committed by counting;
//! - followers acknowledge only entries that storage reported durable.

use crate::config::{Member, MemberKind, NodeId, Role, StreamId, StreamMembers};
use crate::flow::{LoadSample, LoadThresholds, PacingController, PassiveThrottle};
use crate::log::MemLog;
use crate::quorum::{has_quorum, quorum_index, VoterMatch};
use crate::snapshot::SnapshotMeta;
use crate::types::{Entry, EntryKind, Envelope, Index, Message, Term};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// timeouts makes the change fail ([`ConfigChangeError::CatchUpTimeout`]).
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
    /// ([`Action::SendSnapshot`]) when a peer needs entries it compacted
    /// away. Off, such a peer only raises MISSING_LOG (DCF's behaviour).
    pub snapshot_transfer: bool,
    /// Most applied entries kept in memory beyond what replication still
    /// needs; older ones are read back from storage
    /// ([`Action::SendWithStoredEntries`]).
    pub cache_max_entries: usize,
    /// Most bytes of applied entry data kept in memory.
    pub cache_max_bytes: usize,
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
    /// passed to [`StreamCore::new`] comes from (0: the configuration the
    /// stream was first started with). Configuration entries of the log at
    /// or below it are older and ignored.
    pub config_index: Index,
}

/// DCF exception callbacks the core raises.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Exception {
    /// This node is behind the leader's first index: the entries it needs
    /// were truncated away (DCF's MISSING_LOG).
    MissingLog {
        leader: NodeId,
        leader_first_index: Index,
        local_last_index: Index,
    },
    /// The leader (a minority-mode leader, see `crate::minority`) sent
    /// entries that conflict with an entry this node has already
    /// committed. The node never drops a committed entry: it refuses the
    /// leader's appends and raises this every second until the host
    /// rebuilds it (wipes the stream's data and restarts it empty).
    CommittedEntryConflict {
        leader: NodeId,
        index: Index,
        local_commit: Index,
    },
}

/// What the host must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Persist term and vote durably before carrying out later actions.
    SaveHardState(HardState),
    /// Remove every log entry with index >= `from` (before later appends).
    TruncateLog { from: Index },
    /// Append entries to the log (not yet durable); report durability with
    /// [`StreamCore::on_persisted`].
    AppendLog(Vec<Entry>),
    /// Send a message to another node (may be lost).
    Send(Envelope),
    /// Committed entries, in order, for the state machine; report with
    /// [`StreamCore::on_applied`].
    Apply(Vec<Entry>),
    /// A read registered with [`StreamCore::read_index`] may be served once
    /// the host has applied up to `index`.
    ReadReady { ctx: u64, index: Index },
    /// A read could not be confirmed (leadership lost).
    ReadFailed { ctx: u64 },
    /// Role, term or leader changed (DCF's status / election callbacks).
    RoleChanged {
        role: Role,
        term: Term,
        leader: Option<NodeId>,
    },
    /// An exception callback.
    Exception(Exception),
    /// Persist the work mode durably (storage: `ControlFile::save_work_mode`)
    /// and pass it to [`StreamCore::restore_work_mode`] after the next
    /// start. Like [`Action::SaveHardState`], carry it out before later
    /// actions.
    SaveWorkMode(WorkMode),
    /// Send `env` (a [`Message::Append`] or [`Message::LogTail`] without
    /// entries) with the entries `from..=to` read from storage filled in
    /// ([`Message::entries_mut`]): the core no longer holds them in memory.
    SendWithStoredEntries {
        env: Envelope,
        from: Index,
        to: Index,
    },
    /// Peer `to` needs entries below this node's first index: send it the
    /// host's newest checkpoint (see [`crate::snapshot`]). Repeated while
    /// the peer stays behind; report a transfer that failed for good with
    /// [`StreamCore::snapshot_transfer_failed`].
    SendSnapshot { to: NodeId },
    /// Remove every log entry below `first_kept` (the entry before it is
    /// covered by a checkpoint).
    CompactLog { first_kept: Index },
    /// Replace the whole log by an empty one continuing after
    /// (`last`, `last_term`): an installed checkpoint covers everything
    /// up to `last` and the old log did not match it.
    ResetLog { last: Index, last_term: Term },
}

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
/// with [`StreamCore::config_change_status`].
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

#[derive(Clone, Debug)]
enum TicketState {
    CatchingUp { node: NodeId },
    Appended { term: Term, index: Index },
    Failed(ConfigChangeError),
}

#[derive(Clone, Debug)]
struct CatchUp {
    ticket: u64,
    node: NodeId,
    new_members: StreamMembers,
    deadline: u64,
}

#[derive(Clone, Debug)]
struct Transfer {
    target: NodeId,
    deadline: u64,
    sent_at: Option<u64>,
}

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

fn one() -> f64 {
    1.0
}

/// Flow-control state of a leader (see [`crate::flow`]).
#[derive(Clone, Debug, Default)]
struct FlowState {
    pacing: PacingController,
    passive: PassiveThrottle,
    /// (index, proposal time ms) of this leader's proposals not yet committed.
    proposed: VecDeque<(Index, u64)>,
    /// When (ms) the last append carrying entries went to each peer.
    last_append: BTreeMap<NodeId, u64>,
}

/// What merging received entries into the log did.
enum Merge {
    /// Everything up to `verified` now matches the sender's log.
    Merged { verified: Index },
    /// The entry before them does not match: retry from `hint`.
    Rejected { hint: Index },
    /// They conflict with the committed entry at `index`: refused.
    CommittedConflict { index: Index },
}

#[derive(Clone, Debug)]
struct PendingRead {
    ctx: u64,
    index: Index,
    seq: u64,
}

/// The consensus state machine of one stream on one node.
pub struct StreamCore {
    opts: CoreOptions,
    rng: SmallRng,
    now: u64,

    role: Role,
    term: Term,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    last_leader_contact: Option<u64>,
    election_deadline: u64,

    /// Membership in effect (the newest configuration entry in the log).
    members: StreamMembers,
    /// Configuration entries in the log, oldest first; index 0 holds the
    /// configuration the stream started with.
    config_history: Vec<(Index, StreamMembers)>,

    log: MemLog,
    durable: Index,
    commit: Index,
    applied: Index,
    /// Entries up to here were handed out with [`Action::Apply`].
    apply_sent: Index,
    /// `apply_sent` when the host last took the actions: entries up to
    /// here may leave memory.
    apply_taken: Index,

    // candidate state
    votes: BTreeMap<NodeId, bool>,
    transfer_campaign: bool,
    /// The configured LEADER campaigns once at start-up even in MANUAL mode.
    startup_campaign: bool,

    // leader state
    peers: BTreeMap<NodeId, Progress>,
    heartbeat_deadline: u64,
    seq: u64,
    reads: VecDeque<PendingRead>,
    read_round_wanted: bool,
    leader_start_index: Index,
    leader_ready: bool,
    dirty_peers: BTreeSet<NodeId>,
    cluster_min_applied: Index,

    // follower state
    /// Highest index known to match the current leader's log.
    ack_upto: Index,
    /// Highest index acknowledged to the current leader.
    acked: Index,
    last_seq_seen: u64,
    last_missing_log_report: Option<u64>,
    /// Since when (ms) this follower has been behind its leader's first
    /// index (with checkpoint transfer on, MISSING_LOG waits for a while).
    behind_leader_since: Option<u64>,

    work_mode: WorkMode,
    actions: Vec<Action>,

    // configuration changes and leadership
    catching_up: Option<CatchUp>,
    tickets: BTreeMap<u64, TicketState>,
    next_ticket: u64,
    transfer: Option<Transfer>,
    /// Until when (ms) a new leader looks for a higher-priority node.
    priority_check_until: u64,
    priority_attempts: u32,
    last_mode_report: Option<u64>,
    last_conflict_report: Option<u64>,
    flow: FlowState,
}

impl StreamCore {
    /// A stream restarting from `restored` with `members` as the membership
    /// it was configured with, committed at `restored.config_index`
    /// (configuration entries above it in the restored log take
    /// precedence, newest last).
    pub fn new(
        opts: CoreOptions,
        members: StreamMembers,
        restored: Restored,
        now: u64,
    ) -> StreamCore {
        let log = MemLog::new(restored.first_index, restored.prev_term, restored.entries);
        let mut config_history = vec![(restored.config_index, members.clone())];
        let mut effective = members;
        for e in log.iter() {
            if e.kind == EntryKind::Config && e.index > restored.config_index {
                if let Ok(m) = serde_json::from_slice::<StreamMembers>(&e.data) {
                    config_history.push((e.index, m.clone()));
                    effective = m;
                }
            }
        }
        let last = log.last_index();
        let first = log.first_index();
        // Entries below the first index were applied before they were
        // truncated, so they are committed.
        let floor = first.saturating_sub(1);
        // The host may have applied entries that were committed but not yet
        // durable here when it crashed, so its applied index can exceed the
        // restored log: keep it (never hand those entries out again) and
        // start the commit index at what the log holds.
        let applied = restored.applied_index.max(floor);
        let commit = applied.min(last.max(floor));
        let rng = SmallRng::seed_from_u64(opts.seed);
        let mut core = StreamCore {
            opts,
            rng,
            now,
            role: Role::Follower,
            term: restored.hard_state.term,
            voted_for: restored.hard_state.voted_for,
            leader: None,
            last_leader_contact: None,
            election_deadline: 0,
            members: effective,
            config_history,
            log,
            durable: last,
            commit,
            applied,
            apply_sent: applied,
            apply_taken: applied,
            votes: BTreeMap::new(),
            transfer_campaign: false,
            startup_campaign: false,
            peers: BTreeMap::new(),
            heartbeat_deadline: 0,
            seq: 0,
            reads: VecDeque::new(),
            read_round_wanted: false,
            leader_start_index: 0,
            leader_ready: false,
            dirty_peers: BTreeSet::new(),
            cluster_min_applied: 0,
            ack_upto: 0,
            acked: 0,
            last_seq_seen: 0,
            last_missing_log_report: None,
            behind_leader_since: None,
            work_mode: WorkMode::Normal,
            actions: Vec::new(),
            catching_up: None,
            tickets: BTreeMap::new(),
            next_ticket: 1,
            transfer: None,
            priority_check_until: 0,
            priority_attempts: 0,
            last_mode_report: None,
            last_conflict_report: None,
            flow: FlowState::default(),
        };
        core.initial_election_timer();
        core
    }

    // ----- queries -------------------------------------------------------

    pub fn node_id(&self) -> NodeId {
        self.opts.node_id
    }
    pub fn stream_id(&self) -> StreamId {
        self.opts.stream_id
    }
    pub fn role(&self) -> Role {
        self.role
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
        self.role == Role::Leader && self.leader_ready
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
            role: self.role,
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
            peers: if self.role == Role::Leader {
                self.peers.clone()
            } else {
                BTreeMap::new()
            },
            leader_ready: self.is_leader_ready(),
            pacing_value: if self.role == Role::Leader && self.opts.latency_pacing {
                self.flow.pacing.value()
            } else {
                0
            },
            passive_batch_factor: self.flow.passive.factor(),
        }
    }

    /// Takes the actions produced so far (after sending any appends that
    /// proposals made pending, so several proposals share one message).
    ///
    /// Entries handed out by earlier calls that are no longer needed are
    /// dropped from memory first (so the entries of the actions returned
    /// now stay readable with [`StreamCore::entry`] until the next call).
    pub fn take_actions(&mut self) -> Vec<Action> {
        self.trim_cache();
        self.flush();
        self.apply_taken = self.apply_sent;
        std::mem::take(&mut self.actions)
    }

    // ----- parameters ----------------------------------------------------

    pub fn set_election_timeout(&mut self, ms: u64) {
        self.opts.election_timeout_ms = ms.max(1);
        self.reset_election_timer();
    }
    pub fn set_heartbeat_interval(&mut self, ms: u64) {
        self.opts.heartbeat_interval_ms = ms.max(1);
    }
    pub fn set_run_mode(&mut self, mode: RunMode) {
        self.opts.run_mode = mode;
        self.reset_election_timer();
    }
    pub fn set_majority_groups(&mut self, groups: Vec<u32>) {
        self.opts.majority_groups = groups;
    }
    /// MEC_BATCH_SIZE and the FLOW_CONTROL_* thresholds: `max_batch_entries`
    /// entries per message, latency pacing on or off (turning it off
    /// forgets the controller's state).
    pub fn set_flow_params(
        &mut self,
        max_batch_entries: usize,
        latency_pacing: bool,
        thresholds: LoadThresholds,
    ) {
        self.opts.max_batch_entries = max_batch_entries.max(1);
        if !latency_pacing {
            self.flow.pacing.reset();
        }
        self.opts.latency_pacing = latency_pacing;
        self.opts.load_thresholds = thresholds;
    }

    /// A periodic (about once a second) load measurement of this host; when
    /// any value passes its FLOW_CONTROL_* threshold the batches sent to
    /// PASSIVE peers shrink by another factor of 0.8, otherwise they grow
    /// back by one step. Voters are never throttled by this.
    pub fn report_load(&mut self, now: u64, sample: LoadSample) {
        self.now = now.max(self.now);
        let th = self.opts.load_thresholds;
        self.flow.passive.report(&sample, &th);
    }

    /// Leadership operations are only for the leader.
    fn require_leader(&self) -> Result<(), LeadershipError> {
        if self.role == Role::Leader {
            Ok(())
        } else {
            Err(LeadershipError::NotLeader {
                leader: self.leader,
            })
        }
    }

    /// DCF `pause_rep(node, µs)`: the leader sends no entries to `node` for
    /// `duration_us` (heartbeats continue, so the node keeps following and
    /// catches up afterwards). Only on the leader, for a member.
    pub fn pause_replication(
        &mut self,
        now: u64,
        node: NodeId,
        duration_us: u64,
    ) -> Result<(), LeadershipError> {
        self.now = now.max(self.now);
        self.require_leader()?;
        let until = self.now + duration_us.div_ceil(1000);
        match self.peers.get_mut(&node) {
            Some(p) => {
                p.paused_until = until;
                Ok(())
            }
            None => Err(LeadershipError::NotEligible(node)),
        }
    }

    /// DCF `truncate`: forgets entries below `first_kept`, which must be
    /// applied (the host decides; entries not yet applied are kept).
    /// Emits [`Action::CompactLog`] with the index actually kept, which is
    /// also returned.
    pub fn compact_log(&mut self, first_kept: Index) -> Index {
        let keep = first_kept
            .min(self.applied + 1)
            .min(self.log.last_index() + 1);
        if keep > self.log.first_index() {
            self.log.compact_to(keep);
            self.actions.push(Action::CompactLog { first_kept: keep });
        }
        self.log.first_index()
    }

    /// Installs a checkpoint the host received from another node and has
    /// already made its durable state (see [`crate::snapshot`]): the log
    /// continues after it (the matching suffix is kept, anything else is
    /// dropped), everything up to `meta.index` counts as committed and
    /// applied, and `meta.members` is the committed configuration at that
    /// index. Returns false, changing nothing, if the checkpoint is not
    /// ahead of what was handed to the host already
    /// ([`StreamCore::wants_snapshot`] tells in advance).
    pub fn install_snapshot(&mut self, now: u64, meta: SnapshotMeta) -> bool {
        self.now = now.max(self.now);
        if !self.wants_snapshot(meta.index) {
            return false;
        }
        let s = meta.index;
        let keeps_suffix = self.log.term_at(s) == Some(meta.term);
        if keeps_suffix {
            self.log.compact_to(s + 1);
            self.actions.push(Action::CompactLog { first_kept: s + 1 });
        } else {
            self.log.reset(s, meta.term);
            self.actions.push(Action::ResetLog {
                last: s,
                last_term: meta.term,
            });
        }
        self.durable = self.durable.max(s).min(self.log.last_index());
        self.commit = self.commit.max(s);
        self.apply_sent = self.apply_sent.max(s);
        self.apply_taken = self.apply_taken.max(s);
        self.applied = self.applied.max(s);
        // The checkpoint's configuration is committed; entries of the kept
        // suffix that change it stay on top.
        let mut history = vec![(s, meta.members)];
        if keeps_suffix {
            history.extend(self.config_history.iter().filter(|(i, _)| *i > s).cloned());
        }
        self.config_history = history;
        self.members = self
            .config_history
            .last()
            .map(|(_, m)| m.clone())
            .expect("non-empty");
        self.behind_leader_since = None;
        if let Some(leader) = self.leader.filter(|_| self.role == Role::Follower) {
            // A checkpoint holds committed entries only, so it matches any
            // leader's log up to its index.
            self.ack_upto = self.ack_upto.max(s);
            let upto = self.durable.min(self.ack_upto);
            self.acked = self.acked.max(upto);
            self.send(
                leader,
                Message::AppendResponse {
                    term: self.term,
                    success: true,
                    index: upto,
                    last_index: self.log.last_index(),
                    applied_index: self.applied,
                    seq: self.last_seq_seen,
                },
            );
        }
        self.emit_apply();
        true
    }

    /// True if a checkpoint at `index` would move this node forward: it
    /// is past everything already handed to the host for applying.
    pub fn wants_snapshot(&self, index: Index) -> bool {
        self.role != Role::Leader && index > self.apply_sent
    }

    /// The host gave up sending a checkpoint to `to` (none available, or
    /// the transfer failed): the next heartbeat may ask again.
    pub fn snapshot_transfer_failed(&mut self, to: NodeId) {
        if let Some(p) = self.peers.get_mut(&to) {
            p.snapshot_requested_at = None;
        }
    }

    // ----- host events ---------------------------------------------------

    /// Advances the clock: heartbeats, election timeouts, leader lease checks.
    pub fn tick(&mut self, now: u64) {
        self.now = now.max(self.now);
        match self.role {
            Role::Leader => {
                // A minority leader never demotes itself (DCF).
                if self.opts.run_mode == RunMode::Auto
                    && !self.is_minority()
                    && !self.quorum_recently_heard()
                {
                    self.step_down(None);
                    return;
                }
                self.resend_stalled();
                self.pace_tick();
                if self.now >= self.heartbeat_deadline {
                    self.broadcast_heartbeat();
                }
                self.check_catch_up();
                self.check_transfer();
                self.check_priority_handover();
            }
            _ => {
                if self.now >= self.election_deadline {
                    let startup = std::mem::take(&mut self.startup_campaign);
                    if self.may_campaign_on_timeout() || (startup && self.may_lead()) {
                        self.start_pre_vote();
                    } else {
                        self.reset_election_timer();
                    }
                }
            }
        }
    }

    /// Handles a message from another node of this stream.
    pub fn step(&mut self, now: u64, from: NodeId, msg: Message) {
        self.now = now.max(self.now);
        if from == self.opts.node_id || msg.is_host_message() {
            return;
        }
        if matches!(
            msg,
            Message::LogTail { .. } | Message::LogTailResponse { .. }
        ) {
            // Exchanged outside any leadership: terms play no part.
            self.handle_log_tail(from, msg);
            return;
        }
        let mterm = msg.term();
        if mterm > self.term && self.role == Role::Leader && self.is_minority() {
            // A minority leader ignores higher terms: it keeps counting
            // acknowledgements and mode reports, refuses votes, drops the rest.
            match &msg {
                Message::AppendResponse { .. } | Message::WorkModeReport { .. } => {}
                Message::VoteRequest { pre_vote, .. } => {
                    let pre_vote = *pre_vote;
                    self.send(
                        from,
                        Message::VoteResponse {
                            term: self.term,
                            pre_vote,
                            granted: false,
                        },
                    );
                    return;
                }
                _ => return,
            }
        } else if mterm > self.term {
            match &msg {
                Message::VoteRequest { pre_vote: true, .. } => {
                    // Pre-votes never change anyone's term.
                }
                Message::VoteRequest {
                    pre_vote: false,
                    transfer,
                    ..
                } if !*transfer && self.leader_is_live() => {
                    // A live leader is known: refuse without adopting the term.
                    self.send(
                        from,
                        Message::VoteResponse {
                            term: self.term,
                            pre_vote: false,
                            granted: false,
                        },
                    );
                    return;
                }
                Message::VoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                } => {
                    // A granted pre-vote carries the term we asked for.
                }
                Message::AppendResponse { .. }
                | Message::VoteResponse { .. }
                | Message::WorkModeReport { .. } => {
                    self.become_follower(mterm, None);
                }
                Message::Append { .. } | Message::TimeoutNow { .. } => {
                    self.become_follower(mterm, Some(from));
                }
                Message::VoteRequest { .. } => {
                    self.become_follower(mterm, None);
                }
                Message::Forward { .. }
                | Message::ForwardReply { .. }
                | Message::User { .. }
                | Message::SnapshotChunk { .. }
                | Message::SnapshotAck { .. }
                | Message::LogTail { .. }
                | Message::LogTailResponse { .. } => {
                    return;
                }
            }
        } else if mterm < self.term
            && !(matches!(msg, Message::Append { minority: true, .. }) && self.role != Role::Leader)
        {
            // (Normal-mode nodes follow a minority leader even if its term
            // is lower: that case falls through to `handle_append`.)
            match msg {
                Message::Append { .. } => {
                    // Tell the stale leader about the newer term.
                    self.send(
                        from,
                        Message::AppendResponse {
                            term: self.term,
                            success: false,
                            index: 0,
                            last_index: self.log.last_index(),
                            applied_index: self.applied,
                            seq: 0,
                        },
                    );
                }
                Message::VoteRequest { pre_vote, .. } => {
                    self.send(
                        from,
                        Message::VoteResponse {
                            term: self.term,
                            pre_vote,
                            granted: false,
                        },
                    );
                }
                _ => {}
            }
            return;
        }

        match msg {
            Message::VoteRequest {
                term,
                pre_vote,
                last_index,
                last_term,
                ..
            } => self.handle_vote_request(from, term, pre_vote, last_index, last_term),
            Message::VoteResponse {
                term,
                pre_vote,
                granted,
            } => self.handle_vote_response(from, term, pre_vote, granted),
            Message::Append {
                term: _,
                prev_index,
                prev_term,
                entries,
                commit,
                first_index,
                min_applied,
                seq,
                minority,
            } => self.handle_append(
                from,
                prev_index,
                prev_term,
                entries,
                commit,
                first_index,
                min_applied,
                seq,
                minority,
            ),
            Message::AppendResponse {
                success,
                index,
                last_index,
                applied_index,
                seq,
                ..
            } => self.handle_append_response(from, success, index, last_index, applied_index, seq),
            Message::TimeoutNow { .. } => {
                if self.leader == Some(from) && self.may_lead() && self.role != Role::Leader {
                    self.start_election(true);
                }
            }
            Message::WorkModeReport { minority, .. } => {
                let now = self.now;
                if self.role == Role::Leader {
                    if let Some(p) = self.peers.get_mut(&from) {
                        p.minority = minority;
                        p.mode_reported_at = now.max(1);
                    }
                    self.maybe_commit();
                }
            }
            // Host messages are handled by the engine, log tails above.
            Message::Forward { .. }
            | Message::ForwardReply { .. }
            | Message::User { .. }
            | Message::SnapshotChunk { .. }
            | Message::SnapshotAck { .. }
            | Message::LogTail { .. }
            | Message::LogTailResponse { .. } => {}
        }
    }

    /// Appends a client entry (DCF `write` on the leader). Returns its index;
    /// the entry is committed when [`Action::Apply`] hands it out with the
    /// same term, and lost if another entry takes that index.
    pub fn propose(
        &mut self,
        now: u64,
        key: u64,
        data: Vec<u8>,
    ) -> Result<(Term, Index), ProposeError> {
        self.now = now.max(self.now);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if !self.leader_ready {
            return Err(ProposeError::NotReady);
        }
        if self.transfer.is_some() {
            return Err(ProposeError::Transferring);
        }
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            key,
            kind: EntryKind::Data,
            data,
        };
        self.append_local(vec![entry]);
        if self.opts.latency_pacing {
            self.flow.proposed.push_back((index, self.now));
        }
        Ok((self.term, index))
    }

    /// Registers a linearizable read (read index): once a quorum confirms
    /// this node is still leader, [`Action::ReadReady`] gives the index the
    /// host must have applied before it serves the read.
    pub fn read_index(&mut self, now: u64, ctx: u64) -> Result<(), ProposeError> {
        self.now = now.max(self.now);
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if !self.leader_ready {
            return Err(ProposeError::NotReady);
        }
        self.reads.push_back(PendingRead {
            ctx,
            index: self.commit,
            seq: self.seq + 1,
        });
        self.read_round_wanted = true;
        self.check_reads();
        Ok(())
    }

    /// Storage made every entry up to `index` durable, the one at `index`
    /// having `term` (stale reports, for entries since truncated, are ignored).
    pub fn on_persisted(&mut self, now: u64, index: Index, term: Term) {
        self.now = now.max(self.now);
        if index <= self.durable || self.log.term_at(index) != Some(term) {
            return;
        }
        self.durable = index.min(self.log.last_index());
        if self.role == Role::Leader {
            self.maybe_commit();
        } else if let Some(leader) = self.leader {
            let upto = self.durable.min(self.ack_upto);
            if upto > self.acked {
                self.acked = upto;
                self.send(
                    leader,
                    Message::AppendResponse {
                        term: self.term,
                        success: true,
                        index: upto,
                        last_index: self.log.last_index(),
                        applied_index: self.applied,
                        seq: self.last_seq_seen,
                    },
                );
            }
        }
    }

    /// The host applied every entry up to `index`.
    pub fn on_applied(&mut self, index: Index) {
        if index > self.applied {
            self.applied = index.min(self.apply_sent);
        }
        self.check_leader_ready();
    }

    // ----- elections -----------------------------------------------------

    fn self_kind(&self) -> Option<MemberKind> {
        self.members.get(self.opts.node_id).map(|m| m.kind)
    }

    /// True if this node may campaign: it may lead in its newest
    /// configuration, or that configuration is not yet committed and it
    /// may lead in the newest committed one (a voter being removed or made
    /// PASSIVE is still needed until the change commits, e.g. to finish
    /// committing it; its own vote then does not count).
    fn may_lead(&self) -> bool {
        self.self_kind_allows(MemberKind::may_lead)
    }

    /// True if `allowed` holds for this node's kind in the newest
    /// configuration, or (while that one is uncommitted) in the newest
    /// committed one.
    fn self_kind_allows(&self, allowed: fn(MemberKind) -> bool) -> bool {
        self.self_kind().is_some_and(allowed)
            || (self.latest_config_uncommitted()
                && self
                    .committed_config()
                    .get(self.opts.node_id)
                    .is_some_and(|m| allowed(m.kind)))
    }

    fn latest_config_uncommitted(&self) -> bool {
        self.config_history.len() > 1
            && self
                .config_history
                .last()
                .is_some_and(|(i, _)| *i > self.commit)
    }

    fn may_campaign_on_timeout(&self) -> bool {
        self.may_lead() && self.opts.run_mode == RunMode::Auto
    }

    fn leader_is_live(&self) -> bool {
        if self.role == Role::Leader {
            return true;
        }
        match (self.leader, self.last_leader_contact) {
            (Some(_), Some(t)) => self.now < t + self.opts.election_timeout_ms,
            _ => false,
        }
    }

    fn initial_election_timer(&mut self) {
        let t = self.opts.election_timeout_ms;
        let configured_leader = self
            .members
            .get(self.opts.node_id)
            .is_some_and(|m| m.initial_leader);
        let single = self.voter_ids().len() == 1 && self.may_lead();
        if configured_leader || single {
            // The configured LEADER campaigns first at start-up (in every run
            // mode but DISABLE); a single-node stream leads at once.
            if self.opts.run_mode != RunMode::Disable {
                self.startup_campaign = true;
                self.election_deadline = self.now + t / 10;
                if single {
                    self.election_deadline = self.now;
                }
                return;
            }
        }
        self.election_deadline = self.now + t + self.rng.gen_range(0..=t);
    }

    fn reset_election_timer(&mut self) {
        let t = self.opts.election_timeout_ms;
        let jitter = if self.leader.is_some() {
            self.rng.gen_range(0..=t / 10)
        } else {
            self.rng.gen_range(0..=t)
        };
        let base = if self.leader.is_some() { t } else { t / 2 };
        self.election_deadline = self.now + base + jitter;
    }

    fn voter_ids(&self) -> Vec<NodeId> {
        self.members
            .members
            .iter()
            .filter(|m| m.kind.votes())
            .map(|m| m.node_id)
            .collect()
    }

    fn weight_of(&self, id: NodeId) -> u64 {
        self.members
            .get(id)
            .filter(|m| m.kind.votes())
            .map(|m| m.weight as u64)
            .unwrap_or(0)
    }

    fn quorum(&self) -> u64 {
        match self.work_mode {
            WorkMode::Normal => self.members.quorum_weight(),
            WorkMode::Minority { vote_num } => vote_num,
        }
    }

    fn votes_weight(&self) -> u64 {
        self.votes
            .iter()
            .filter(|(_, g)| **g)
            .map(|(id, _)| self.vote_weight(*id))
            .sum()
    }

    fn vote_weight(&self, id: NodeId) -> u64 {
        match self.work_mode {
            WorkMode::Normal => self.weight_of(id),
            WorkMode::Minority { .. } => u64::from(self.weight_of(id) > 0),
        }
    }

    fn start_pre_vote(&mut self) {
        self.role = Role::PreCandidate;
        self.leader = None;
        self.votes.clear();
        self.votes.insert(self.opts.node_id, true);
        self.reset_election_timer();
        self.emit_role();
        if self.votes_weight() >= self.quorum() {
            self.start_election(false);
            return;
        }
        let req = Message::VoteRequest {
            term: self.term + 1,
            pre_vote: true,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer: false,
        };
        for id in self.voter_ids() {
            if id != self.opts.node_id {
                self.send(id, req.clone());
            }
        }
    }

    fn start_election(&mut self, transfer: bool) {
        self.start_election_bumped(transfer, 1);
    }

    fn start_election_bumped(&mut self, transfer: bool, bump: u64) {
        self.role = Role::Candidate;
        self.leader = None;
        self.set_hard_state(self.term + bump, Some(self.opts.node_id));
        self.votes.clear();
        self.votes.insert(self.opts.node_id, true);
        self.transfer_campaign = transfer;
        self.reset_election_timer();
        self.emit_role();
        if self.votes_weight() >= self.quorum() {
            self.become_leader();
            return;
        }
        let req = Message::VoteRequest {
            term: self.term,
            pre_vote: false,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        for id in self.voter_ids() {
            if id != self.opts.node_id {
                self.send(id, req.clone());
            }
        }
    }

    fn log_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    fn handle_vote_request(
        &mut self,
        from: NodeId,
        term: Term,
        pre_vote: bool,
        last_index: Index,
        last_term: Term,
    ) {
        // The candidate must be a voter that may lead in our newest
        // configuration or, while that one is uncommitted, in the newest
        // committed one (a node being removed may still be needed). A node
        // whose removal we know committed gets no vote.
        //
        // Every node answers, whatever its own role: the candidate counts
        // only the votes of the voters of its configuration, and a node
        // that has not yet received the entry making it a voter (a node
        // being added, or a PASSIVE being promoted) must not block the
        // election that would bring it that entry.
        let candidate_votes = self.members.get(from).is_some_and(|m| m.kind.may_lead())
            || (self.latest_config_uncommitted()
                && self
                    .committed_config()
                    .get(from)
                    .is_some_and(|m| m.kind.may_lead()));
        let granted = if pre_vote {
            candidate_votes
                && term > self.term
                && !self.leader_is_live()
                && self.log_up_to_date(last_index, last_term)
        } else {
            candidate_votes
                && term == self.term
                && (self.voted_for.is_none() || self.voted_for == Some(from))
                && self.log_up_to_date(last_index, last_term)
        };
        if granted && !pre_vote {
            self.set_hard_state(self.term, Some(from));
            self.reset_election_timer();
        }
        let term_ok = if pre_vote {
            term > self.term && !self.leader_is_live()
        } else {
            term == self.term && (self.voted_for.is_none() || self.voted_for == Some(from))
        };
        if !granted && candidate_votes && term_ok && self.self_kind() == Some(MemberKind::Logger) {
            // Refused only because the candidate's log is behind ours. A
            // LOGGER never campaigns: if it held the only copy of the
            // freshest entries, no voter could ever win. Hand them over.
            let mut p = last_index.min(self.log.last_index());
            while p >= self.log.first_index() && self.log.term_at(p).is_some_and(|t| t > last_term)
            {
                p = self.log.first_of_term(p, 0) - 1;
            }
            self.send_log_tail(from, p + 1);
        }
        self.send(
            from,
            Message::VoteResponse {
                term: if pre_vote && granted { term } else { self.term },
                pre_vote,
                granted,
            },
        );
    }

    fn handle_vote_response(&mut self, from: NodeId, term: Term, pre_vote: bool, granted: bool) {
        let expected = match (self.role, pre_vote) {
            (Role::PreCandidate, true) => term == self.term + 1 || (!granted && term == self.term),
            (Role::Candidate, false) => term == self.term,
            _ => false,
        };
        if !expected {
            return;
        }
        self.votes.insert(from, granted);
        if self.votes_weight() >= self.quorum() {
            if pre_vote {
                self.start_election(false);
            } else {
                self.become_leader();
            }
        }
    }

    /// The LOGGER side and the candidate side of a log-tail hand-over
    /// (see [`Message::LogTail`]).
    fn handle_log_tail(&mut self, from: NodeId, msg: Message) {
        match msg {
            Message::LogTail {
                prev_index,
                prev_term,
                entries,
                last_index,
                last_term,
                ..
            } => {
                let from_logger =
                    |m: &StreamMembers| m.get(from).map(|x| x.kind) == Some(MemberKind::Logger);
                // Only a node that may lead takes entries from a LOGGER,
                // only while it knows no live leader, and only while the
                // LOGGER's log is still the more up-to-date one (then no
                // entry it replaces can be committed: see the module docs).
                if self.role == Role::Leader
                    || !self.may_lead()
                    || self.leader_is_live()
                    || !(from_logger(&self.members) || from_logger(self.committed_config()))
                    || (last_term, last_index) <= (self.log.last_term(), self.log.last_index())
                {
                    return;
                }
                let (success, index) = match self.merge_entries(prev_index, prev_term, entries) {
                    Merge::Merged { verified } => (true, verified),
                    Merge::Rejected { hint } => (false, hint),
                    Merge::CommittedConflict { index } => {
                        self.report_committed_conflict(from, index);
                        return;
                    }
                };
                let term = self.term;
                self.send(
                    from,
                    Message::LogTailResponse {
                        term,
                        success,
                        index,
                    },
                );
            }
            Message::LogTailResponse { success, index, .. } => {
                if self.self_kind() != Some(MemberKind::Logger) || self.leader_is_live() {
                    return;
                }
                let next = if success { index + 1 } else { index };
                self.send_log_tail(from, next);
            }
            _ => {}
        }
    }

    /// Sends this LOGGER's entries from `next` on (one batch) to a candidate.
    fn send_log_tail(&mut self, to: NodeId, next: Index) {
        if next < self.log.first_index() || next > self.log.last_index() {
            return;
        }
        let prev_index = next - 1;
        let prev_term = self.log.term_at(prev_index).unwrap_or(0);
        let batch = self.opts.max_batch_entries.max(1);
        let msg = |entries| Message::LogTail {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
        };
        if next >= self.log.cached_from() {
            let m = msg(self.log.slice(next, batch));
            self.send(to, m);
        } else {
            let upto = (next + batch as u64 - 1).min(self.log.cached_from() - 1);
            let env = Envelope {
                stream: self.opts.stream_id,
                from: self.opts.node_id,
                to,
                msg: msg(Vec::new()),
            };
            self.actions.push(Action::SendWithStoredEntries {
                env,
                from: next,
                to: upto,
            });
        }
    }

    fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        let was_leader = self.role == Role::Leader;
        if term > self.term {
            self.set_hard_state(term, None);
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.transfer_campaign = false;
        if leader.is_some() {
            self.last_leader_contact = Some(self.now);
        }
        self.ack_upto = 0;
        self.acked = 0;
        // Heartbeat rounds are counted per leader: never echo one leader's
        // round to another (it would confirm reads that were never seen).
        self.last_seq_seen = 0;
        if was_leader {
            self.leave_leadership();
        }
        self.reset_election_timer();
        self.emit_role();
    }

    fn step_down(&mut self, leader: Option<NodeId>) {
        self.become_follower(self.term, leader);
    }

    fn leave_leadership(&mut self) {
        self.peers.clear();
        self.dirty_peers.clear();
        self.leader_ready = false;
        self.transfer = None;
        self.priority_attempts = 0;
        if let Some(c) = self.catching_up.take() {
            self.set_ticket(
                c.ticket,
                TicketState::Failed(ConfigChangeError::LeadershipLost),
            );
        }
        while let Some(r) = self.reads.pop_front() {
            self.actions.push(Action::ReadFailed { ctx: r.ctx });
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.opts.node_id);
        self.votes.clear();
        self.transfer_campaign = false;
        self.leader_ready = false;
        let last = self.log.last_index();
        self.peers.clear();
        self.transfer = None;
        self.catching_up = None;
        // Latency history of an earlier term says little about this one.
        self.flow.pacing.reset();
        self.flow.proposed.clear();
        self.flow.last_append.clear();
        self.sync_peers();
        self.emit_role();
        // Every new leader first appends a configuration entry of its own term.
        let data = serde_json::to_vec(&self.members).unwrap_or_default();
        let entry = Entry {
            term: self.term,
            index: last + 1,
            key: 0,
            kind: EntryKind::Config,
            data,
        };
        self.leader_start_index = last + 1;
        self.append_local(vec![entry]);
        self.broadcast_heartbeat();
        self.maybe_commit();
    }

    // ----- replication: follower side -------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn handle_append(
        &mut self,
        from: NodeId,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
        commit: Index,
        leader_first: Index,
        min_applied: Index,
        seq: u64,
        leader_minority: bool,
    ) {
        if self.role == Role::Leader {
            // Two leaders in one term cannot happen; ignore defensively.
            return;
        }
        if self.role != Role::Follower || self.leader != Some(from) {
            let was = self.role;
            self.role = Role::Follower;
            self.leader = Some(from);
            self.votes.clear();
            self.ack_upto = 0;
            self.acked = 0;
            self.last_seq_seen = 0;
            let _ = was;
            self.emit_role();
        }
        self.last_leader_contact = Some(self.now);
        self.last_seq_seen = self.last_seq_seen.max(seq);
        self.cluster_min_applied = min_applied;
        self.reset_election_timer();
        if leader_minority || self.is_minority() {
            self.report_mode_to(from, false);
        }

        let last = self.log.last_index();
        let reject = |core: &mut StreamCore, hint: Index| {
            core.send(
                from,
                Message::AppendResponse {
                    term: core.term,
                    success: false,
                    index: hint.max(1),
                    last_index: core.log.last_index(),
                    applied_index: core.applied,
                    seq,
                },
            );
        };
        let behind = leader_first > 0 && last + 1 < leader_first && prev_index > last;
        if !behind {
            self.behind_leader_since = None;
        } else {
            let since = *self.behind_leader_since.get_or_insert(self.now);
            // With checkpoint transfer on, the leader sends one: only a
            // node left behind for long reports the missing entries.
            let waited = !self.opts.snapshot_transfer
                || self.now >= since + 5 * self.opts.election_timeout_ms;
            let report_due = self
                .last_missing_log_report
                .is_none_or(|t| self.now >= t + 1000);
            if waited && report_due {
                self.last_missing_log_report = Some(self.now);
                self.actions.push(Action::Exception(Exception::MissingLog {
                    leader: from,
                    leader_first_index: leader_first,
                    local_last_index: last,
                }));
            }
        }
        let verified = match self.merge_entries(prev_index, prev_term, entries) {
            Merge::Merged { verified } => verified,
            Merge::Rejected { hint } => {
                reject(self, hint);
                return;
            }
            Merge::CommittedConflict { index } => {
                // A committed entry can never be overwritten; a leader
                // asking for it is broken (or a minority leader that
                // lacks what the lost majority committed). Refuse the
                // message and tell the host.
                self.report_committed_conflict(from, index);
                return;
            }
        };
        self.ack_upto = self.ack_upto.max(verified);
        let new_commit = commit.min(verified);
        if new_commit > self.commit {
            self.commit = new_commit;
            self.emit_apply();
        }
        let upto = self.durable.min(self.ack_upto);
        self.acked = self.acked.max(upto);
        self.send(
            from,
            Message::AppendResponse {
                term: self.term,
                success: true,
                index: upto,
                last_index: self.log.last_index(),
                applied_index: self.applied,
                seq,
            },
        );
    }

    /// Merges entries that follow (`prev_index`, `prev_term`) into the log:
    /// entries already present are skipped, the log is truncated at the
    /// first conflict and the rest appended. Never touches a committed
    /// entry.
    fn merge_entries(&mut self, prev_index: Index, prev_term: Term, entries: Vec<Entry>) -> Merge {
        let last = self.log.last_index();
        if prev_index > last {
            return Merge::Rejected { hint: last + 1 };
        }
        // Entries at or below our prefix boundary are committed and match.
        let boundary = self.log.first_index() - 1;
        let mut entries = entries;
        let mut prev_index = prev_index;
        if prev_index < boundary {
            entries.retain(|e| e.index > boundary);
            prev_index = boundary;
        } else if self.log.term_at(prev_index) != Some(prev_term) {
            let floor = self.commit + 1;
            let hint = self.log.first_of_term(prev_index, floor);
            return Merge::Rejected { hint };
        }
        let verified = prev_index.max(entries.last().map(|e| e.index).unwrap_or(prev_index));
        // Skip entries we already have; truncate at the first conflict.
        let mut new_from = None;
        for (i, e) in entries.iter().enumerate() {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    if e.index <= self.commit {
                        return Merge::CommittedConflict { index: e.index };
                    }
                    self.truncate_local(e.index);
                    new_from = Some(i);
                    break;
                }
                None => {
                    new_from = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = new_from {
            let fresh: Vec<Entry> = entries[i..].to_vec();
            self.append_local(fresh);
        }
        Merge::Merged { verified }
    }

    /// Raises COMMITTED_ENTRY_CONFLICT (at most once a second).
    fn report_committed_conflict(&mut self, from: NodeId, index: Index) {
        let due = self
            .last_conflict_report
            .is_none_or(|t| self.now >= t + 1000);
        if due {
            self.last_conflict_report = Some(self.now);
            self.actions
                .push(Action::Exception(Exception::CommittedEntryConflict {
                    leader: from,
                    index,
                    local_commit: self.commit,
                }));
        }
    }

    // ----- replication: leader side ---------------------------------------

    fn handle_append_response(
        &mut self,
        from: NodeId,
        success: bool,
        index: Index,
        _last_index: Index,
        applied: Index,
        seq: u64,
    ) {
        if self.role != Role::Leader {
            return;
        }
        let last = self.log.last_index();
        let now = self.now;
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        p.last_response = now;
        p.apply_index = applied;
        p.seq_acked = p.seq_acked.max(seq);
        if success {
            if index > p.match_index {
                p.match_index = index.min(last);
                p.last_progress = now;
                p.snapshot_requested_at = None;
            }
            if p.match_index >= last {
                p.last_progress = now;
            }
            if p.next_index <= p.match_index {
                p.next_index = p.match_index + 1;
            }
            if p.probing {
                p.probing = false;
                p.next_index = p.next_index.max(p.match_index + 1);
            }
            self.dirty_peers.insert(from);
            self.maybe_commit();
        } else {
            // Fast back-off: jump to the follower's hint. A hint at or
            // below the match index means the follower lost entries it had
            // acknowledged (a damaged disk, or a stale reply): lower the
            // match index so they are sent again. The commit index never
            // moves back, so this only delays later commits.
            let hint = index.max(1);
            if hint <= p.match_index {
                p.match_index = hint - 1;
            }
            p.next_index = hint.min(p.next_index.max(p.match_index + 1)).max(1);
            p.probing = true;
            // A follower behind our first index cannot be helped by
            // retrying at once (it raised MISSING_LOG); heartbeats probe it.
            if p.next_index >= self.log.first_index() {
                self.send_append(from, true);
            }
        }
        self.update_cluster_min_applied();
        self.check_reads();
        self.check_catch_up();
        self.check_transfer();
    }

    fn update_cluster_min_applied(&mut self) {
        let mut min = self.applied;
        for p in self.peers.values() {
            min = min.min(p.apply_index);
        }
        self.cluster_min_applied = min;
    }

    /// Sends the next batch to a peer. In probing mode at most one message
    /// is outstanding (`force` sends anyway, used for heartbeats and
    /// rejections); otherwise batches are pipelined.
    fn send_append(&mut self, to: NodeId, force: bool) {
        let Some(p) = self.peers.get(&to).cloned() else {
            return;
        };
        let first = self.log.first_index();
        if p.next_index < first {
            self.request_snapshot(to);
        }
        let mut next = p.next_index.max(first).max(1);
        if p.probing && !force {
            return;
        }
        let last = self.log.last_index();
        let inflight = next.saturating_sub(p.match_index + 1);
        let limit_reached = inflight >= self.opts.max_inflight_entries;
        let paused = self.now < p.paused_until;
        let paced = !p.probing && self.pacing_holds(to);
        let batch = self.batch_limit(to);
        let mut entries = Vec::new();
        let mut stored = None;
        if !(limit_reached || paused || paced) && next <= last {
            if next >= self.log.cached_from() {
                entries = self.log.slice(next, batch);
                entries.truncate((last + 1 - next) as usize);
            } else {
                let upto = (next + batch as u64 - 1)
                    .min(self.log.cached_from() - 1)
                    .min(last);
                stored = Some(upto);
            }
        }
        if entries.is_empty() && stored.is_none() && !force {
            return;
        }
        if next > last + 1 {
            next = last + 1;
        }
        let prev_index = next - 1;
        let prev_term = self.log.term_at(prev_index).unwrap_or(0);
        let sent_upto = entries.last().map(|e| e.index).or(stored);
        let msg = Message::Append {
            term: self.term,
            prev_index,
            prev_term,
            entries,
            commit: self.commit,
            first_index: first,
            min_applied: self.cluster_min_applied,
            seq: self.seq,
            minority: self.is_minority(),
        };
        if let Some(p) = self.peers.get_mut(&to) {
            if let (Some(upto), false) = (sent_upto, p.probing) {
                p.next_index = upto + 1;
            }
        }
        if sent_upto.is_some() {
            self.flow.last_append.insert(to, self.now);
        }
        match stored {
            Some(upto) => self.actions.push(Action::SendWithStoredEntries {
                env: Envelope {
                    stream: self.opts.stream_id,
                    from: self.opts.node_id,
                    to,
                    msg,
                },
                from: next,
                to: upto,
            }),
            None => self.send(to, msg),
        }
    }

    /// Asks the host to send a checkpoint to `to`, which needs entries
    /// below the first index (at most once per two election timeouts
    /// while no transfer result came back).
    fn request_snapshot(&mut self, to: NodeId) {
        if !self.opts.snapshot_transfer {
            return;
        }
        let now = self.now;
        let retry = 2 * self.opts.election_timeout_ms;
        let Some(p) = self.peers.get_mut(&to) else {
            return;
        };
        if p.snapshot_requested_at.is_some_and(|t| now < t + retry) {
            return;
        }
        p.snapshot_requested_at = Some(now);
        self.actions.push(Action::SendSnapshot { to });
    }

    /// Drops from memory the entries that are applied and that neither
    /// replication nor the recent-entries allowance needs any more
    /// ([`CoreOptions::cache_max_entries`], [`CoreOptions::cache_max_bytes`]);
    /// they stay in storage.
    fn trim_cache(&mut self) {
        let last = self.log.last_index();
        let unapplied = self.apply_taken + 1;
        let recent = (last + 1).saturating_sub(self.opts.cache_max_entries as u64);
        let mut floor = recent;
        if self.role == Role::Leader {
            // Peers that are not far behind get their entries from memory.
            let wanted = self
                .peers
                .values()
                .map(|p| p.match_index + 1)
                .filter(|i| *i >= recent.saturating_sub(self.opts.max_batch_entries as u64))
                .min();
            if let Some(w) = wanted {
                floor = floor.min(w);
            }
        }
        let floor = floor.min(unapplied);
        if floor > self.log.cached_from() {
            self.log.evict_below(floor);
        }
        while self.log.cached().1 > self.opts.cache_max_bytes && self.log.cached_from() < unapplied
        {
            let next = self.log.cached_from() + 1;
            self.log.evict_below(next);
        }
    }

    // ----- flow control (see `crate::flow`) ---------------------------------

    /// Entries per message to `to`: MEC_BATCH_SIZE (or the default), shrunk
    /// for PASSIVE peers while the host is overloaded.
    fn batch_limit(&self, to: NodeId) -> usize {
        let max = self.opts.max_batch_entries.max(1);
        match self.members.get(to).map(|m| m.kind) {
            Some(MemberKind::Passive) => self.flow.passive.batch(max),
            _ => max,
        }
    }

    /// True while the pacing gap since the last append with entries to `to`
    /// has not passed; the entries then go with the first send after it.
    fn pacing_holds(&self, to: NodeId) -> bool {
        if !self.opts.latency_pacing {
            return false;
        }
        let gap_us = self.flow.pacing.gap_us();
        gap_us > 0
            && self
                .flow
                .last_append
                .get(&to)
                .is_some_and(|t| self.now.saturating_sub(*t) * 1000 < gap_us)
    }

    /// Leader tick: closes commit-latency windows and retries peers whose
    /// entries were held back by pacing.
    fn pace_tick(&mut self) {
        if !self.opts.latency_pacing {
            return;
        }
        self.flow.pacing.on_time(self.now);
        if self.flow.pacing.gap_us() == 0 {
            return;
        }
        let last = self.log.last_index();
        let now = self.now;
        for (id, p) in &self.peers {
            if !p.probing && p.next_index <= last && now >= p.paused_until {
                self.dirty_peers.insert(*id);
            }
        }
    }

    /// Feeds the latency (proposal to commit) of newly committed entries of
    /// this leader to the pacing controller.
    fn observe_commits(&mut self) {
        while let Some(&(index, at)) = self.flow.proposed.front() {
            if index > self.commit {
                break;
            }
            self.flow.proposed.pop_front();
            self.flow
                .pacing
                .record_commit(self.now.saturating_sub(at) * 1000);
        }
    }

    fn broadcast_heartbeat(&mut self) {
        self.seq += 1;
        self.read_round_wanted = false;
        self.heartbeat_deadline = self.now + self.opts.heartbeat_interval_ms;
        let ids: Vec<NodeId> = self.peers.keys().copied().collect();
        for id in ids {
            self.send_append(id, true);
        }
        self.check_reads();
    }

    /// A pipelined peer that stopped acknowledging for an election timeout
    /// probably lost messages: go back to probing from its match index.
    fn resend_stalled(&mut self) {
        let t = self.opts.election_timeout_ms;
        let now = self.now;
        for p in self.peers.values_mut() {
            if !p.probing && p.next_index > p.match_index + 1 && now >= p.last_progress + t {
                p.probing = true;
                p.next_index = p.match_index + 1;
                p.last_progress = now;
            }
        }
    }

    fn quorum_recently_heard(&self) -> bool {
        let window = 2 * self.opts.election_timeout_ms;
        let now = self.now;
        let heard = self
            .voter_ids()
            .into_iter()
            .filter(|id| {
                *id == self.opts.node_id
                    || self
                        .peers
                        .get(id)
                        .is_some_and(|p| now < p.last_response + window)
            })
            .map(|id| self.vote_weight(id));
        has_quorum(heard, self.quorum())
    }

    fn maybe_commit(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        if let WorkMode::Minority { vote_num } = self.work_mode {
            self.maybe_commit_minority(vote_num);
            return;
        }
        let mut voters = Vec::new();
        for m in &self.members.members {
            if !m.kind.votes() {
                continue;
            }
            let matched = if m.node_id == self.opts.node_id {
                self.durable
            } else {
                self.peers
                    .get(&m.node_id)
                    .map(|p| p.match_index)
                    .unwrap_or(0)
            };
            voters.push(VoterMatch {
                node_id: m.node_id,
                weight: self.vote_weight(m.node_id),
                group: m.group,
                matched,
            });
        }
        let n = quorum_index(&voters, self.quorum(), &self.opts.majority_groups);
        self.advance_leader_commit(n);
    }

    fn advance_leader_commit(&mut self, n: Index) {
        if n > self.commit && self.log.term_at(n) == Some(self.term) {
            self.commit = n;
            self.emit_apply();
            self.check_reads();
            self.on_leader_commit_advanced();
        }
    }

    /// A new leader takes writes once everything up to its own first entry
    /// is committed and handed to the host for applying (the host applies
    /// in order, so later writes are applied after it).
    fn check_leader_ready(&mut self) {
        if self.role == Role::Leader
            && !self.leader_ready
            && self.apply_sent >= self.leader_start_index
            && self.commit >= self.leader_start_index
        {
            self.leader_ready = true;
            self.arm_priority_check();
        }
    }

    fn check_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        while let Some(r) = self.reads.front() {
            let confirmed = {
                let seq = r.seq;
                let weights = self.voter_ids().into_iter().filter_map(|id| {
                    if id == self.opts.node_id {
                        Some(self.vote_weight(id))
                    } else {
                        self.peers
                            .get(&id)
                            .filter(|p| p.seq_acked >= seq)
                            .map(|_| self.vote_weight(id))
                    }
                });
                has_quorum(weights, self.quorum()) && seq <= self.seq
            };
            if !confirmed {
                break;
            }
            let r = self.reads.pop_front().expect("front exists");
            self.actions.push(Action::ReadReady {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    // ----- local log changes ----------------------------------------------

    fn append_local(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut config_changed = false;
        let base = self.config_history[0].0;
        for e in &entries {
            if e.kind == EntryKind::Config && e.index > base {
                if let Ok(m) = serde_json::from_slice::<StreamMembers>(&e.data) {
                    self.config_history.push((e.index, m.clone()));
                    self.members = m;
                    config_changed = true;
                }
            }
        }
        self.log.append(&entries);
        if config_changed {
            self.sync_peers();
            self.emit_apply();
        }
        if self.role == Role::Leader {
            let ids: Vec<NodeId> = self.peers.keys().copied().collect();
            self.dirty_peers.extend(ids);
        }
        self.actions.push(Action::AppendLog(entries));
    }

    fn truncate_local(&mut self, from: Index) {
        self.log.truncate_from(from);
        self.durable = self.durable.min(from.saturating_sub(1));
        self.ack_upto = self.ack_upto.min(from.saturating_sub(1));
        // A configuration entry removed by truncation rolls the
        // configuration back to the newest one still in the log.
        let before = self.config_history.len();
        let base = self.config_history[0].clone();
        self.config_history.retain(|(i, _)| *i < from);
        if self.config_history.first() != Some(&base) {
            self.config_history.insert(0, base);
        }
        if self.config_history.len() != before {
            self.members = self
                .config_history
                .last()
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
        }
        self.actions.push(Action::TruncateLog { from });
    }

    fn emit_apply(&mut self) {
        // A node that is not (or no longer, or not yet) a member applies
        // nothing until it learns it is one: a fresh node may start with a
        // configuration that does not list it, and a removed LOGGER must
        // not start applying in the middle of the log.
        // (A leader removing itself keeps applying until the removal
        // commits: the newest committed configuration still lists it.)
        let me = self.opts.node_id;
        let Some(kind) = self
            .self_kind()
            .or_else(|| self.committed_config().get(me).map(|m| m.kind))
        else {
            return;
        };
        let applies = kind.applies();
        if self.commit <= self.apply_sent {
            return;
        }
        if !applies {
            // LOGGER nodes apply nothing; their applied index follows commit.
            self.apply_sent = self.commit;
            self.applied = self.commit;
            self.check_leader_ready();
            return;
        }
        let mut from = self.apply_sent + 1;
        while from <= self.commit {
            let batch = self
                .log
                .slice(from, (self.commit - from + 1).min(4096) as usize);
            if batch.is_empty() {
                break;
            }
            from = batch.last().map(|e| e.index + 1).unwrap_or(from);
            self.apply_sent = from - 1;
            self.actions.push(Action::Apply(batch));
        }
        self.check_leader_ready();
    }

    /// Sends pending appends to peers (called by [`take_actions`]).
    fn flush(&mut self) {
        if self.role != Role::Leader {
            self.flow.proposed.clear();
            return;
        }
        self.observe_commits();
        if self.read_round_wanted {
            self.broadcast_heartbeat();
        }
        let dirty: Vec<NodeId> = std::mem::take(&mut self.dirty_peers).into_iter().collect();
        for id in dirty {
            // Keep sending batches until the peer is caught up or the
            // in-flight limit is reached.
            for _ in 0..64 {
                let before = self.peers.get(&id).map(|p| p.next_index);
                self.send_append(id, false);
                let after = self.peers.get(&id).map(|p| p.next_index);
                if before == after {
                    break;
                }
            }
        }
    }

    // ----- helpers ----------------------------------------------------------

    fn set_hard_state(&mut self, term: Term, voted_for: Option<NodeId>) {
        if term != self.term || voted_for != self.voted_for {
            self.term = term;
            self.voted_for = voted_for;
            self.actions
                .push(Action::SaveHardState(HardState { term, voted_for }));
        }
    }

    fn emit_role(&mut self) {
        self.actions.push(Action::RoleChanged {
            role: self.role,
            term: self.term,
            leader: self.leader,
        });
    }

    fn send(&mut self, to: NodeId, msg: Message) {
        self.actions.push(Action::Send(Envelope {
            stream: self.opts.stream_id,
            from: self.opts.node_id,
            to,
            msg,
        }));
    }
}

// ----- membership, leadership transfer, priority, work mode ------------------

/// The voting weight of a member (0 if it does not vote or is absent).
fn voting_weight(m: &StreamMembers, id: NodeId) -> u64 {
    m.get(id)
        .filter(|x| x.kind.votes())
        .map(|x| x.weight as u64)
        .unwrap_or(0)
}

/// Checks that `new` differs from `old` in at most one member and that
/// every weighted quorum of `old` intersects every weighted quorum of
/// `new` (so two leaders can never be elected, nor two entries committed,
/// by disjoint quorums of the two configurations).
///
/// With `x` the changed node, `S` the common voters' weight and `w_o`,
/// `w_n` its old and new voting weight, two disjoint quorums would need
/// `q_old + q_new <= S + max(w_o, w_n)`, so the change is safe when
/// `q_old + q_new > S + max(w_o, w_n)`. Adding or removing a voter of
/// weight 1 always passes; heavier voters may not.
pub fn check_single_change(
    old: &StreamMembers,
    new: &StreamMembers,
) -> Result<(), ConfigChangeError> {
    let mut ids: BTreeSet<NodeId> = old.ids().collect();
    ids.extend(new.ids());
    let changed: Vec<NodeId> = ids
        .iter()
        .copied()
        .filter(|id| old.get(*id) != new.get(*id))
        .collect();
    if changed.is_empty() {
        return Err(ConfigChangeError::NoChange);
    }
    if changed.len() > 1 {
        return Err(ConfigChangeError::InvalidMember(
            "only one node may change at a time".into(),
        ));
    }
    if !new.members.iter().any(|m| m.kind.may_lead()) {
        return Err(ConfigChangeError::NoLeaderCandidate);
    }
    let x = changed[0];
    let (w_o, w_n) = (voting_weight(old, x), voting_weight(new, x));
    if w_o == w_n {
        return Ok(());
    }
    let s = old.total_voter_weight() - w_o;
    let (q_o, q_n) = (old.quorum_weight(), new.quorum_weight());
    if q_o + q_n > s + w_o.max(w_n) {
        Ok(())
    } else {
        Err(ConfigChangeError::UnsafeQuorumChange {
            old_quorum: q_o,
            new_quorum: q_n,
        })
    }
}

impl StreamCore {
    // ----- public API: membership ---------------------------------------

    /// Adds a member (DCF `add_member`, one node at a time). A voting
    /// member (Voter / Logger) first catches up as a non-voting peer and
    /// the configuration entry is appended once its match index is within
    /// `catchup_max_lag` of the leader's last index
    /// ([`ConfigChangeStarted::CatchingUp`]); a PASSIVE member is appended
    /// at once. `initial_leader` is cleared.
    pub fn add_member(
        &mut self,
        now: u64,
        member: Member,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        self.now = now.max(self.now);
        self.check_may_change()?;
        if member.node_id == 0 || member.node_id > 255 {
            return Err(ConfigChangeError::InvalidMember(
                "node_id must be in 1..255".into(),
            ));
        }
        if member.weight == 0 || member.weight > 255 {
            return Err(ConfigChangeError::InvalidMember(
                "weight must be in 1..255".into(),
            ));
        }
        if self.members.get(member.node_id).is_some() {
            return Err(ConfigChangeError::AlreadyMember(member.node_id));
        }
        let mut new = self.members.clone();
        let mut member = member;
        member.initial_leader = false;
        let node = member.node_id;
        let votes = member.kind.votes();
        new.members.push(member);
        new.members.sort_by_key(|m| m.node_id);
        check_single_change(&self.members, &new)?;
        self.begin_change(new, votes.then_some(node))
    }

    /// Removes a member (DCF `remove_member`). Removing the leader itself
    /// is allowed: it keeps leading until the entry commits, then hands
    /// over (TimeoutNow to the most caught-up voter) and steps down.
    pub fn remove_member(
        &mut self,
        now: u64,
        node: NodeId,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        self.now = now.max(self.now);
        self.check_may_change()?;
        if self.members.get(node).is_none() {
            return Err(ConfigChangeError::UnknownNode(node));
        }
        let mut new = self.members.clone();
        new.members.retain(|m| m.node_id != node);
        check_single_change(&self.members, &new)?;
        self.begin_change(new, None)
    }

    /// Changes a member's role. Rule: only FOLLOWER (Voter) <-> PASSIVE,
    /// for a node other than the leader, and only if (a) switching a voter
    /// to PASSIVE keeps DCF's rule "more than 3 voters" (counted before the
    /// change), (b) every weighted quorum of the old configuration
    /// intersects every weighted quorum of the new one
    /// ([`check_single_change`]; a voter of weight > 1 may fail this), and
    /// (c) a voter that may lead remains. Changes to or from LOGGER are
    /// refused ([`ConfigChangeError::LoggerRoleChange`]): a LOGGER keeps no
    /// state machine, so it cannot start applying in the middle of the
    /// log, and an applying node that became a LOGGER would leave a gap in
    /// its state machine if the change were rolled back by truncation. A
    /// PASSIVE node that becomes a voter catches up first, like an added
    /// node.
    pub fn change_member_role(
        &mut self,
        now: u64,
        node: NodeId,
        kind: MemberKind,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        self.now = now.max(self.now);
        self.check_may_change()?;
        let Some(cur) = self.members.get(node).cloned() else {
            return Err(ConfigChangeError::UnknownNode(node));
        };
        if node == self.opts.node_id {
            return Err(ConfigChangeError::LeaderOwnRole);
        }
        if cur.kind == kind {
            return Err(ConfigChangeError::NoChange);
        }
        if cur.kind == MemberKind::Logger || kind == MemberKind::Logger {
            return Err(ConfigChangeError::LoggerRoleChange);
        }
        if cur.kind.votes() && kind == MemberKind::Passive {
            let voters = self.voter_ids().len();
            if voters <= 3 {
                return Err(ConfigChangeError::TooFewVoters { voters });
            }
        }
        let mut new = self.members.clone();
        for m in new.members.iter_mut() {
            if m.node_id == node {
                m.kind = kind;
                if !kind.may_lead() {
                    m.initial_leader = false;
                }
            }
        }
        check_single_change(&self.members, &new)?;
        let catch_up = (!cur.kind.votes() && kind.votes()).then_some(node);
        self.begin_change(new, catch_up)
    }

    /// Changes a member's election priority through a configuration entry
    /// (one change at a time, like membership).
    pub fn set_election_priority(
        &mut self,
        now: u64,
        node: NodeId,
        priority: u64,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        self.now = now.max(self.now);
        self.check_may_change()?;
        if self.members.get(node).is_none() {
            return Err(ConfigChangeError::UnknownNode(node));
        }
        let mut new = self.members.clone();
        for m in new.members.iter_mut() {
            if m.node_id == node {
                m.priority = priority;
            }
        }
        check_single_change(&self.members, &new)?;
        self.begin_change(new, None)
    }

    /// The change in flight on this leader: a node catching up, or the
    /// newest configuration entry above the commit index. `None` on
    /// non-leaders and when nothing is in flight.
    /// The member being added that is still catching up (the host's
    /// transport must already reach it), if any.
    pub fn catching_up_member(&self) -> Option<&crate::config::Member> {
        self.catching_up
            .as_ref()
            .and_then(|c| c.new_members.get(c.node))
    }

    pub fn pending_config_change(&self) -> Option<PendingConfigChange> {
        if self.role != Role::Leader {
            return None;
        }
        if let Some(c) = &self.catching_up {
            return Some(PendingConfigChange {
                ticket: Some(c.ticket),
                status: ConfigChangeStatus::CatchingUp { node: c.node },
            });
        }
        if !self.latest_config_uncommitted() {
            return None;
        }
        let (index, _) = self.config_history.last()?;
        let term = self.log.term_at(*index).unwrap_or(0);
        let ticket = self.tickets.iter().find_map(|(t, s)| match s {
            TicketState::Appended {
                term: tt,
                index: ii,
            } if *tt == term && ii == index => Some(*t),
            _ => None,
        });
        Some(PendingConfigChange {
            ticket,
            status: ConfigChangeStatus::Appended {
                term,
                index: *index,
            },
        })
    }

    /// Where the change with `ticket` stands (valid on the node that issued
    /// it, also after it lost leadership).
    pub fn config_change_status(&self, ticket: u64) -> ConfigChangeStatus {
        match self.tickets.get(&ticket) {
            None => ConfigChangeStatus::Unknown,
            Some(TicketState::CatchingUp { node }) => {
                ConfigChangeStatus::CatchingUp { node: *node }
            }
            Some(TicketState::Failed(e)) => ConfigChangeStatus::Failed(e.clone()),
            Some(TicketState::Appended { term, index }) => {
                let (term, index) = (*term, *index);
                match self.log.term_at(index) {
                    Some(t) if t == term && index <= self.commit => {
                        ConfigChangeStatus::Committed { term, index }
                    }
                    Some(t) if t == term => ConfigChangeStatus::Appended { term, index },
                    Some(_) => ConfigChangeStatus::Failed(ConfigChangeError::Overwritten),
                    None if index > self.log.last_index() => {
                        ConfigChangeStatus::Failed(ConfigChangeError::Overwritten)
                    }
                    None => ConfigChangeStatus::Unknown,
                }
            }
        }
    }

    // ----- public API: leadership -----------------------------------------

    /// DCF `promote_leader` on the leader: blocks new proposals
    /// ([`ProposeError::Transferring`]), lets `target` catch up, then sends
    /// it `TimeoutNow` so it campaigns at once. After `timeout_ms` without
    /// success the transfer is abandoned and proposals are accepted again.
    /// Success shows as [`Action::RoleChanged`] (this node becomes a
    /// follower of `target`). Promoting the leader itself is a no-op.
    pub fn promote(
        &mut self,
        now: u64,
        target: NodeId,
        timeout_ms: u64,
    ) -> Result<(), LeadershipError> {
        self.now = now.max(self.now);
        self.require_leader()?;
        if target == self.opts.node_id {
            return Ok(());
        }
        if self.is_minority() {
            return Err(LeadershipError::MinorityMode);
        }
        if let Some(t) = &self.transfer {
            return Err(LeadershipError::TransferInProgress(t.target));
        }
        if !self.members.get(target).is_some_and(|m| m.kind.may_lead())
            || !self.peers.contains_key(&target)
        {
            return Err(LeadershipError::NotEligible(target));
        }
        self.transfer = Some(Transfer {
            target,
            deadline: self.now + timeout_ms.max(1),
            sent_at: None,
        });
        self.dirty_peers.insert(target);
        self.check_transfer();
        Ok(())
    }

    /// DCF `demote` on the leader: hands over to the most caught-up voter
    /// that may lead and answered within an election timeout (returns it),
    /// or, if there is none, steps down (returns `None`).
    pub fn demote(&mut self, now: u64) -> Result<Option<NodeId>, LeadershipError> {
        self.now = now.max(self.now);
        self.require_leader()?;
        if let Some(t) = &self.transfer {
            return Err(LeadershipError::TransferInProgress(t.target));
        }
        match self.best_successor(false) {
            Some(target) if !self.is_minority() => {
                let t = self.opts.election_timeout_ms;
                self.promote(now, target, t)?;
                Ok(Some(target))
            }
            _ => {
                self.step_down(None);
                Ok(None)
            }
        }
    }

    /// DCF `timeout_notify`: this node treats its leader as lost and starts
    /// an election now (with pre-vote, so a live leader still known to a
    /// quorum is not disturbed).
    pub fn timeout_notify(&mut self, now: u64) -> Result<(), LeadershipError> {
        self.now = now.max(self.now);
        if self.role == Role::Leader {
            return Err(LeadershipError::IsLeader);
        }
        if !self.may_lead() {
            return Err(LeadershipError::NotEligible(self.opts.node_id));
        }
        self.last_leader_contact = None;
        self.start_pre_vote();
        Ok(())
    }

    // ----- public API: work mode ------------------------------------------

    /// DCF `set_work_mode`. See the crate docs ("Minority mode
    /// guarantees"). Emits [`Action::SaveWorkMode`]. Entering minority
    /// mode on a node that may lead and is not the leader makes it campaign
    /// at once with its term raised by 1000.
    pub fn set_work_mode(&mut self, now: u64, mode: WorkMode) -> Result<(), WorkModeError> {
        self.now = now.max(self.now);
        if let WorkMode::Minority { vote_num } = mode {
            let voters = self.voter_ids().len() as u64;
            if vote_num == 0 || vote_num > voters {
                return Err(WorkModeError::BadVoteNum { vote_num, voters });
            }
        }
        let was_minority = self.is_minority();
        if self.work_mode == mode {
            return Ok(());
        }
        self.work_mode = mode;
        self.actions.push(Action::SaveWorkMode(mode));
        if self.role == Role::Leader {
            self.transfer = None;
            self.maybe_commit();
            return Ok(());
        }
        if let Some(l) = self.leader {
            self.report_mode_to(l, true);
        }
        if self.is_minority() && !was_minority && self.may_lead() {
            self.start_election_bumped(false, 1000);
        }
        Ok(())
    }

    /// Restores the persisted work mode after [`StreamCore::new`] (before
    /// the first tick). Emits nothing.
    pub fn restore_work_mode(&mut self, mode: WorkMode) {
        self.work_mode = mode;
    }

    pub fn work_mode(&self) -> WorkMode {
        self.work_mode
    }

    /// The leadership transfer in progress on this leader, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.as_ref().map(|t| t.target)
    }

    // ----- internals ------------------------------------------------------

    fn is_minority(&self) -> bool {
        matches!(self.work_mode, WorkMode::Minority { .. })
    }

    fn check_may_change(&self) -> Result<(), ConfigChangeError> {
        if self.role != Role::Leader {
            return Err(ConfigChangeError::NotLeader {
                leader: self.leader,
            });
        }
        if self.is_minority() {
            return Err(ConfigChangeError::MinorityMode);
        }
        if !self.leader_ready || self.commit < self.leader_start_index {
            return Err(ConfigChangeError::NotReady);
        }
        if self.transfer.is_some() {
            return Err(ConfigChangeError::Transferring);
        }
        if let Some(p) = self.pending_config_change() {
            let index = match p.status {
                ConfigChangeStatus::Appended { index, .. } => Some(index),
                _ => None,
            };
            return Err(ConfigChangeError::ChangeInProgress {
                ticket: p.ticket,
                index,
            });
        }
        Ok(())
    }

    fn new_ticket(&mut self, st: TicketState) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(t, st);
        while self.tickets.len() > 128 {
            let first = *self.tickets.keys().next().expect("non-empty");
            self.tickets.remove(&first);
        }
        t
    }

    fn set_ticket(&mut self, ticket: u64, st: TicketState) {
        if let Some(s) = self.tickets.get_mut(&ticket) {
            *s = st;
        }
    }

    fn begin_change(
        &mut self,
        new: StreamMembers,
        catch_up: Option<NodeId>,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        if let Some(node) = catch_up {
            if !self.is_caught_up(node) {
                let ticket = self.new_ticket(TicketState::CatchingUp { node });
                let t = self.opts.election_timeout_ms * self.opts.catchup_timeout_elections.max(1);
                self.catching_up = Some(CatchUp {
                    ticket,
                    node,
                    new_members: new,
                    deadline: self.now + t,
                });
                self.sync_peers();
                self.dirty_peers.insert(node);
                return Ok(ConfigChangeStarted::CatchingUp { ticket, node });
            }
        }
        let ticket = self.new_ticket(TicketState::CatchingUp { node: 0 });
        let (term, index) = self.append_config(new);
        self.set_ticket(ticket, TicketState::Appended { term, index });
        Ok(ConfigChangeStarted::Appended {
            ticket,
            term,
            index,
        })
    }

    fn append_config(&mut self, new: StreamMembers) -> (Term, Index) {
        let index = self.log.last_index() + 1;
        let entry = Entry {
            term: self.term,
            index,
            key: 0,
            kind: EntryKind::Config,
            data: serde_json::to_vec(&new).unwrap_or_default(),
        };
        self.append_local(vec![entry]);
        // A single voter commits at once.
        self.maybe_commit();
        (self.term, index)
    }

    fn is_caught_up(&self, node: NodeId) -> bool {
        self.peers
            .get(&node)
            .is_some_and(|p| p.match_index + self.opts.catchup_max_lag >= self.log.last_index())
    }

    fn check_catch_up(&mut self) {
        let Some(c) = self.catching_up.clone() else {
            return;
        };
        if self.role != Role::Leader {
            return;
        }
        if self.transfer.is_none() && self.is_caught_up(c.node) {
            self.catching_up = None;
            let (term, index) = self.append_config(c.new_members);
            self.set_ticket(c.ticket, TicketState::Appended { term, index });
        } else if self.now >= c.deadline {
            self.catching_up = None;
            let match_index = self.peers.get(&c.node).map(|p| p.match_index).unwrap_or(0);
            self.set_ticket(
                c.ticket,
                TicketState::Failed(ConfigChangeError::CatchUpTimeout {
                    node: c.node,
                    match_index,
                    last_index: self.log.last_index(),
                }),
            );
            self.sync_peers();
        }
    }

    /// The newest configuration whose entry is committed (the first one
    /// of the history is committed by construction).
    fn committed_config(&self) -> &StreamMembers {
        &self.config_history[self.committed_config_pos()].1
    }

    /// The position in `config_history` of the newest committed configuration.
    fn committed_config_pos(&self) -> usize {
        self.config_history
            .iter()
            .enumerate()
            .skip(1)
            .rev()
            .find(|(_, (i, _))| *i <= self.commit)
            .map(|(p, _)| p)
            .unwrap_or(0)
    }

    /// Makes the leader's peers follow the configuration: every member of
    /// the current and of the newest committed configuration (a removed
    /// node keeps receiving the log until its removal commits), plus a node
    /// catching up.
    fn sync_peers(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let mut want: BTreeSet<NodeId> = self.members.ids().collect();
        want.extend(self.committed_config().ids());
        if let Some(c) = &self.catching_up {
            want.insert(c.node);
        }
        want.remove(&self.opts.node_id);
        self.peers.retain(|id, _| want.contains(id));
        let last = self.log.last_index();
        let now = self.now;
        for id in want {
            if let std::collections::btree_map::Entry::Vacant(v) = self.peers.entry(id) {
                v.insert(Progress {
                    next_index: last + 1,
                    match_index: 0,
                    apply_index: 0,
                    probing: true,
                    last_response: now,
                    last_progress: now,
                    seq_acked: 0,
                    minority: false,
                    mode_reported_at: 0,
                    paused_until: 0,
                    snapshot_requested_at: None,
                });
                self.dirty_peers.insert(id);
            }
        }
        if let Some(t) = &self.transfer {
            if !self.peers.contains_key(&t.target) {
                self.transfer = None;
            }
        }
    }

    fn on_leader_commit_advanced(&mut self) {
        let committed_cfg_at = self.config_history[self.committed_config_pos()].0;
        if committed_cfg_at > self.leader_start_index {
            // A change committed: peers of removed nodes go, and the
            // priority order may have changed.
            self.sync_peers();
            self.arm_priority_check();
        }
        if committed_cfg_at >= self.leader_start_index
            && self.committed_config().get(self.opts.node_id).is_none()
        {
            // This leader's removal is committed: hand over and step down.
            if let Some(t) = self.best_successor(true) {
                let term = self.term;
                self.send(t, Message::TimeoutNow { term });
            }
            self.step_down(None);
        }
    }

    /// The voter that may lead with the highest match index among those
    /// that answered within an election timeout (`caught_up`: only if it
    /// has everything).
    fn best_successor(&self, caught_up: bool) -> Option<NodeId> {
        let last = self.log.last_index();
        let window = self.opts.election_timeout_ms;
        self.members
            .members
            .iter()
            .filter(|m| m.kind.may_lead() && m.node_id != self.opts.node_id)
            .filter_map(|m| self.peers.get(&m.node_id).map(|p| (m.node_id, p)))
            .filter(|(_, p)| self.now < p.last_response + window)
            .filter(|(_, p)| !caught_up || p.match_index >= last)
            .max_by_key(|(id, p)| (p.match_index, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    fn check_transfer(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let Some(t) = self.transfer.clone() else {
            return;
        };
        if self.now >= t.deadline {
            self.transfer = None;
            return;
        }
        let last = self.log.last_index();
        let caught_up = self
            .peers
            .get(&t.target)
            .is_some_and(|p| p.match_index >= last);
        let due = t
            .sent_at
            .is_none_or(|s| self.now >= s + self.opts.heartbeat_interval_ms);
        if caught_up && due {
            if let Some(tr) = self.transfer.as_mut() {
                tr.sent_at = Some(self.now);
            }
            let term = self.term;
            self.send(t.target, Message::TimeoutNow { term });
        }
    }

    fn arm_priority_check(&mut self) {
        if self.opts.auto_priority_election && self.role == Role::Leader {
            self.priority_attempts = 3;
            self.priority_check_until = self.now + 3 * self.opts.election_timeout_ms;
        }
    }

    /// AUTO_ELC_PRIORITY_EN: hand over to the reachable, caught-up voter of
    /// highest priority above ours (at most 3 attempts per arming).
    fn check_priority_handover(&mut self) {
        if !self.opts.auto_priority_election
            || self.priority_attempts == 0
            || self.now > self.priority_check_until
            || self.transfer.is_some()
            || self.catching_up.is_some()
            || self.is_minority()
            || !self.leader_ready
        {
            return;
        }
        let mine = self
            .members
            .get(self.opts.node_id)
            .map(|m| m.priority)
            .unwrap_or(0);
        let last = self.log.last_index();
        let window = self.opts.election_timeout_ms;
        let lag = self.opts.catchup_max_lag;
        let best = self
            .members
            .members
            .iter()
            .filter(|m| m.kind.may_lead() && m.priority > mine)
            .filter_map(|m| self.peers.get(&m.node_id).map(|p| (m, p)))
            .filter(|(_, p)| self.now < p.last_response + window && p.match_index + lag >= last)
            .max_by_key(|(m, p)| (m.priority, p.match_index))
            .map(|(m, _)| m.node_id);
        if let Some(target) = best {
            self.priority_attempts -= 1;
            let t = self.opts.election_timeout_ms;
            let now = self.now;
            let _ = self.promote(now, target, t);
        }
    }

    fn maybe_commit_minority(&mut self, vote_num: u64) {
        let window = 2 * self.opts.election_timeout_ms;
        let now = self.now;
        let mut voters = Vec::new();
        for m in &self.members.members {
            if !m.kind.votes() {
                continue;
            }
            let matched = if m.node_id == self.opts.node_id {
                self.durable
            } else {
                match self.peers.get(&m.node_id) {
                    Some(p) if p.minority && now < p.mode_reported_at + window => p.match_index,
                    _ => continue,
                }
            };
            voters.push(VoterMatch {
                node_id: m.node_id,
                weight: 1,
                group: m.group,
                matched,
            });
        }
        let n = quorum_index(&voters, vote_num, &[]);
        self.advance_leader_commit(n);
    }

    /// Sends this node's work mode to `leader` (at most once per heartbeat
    /// interval unless `force`).
    fn report_mode_to(&mut self, leader: NodeId, force: bool) {
        let due = force
            || self
                .last_mode_report
                .is_none_or(|t| self.now >= t + self.opts.heartbeat_interval_ms);
        if !due || leader == self.opts.node_id {
            return;
        }
        self.last_mode_report = Some(self.now);
        let term = self.term;
        let minority = self.is_minority();
        self.send(leader, Message::WorkModeReport { term, minority });
    }
}
