//! Membership, role and priority changes, one node at a time, through
//! configuration entries (see the crate docs).

use super::{
    ConfigChangeError, ConfigChangeStarted, ConfigChangeStatus, PendingConfigChange, Progress,
    StreamCore,
};
use crate::config::{Member, MemberKind, NodeId, StreamMembers};
use crate::types::{Entry, EntryKind, Index, Term};
use std::collections::BTreeSet;

#[derive(Clone, Debug)]
pub(super) enum TicketState {
    CatchingUp { node: NodeId },
    Appended { term: Term, index: Index },
    Failed(ConfigChangeError),
}

#[derive(Clone, Debug)]
pub(super) struct CatchUp {
    pub(super) ticket: u64,
    pub(super) node: NodeId,
    pub(super) new_members: StreamMembers,
    pub(super) deadline: u64,
}

/// The voting weight of a member (0 if it does not vote or is absent).
pub(super) fn voting_weight(m: &StreamMembers, id: NodeId) -> u64 {
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
    pub(super) fn latest_config_uncommitted(&self) -> bool {
        self.config_history.len() > 1
            && self
                .config_history
                .last()
                .is_some_and(|(i, _)| *i > self.commit)
    }

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

    /// The member being added that is still catching up (the host's
    /// transport must already reach it), if any.
    pub fn catching_up_member(&self) -> Option<&crate::config::Member> {
        self.leader_state()?
            .catching_up
            .as_ref()
            .and_then(|c| c.new_members.get(c.node))
    }

    /// The change in flight on this leader: a node catching up, or the
    /// newest configuration entry above the commit index. `None` on
    /// non-leaders and when nothing is in flight.
    pub fn pending_config_change(&self) -> Option<PendingConfigChange> {
        let ls = self.leader_state()?;
        if let Some(c) = &ls.catching_up {
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

    pub(super) fn check_may_change(&self) -> Result<(), ConfigChangeError> {
        let Some(ls) = self.leader_state() else {
            return Err(ConfigChangeError::NotLeader {
                leader: self.leader,
            });
        };
        if self.is_minority() {
            return Err(ConfigChangeError::MinorityMode);
        }
        // PLANTED BUG (unsafe_member_change): skips the own-term-commit and
        // one-change-at-a-time rules.
        let unsafe_change = self.opts.planted.unsafe_member_change;
        if !unsafe_change && (!ls.ready || self.commit < ls.start_index) {
            return Err(ConfigChangeError::NotReady);
        }
        if ls.transfer.is_some() {
            return Err(ConfigChangeError::Transferring);
        }
        if unsafe_change {
            return Ok(());
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

    pub(super) fn new_ticket(&mut self, st: TicketState) -> u64 {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.tickets.insert(t, st);
        while self.tickets.len() > 128 {
            let first = *self.tickets.keys().next().expect("non-empty");
            self.tickets.remove(&first);
        }
        t
    }

    pub(super) fn set_ticket(&mut self, ticket: u64, st: TicketState) {
        if let Some(s) = self.tickets.get_mut(&ticket) {
            *s = st;
        }
    }

    pub(super) fn begin_change(
        &mut self,
        new: StreamMembers,
        catch_up: Option<NodeId>,
    ) -> Result<ConfigChangeStarted, ConfigChangeError> {
        if let Some(node) = catch_up {
            if !self.is_caught_up(node) {
                let ticket = self.new_ticket(TicketState::CatchingUp { node });
                let t = self.opts.election_timeout_ms * self.opts.catchup_timeout_elections.max(1);
                let deadline = self.now + t;
                if let Some(ls) = self.leader_state_mut() {
                    ls.catching_up = Some(CatchUp {
                        ticket,
                        node,
                        new_members: new,
                        deadline,
                    });
                }
                self.sync_peers();
                if let Some(ls) = self.leader_state_mut() {
                    ls.dirty_peers.insert(node);
                }
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

    pub(super) fn append_config(&mut self, new: StreamMembers) -> (Term, Index) {
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

    pub(super) fn is_caught_up(&self, node: NodeId) -> bool {
        self.leader_state()
            .and_then(|ls| ls.peers.get(&node))
            .is_some_and(|p| p.match_index + self.opts.catchup_max_lag >= self.log.last_index())
    }

    pub(super) fn check_catch_up(&mut self) {
        let Some(ls) = self.leader_state() else {
            return;
        };
        let Some(c) = ls.catching_up.clone() else {
            return;
        };
        let transferring = ls.transfer.is_some();
        if !transferring && self.is_caught_up(c.node) {
            if let Some(ls) = self.leader_state_mut() {
                ls.catching_up = None;
            }
            let (term, index) = self.append_config(c.new_members);
            self.set_ticket(c.ticket, TicketState::Appended { term, index });
        } else if self.now >= c.deadline {
            let Some(ls) = self.leader_state_mut() else {
                return;
            };
            ls.catching_up = None;
            let match_index = ls.peers.get(&c.node).map(|p| p.match_index).unwrap_or(0);
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
    pub(super) fn committed_config(&self) -> &StreamMembers {
        &self.config_history[self.committed_config_pos()].1
    }

    /// The position in `config_history` of the newest committed configuration.
    pub(super) fn committed_config_pos(&self) -> usize {
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
    pub(super) fn sync_peers(&mut self) {
        let Some(ls) = self.leader_state() else {
            return;
        };
        let mut want: BTreeSet<NodeId> = self.members.ids().collect();
        want.extend(self.committed_config().ids());
        if let Some(c) = &ls.catching_up {
            want.insert(c.node);
        }
        want.remove(&self.opts.node_id);
        let last = self.log.last_index();
        let now = self.now;
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        ls.peers.retain(|id, _| want.contains(id));
        for id in want {
            if let std::collections::btree_map::Entry::Vacant(v) = ls.peers.entry(id) {
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
                ls.dirty_peers.insert(id);
            }
        }
        if let Some(t) = &ls.transfer {
            if !ls.peers.contains_key(&t.target) {
                ls.transfer = None;
            }
        }
    }
}
