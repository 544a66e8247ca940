//! Elections: timers, pre-vote and vote, and the role transitions.

use super::membership::TicketState;
use super::role::{CandidateState, FollowerState, LeaderState, RoleState};
use super::{Action, ConfigChangeError, RunMode, StreamCore, WorkMode};
use crate::config::{MemberKind, NodeId};
use crate::types::{
    AppendRequest, AppendResponse, Entry, EntryKind, Index, Message, Term, VoteRequest,
    VoteResponse,
};
use rand::Rng;

impl StreamCore {
    pub(super) fn self_kind(&self) -> Option<MemberKind> {
        self.members.get(self.opts.node_id).map(|m| m.kind)
    }

    /// True if this node may campaign: it may lead in its newest
    /// configuration, or that configuration is not yet committed and it
    /// may lead in the newest committed one (a voter being removed or made
    /// PASSIVE is still needed until the change commits, e.g. to finish
    /// committing it; its own vote then does not count).
    pub(super) fn may_lead(&self) -> bool {
        self.self_kind_allows(MemberKind::may_lead)
    }

    /// True if `allowed` holds for this node's kind in the newest
    /// configuration, or (while that one is uncommitted) in the newest
    /// committed one.
    pub(super) fn self_kind_allows(&self, allowed: fn(MemberKind) -> bool) -> bool {
        self.self_kind().is_some_and(allowed)
            || (self.latest_config_uncommitted()
                && self
                    .committed_config()
                    .get(self.opts.node_id)
                    .is_some_and(|m| allowed(m.kind)))
    }

    pub(super) fn may_campaign_on_timeout(&self) -> bool {
        self.may_lead() && self.opts.run_mode == RunMode::Auto
    }

    pub(super) fn leader_is_live(&self) -> bool {
        if self.is_leader() {
            return true;
        }
        match (self.leader, self.last_leader_contact) {
            (Some(_), Some(t)) => self.now < t + self.opts.election_timeout_ms,
            _ => false,
        }
    }

    pub(super) fn initial_election_timer(&mut self) {
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

    pub(super) fn reset_election_timer(&mut self) {
        let t = self.opts.election_timeout_ms;
        let jitter = if self.leader.is_some() {
            self.rng.gen_range(0..=t / 10)
        } else {
            self.rng.gen_range(0..=t)
        };
        let base = if self.leader.is_some() { t } else { t / 2 };
        self.election_deadline = self.now + base + jitter;
    }

    pub(super) fn voter_ids(&self) -> Vec<NodeId> {
        self.members
            .members
            .iter()
            .filter(|m| m.kind.votes())
            .map(|m| m.node_id)
            .collect()
    }

    pub(super) fn weight_of(&self, id: NodeId) -> u64 {
        self.members
            .get(id)
            .filter(|m| m.kind.votes())
            .map(|m| m.weight as u64)
            .unwrap_or(0)
    }

    pub(super) fn quorum(&self) -> u64 {
        match self.work_mode {
            WorkMode::Normal => self.members.quorum_weight(),
            WorkMode::Minority { vote_num } => vote_num,
        }
    }

    /// The weight of the votes granted to this candidate so far.
    pub(super) fn votes_weight(&self) -> u64 {
        let (RoleState::PreCandidate(c) | RoleState::Candidate(c)) = &self.role else {
            return 0;
        };
        c.votes
            .iter()
            .filter(|(_, g)| **g)
            .map(|(id, _)| self.vote_weight(*id))
            .sum()
    }

    pub(super) fn vote_weight(&self, id: NodeId) -> u64 {
        match self.work_mode {
            WorkMode::Normal => self.weight_of(id),
            WorkMode::Minority { .. } => u64::from(self.weight_of(id) > 0),
        }
    }

    pub(super) fn start_pre_vote(&mut self) {
        self.role = RoleState::PreCandidate(CandidateState::voting_for_self(self.opts.node_id));
        self.leader = None;
        self.reset_election_timer();
        self.emit_role();
        if self.votes_weight() >= self.quorum() {
            self.start_election(false);
            return;
        }
        let req = Message::VoteRequest(VoteRequest {
            term: self.term + 1,
            pre_vote: true,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer: false,
        });
        for id in self.voter_ids() {
            if id != self.opts.node_id {
                self.send(id, req.clone());
            }
        }
    }

    pub(super) fn start_election(&mut self, transfer: bool) {
        self.start_election_bumped(transfer, 1);
    }

    /// Campaigns for the term `bump` above the current one (`transfer`:
    /// the leader handed over, so voters ignore their live leader).
    pub(super) fn start_election_bumped(&mut self, transfer: bool, bump: u64) {
        self.role = RoleState::Candidate(CandidateState::voting_for_self(self.opts.node_id));
        self.leader = None;
        self.set_hard_state(self.term + bump, Some(self.opts.node_id));
        self.reset_election_timer();
        self.emit_role();
        if self.votes_weight() >= self.quorum() {
            self.become_leader();
            return;
        }
        let req = Message::VoteRequest(VoteRequest {
            term: self.term,
            pre_vote: false,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        });
        for id in self.voter_ids() {
            if id != self.opts.node_id {
                self.send(id, req.clone());
            }
        }
    }

    pub(super) fn log_up_to_date(&self, last_index: Index, last_term: Term) -> bool {
        (last_term, last_index) >= (self.log.last_term(), self.log.last_index())
    }

    /// The term rules every message but the log-tail exchange passes
    /// first: a higher term makes this node a follower in it (except for
    /// pre-votes, and votes refused because a live leader is known), a
    /// lower one is refused, and a minority leader ignores higher terms.
    /// False when the message needs nothing more.
    pub(super) fn admit_term(&mut self, from: NodeId, msg: &Message) -> bool {
        let mterm = msg.term();
        if mterm > self.term && self.is_leader() && self.is_minority() {
            // A minority leader ignores higher terms: it keeps counting
            // acknowledgements and mode reports, refuses votes, drops the rest.
            return match msg {
                Message::AppendResponse(_) | Message::WorkModeReport { .. } => true,
                Message::VoteRequest(req) => {
                    self.refuse_vote(from, req.pre_vote);
                    false
                }
                _ => false,
            };
        }
        if mterm > self.term {
            match msg {
                Message::VoteRequest(VoteRequest { pre_vote: true, .. }) => {
                    // Pre-votes never change anyone's term.
                }
                Message::VoteRequest(req) if !req.transfer && self.leader_is_live() => {
                    // A live leader is known: refuse without adopting the term.
                    self.refuse_vote(from, false);
                    return false;
                }
                Message::VoteResponse(VoteResponse {
                    pre_vote: true,
                    granted: true,
                    ..
                }) => {
                    // A granted pre-vote carries the term we asked for.
                }
                _ if self.opts.planted.no_step_down && self.is_leader() => {
                    // PLANTED BUG (no_step_down): takes the higher term but
                    // goes on leading in it instead of stepping down.
                    self.set_hard_state(mterm, None);
                    self.emit_role();
                }
                Message::VoteRequest(_)
                | Message::VoteResponse(_)
                | Message::AppendResponse(_)
                | Message::WorkModeReport { .. } => self.become_follower(mterm, None),
                Message::Append(_) | Message::TimeoutNow { .. } => {
                    self.become_follower(mterm, Some(from))
                }
                Message::LogTail(_) | Message::LogTailResponse(_) => return false,
            }
            return true;
        }
        if mterm < self.term && !self.follows_lower_term(msg) {
            match msg {
                Message::Append(_) => {
                    // Tell the stale leader about the newer term.
                    let resp = AppendResponse {
                        term: self.term,
                        success: false,
                        index: 0,
                        last_index: self.log.last_index(),
                        applied_index: self.applied,
                        seq: 0,
                    };
                    self.send(from, Message::AppendResponse(resp));
                }
                Message::VoteRequest(req) => self.refuse_vote(from, req.pre_vote),
                _ => {}
            }
            return false;
        }
        true
    }

    /// Normal-mode nodes follow a minority leader even if its term is
    /// lower (see [`crate::minority`]): its appends go on to `handle_append`.
    fn follows_lower_term(&self, msg: &Message) -> bool {
        matches!(msg, Message::Append(AppendRequest { minority: true, .. })) && !self.is_leader()
    }

    fn refuse_vote(&mut self, to: NodeId, pre_vote: bool) {
        let resp = VoteResponse {
            term: self.term,
            pre_vote,
            granted: false,
        };
        self.send(to, Message::VoteResponse(resp));
    }

    /// The leader hands over: campaign at once.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.leader == Some(from) && self.may_lead() && !self.is_leader() {
            self.start_election(true);
        }
    }

    pub(super) fn handle_vote_request(&mut self, from: NodeId, req: VoteRequest) {
        let VoteRequest {
            term,
            pre_vote,
            last_index,
            last_term,
            ..
        } = req;
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
        if granted && !pre_vote && self.opts.planted.vote_not_persisted {
            // PLANTED BUG (vote_not_persisted): the vote is answered but
            // never made durable, so a restart forgets it.
            self.voted_for = Some(from);
            self.reset_election_timer();
        } else if granted && !pre_vote {
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
            Message::VoteResponse(VoteResponse {
                term: if pre_vote && granted { term } else { self.term },
                pre_vote,
                granted,
            }),
        );
    }

    pub(super) fn handle_vote_response(&mut self, from: NodeId, resp: VoteResponse) {
        let VoteResponse {
            term,
            pre_vote,
            granted,
        } = resp;
        let expected = match (&self.role, pre_vote) {
            (RoleState::PreCandidate(_), true) => {
                term == self.term + 1 || (!granted && term == self.term)
            }
            (RoleState::Candidate(_), false) => term == self.term,
            _ => false,
        };
        if !expected {
            return;
        }
        if let RoleState::PreCandidate(c) | RoleState::Candidate(c) = &mut self.role {
            c.votes.insert(from, granted);
        }
        if self.votes_weight() >= self.quorum() {
            if pre_vote {
                self.start_election(false);
            } else {
                self.become_leader();
            }
        }
    }

    /// Follows `leader` (or nobody yet) in `term`, which is at least the
    /// current one. The follower's state starts afresh, and whatever the
    /// node held in its former role is dropped with it.
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        if term > self.term {
            self.set_hard_state(term, None);
        }
        let former = std::mem::replace(
            &mut self.role,
            RoleState::Follower(FollowerState::default()),
        );
        self.leader = leader;
        if leader.is_some() {
            self.last_leader_contact = Some(self.now);
        }
        if let RoleState::Leader(ls) = former {
            self.leave_leadership(*ls);
        }
        self.reset_election_timer();
        self.emit_role();
    }

    pub(super) fn step_down(&mut self, leader: Option<NodeId>) {
        self.become_follower(self.term, leader);
    }

    /// What a former leader still owes its callers: a node that was
    /// catching up fails the change it was for, and pending reads fail.
    fn leave_leadership(&mut self, former: LeaderState) {
        if let Some(c) = former.catching_up {
            self.set_ticket(
                c.ticket,
                TicketState::Failed(ConfigChangeError::LeadershipLost),
            );
        }
        for r in former.reads {
            self.actions.push(Action::ReadFailed { ctx: r.ctx });
        }
    }

    /// Takes the lead with a fresh leader state (latency history, peer
    /// progress and heartbeat rounds of an earlier leadership say nothing
    /// about this one).
    pub(super) fn become_leader(&mut self) {
        let last = self.log.last_index();
        self.role = RoleState::Leader(Box::new(LeaderState::new(last + 1)));
        self.leader = Some(self.opts.node_id);
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
        self.append_local(vec![entry]);
        self.broadcast_heartbeat();
        self.maybe_commit();
    }
}
