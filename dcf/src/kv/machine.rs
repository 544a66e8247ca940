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
        }
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
        match e.kind {
            EntryKind::Config => {
                if let Ok(m) = serde_json::from_slice::<StreamMembers>(&e.data) {
                    self.members = m;
                }
                Applied::Config
            }
            EntryKind::Data => match serde_json::from_slice::<Command>(&e.data) {
                Ok(cmd) => Applied::Command(self.apply(&cmd)),
                Err(err) => Applied::Undecodable(err.to_string()),
            },
        }
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

    #[test]
    fn commands_round_trip_as_json() {
        let c = Command::Txn {
            ops: vec![MicroOp::R { key: "k".into() }],
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<Command>(&s).unwrap(), c);
    }
}
