//! The core's in-memory view of a stream's log.
//!
//! It knows the shape of the whole log (first and last index, and the term
//! of every entry, kept as runs of equal terms so it costs memory per term,
//! not per entry) but holds the entries themselves only from
//! [`MemLog::cached_from`] on. Older entries live only in storage: the core
//! drops them once they are applied and no longer needed for replication
//! ([`MemLog::evict_below`]), so a node's memory does not grow with the
//! length of its history. The durable copy lives in storage; the host loads
//! it into this view at start-up and mirrors every change the core
//! announces.

use crate::types::{Entry, Index, Term};
use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    /// The first index of the log (entries below it were compacted away).
    first: Index,
    /// Term of the entry at `first - 1` (0 when `first == 1`).
    prev_term: Term,
    /// Index of the last entry (`first - 1` when empty).
    last: Index,
    /// (first index of the run, term), ascending, covering `first..=last`.
    runs: VecDeque<(Index, Term)>,
    /// Index of `entries[0]` (or `last + 1` when nothing is cached).
    cached_from: Index,
    entries: VecDeque<Entry>,
    /// Bytes of entry data held in `entries`.
    cached_bytes: usize,
}

impl MemLog {
    /// A log whose first index is `first` and whose boundary entry
    /// (`first - 1`) has term `prev_term`, holding `entries` (which must
    /// start at `first` and be contiguous).
    pub fn new(first: Index, prev_term: Term, entries: Vec<Entry>) -> MemLog {
        let first = first.max(1);
        debug_assert!(entries
            .iter()
            .enumerate()
            .all(|(i, e)| e.index == first + i as u64));
        let mut log = MemLog {
            first,
            prev_term,
            last: first - 1,
            runs: VecDeque::new(),
            cached_from: first,
            entries: VecDeque::new(),
            cached_bytes: 0,
        };
        log.append(&entries);
        log
    }

    pub fn first_index(&self) -> Index {
        self.first
    }

    pub fn last_index(&self) -> Index {
        self.last
    }

    /// The first index whose entry is held in memory (`last_index() + 1`
    /// when none is).
    pub fn cached_from(&self) -> Index {
        self.cached_from
    }

    /// Entries and bytes of entry data held in memory.
    pub fn cached(&self) -> (usize, usize) {
        (self.entries.len(), self.cached_bytes)
    }

    pub fn last_term(&self) -> Term {
        self.runs.back().map(|r| r.1).unwrap_or(self.prev_term)
    }

    /// The term of the entry at `index`; `None` if it is past the end or
    /// before the prefix boundary.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index + 1 == self.first {
            return Some(self.prev_term);
        }
        if index < self.first || index > self.last {
            return None;
        }
        // The run starting at or before `index`.
        let pos = self.runs.partition_point(|r| r.0 <= index);
        Some(self.runs[pos - 1].1)
    }

    /// The entry at `index` if it is held in memory.
    pub fn get(&self, index: Index) -> Option<&Entry> {
        if index < self.cached_from {
            return None;
        }
        self.entries.get((index - self.cached_from) as usize)
    }

    /// Appends entries that continue the log.
    pub fn append(&mut self, entries: &[Entry]) {
        for e in entries {
            debug_assert_eq!(e.index, self.last + 1);
            if self.runs.back().map(|r| r.1) != Some(e.term) {
                self.runs.push_back((e.index, e.term));
            }
            if self.entries.is_empty() {
                self.cached_from = e.index;
            }
            self.last = e.index;
            self.cached_bytes += e.data.len();
            self.entries.push_back(e.clone());
        }
    }

    /// Drops every entry with index >= `from`.
    pub fn truncate_from(&mut self, from: Index) {
        let from = from.max(self.first);
        if from > self.last {
            return;
        }
        self.last = from - 1;
        while self.runs.back().is_some_and(|r| r.0 >= from) {
            self.runs.pop_back();
        }
        while self.entries.back().is_some_and(|e| e.index >= from) {
            let e = self.entries.pop_back().expect("checked");
            self.cached_bytes -= e.data.len();
        }
        if self.entries.is_empty() {
            self.cached_from = self.last + 1;
        }
    }

    /// Drops every entry below `first_kept` (DCF `truncate`); never past
    /// the end of the log.
    pub fn compact_to(&mut self, first_kept: Index) {
        let first_kept = first_kept.min(self.last + 1);
        if first_kept <= self.first {
            return;
        }
        self.prev_term = self.term_at(first_kept - 1).unwrap_or(self.prev_term);
        self.first = first_kept;
        // Runs: drop those wholly below, clip the one straddling.
        while self.runs.len() > 1 && self.runs[1].0 <= first_kept {
            self.runs.pop_front();
        }
        if let Some(r) = self.runs.front_mut() {
            if r.0 < first_kept {
                r.0 = first_kept;
            }
        }
        if first_kept > self.last {
            self.runs.clear();
        }
        self.evict_below(first_kept);
    }

    /// Replaces the whole log by an empty one that continues after
    /// (`last`, `last_term`): the state after installing a checkpoint that
    /// the log does not reach or contradicts.
    pub fn reset(&mut self, last: Index, last_term: Term) {
        *self = MemLog::new(last + 1, last_term, Vec::new());
    }

    /// Forgets the in-memory copy of the entries below `index` (they stay
    /// in the log and in storage).
    pub fn evict_below(&mut self, index: Index) {
        while self.entries.front().is_some_and(|e| e.index < index) {
            let e = self.entries.pop_front().expect("checked");
            self.cached_bytes -= e.data.len();
        }
        self.cached_from = self
            .entries
            .front()
            .map(|e| e.index)
            .unwrap_or(self.last + 1);
    }

    /// Up to `max` entries from `from` on, as far as they are held in
    /// memory (empty if `from` is not).
    pub fn slice(&self, from: Index, max: usize) -> Vec<Entry> {
        if from < self.cached_from || from > self.last {
            return Vec::new();
        }
        let start = (from - self.cached_from) as usize;
        self.entries.iter().skip(start).take(max).cloned().collect()
    }

    /// The first index of the run of entries with the same term as the
    /// entry at `index` (for fast back-off), never below `floor`.
    pub fn first_of_term(&self, index: Index, floor: Index) -> Index {
        if self.term_at(index).is_none() {
            return floor.max(self.first);
        }
        if index + 1 == self.first {
            return index.max(floor);
        }
        let pos = self.runs.partition_point(|r| r.0 <= index);
        self.runs[pos - 1].0.max(floor).max(self.first)
    }

    /// The entries held in memory, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::EntryKind;

    fn e(index: Index, term: Term) -> Entry {
        Entry {
            term,
            index,
            key: 0,
            kind: EntryKind::Data,
            data: vec![0; 10],
        }
    }

    #[test]
    fn append_truncate_compact() {
        let mut log = MemLog::new(1, 0, vec![]);
        assert_eq!(log.last_index(), 0);
        assert_eq!(log.term_at(0), Some(0));
        log.append(&[e(1, 1), e(2, 1), e(3, 2)]);
        assert_eq!(log.last_index(), 3);
        assert_eq!(log.last_term(), 2);
        assert_eq!(log.first_of_term(2, 0), 1);
        log.truncate_from(3);
        assert_eq!(log.last_index(), 2);
        log.compact_to(2);
        assert_eq!(log.first_index(), 2);
        assert_eq!(log.term_at(1), Some(1));
        assert_eq!(log.term_at(0), None);
        assert_eq!(log.slice(2, 10).len(), 1);
        log.compact_to(3);
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.last_term(), 1);
        assert_eq!(log.first_index(), 3);
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.cached(), (0, 0));
    }

    #[test]
    fn terms_are_known_for_evicted_entries() {
        let mut log = MemLog::new(1, 0, vec![]);
        log.append(&[e(1, 1), e(2, 1), e(3, 2), e(4, 2), e(5, 5)]);
        log.evict_below(4);
        assert_eq!(log.cached_from(), 4);
        assert_eq!(log.cached(), (2, 20));
        assert!(log.get(3).is_none());
        assert_eq!(log.get(4).map(|x| x.term), Some(2));
        assert_eq!(
            (1..=5).map(|i| log.term_at(i)).collect::<Vec<_>>(),
            vec![Some(1), Some(1), Some(2), Some(2), Some(5)]
        );
        assert_eq!(log.first_of_term(4, 0), 3);
        assert_eq!(log.first_of_term(4, 4), 4);
        assert!(log.slice(2, 10).is_empty());
        assert_eq!(log.slice(4, 10).len(), 2);
        // Truncation below the cache keeps the terms right.
        log.truncate_from(3);
        assert_eq!(log.last_index(), 2);
        assert_eq!(log.last_term(), 1);
        assert_eq!(log.cached_from(), 3);
        log.append(&[e(3, 7)]);
        assert_eq!(log.cached_from(), 3);
        assert_eq!(log.term_at(3), Some(7));
        // Compaction inside a run clips it.
        log.compact_to(2);
        assert_eq!(log.term_at(1), Some(1));
        assert_eq!(log.term_at(2), Some(1));
        assert_eq!(log.first_of_term(2, 0), 2);
    }

    #[test]
    fn reset_continues_after_a_checkpoint() {
        let mut log = MemLog::new(1, 0, vec![e(1, 1), e(2, 1)]);
        log.reset(10, 3);
        assert_eq!(log.first_index(), 11);
        assert_eq!(log.last_index(), 10);
        assert_eq!(log.last_term(), 3);
        assert_eq!(log.term_at(10), Some(3));
        assert_eq!(log.term_at(2), None);
        log.append(&[e(11, 4)]);
        assert_eq!(log.get(11).map(|x| x.term), Some(4));
    }
}
