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
//! Rules implemented:
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
//!
//! Where things are: this module holds the state and the host's entry
//! points (`tick`, `step`, `take_actions`); `role` the state of each role;
//! `election` the timers, the term rules, (pre-)votes and role changes;
//! `follower` and `leader` replication on either side; `flow_control`
//! batch limits and pacing; `local_log` log changes, durability, applying
//! and the entry cache; `checkpoint` compaction and installed checkpoints;
//! `log_tail` the LOGGER's hand-over; `membership`, `leadership` and
//! `work_mode` the administrative operations; `query` the read-only views;
//! `options`, `action` and `errors` the types of the API; `tests` the unit
//! tests, per concern.

mod action;
mod checkpoint;
mod election;
mod errors;
mod flow_control;
mod follower;
mod leader;
mod leadership;
mod local_log;
mod log_tail;
mod membership;
mod options;
mod query;
mod role;
#[cfg(test)]
mod tests;
mod work_mode;

pub use action::{Action, Exception};
pub use errors::{
    ConfigChangeError, ConfigChangeStarted, ConfigChangeStatus, LeadershipError,
    PendingConfigChange, ProposeError, WorkModeError,
};
pub use membership::check_single_change;
pub use options::{CoreOptions, HardState, Restored, RunMode, WorkMode};
pub use query::{Progress, StreamStatus};

use crate::config::{NodeId, Role, StreamMembers};
use crate::flow::PassiveThrottle;
use crate::log::MemLog;
use crate::types::{EntryKind, Envelope, Index, Message, Term};
use membership::TicketState;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use role::{FollowerState, LeaderState, RoleState};
use std::collections::BTreeMap;

/// The consensus state machine of one stream on one node.
pub struct StreamCore {
    opts: CoreOptions,
    rng: SmallRng,
    now: u64,

    /// The role and the state only it has (see [`role`]).
    role: RoleState,
    term: Term,
    voted_for: Option<NodeId>,
    leader: Option<NodeId>,
    last_leader_contact: Option<u64>,
    election_deadline: u64,
    /// The configured LEADER campaigns once at start-up even in MANUAL mode.
    startup_campaign: bool,

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
    /// The cluster-wide minimum applied index: computed by a leader, taken
    /// from the leader's appends by a follower.
    cluster_min_applied: Index,

    work_mode: WorkMode,
    actions: Vec<Action>,

    /// Configuration changes started here, by ticket (they outlive the
    /// leadership that started them).
    tickets: BTreeMap<u64, TicketState>,
    next_ticket: u64,
    /// Batches to PASSIVE peers shrink while this host is overloaded
    /// (load reports arrive whatever the role).
    passive: PassiveThrottle,

    // When exceptions and reports were last raised (rate limits).
    last_missing_log_report: Option<u64>,
    /// Since when (ms) this node has been behind its leader's first index
    /// (with checkpoint transfer on, MISSING_LOG waits for a while).
    behind_leader_since: Option<u64>,
    last_mode_report: Option<u64>,
    last_conflict_report: Option<u64>,
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
            role: RoleState::Follower(FollowerState::default()),
            term: restored.hard_state.term,
            voted_for: restored.hard_state.voted_for,
            leader: None,
            last_leader_contact: None,
            election_deadline: 0,
            startup_campaign: false,
            members: effective,
            config_history,
            log,
            durable: last,
            commit,
            applied,
            apply_sent: applied,
            apply_taken: applied,
            cluster_min_applied: 0,
            work_mode: WorkMode::Normal,
            actions: Vec::new(),
            tickets: BTreeMap::new(),
            next_ticket: 1,
            passive: PassiveThrottle::default(),
            last_missing_log_report: None,
            behind_leader_since: None,
            last_mode_report: None,
            last_conflict_report: None,
        };
        core.initial_election_timer();
        core
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

    /// AUTO_ELC_PRIORITY_EN: whether a new leader hands over to a
    /// reachable, caught-up node of higher priority.
    pub fn set_auto_priority_election(&mut self, on: bool) {
        self.opts.auto_priority_election = on;
    }
    pub fn set_majority_groups(&mut self, groups: Vec<u32>) {
        self.opts.majority_groups = groups;
    }

    /// Advances the clock: heartbeats, election timeouts, leader lease checks.
    pub fn tick(&mut self, now: u64) {
        self.now = now.max(self.now);
        match self.role() {
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
                if self
                    .leader_state()
                    .is_some_and(|ls| self.now >= ls.heartbeat_deadline)
                {
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
        if from == self.opts.node_id {
            return;
        }
        // Exchanged outside any leadership: terms play no part.
        let msg = match msg {
            Message::LogTail(tail) => return self.handle_log_tail(from, tail),
            Message::LogTailResponse(resp) => return self.handle_log_tail_response(from, resp),
            msg => msg,
        };
        if !self.admit_term(from, &msg) {
            return;
        }
        match msg {
            Message::VoteRequest(req) => self.handle_vote_request(from, req),
            Message::VoteResponse(resp) => self.handle_vote_response(from, resp),
            Message::Append(req) => self.handle_append(from, req),
            Message::AppendResponse(resp) => self.handle_append_response(from, resp),
            Message::TimeoutNow { .. } => self.handle_timeout_now(from),
            Message::WorkModeReport { minority, .. } => {
                self.handle_work_mode_report(from, minority)
            }
            Message::LogTail(_) | Message::LogTailResponse(_) => {}
        }
    }

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
            role: self.role(),
            term: self.term,
            leader: self.leader,
        });
    }

    fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    /// The leader's state, if this node leads.
    fn leader_state(&self) -> Option<&LeaderState> {
        match &self.role {
            RoleState::Leader(ls) => Some(ls),
            _ => None,
        }
    }

    fn leader_state_mut(&mut self) -> Option<&mut LeaderState> {
        match &mut self.role {
            RoleState::Leader(ls) => Some(ls),
            _ => None,
        }
    }

    /// The follower's state, if this node follows (a leader or none yet).
    fn follower_state_mut(&mut self) -> Option<&mut FollowerState> {
        match &mut self.role {
            RoleState::Follower(fs) => Some(fs),
            _ => None,
        }
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
