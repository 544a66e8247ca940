//! The LOGGER's log-tail hand-over to a candidate (see
//! [`LogTail`](crate::LogTail)).

use super::follower::Merge;
use super::{Action, StreamCore};
use crate::config::{MemberKind, NodeId, StreamMembers};
use crate::types::{Envelope, Index, LogTail, LogTailResponse, Message};

impl StreamCore {
    /// The candidate's side: a LOGGER's entries, taken only while they
    /// are needed (see [`LogTail`](crate::LogTail)).
    pub(super) fn handle_log_tail(&mut self, from: NodeId, tail: LogTail) {
        let LogTail {
            prev_index,
            prev_term,
            entries,
            last_index,
            last_term,
            ..
        } = tail;
        let from_logger =
            |m: &StreamMembers| m.get(from).map(|x| x.kind) == Some(MemberKind::Logger);
        // Only a node that may lead takes entries from a LOGGER, only while
        // it knows no live leader, and only while the LOGGER's log is still
        // the more up-to-date one (then no entry it replaces can be
        // committed: see the module docs).
        if self.is_leader()
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
            Message::LogTailResponse(LogTailResponse {
                term,
                success,
                index,
            }),
        );
    }

    /// The LOGGER's side: the candidate took (or refused) a batch; send
    /// the next one while no live leader is known.
    pub(super) fn handle_log_tail_response(&mut self, from: NodeId, resp: LogTailResponse) {
        if self.self_kind() != Some(MemberKind::Logger) || self.leader_is_live() {
            return;
        }
        let next = if resp.success {
            resp.index + 1
        } else {
            resp.index
        };
        self.send_log_tail(from, next);
    }

    /// Sends this LOGGER's entries from `next` on (one batch) to a candidate.
    pub(super) fn send_log_tail(&mut self, to: NodeId, next: Index) {
        if next < self.log.first_index() || next > self.log.last_index() {
            return;
        }
        let prev_index = next - 1;
        let prev_term = self.log.term_at(prev_index).unwrap_or(0);
        let batch = self.opts.max_batch_entries.max(1);
        let msg = |entries| {
            Message::LogTail(LogTail {
                term: self.term,
                prev_index,
                prev_term,
                entries,
                last_index: self.log.last_index(),
                last_term: self.log.last_term(),
            })
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
}
