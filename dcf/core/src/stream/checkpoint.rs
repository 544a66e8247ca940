//! Checkpoints (see [`crate::snapshot`]): compacting the log, installing
//! a checkpoint received from another node, asking the host to send one.

use super::{Action, StreamCore};
use crate::config::NodeId;
use crate::snapshot::SnapshotMeta;
use crate::types::{AppendResponse, Index, Message};

impl StreamCore {
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
        let (durable, leader) = (self.durable, self.leader);
        if let (Some(leader), Some(fs)) = (leader, self.follower_state_mut()) {
            // A checkpoint holds committed entries only, so it matches any
            // leader's log up to its index.
            fs.ack_upto = fs.ack_upto.max(s);
            let upto = durable.min(fs.ack_upto);
            fs.acked = fs.acked.max(upto);
            let seq = fs.last_seq_seen;
            self.send(
                leader,
                Message::AppendResponse(AppendResponse {
                    term: self.term,
                    success: true,
                    index: upto,
                    last_index: self.log.last_index(),
                    applied_index: self.applied,
                    seq,
                }),
            );
        }
        self.emit_apply();
        true
    }

    /// True if a checkpoint at `index` would move this node forward: it
    /// is past everything already handed to the host for applying.
    pub fn wants_snapshot(&self, index: Index) -> bool {
        !self.is_leader() && index > self.apply_sent
    }

    /// The host gave up sending a checkpoint to `to` (none available, or
    /// the transfer failed): the next heartbeat may ask again.
    pub fn snapshot_transfer_failed(&mut self, to: NodeId) {
        if let Some(p) = self.leader_state_mut().and_then(|ls| ls.peers.get_mut(&to)) {
            p.snapshot_requested_at = None;
        }
    }

    /// Asks the host to send a checkpoint to `to`, which needs entries
    /// below the first index (at most once per two election timeouts
    /// while no transfer result came back).
    pub(super) fn request_snapshot(&mut self, to: NodeId) {
        if !self.opts.snapshot_transfer {
            return;
        }
        let now = self.now;
        let retry = 2 * self.opts.election_timeout_ms;
        let Some(p) = self.leader_state_mut().and_then(|ls| ls.peers.get_mut(&to)) else {
            return;
        };
        if p.snapshot_requested_at.is_some_and(|t| now < t + retry) {
            return;
        }
        p.snapshot_requested_at = Some(now);
        self.actions.push(Action::SendSnapshot { to });
    }
}
