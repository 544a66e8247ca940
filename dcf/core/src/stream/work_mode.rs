//! DCF's work mode: minority (emergency) mode and back (see
//! [`crate::minority`]).

use super::{Action, StreamCore, WorkMode, WorkModeError};
use crate::config::NodeId;
use crate::quorum::{quorum_index, VoterMatch};
use crate::types::Message;

impl StreamCore {
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
        if let Some(ls) = self.leader_state_mut() {
            ls.transfer = None;
            self.maybe_commit();
            return Ok(());
        }
        if let Some(l) = self.leader {
            self.report_mode_to(l, true);
        }
        if self.is_minority() && !was_minority && self.may_lead() {
            // PLANTED BUG (minority_without_term_bump): no fencing of the
            // old majority's terms.
            let bump = if self.opts.planted.minority_without_term_bump {
                1
            } else {
                1000
            };
            self.start_election_bumped(false, bump);
        }
        Ok(())
    }

    /// Restores the persisted work mode after [`StreamCore::new`](crate::StreamCore::new) (before
    /// the first tick). Emits nothing.
    pub fn restore_work_mode(&mut self, mode: WorkMode) {
        self.work_mode = mode;
    }

    pub fn work_mode(&self) -> WorkMode {
        self.work_mode
    }

    pub(super) fn is_minority(&self) -> bool {
        matches!(self.work_mode, WorkMode::Minority { .. })
    }

    /// A follower's work mode, which a minority leader counts commits by.
    pub(super) fn handle_work_mode_report(&mut self, from: NodeId, minority: bool) {
        let now = self.now;
        if let Some(ls) = self.leader_state_mut() {
            if let Some(p) = ls.peers.get_mut(&from) {
                p.minority = minority;
                p.mode_reported_at = now.max(1);
            }
            self.maybe_commit();
        }
    }

    pub(super) fn maybe_commit_minority(&mut self, vote_num: u64) {
        let window = 2 * self.opts.election_timeout_ms;
        let now = self.now;
        let Some(ls) = self.leader_state() else {
            return;
        };
        let mut voters = Vec::new();
        for m in &self.members.members {
            if !m.kind.votes() {
                continue;
            }
            let matched = if m.node_id == self.opts.node_id {
                self.durable
            } else {
                match ls.peers.get(&m.node_id) {
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
    pub(super) fn report_mode_to(&mut self, leader: NodeId, force: bool) {
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
