//! Replication on the leader's side: proposals, read indexes, appends to
//! each peer, acknowledgements, commit by quorum, heartbeats.

use super::{Action, ProposeError, StreamCore, WorkMode};
use crate::config::NodeId;
use crate::quorum::{has_quorum, quorum_index, VoterMatch};
use crate::types::{
    AppendRequest, AppendResponse, Entry, EntryKind, Envelope, Index, Message, Term,
};

/// A read index waiting for a quorum to confirm heartbeat round `seq`.
#[derive(Clone, Debug)]
pub(super) struct PendingRead {
    pub(super) ctx: u64,
    pub(super) index: Index,
    pub(super) seq: u64,
}

impl StreamCore {
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
        let Some(ls) = self.leader_state() else {
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        };
        if !ls.ready {
            return Err(ProposeError::NotReady);
        }
        if ls.transfer.is_some() {
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
        let (pacing, now) = (self.opts.latency_pacing, self.now);
        if let Some(ls) = self.leader_state_mut().filter(|_| pacing) {
            ls.flow.proposed.push_back((index, now));
        }
        Ok((self.term, index))
    }

    /// Registers a linearizable read (read index): once a quorum confirms
    /// this node is still leader, [`Action::ReadReady`] gives the index the
    /// host must have applied before it serves the read.
    pub fn read_index(&mut self, now: u64, ctx: u64) -> Result<(), ProposeError> {
        self.now = now.max(self.now);
        let (leader, commit) = (self.leader, self.commit);
        let Some(ls) = self.leader_state_mut() else {
            return Err(ProposeError::NotLeader { leader });
        };
        if !ls.ready {
            return Err(ProposeError::NotReady);
        }
        if self.opts.planted.read_lease && self.quorum_heard_within(self.opts.election_timeout_ms) {
            // PLANTED BUG (read_lease): trusts the local clock instead of
            // confirming leadership with a quorum round.
            self.actions.push(Action::ReadReady { ctx, index: commit });
            return Ok(());
        }
        let Some(ls) = self.leader_state_mut() else {
            return Err(ProposeError::NotLeader { leader });
        };
        ls.reads.push_back(PendingRead {
            ctx,
            index: commit,
            seq: ls.seq + 1,
        });
        ls.read_round_wanted = true;
        self.check_reads();
        Ok(())
    }

    /// A peer's acknowledgement (or rejection, with a retry hint).
    pub(super) fn handle_append_response(&mut self, from: NodeId, resp: AppendResponse) {
        let AppendResponse {
            success,
            index,
            applied_index: applied,
            seq,
            ..
        } = resp;
        let (first, last, now) = (self.log.first_index(), self.log.last_index(), self.now);
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        let Some(p) = ls.peers.get_mut(&from) else {
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
            ls.dirty_peers.insert(from);
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
            if p.next_index >= first {
                self.send_append(from, true);
            }
        }
        self.update_cluster_min_applied();
        self.check_reads();
        self.check_catch_up();
        self.check_transfer();
    }

    /// The lowest applied index of this node and of the peers it leads.
    pub(super) fn update_cluster_min_applied(&mut self) {
        let mut min = self.applied;
        if let Some(ls) = self.leader_state() {
            for p in ls.peers.values() {
                min = min.min(p.apply_index);
            }
        }
        self.cluster_min_applied = min;
    }

    /// Sends the next batch to a peer. In probing mode at most one message
    /// is outstanding (`force` sends anyway, used for heartbeats and
    /// rejections); otherwise batches are pipelined.
    pub(super) fn send_append(&mut self, to: NodeId, force: bool) {
        let Some(p) = self
            .leader_state()
            .and_then(|ls| ls.peers.get(&to).cloned())
        else {
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
        let (term, commit, min_applied) = (self.term, self.commit, self.cluster_min_applied);
        let minority = self.is_minority();
        let now = self.now;
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        let msg = Message::Append(AppendRequest {
            term,
            prev_index,
            prev_term,
            entries,
            commit,
            first_index: first,
            min_applied,
            seq: ls.seq,
            minority,
        });
        if let Some(p) = ls.peers.get_mut(&to) {
            if let (Some(upto), false) = (sent_upto, p.probing) {
                p.next_index = upto + 1;
            }
        }
        if sent_upto.is_some() {
            ls.flow.last_append.insert(to, now);
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

    /// Starts a new heartbeat round: an append (with entries if due) to
    /// every peer.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let deadline = self.now + self.opts.heartbeat_interval_ms;
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        ls.seq += 1;
        ls.read_round_wanted = false;
        ls.heartbeat_deadline = deadline;
        let ids: Vec<NodeId> = ls.peers.keys().copied().collect();
        for id in ids {
            self.send_append(id, true);
        }
        self.check_reads();
    }

    /// A pipelined peer that stopped acknowledging for an election timeout
    /// probably lost messages: go back to probing from its match index.
    pub(super) fn resend_stalled(&mut self) {
        let t = self.opts.election_timeout_ms;
        let now = self.now;
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        for p in ls.peers.values_mut() {
            if !p.probing && p.next_index > p.match_index + 1 && now >= p.last_progress + t {
                p.probing = true;
                p.next_index = p.match_index + 1;
                p.last_progress = now;
            }
        }
    }

    /// True if voters holding a quorum of weight answered within two
    /// election timeouts (this leader counting itself).
    pub(super) fn quorum_recently_heard(&self) -> bool {
        self.quorum_heard_within(2 * self.opts.election_timeout_ms)
    }

    /// True if voters holding a quorum answered within `window` ms.
    pub(super) fn quorum_heard_within(&self, window: u64) -> bool {
        let now = self.now;
        let Some(ls) = self.leader_state() else {
            return false;
        };
        let heard = self
            .voter_ids()
            .into_iter()
            .filter(|id| {
                *id == self.opts.node_id
                    || ls
                        .peers
                        .get(id)
                        .is_some_and(|p| now < p.last_response + window)
            })
            .map(|id| self.vote_weight(id));
        has_quorum(heard, self.quorum())
    }

    /// Moves the commit index to the highest index stored on a quorum.
    pub(super) fn maybe_commit(&mut self) {
        let Some(ls) = self.leader_state() else {
            return;
        };
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
                ls.peers.get(&m.node_id).map(|p| p.match_index).unwrap_or(0)
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

    /// Commits up to `n` if that entry is of this leader's term (entries of
    /// older terms are only committed with it, never by counting).
    pub(super) fn advance_leader_commit(&mut self, n: Index) {
        // PLANTED BUG (old_term_commit): counts replicas of an older
        // term's entry toward commit (Raft's figure-8 rule broken).
        let counted = self.opts.planted.old_term_commit && self.log.term_at(n).is_some();
        if n > self.commit && (counted || self.log.term_at(n) == Some(self.term)) {
            self.commit = n;
            self.emit_apply();
            self.check_reads();
            self.on_leader_commit_advanced();
        }
    }

    /// A new leader takes writes once everything up to its own first entry
    /// is committed and handed to the host for applying (the host applies
    /// in order, so later writes are applied after it).
    pub(super) fn check_leader_ready(&mut self) {
        let (apply_sent, commit) = (self.apply_sent, self.commit);
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        if !ls.ready && apply_sent >= ls.start_index && commit >= ls.start_index {
            ls.ready = true;
            self.arm_priority_check();
        }
    }

    /// Answers the pending reads whose heartbeat round a quorum confirmed.
    pub(super) fn check_reads(&mut self) {
        loop {
            let Some(ls) = self.leader_state() else {
                return;
            };
            let Some(r) = ls.reads.front() else {
                return;
            };
            let seq = r.seq;
            let weights = self.voter_ids().into_iter().filter_map(|id| {
                if id == self.opts.node_id {
                    Some(self.vote_weight(id))
                } else {
                    ls.peers
                        .get(&id)
                        .filter(|p| p.seq_acked >= seq)
                        .map(|_| self.vote_weight(id))
                }
            });
            let confirmed = has_quorum(weights, self.quorum()) && seq <= ls.seq;
            if !confirmed {
                return;
            }
            let Some(r) = self.leader_state_mut().and_then(|ls| ls.reads.pop_front()) else {
                return;
            };
            self.actions.push(Action::ReadReady {
                ctx: r.ctx,
                index: r.index,
            });
        }
    }

    /// Sends pending appends to peers (called by [`StreamCore::take_actions`]).
    pub(super) fn flush(&mut self) {
        if !self.is_leader() {
            return;
        }
        self.observe_commits();
        if self.leader_state().is_some_and(|ls| ls.read_round_wanted) {
            self.broadcast_heartbeat();
        }
        let Some(ls) = self.leader_state_mut() else {
            return;
        };
        let dirty: Vec<NodeId> = std::mem::take(&mut ls.dirty_peers).into_iter().collect();
        let next_index = |core: &StreamCore, id: NodeId| {
            core.leader_state()
                .and_then(|ls| ls.peers.get(&id))
                .map(|p| p.next_index)
        };
        for id in dirty {
            // Keep sending batches until the peer is caught up or the
            // in-flight limit is reached.
            for _ in 0..64 {
                let before = next_index(self, id);
                self.send_append(id, false);
                if next_index(self, id) == before {
                    break;
                }
            }
        }
    }
}
