//! An in-memory model of what a node keeps on disk.

use crate::config::StreamMembers;
use crate::stream::{HardState, Restored, WorkMode};
use crate::types::{Entry, Envelope, Index, Term};

/// A node's disk: hard state and work mode (durable as soon as they are
/// saved, as the host saves them synchronously), the host's applied
/// index, the configuration the node was first started with, and the log:
/// entries `first..` as a durable prefix followed by a tail written but
/// not yet synced, which a crash loses.
#[derive(Clone, Debug)]
pub struct Disk {
    pub hard: HardState,
    pub work_mode: WorkMode,
    /// The host's applied index (what it passes at a restart).
    pub applied: Index,
    /// The configuration the node was first started with.
    pub base: StreamMembers,
    /// The first index of the log.
    pub first: Index,
    /// The term of the entry at `first - 1`.
    pub prev_term: Term,
    durable: Vec<Entry>,
    tail: Vec<Entry>,
}

impl Disk {
    /// An empty disk of a node first started with `base`.
    pub fn new(base: StreamMembers) -> Disk {
        Disk {
            hard: HardState::default(),
            work_mode: WorkMode::Normal,
            applied: 0,
            base,
            first: 1,
            prev_term: 0,
            durable: Vec::new(),
            tail: Vec::new(),
        }
    }

    /// The last index of the log, synced or not (`first - 1` when empty).
    pub fn last_index(&self) -> Index {
        self.first - 1 + (self.durable.len() + self.tail.len()) as Index
    }

    /// The last index that is durable.
    pub fn durable_index(&self) -> Index {
        self.first - 1 + self.durable.len() as Index
    }

    /// Entries written but not yet synced.
    pub fn unsynced(&self) -> usize {
        self.tail.len()
    }

    /// The entry at `index`, synced or not.
    pub fn entry(&self, index: Index) -> Option<&Entry> {
        let k = usize::try_from(index.checked_sub(self.first)?).ok()?;
        match k.checked_sub(self.durable.len()) {
            None => self.durable.get(k),
            Some(t) => self.tail.get(t),
        }
        .filter(|e| e.index == index)
    }

    /// The term of the entry at `index` (the boundary entry `first - 1`
    /// included); `None` outside the log.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index + 1 == self.first {
            return Some(self.prev_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// Entries `from..=to` if the log holds all of them.
    pub fn read(&self, from: Index, to: Index) -> Option<Vec<Entry>> {
        (from..=to).map(|i| self.entry(i).cloned()).collect()
    }

    /// Fills the entries `from..=to` of the log into a message sent
    /// without them (`Action::SendWithStoredEntries`); false if the log
    /// does not hold them all.
    pub fn fill(&self, env: &mut Envelope, from: Index, to: Index) -> bool {
        let Some(stored) = self.read(from, to) else {
            return false;
        };
        if let Some(entries) = env.msg.entries_mut() {
            *entries = stored;
        }
        true
    }

    /// Writes entries after the last one, unsynced.
    pub fn append(&mut self, entries: Vec<Entry>) {
        self.tail.extend(entries);
    }

    /// Syncs the whole tail; returns the (index, term) of the last entry
    /// that became durable, if any did.
    pub fn sync(&mut self) -> Option<(Index, Term)> {
        self.sync_prefix(self.tail.len())
    }

    /// Syncs the first `n` entries of the tail (a sync that covered only
    /// part of what was written); returns the last one that became durable.
    pub fn sync_prefix(&mut self, n: usize) -> Option<(Index, Term)> {
        let moved: Vec<Entry> = self.tail.drain(..n.min(self.tail.len())).collect();
        let last = moved.last().map(|e| (e.index, e.term));
        self.durable.extend(moved);
        last
    }

    /// Drops every entry from `from` on.
    pub fn truncate_from(&mut self, from: Index) {
        let keep = from.saturating_sub(self.first) as usize;
        if keep < self.durable.len() {
            self.durable.truncate(keep);
            self.tail.clear();
        } else {
            self.tail.truncate(keep - self.durable.len());
        }
    }

    /// Drops every entry below `first_kept`, which must be past the first
    /// index and at most one past the last durable entry.
    pub fn compact_to(&mut self, first_kept: Index) -> Result<(), String> {
        if first_kept <= self.first || first_kept > self.durable_index() + 1 {
            return Err(format!(
                "cannot compact to {first_kept}: the log holds {}..={} ({} durable)",
                self.first,
                self.last_index(),
                self.durable_index()
            ));
        }
        self.prev_term = self.term_at(first_kept - 1).unwrap_or(self.prev_term);
        self.durable.drain(..(first_kept - self.first) as usize);
        self.first = first_kept;
        Ok(())
    }

    /// Replaces the log by an empty one continuing after (`last`,
    /// `last_term`).
    pub fn reset(&mut self, last: Index, last_term: Term) {
        self.first = last + 1;
        self.prev_term = last_term;
        self.durable.clear();
        self.tail.clear();
    }

    /// A crash: the unsynced tail is lost.
    pub fn crash(&mut self) {
        self.tail.clear();
    }

    /// What the node restarts from: the hard state, the durable log, the
    /// given applied index and configuration baseline.
    pub fn restored(&self, applied: Index, config_index: Index) -> Restored {
        Restored {
            hard_state: self.hard,
            first_index: self.first,
            prev_term: self.prev_term,
            entries: self.durable.clone(),
            applied_index: applied,
            config_index,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::fixtures::{entries, entry, members};

    #[test]
    fn a_crash_loses_only_the_unsynced_tail() {
        let mut d = Disk::new(members(3, 0));
        d.append(entries(1, 3, 1));
        assert_eq!(d.sync_prefix(2), Some((2, 1)));
        d.append(entries(4, 5, 1));
        assert_eq!((d.durable_index(), d.last_index(), d.unsynced()), (2, 5, 3));
        assert_eq!(d.entry(4), Some(&entry(4, 1)));
        d.crash();
        assert_eq!((d.durable_index(), d.last_index()), (2, 2));
        assert_eq!(d.restored(2, 0).entries, entries(1, 2, 1));
    }

    #[test]
    fn truncation_compaction_and_reset_keep_indexes_straight() {
        let mut d = Disk::new(members(3, 0));
        d.append(entries(1, 4, 1));
        d.sync();
        d.append(entries(5, 6, 2));
        d.truncate_from(6);
        assert_eq!((d.last_index(), d.unsynced()), (5, 1));
        d.truncate_from(3);
        assert_eq!((d.last_index(), d.durable_index(), d.unsynced()), (2, 2, 0));
        assert!(d.compact_to(4).is_err(), "past the durable log");
        d.compact_to(2).unwrap();
        assert_eq!(
            (d.first, d.prev_term, d.term_at(1), d.entry(1)),
            (2, 1, Some(1), None)
        );
        assert!(d.compact_to(2).is_err(), "not past the first index");
        d.reset(10, 3);
        assert_eq!((d.first, d.last_index(), d.term_at(10)), (11, 10, Some(3)));
        assert_eq!(d.read(9, 10), None);
    }
}
