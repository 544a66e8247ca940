//! Members, options and entries for tests.

use crate::config::{Member, MemberKind, NodeId, StreamMembers};
use crate::stream::{CoreOptions, HardState, Restored};
use crate::types::{Entry, EntryKind, Index, Term};

/// Node `id` of kind `kind` at 127.0.0.1:(1700 + id), weight 1, group 0,
/// priority 0, not the configured LEADER.
pub fn member(id: NodeId, kind: MemberKind) -> Member {
    Member {
        node_id: id,
        ip: "127.0.0.1".into(),
        port: 1700 + id as u16,
        kind,
        initial_leader: false,
        weight: 1,
        group: 0,
        priority: 0,
    }
}

/// Nodes 1..=`n`, all voters; `leader` is the configured LEADER (0: none).
pub fn members(n: u32, leader: NodeId) -> StreamMembers {
    members_with(n, leader, |_| MemberKind::Voter)
}

/// Nodes 1..=`n` of the kinds `kind` gives them; `leader` is the
/// configured LEADER (0: none).
pub fn members_with(n: u32, leader: NodeId, kind: impl Fn(NodeId) -> MemberKind) -> StreamMembers {
    StreamMembers {
        members: (1..=n)
            .map(|id| Member {
                initial_leader: id == leader,
                ..member(id, kind(id))
            })
            .collect(),
    }
}

/// Options of node `id` of stream 1 with the given election timeout and
/// heartbeat interval (the rest as [`CoreOptions::new`] has them).
pub fn options(id: NodeId, election_timeout_ms: u64, heartbeat_interval_ms: u64) -> CoreOptions {
    let mut o = CoreOptions::new(id, 1);
    o.election_timeout_ms = election_timeout_ms;
    o.heartbeat_interval_ms = heartbeat_interval_ms;
    o
}

/// A data entry whose key and one-byte data are its index.
pub fn entry(index: Index, term: Term) -> Entry {
    Entry {
        term,
        index,
        key: index,
        kind: EntryKind::Data,
        data: vec![index as u8],
    }
}

/// Data entries `from..=to`, all of term `term`.
pub fn entries(from: Index, to: Index, term: Term) -> Vec<Entry> {
    (from..=to).map(|i| entry(i, term)).collect()
}

/// A configuration entry holding `members`.
pub fn config_entry(index: Index, term: Term, members: &StreamMembers) -> Entry {
    Entry {
        term,
        index,
        key: 0,
        kind: EntryKind::Config,
        data: serde_json::to_vec(members).unwrap_or_default(),
    }
}

/// A node restarting with `entries` (from index 1), term `term` and the
/// host's applied index `applied`.
pub fn restored(term: Term, entries: Vec<Entry>, applied: Index) -> Restored {
    Restored {
        hard_state: HardState {
            term,
            voted_for: None,
        },
        first_index: 1,
        prev_term: 0,
        entries,
        applied_index: applied,
        config_index: 0,
    }
}
