//! Leadership operations on the leader: promote, demote, pause_rep, the
//! hand-over to a node of higher priority, and stepping down after its
//! own removal; and timeout_notify on a follower.

use super::role::LeaderState;
use super::{LeadershipError, StreamCore};
use crate::config::NodeId;
use crate::types::Message;

#[derive(Clone, Debug)]
pub(super) struct Transfer {
    pub(super) target: NodeId,
    pub(super) deadline: u64,
    pub(super) sent_at: Option<u64>,
}

impl StreamCore {
    /// Leadership operations are only for the leader.
    pub(super) fn require_leader(&self) -> Result<&LeaderState, LeadershipError> {
        self.leader_state().ok_or(LeadershipError::NotLeader {
            leader: self.leader,
        })
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
        match self
            .leader_state_mut()
            .and_then(|ls| ls.peers.get_mut(&node))
        {
            Some(p) => {
                p.paused_until = until;
                Ok(())
            }
            None => Err(LeadershipError::NotEligible(node)),
        }
    }

    /// DCF `promote_leader` on the leader: blocks new proposals
    /// ([`ProposeError::Transferring`](crate::ProposeError::Transferring)), lets `target` catch up, then sends
    /// it `TimeoutNow` so it campaigns at once. After `timeout_ms` without
    /// success the transfer is abandoned and proposals are accepted again.
    /// Success shows as [`Action::RoleChanged`](crate::Action::RoleChanged) (this node becomes a
    /// follower of `target`). Promoting the leader itself is a no-op.
    pub fn promote(
        &mut self,
        now: u64,
        target: NodeId,
        timeout_ms: u64,
    ) -> Result<(), LeadershipError> {
        self.now = now.max(self.now);
        let ls = self.require_leader()?;
        if target == self.opts.node_id {
            return Ok(());
        }
        if self.is_minority() {
            return Err(LeadershipError::MinorityMode);
        }
        if let Some(t) = &ls.transfer {
            return Err(LeadershipError::TransferInProgress(t.target));
        }
        if !self.members.get(target).is_some_and(|m| m.kind.may_lead())
            || !ls.peers.contains_key(&target)
        {
            return Err(LeadershipError::NotEligible(target));
        }
        let deadline = self.now + timeout_ms.max(1);
        if let Some(ls) = self.leader_state_mut() {
            ls.transfer = Some(Transfer {
                target,
                deadline,
                sent_at: None,
            });
            ls.dirty_peers.insert(target);
        }
        self.check_transfer();
        Ok(())
    }

    /// DCF `demote` on the leader: hands over to the most caught-up voter
    /// that may lead and answered within an election timeout (returns it),
    /// or, if there is none, steps down (returns `None`).
    pub fn demote(&mut self, now: u64) -> Result<Option<NodeId>, LeadershipError> {
        self.now = now.max(self.now);
        if let Some(t) = &self.require_leader()?.transfer {
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
        if self.is_leader() {
            return Err(LeadershipError::IsLeader);
        }
        if !self.may_lead() {
            return Err(LeadershipError::NotEligible(self.opts.node_id));
        }
        self.last_leader_contact = None;
        self.start_pre_vote();
        Ok(())
    }

    /// The leadership transfer in progress on this leader, if any.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.leader_state()?.transfer.as_ref().map(|t| t.target)
    }

    pub(super) fn on_leader_commit_advanced(&mut self) {
        let Some(start_index) = self.leader_state().map(|ls| ls.start_index) else {
            return;
        };
        let committed_cfg_at = self.config_history[self.committed_config_pos()].0;
        if committed_cfg_at > start_index {
            // A change committed: peers of removed nodes go, and the
            // priority order may have changed.
            self.sync_peers();
            self.arm_priority_check();
        }
        if committed_cfg_at >= start_index
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
    pub(super) fn best_successor(&self, caught_up: bool) -> Option<NodeId> {
        let last = self.log.last_index();
        let window = self.opts.election_timeout_ms;
        let ls = self.leader_state()?;
        self.members
            .members
            .iter()
            .filter(|m| m.kind.may_lead() && m.node_id != self.opts.node_id)
            .filter_map(|m| ls.peers.get(&m.node_id).map(|p| (m.node_id, p)))
            .filter(|(_, p)| self.now < p.last_response + window)
            .filter(|(_, p)| !caught_up || p.match_index >= last)
            .max_by_key(|(id, p)| (p.match_index, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    pub(super) fn check_transfer(&mut self) {
        let (now, last) = (self.now, self.log.last_index());
        let heartbeat = self.opts.heartbeat_interval_ms;
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        let Some(t) = ls.transfer.clone() else {
            return;
        };
        if now >= t.deadline {
            ls.transfer = None;
            return;
        }
        let caught_up = ls
            .peers
            .get(&t.target)
            .is_some_and(|p| p.match_index >= last);
        let due = t.sent_at.is_none_or(|s| now >= s + heartbeat);
        if caught_up && due {
            if let Some(tr) = ls.transfer.as_mut() {
                tr.sent_at = Some(now);
            }
            let term = self.term;
            self.send(t.target, Message::TimeoutNow { term });
        }
    }

    pub(super) fn arm_priority_check(&mut self) {
        let until = self.now + 3 * self.opts.election_timeout_ms;
        if !self.opts.auto_priority_election {
            return;
        }
        if let Some(ls) = self.leader_state_mut() {
            ls.priority_attempts = 3;
            ls.priority_check_until = until;
        }
    }

    /// AUTO_ELC_PRIORITY_EN: hand over to the reachable, caught-up voter of
    /// highest priority above ours (at most 3 attempts per arming).
    pub(super) fn check_priority_handover(&mut self) {
        let Some(ls) = self.leader_state() else {
            return;
        };
        if !self.opts.auto_priority_election
            || ls.priority_attempts == 0
            || self.now > ls.priority_check_until
            || ls.transfer.is_some()
            || ls.catching_up.is_some()
            || self.is_minority()
            || !ls.ready
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
            .filter_map(|m| ls.peers.get(&m.node_id).map(|p| (m, p)))
            .filter(|(_, p)| self.now < p.last_response + window && p.match_index + lag >= last)
            .max_by_key(|(m, p)| (m.priority, p.match_index))
            .map(|(m, _)| m.node_id);
        if let Some(target) = best {
            if let Some(ls) = self.leader_state_mut() {
                ls.priority_attempts -= 1;
            }
            let t = self.opts.election_timeout_ms;
            let now = self.now;
            let _ = self.promote(now, target, t);
        }
    }
}
