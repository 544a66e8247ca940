//! The core's in-memory view of a stream's log: the entries from the first
//! index on, plus the term of the entry just before it (the prefix boundary
//! left by `truncate`). The durable copy lives in storage; the host loads it
//! into this view at start-up and mirrors every change the core announces.

use crate::types::{Entry, Index, Term};
use std::collections::VecDeque;

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    /// Index of `entries[0]` (or of the next entry when empty).
    first: Index,
    /// Term of the entry at `first - 1` (0 when `first == 1`).
    prev_term: Term,
    entries: VecDeque<Entry>,
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
        MemLog {
            first,
            prev_term,
            entries: entries.into(),
        }
    }

    pub fn first_index(&self) -> Index {
        self.first
    }

    pub fn last_index(&self) -> Index {
        self.first + self.entries.len() as u64 - 1
    }

    pub fn last_term(&self) -> Term {
        self.entries
            .back()
            .map(|e| e.term)
            .unwrap_or(self.prev_term)
    }

    /// The term of the entry at `index`; `None` if it is past the end or
    /// before the prefix boundary.
    pub fn term_at(&self, index: Index) -> Option<Term> {
        if index + 1 == self.first {
            return Some(self.prev_term);
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: Index) -> Option<&Entry> {
        if index < self.first {
            return None;
        }
        self.entries.get((index - self.first) as usize)
    }

    /// Appends entries that continue the log.
    pub fn append(&mut self, entries: &[Entry]) {
        for e in entries {
            debug_assert_eq!(e.index, self.last_index() + 1);
            self.entries.push_back(e.clone());
        }
    }

    /// Drops every entry with index >= `from`.
    pub fn truncate_from(&mut self, from: Index) {
        if from < self.first {
            self.entries.clear();
            return;
        }
        let keep = (from - self.first) as usize;
        self.entries.truncate(keep);
    }

    /// Drops every entry below `first_kept` (DCF `truncate`).
    pub fn compact_to(&mut self, first_kept: Index) {
        while self.first < first_kept {
            match self.entries.pop_front() {
                Some(e) => {
                    self.prev_term = e.term;
                    self.first += 1;
                }
                None => break,
            }
        }
    }

    /// Up to `max` entries from `from` on, as far as they exist.
    pub fn slice(&self, from: Index, max: usize) -> Vec<Entry> {
        if from < self.first || from > self.last_index() {
            return Vec::new();
        }
        let start = (from - self.first) as usize;
        self.entries.iter().skip(start).take(max).cloned().collect()
    }

    /// The first index of the run of entries with the same term as the
    /// entry at `index` (for fast back-off), never below `floor`.
    pub fn first_of_term(&self, index: Index, floor: Index) -> Index {
        let Some(term) = self.term_at(index) else {
            return floor.max(self.first);
        };
        let mut i = index;
        while i > floor && i > self.first && self.term_at(i - 1) == Some(term) {
            i -= 1;
        }
        i.max(floor)
    }

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
            data: vec![],
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
    }
}
