//! Replication on the leader's side: proposals, read indexes, appends to
//! each peer, acknowledgements, commit by quorum, heartbeats.

use super::{Action, ProposeError, StreamCore, WorkMode};
use crate::config::{NodeId, Role};
use crate::quorum::{has_quorum, quorum_index, VoterMatch};
use crate::types::{Entry, EntryKind, Envelope, Index, Message, Term};

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

    pub(super) fn handle_append_response(
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

    pub(super) fn update_cluster_min_applied(&mut self) {
        let mut min = self.applied;
        for p in self.peers.values() {
            min = min.min(p.apply_index);
        }
        self.cluster_min_applied = min;
    }

    /// Sends the next batch to a peer. In probing mode at most one message
    /// is outstanding (`force` sends anyway, used for heartbeats and
    /// rejections); otherwise batches are pipelined.
    pub(super) fn send_append(&mut self, to: NodeId, force: bool) {
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

    pub(super) fn broadcast_heartbeat(&mut self) {
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
    pub(super) fn resend_stalled(&mut self) {
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

    pub(super) fn quorum_recently_heard(&self) -> bool {
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

    pub(super) fn maybe_commit(&mut self) {
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

    pub(super) fn advance_leader_commit(&mut self, n: Index) {
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
    pub(super) fn check_leader_ready(&mut self) {
        if self.role == Role::Leader
            && !self.leader_ready
            && self.apply_sent >= self.leader_start_index
            && self.commit >= self.leader_start_index
        {
            self.leader_ready = true;
            self.arm_priority_check();
        }
    }

    pub(super) fn check_reads(&mut self) {
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

    /// Sends pending appends to peers (called by [`take_actions`]).
    pub(super) fn flush(&mut self) {
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
}
