//! The replicated key-value state machine. Every replica applies the same
//! commands in log order and reaches the same state and the same results,
//! so the node that proposed a command can answer its client from its own
//! application of it.

use super::checkpoint::Checkpoint;
use crate::core::{Entry, EntryKind, Index, SnapshotMeta, StreamMembers, Term};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// One micro-operation of a transaction, in Jepsen's list-append shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "lowercase")]
pub enum MicroOp {
    /// Read a key; the result carries its value.
    R { key: String },
    /// Write a value.
    W { key: String, value: Value },
    /// Append a value to the list held by a key (a missing key is an empty list).
    Append { key: String, value: Value },
}

/// A command carried in a log entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Command {
    Write { key: String, value: Value },
    Cas { key: String, from: Value, to: Value },
    Append { key: String, value: Value },
    Txn { ops: Vec<MicroOp> },
}

/// The exactly-once tag of a write: the client's id and the sequence
/// number of the request. A client retries an indeterminate write with
/// the same tag, and the state machine applies a tag at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WriteTag {
    pub client: u64,
    pub seq: u64,
}

/// What a log entry's data holds: a command and, for writes from a
/// retrying client, its tag. Entries written before tags existed (a bare
/// command) decode with no tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    #[serde(flatten)]
    pub cmd: Command,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<WriteTag>,
}

/// The last tagged write applied for one client, and its result, which
/// answers a retry of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub seq: u64,
    pub result: ApplyResult,
    /// The log index at which the client was last seen (for expiry).
    pub index: Index,
}

/// At most this many clients are remembered; past it the one seen
/// longest ago is forgotten.
pub const MAX_SESSIONS: usize = 10_000;
/// A client not seen for this many log entries is forgotten. Counted in
/// entries, not time, so every replica forgets at the same point.
pub const SESSION_IDLE_ENTRIES: Index = 1_000_000;
/// Idle clients are looked for every this many entries.
const EXPIRY_EVERY: Index = 4096;

/// The result of applying a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ApplyResult {
    Ok(Value),
    /// The command was applied but had no effect (cas mismatch): a definite failure.
    Failed(String),
}

/// The key-value state, with the log position it reflects.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvMachine {
    data: BTreeMap<String, Value>,
    /// The last log entry applied, and its term.
    applied: Index,
    applied_term: Term,
    /// The membership in force at `applied` (from applied configuration
    /// entries), which checkpoints carry.
    members: StreamMembers,
    /// Per client, its last applied tagged write (checkpoints carry it).
    sessions: BTreeMap<u64, Session>,
    /// PLANTED BUG (duplicate-apply): a retried write is applied again.
    duplicate_apply: bool,
}

/// What applying one log entry gave.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// The entry was already in the state (replayed after a checkpoint
    /// was installed): it changed nothing.
    Skipped,
    /// A configuration entry.
    Config,
    /// A command and its result.
    Command(ApplyResult),
    /// A retry of a tagged write already applied: not applied again; the
    /// result recorded when it was.
    Duplicate(ApplyResult),
    /// A tagged write older than one its client already had applied (the
    /// client gave up on it): never applied.
    Stale { last: u64 },
    /// Data that is no command of ours.
    Undecodable(String),
}

impl KvMachine {
    /// An empty state whose membership is `members` (the stream's first
    /// configuration; the log's configuration entries follow).
    pub fn new(members: StreamMembers) -> KvMachine {
        KvMachine {
            members,
            ..KvMachine::default()
        }
    }

    /// The state a checkpoint holds.
    pub fn from_checkpoint(ck: Checkpoint) -> KvMachine {
        KvMachine {
            data: ck.data,
            applied: ck.meta.index,
            applied_term: ck.meta.term,
            members: ck.meta.members,
            sessions: ck.sessions,
            duplicate_apply: false,
        }
    }

    /// PLANTED BUG (duplicate-apply): apply retries of a tagged write
    /// again instead of answering them with the recorded result.
    pub fn set_duplicate_apply(&mut self, on: bool) {
        self.duplicate_apply = on;
    }

    /// The last applied tagged write of each remembered client.
    pub fn sessions(&self) -> &BTreeMap<u64, Session> {
        &self.sessions
    }

    /// A copy of the state for a checkpoint (taken at `applied`).
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            meta: SnapshotMeta {
                index: self.applied,
                term: self.applied_term,
                members: self.members.clone(),
            },
            data: self.data.clone(),
            sessions: self.sessions.clone(),
        }
    }

    pub fn applied_index(&self) -> Index {
        self.applied
    }

    /// Applies one committed log entry, in log order; entries at or below
    /// the applied index (replays) change nothing.
    pub fn apply_entry(&mut self, e: &Entry) -> Applied {
        if e.index <= self.applied {
            return Applied::Skipped;
        }
        self.applied = e.index;
        self.applied_term = e.term;
        if e.index.is_multiple_of(EXPIRY_EVERY) {
            let horizon = e.index.saturating_sub(SESSION_IDLE_ENTRIES);
            self.sessions.retain(|_, s| s.index >= horizon);
        }
        match e.kind {
            EntryKind::Config => {
                if let Ok(m) = serde_json::from_slice::<StreamMembers>(&e.data) {
                    self.members = m;
                }
                Applied::Config
            }
            EntryKind::Data => match serde_json::from_slice::<Proposal>(&e.data) {
                Ok(Proposal { cmd, tag: None }) => Applied::Command(self.apply(&cmd)),
                Ok(Proposal {
                    cmd,
                    tag: Some(tag),
                }) => self.apply_tagged(tag, &cmd, e.index),
                Err(err) => Applied::Undecodable(err.to_string()),
            },
        }
    }

    /// Applies a tagged write at most once: a retry of the client's last
    /// write gets the recorded result, an older one is refused.
    fn apply_tagged(&mut self, tag: WriteTag, cmd: &Command, index: Index) -> Applied {
        // PLANTED BUG (duplicate-apply) skips this check, breaking "a
        // tagged write is applied at most once".
        if !self.duplicate_apply {
            if let Some(s) = self.sessions.get_mut(&tag.client) {
                if tag.seq == s.seq {
                    s.index = index;
                    return Applied::Duplicate(s.result.clone());
                }
                if tag.seq < s.seq {
                    return Applied::Stale { last: s.seq };
                }
            }
        }
        let result = self.apply(cmd);
        let session = Session {
            seq: tag.seq,
            result: result.clone(),
            index,
        };
        if self.sessions.insert(tag.client, session).is_none() && self.sessions.len() > MAX_SESSIONS
        {
            let oldest = self
                .sessions
                .iter()
                .min_by_key(|(c, s)| (s.index, **c))
                .map(|(c, _)| *c);
            if let Some(c) = oldest {
                self.sessions.remove(&c);
            }
        }
        Applied::Command(result)
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.data.get(key)
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Applies one command and returns its result.
    pub fn apply(&mut self, cmd: &Command) -> ApplyResult {
        match cmd {
            Command::Write { key, value } => {
                self.data.insert(key.clone(), value.clone());
                ApplyResult::Ok(Value::Null)
            }
            Command::Cas { key, from, to } => {
                let current = self.data.get(key).cloned().unwrap_or(Value::Null);
                if current == *from {
                    self.data.insert(key.clone(), to.clone());
                    ApplyResult::Ok(Value::Null)
                } else {
                    ApplyResult::Failed(format!("cas mismatch: {key} holds {current}"))
                }
            }
            Command::Append { key, value } => {
                self.append(key, value.clone());
                ApplyResult::Ok(Value::Null)
            }
            Command::Txn { ops } => {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    match op {
                        MicroOp::R { key } => {
                            let v = self.data.get(key).cloned().unwrap_or(Value::Null);
                            results.push(serde_json::json!(["r", key, v]));
                        }
                        MicroOp::W { key, value } => {
                            self.data.insert(key.clone(), value.clone());
                            results.push(serde_json::json!(["w", key, value]));
                        }
                        MicroOp::Append { key, value } => {
                            self.append(key, value.clone());
                            results.push(serde_json::json!(["append", key, value]));
                        }
                    }
                }
                ApplyResult::Ok(Value::Array(results))
            }
        }
    }

    fn append(&mut self, key: &str, value: Value) {
        let slot = self
            .data
            .entry(key.to_string())
            .or_insert_with(|| Value::Array(vec![]));
        match slot {
            Value::Array(items) => items.push(value),
            other => {
                // Appending to a scalar turns it into a list holding both.
                let old = other.take();
                *other = Value::Array(vec![old, value]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn write_cas_append_txn() {
        let mut m = KvMachine::default();
        let w = Command::Write {
            key: "x".into(),
            value: json!(1),
        };
        assert_eq!(m.apply(&w), ApplyResult::Ok(Value::Null));
        let bad = Command::Cas {
            key: "x".into(),
            from: json!(2),
            to: json!(3),
        };
        assert!(matches!(m.apply(&bad), ApplyResult::Failed(_)));
        assert_eq!(m.get("x"), Some(&json!(1)));
        let good = Command::Cas {
            key: "x".into(),
            from: json!(1),
            to: json!(3),
        };
        assert_eq!(m.apply(&good), ApplyResult::Ok(Value::Null));
        assert_eq!(m.get("x"), Some(&json!(3)));
        let cas_missing = Command::Cas {
            key: "y".into(),
            from: Value::Null,
            to: json!(1),
        };
        assert_eq!(m.apply(&cas_missing), ApplyResult::Ok(Value::Null));
        let txn = Command::Txn {
            ops: vec![
                MicroOp::Append {
                    key: "l".into(),
                    value: json!(1),
                },
                MicroOp::Append {
                    key: "l".into(),
                    value: json!(2),
                },
                MicroOp::R { key: "l".into() },
            ],
        };
        assert_eq!(
            m.apply(&txn),
            ApplyResult::Ok(json!([
                ["append", "l", 1],
                ["append", "l", 2],
                ["r", "l", [1, 2]]
            ]))
        );
    }

    #[test]
    fn entries_apply_once_in_order_and_checkpoints_carry_the_position() {
        let cmd = |i: Index, v: i64| Entry {
            term: 2,
            index: i,
            key: 0,
            kind: EntryKind::Data,
            data: serde_json::to_vec(&Command::Write {
                key: "k".into(),
                value: json!(v),
            })
            .unwrap(),
        };
        let mut m = KvMachine::new(StreamMembers::default());
        assert!(matches!(m.apply_entry(&cmd(1, 1)), Applied::Command(_)));
        assert!(matches!(m.apply_entry(&cmd(2, 2)), Applied::Command(_)));
        // A replay of an applied entry changes nothing.
        assert_eq!(m.apply_entry(&cmd(1, 9)), Applied::Skipped);
        assert_eq!(m.get("k"), Some(&json!(2)));
        let ck = m.checkpoint();
        assert_eq!((ck.meta.index, ck.meta.term), (2, 2));
        let back = KvMachine::from_checkpoint(ck);
        assert_eq!(back, m);
    }

    fn tagged(i: Index, client: u64, seq: u64, cmd: &Command) -> Entry {
        Entry {
            term: 1,
            index: i,
            key: 0,
            kind: EntryKind::Data,
            data: serde_json::to_vec(&Proposal {
                cmd: cmd.clone(),
                tag: Some(WriteTag { client, seq }),
            })
            .unwrap(),
        }
    }

    fn append(v: i64) -> Command {
        Command::Append {
            key: "l".into(),
            value: json!(v),
        }
    }

    #[test]
    fn a_retried_tag_is_applied_once_and_gets_the_first_result() {
        let mut m = KvMachine::default();
        assert_eq!(
            m.apply_entry(&tagged(1, 7, 1, &append(1))),
            Applied::Command(ApplyResult::Ok(Value::Null))
        );
        // The same tag again (a retry committed after the first try).
        assert_eq!(
            m.apply_entry(&tagged(2, 7, 1, &append(1))),
            Applied::Duplicate(ApplyResult::Ok(Value::Null))
        );
        assert_eq!(m.get("l"), Some(&json!([1])));
        // Another client's write with the same seq is its own.
        assert!(matches!(
            m.apply_entry(&tagged(3, 8, 1, &append(2))),
            Applied::Command(_)
        ));
        // A cas answered from the record: its mismatch, not a second run.
        let cas = Command::Cas {
            key: "r".into(),
            from: json!(5),
            to: json!(6),
        };
        let first = m.apply_entry(&tagged(4, 7, 2, &cas));
        assert!(matches!(first, Applied::Command(ApplyResult::Failed(_))));
        m.apply(&Command::Write {
            key: "r".into(),
            value: json!(5),
        });
        match m.apply_entry(&tagged(5, 7, 2, &cas)) {
            Applied::Duplicate(r) => assert_eq!(Applied::Command(r), first),
            other => panic!("a retry was applied again: {other:?}"),
        }
        assert_eq!(m.get("r"), Some(&json!(5)));
        // An older tag than the client's last one is never applied.
        assert_eq!(
            m.apply_entry(&tagged(6, 7, 1, &append(1))),
            Applied::Stale { last: 2 }
        );
        assert_eq!(m.get("l"), Some(&json!([1, 2])));
        assert_eq!(m.sessions().len(), 2);
    }

    #[test]
    fn dedupe_survives_a_checkpoint_and_the_planted_bug_skips_it() {
        let mut m = KvMachine::default();
        m.apply_entry(&tagged(1, 7, 1, &append(1)));
        let ck = m.checkpoint();
        let mut bytes = Vec::new();
        super::super::checkpoint::encode_with_sessions(
            &ck.meta,
            &ck.data,
            &ck.sessions,
            &mut bytes,
        )
        .unwrap();
        let restored = super::super::checkpoint::decode(&bytes).unwrap();
        let mut back = KvMachine::from_checkpoint(restored);
        assert_eq!(back, m);
        assert!(matches!(
            back.apply_entry(&tagged(2, 7, 1, &append(1))),
            Applied::Duplicate(_)
        ));
        assert_eq!(back.get("l"), Some(&json!([1])));
        // PLANTED BUG (duplicate-apply): the same retry is applied twice.
        let mut buggy = KvMachine::from_checkpoint(m.checkpoint());
        buggy.set_duplicate_apply(true);
        assert!(matches!(
            buggy.apply_entry(&tagged(2, 7, 1, &append(1))),
            Applied::Command(_)
        ));
        assert_eq!(buggy.get("l"), Some(&json!([1, 1])));
    }

    #[test]
    fn sessions_are_bounded_and_idle_ones_expire() {
        let mut m = KvMachine::default();
        for c in 0..MAX_SESSIONS as u64 + 5 {
            m.apply_entry(&tagged(c + 1, c, 1, &append(1)));
        }
        assert_eq!(m.sessions().len(), MAX_SESSIONS);
        // The clients seen longest ago went first.
        assert!(!m.sessions().contains_key(&0) && m.sessions().contains_key(&5));
        // Long after, an entry at an expiry point forgets every idle client.
        let late = (SESSION_IDLE_ENTRIES + 20_000) / EXPIRY_EVERY * EXPIRY_EVERY;
        m.apply_entry(&tagged(late, 1 << 40, 1, &append(1)));
        assert_eq!(m.sessions().len(), 1);
    }

    #[test]
    fn untagged_entries_of_older_nodes_still_apply() {
        let e = Entry {
            term: 1,
            index: 1,
            key: 0,
            kind: EntryKind::Data,
            data: br#"{"op":"append","key":"l","value":3}"#.to_vec(),
        };
        let mut m = KvMachine::default();
        assert!(matches!(m.apply_entry(&e), Applied::Command(_)));
        assert_eq!(m.get("l"), Some(&json!([3])));
        let p = Proposal {
            cmd: append(4),
            tag: Some(WriteTag { client: 1, seq: 2 }),
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(
            v,
            json!({"op":"append","key":"l","value":4,"tag":{"client":1,"seq":2}})
        );
        assert_eq!(serde_json::from_value::<Proposal>(v).unwrap(), p);
    }

    #[test]
    fn commands_round_trip_as_json() {
        let c = Command::Txn {
            ops: vec![MicroOp::R { key: "k".into() }],
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&s).unwrap(), c);
    }
}
