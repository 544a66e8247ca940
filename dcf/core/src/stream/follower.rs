//! Replication on the follower's side: appends from the leader.

use super::role::{FollowerState, RoleState};
use super::{Action, Exception, StreamCore};
use crate::config::NodeId;
use crate::types::{AppendRequest, AppendResponse, Entry, Index, Message, Term};

/// What merging received entries into the log did.
pub(super) enum Merge {
    /// Everything up to `verified` now matches the sender's log.
    Merged { verified: Index },
    /// The entry before them does not match: retry from `hint`.
    Rejected { hint: Index },
    /// They conflict with the committed entry at `index`: refused.
    CommittedConflict { index: Index },
}

impl StreamCore {
    /// Entries (or a heartbeat) from the leader of the current term (or
    /// from a minority leader of a lower one).
    pub(super) fn handle_append(&mut self, from: NodeId, req: AppendRequest) {
        let AppendRequest {
            prev_index,
            prev_term,
            entries,
            commit,
            first_index: leader_first,
            min_applied,
            seq,
            minority: leader_minority,
            ..
        } = req;
        if self.is_leader() {
            // Two leaders in one term cannot happen; ignore defensively.
            return;
        }
        if !matches!(self.role, RoleState::Follower(_)) || self.leader != Some(from) {
            // A new leader (or the end of a campaign): start following it
            // afresh.
            self.role = RoleState::Follower(FollowerState::default());
            self.leader = Some(from);
            self.emit_role();
        }
        self.last_leader_contact = Some(self.now);
        if let Some(fs) = self.follower_state_mut() {
            fs.last_seq_seen = fs.last_seq_seen.max(seq);
        }
        self.cluster_min_applied = min_applied;
        self.reset_election_timer();
        if leader_minority || self.is_minority() {
            self.report_mode_to(from, false);
        }

        let last = self.log.last_index();
        let reject = |core: &mut StreamCore, hint: Index| {
            core.send(
                from,
                Message::AppendResponse(AppendResponse {
                    term: core.term,
                    success: false,
                    index: hint.max(1),
                    last_index: core.log.last_index(),
                    applied_index: core.applied,
                    seq,
                }),
            );
        };
        let behind = leader_first > 0 && last + 1 < leader_first && prev_index > last;
        if !behind {
            self.behind_leader_since = None;
        } else {
            let since = *self.behind_leader_since.get_or_insert(self.now);
            // With checkpoint transfer on, the leader sends one: only a
            // node left behind for long reports the missing entries.
            let waited = !self.opts.snapshot_transfer
                || self.now >= since + 5 * self.opts.election_timeout_ms;
            let report_due = self
                .last_missing_log_report
                .is_none_or(|t| self.now >= t + 1000);
            if waited && report_due {
                self.last_missing_log_report = Some(self.now);
                self.actions.push(Action::Exception(Exception::MissingLog {
                    leader: from,
                    leader_first_index: leader_first,
                    local_last_index: last,
                }));
            }
        }
        let verified = match self.merge_entries(prev_index, prev_term, entries) {
            Merge::Merged { verified } => verified,
            Merge::Rejected { hint } => {
                reject(self, hint);
                return;
            }
            Merge::CommittedConflict { index } => {
                // A committed entry can never be overwritten; a leader
                // asking for it is broken (or a minority leader that
                // lacks what the lost majority committed). Refuse the
                // message and tell the host.
                self.report_committed_conflict(from, index);
                return;
            }
        };
        let ack_upto = match self.follower_state_mut() {
            Some(fs) => {
                fs.ack_upto = fs.ack_upto.max(verified);
                fs.ack_upto
            }
            None => return,
        };
        let mut new_commit = commit.min(verified);
        if self.opts.planted.apply_beyond_commit {
            // PLANTED BUG (apply_beyond_commit): commits and applies
            // everything that matches the leader, beyond its commit index.
            new_commit = verified;
        }
        if new_commit > self.commit {
            self.commit = new_commit;
            self.emit_apply();
        }
        let upto = self.durable.min(ack_upto);
        if let Some(fs) = self.follower_state_mut() {
            fs.acked = fs.acked.max(upto);
        }
        self.send(
            from,
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

    /// Merges entries that follow (`prev_index`, `prev_term`) into the log:
    /// entries already present are skipped, the log is truncated at the
    /// first conflict and the rest appended. Never touches a committed
    /// entry.
    pub(super) fn merge_entries(
        &mut self,
        prev_index: Index,
        prev_term: Term,
        entries: Vec<Entry>,
    ) -> Merge {
        let last = self.log.last_index();
        if prev_index > last {
            return Merge::Rejected { hint: last + 1 };
        }
        // Entries at or below our prefix boundary are committed and match.
        let boundary = self.log.first_index() - 1;
        let mut entries = entries;
        let mut prev_index = prev_index;
        if prev_index < boundary {
            entries.retain(|e| e.index > boundary);
            prev_index = boundary;
        } else if self.log.term_at(prev_index) != Some(prev_term) {
            let floor = self.commit + 1;
            let hint = self.log.first_of_term(prev_index, floor);
            return Merge::Rejected { hint };
        }
        let verified = prev_index.max(entries.last().map(|e| e.index).unwrap_or(prev_index));
        // Skip entries we already have; truncate at the first conflict.
        let mut new_from = None;
        for (i, e) in entries.iter().enumerate() {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    if e.index <= self.commit {
                        return Merge::CommittedConflict { index: e.index };
                    }
                    self.truncate_local(e.index);
                    new_from = Some(i);
                    break;
                }
                None => {
                    new_from = Some(i);
                    break;
                }
            }
        }
        if let Some(i) = new_from {
            let fresh: Vec<Entry> = entries[i..].to_vec();
            self.append_local(fresh);
        }
        Merge::Merged { verified }
    }

    /// Raises COMMITTED_ENTRY_CONFLICT (at most once a second).
    pub(super) fn report_committed_conflict(&mut self, from: NodeId, index: Index) {
        let due = self
            .last_conflict_report
            .is_none_or(|t| self.now >= t + 1000);
        if due {
            self.last_conflict_report = Some(self.now);
            self.actions
                .push(Action::Exception(Exception::CommittedEntryConflict {
                    leader: from,
                    index,
                    local_commit: self.commit,
                }));
        }
    }
}
