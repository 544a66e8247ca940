//! Changes to the local log and the state machine: appends, truncations,
//! durability and apply progress, and the in-memory entry cache.

use super::{Action, StreamCore};
use crate::config::{NodeId, StreamMembers};
use crate::types::{AppendResponse, Entry, EntryKind, Index, Message, Term};

impl StreamCore {
    /// Storage made every entry up to `index` durable, the one at `index`
    /// having `term` (stale reports, for entries since truncated, are ignored).
    pub fn on_persisted(&mut self, now: u64, index: Index, term: Term) {
        self.now = now.max(self.now);
        if index <= self.durable || self.log.term_at(index) != Some(term) {
            return;
        }
        self.durable = index.min(self.log.last_index());
        if self.is_leader() {
            self.maybe_commit();
            return;
        }
        let (durable, leader) = (self.durable, self.leader);
        let (Some(leader), Some(fs)) = (leader, self.follower_state_mut()) else {
            return;
        };
        // Acknowledge what became durable and is known to match the leader.
        let upto = durable.min(fs.ack_upto);
        if upto > fs.acked {
            fs.acked = upto;
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
    }

    /// The host applied every entry up to `index`.
    pub fn on_applied(&mut self, index: Index) {
        if index > self.applied {
            self.applied = index.min(self.apply_sent);
        }
        self.check_leader_ready();
    }

    /// Drops from memory the entries that are applied and that neither
    /// replication nor the recent-entries allowance needs any more
    /// ([`CoreOptions::cache_max_entries`], [`CoreOptions::cache_max_bytes`]);
    /// they stay in storage.
    pub(super) fn trim_cache(&mut self) {
        let last = self.log.last_index();
        let unapplied = self.apply_taken + 1;
        let recent = (last + 1).saturating_sub(self.opts.cache_max_entries as u64);
        let mut floor = recent;
        if let Some(ls) = self.leader_state() {
            // Peers that are not far behind get their entries from memory.
            let wanted = ls
                .peers
                .values()
                .map(|p| p.match_index + 1)
                .filter(|i| *i >= recent.saturating_sub(self.opts.max_batch_entries as u64))
                .min();
            if let Some(w) = wanted {
                floor = floor.min(w);
            }
        }
        let floor = floor.min(unapplied);
        if floor > self.log.cached_from() {
            self.log.evict_below(floor);
        }
        while self.log.cached().1 > self.opts.cache_max_bytes && self.log.cached_from() < unapplied
        {
            let next = self.log.cached_from() + 1;
            self.log.evict_below(next);
        }
    }

    pub(super) fn append_local(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut config_changed = false;
        let base = self.config_history[0].0;
        for e in &entries {
            if e.kind == EntryKind::Config && e.index > base {
                if let Ok(m) = serde_json::from_slice::<StreamMembers>(&e.data) {
                    self.config_history.push((e.index, m.clone()));
                    self.members = m;
                    config_changed = true;
                }
            }
        }
        self.log.append(&entries);
        if config_changed {
            self.sync_peers();
            self.emit_apply();
        }
        if let Some(ls) = self.leader_state_mut() {
            let ids: Vec<NodeId> = ls.peers.keys().copied().collect();
            ls.dirty_peers.extend(ids);
        }
        self.actions.push(Action::AppendLog(entries));
    }

    pub(super) fn truncate_local(&mut self, from: Index) {
        self.log.truncate_from(from);
        self.durable = self.durable.min(from.saturating_sub(1));
        if let Some(fs) = self.follower_state_mut() {
            fs.ack_upto = fs.ack_upto.min(from.saturating_sub(1));
        }
        // A configuration entry removed by truncation rolls the
        // configuration back to the newest one still in the log.
        let before = self.config_history.len();
        let base = self.config_history[0].clone();
        self.config_history.retain(|(i, _)| *i < from);
        if self.config_history.first() != Some(&base) {
            self.config_history.insert(0, base);
        }
        if self.config_history.len() != before {
            self.members = self
                .config_history
                .last()
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
        }
        self.actions.push(Action::TruncateLog { from });
    }

    pub(super) fn emit_apply(&mut self) {
        // A node that is not (or no longer, or not yet) a member applies
        // nothing until it learns it is one: a fresh node may start with a
        // configuration that does not list it, and a removed LOGGER must
        // not start applying in the middle of the log.
        // (A leader removing itself keeps applying until the removal
        // commits: the newest committed configuration still lists it.)
        let me = self.opts.node_id;
        let Some(kind) = self
            .self_kind()
            .or_else(|| self.committed_config().get(me).map(|m| m.kind))
        else {
            return;
        };
        let applies = kind.applies();
        if self.commit <= self.apply_sent {
            return;
        }
        if !applies {
            // LOGGER nodes apply nothing; their applied index follows commit.
            self.apply_sent = self.commit;
            self.applied = self.commit;
            self.check_leader_ready();
            return;
        }
        let mut from = self.apply_sent + 1;
        while from <= self.commit {
            let batch = self
                .log
                .slice(from, (self.commit - from + 1).min(4096) as usize);
            if batch.is_empty() {
                break;
            }
            from = batch.last().map(|e| e.index + 1).unwrap_or(from);
            self.apply_sent = from - 1;
            self.actions.push(Action::Apply(batch));
        }
        self.check_leader_ready();
    }
}
