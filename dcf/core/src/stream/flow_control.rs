//! The leader's flow control in the send path (see [`crate::flow`]):
//! smaller batches to PASSIVE peers under load, and commit-latency pacing.

use super::StreamCore;
use crate::config::{MemberKind, NodeId};
use crate::flow::{LoadSample, LoadThresholds, PacingController};
use crate::types::Index;
use std::collections::{BTreeMap, VecDeque};

/// The leader's flow-control state (see [`crate::flow`]); the PASSIVE
/// throttle, fed by load reports in every role, is the node's.
#[derive(Clone, Debug, Default)]
pub(super) struct LeaderFlow {
    pub(super) pacing: PacingController,
    /// (index, proposal time ms) of this leader's proposals not yet committed.
    pub(super) proposed: VecDeque<(Index, u64)>,
    /// When (ms) the last append carrying entries went to each peer.
    pub(super) last_append: BTreeMap<NodeId, u64>,
}

impl StreamCore {
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
            if let Some(ls) = self.leader_state_mut() {
                ls.flow.pacing.reset();
            }
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
        self.passive.report(&sample, &th);
    }

    /// Entries per message to `to`: MEC_BATCH_SIZE (or the default), shrunk
    /// for PASSIVE peers while the host is overloaded.
    pub(super) fn batch_limit(&self, to: NodeId) -> usize {
        let max = self.opts.max_batch_entries.max(1);
        match self.members.get(to).map(|m| m.kind) {
            Some(MemberKind::Passive) => self.passive.batch(max),
            _ => max,
        }
    }

    /// True while the pacing gap since the last append with entries to `to`
    /// has not passed; the entries then go with the first send after it.
    pub(super) fn pacing_holds(&self, to: NodeId) -> bool {
        if !self.opts.latency_pacing {
            return false;
        }
        let Some(ls) = self.leader_state() else {
            return false;
        };
        let gap_us = ls.flow.pacing.gap_us();
        gap_us > 0
            && ls
                .flow
                .last_append
                .get(&to)
                .is_some_and(|t| self.now.saturating_sub(*t) * 1000 < gap_us)
    }

    /// Leader tick: closes commit-latency windows and retries peers whose
    /// entries were held back by pacing.
    pub(super) fn pace_tick(&mut self) {
        let (last, now) = (self.log.last_index(), self.now);
        if !self.opts.latency_pacing {
            return;
        }
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        ls.flow.pacing.on_time(now);
        if ls.flow.pacing.gap_us() == 0 {
            return;
        }
        for (id, p) in &ls.peers {
            if !p.probing && p.next_index <= last && now >= p.paused_until {
                ls.dirty_peers.insert(*id);
            }
        }
    }

    /// Feeds the latency (proposal to commit) of newly committed entries of
    /// this leader to the pacing controller.
    pub(super) fn observe_commits(&mut self) {
        let (commit, now) = (self.commit, self.now);
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        while let Some(&(index, at)) = ls.flow.proposed.front() {
            if index > commit {
                break;
            }
            ls.flow.proposed.pop_front();
            ls.flow.pacing.record_commit(now.saturating_sub(at) * 1000);
        }
    }
}
