//! The history model: Jepsen's operations (invoke / ok / fail / info) and the
//! pairing of each invocation with its completion.
//!
//! Every checker works on a [`History`]; importers of other tools' formats
//! produce one, and the harness appends [`Op`]s to `history.jsonl` as they
//! happen. Values are kept as JSON so that any workload's shape survives a
//! round trip; each checker compiles them into its own compact form.

use std::fmt;
use std::io::{BufRead, Write};

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CheckError;

/// Whether an event starts an operation or says how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpType {
    /// The operation was issued.
    Invoke,
    /// It definitely took effect, with the given result.
    Ok,
    /// It definitely did not take effect (for a cas: the compare failed).
    Fail,
    /// Indeterminate: it may take effect at any time after its invocation,
    /// or never. The process never completes another operation.
    Info,
}

impl OpType {
    /// The name used in histories (`invoke`, `ok`, `fail`, `info`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpType::Invoke => "invoke",
            OpType::Ok => "ok",
            OpType::Fail => "fail",
            OpType::Info => "info",
        }
    }
}

impl fmt::Display for OpType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who issued an operation: a client process (Jepsen's logical thread) or the
/// nemesis. Serialised as a number or the string `"nemesis"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    /// A client process; a process retired after `info` is replaced by a new id.
    Client(u64),
    /// The fault injector; its operations are kept for reports, skipped by checkers.
    Nemesis,
}

impl Process {
    /// True for the nemesis, whose operations checkers ignore.
    pub fn is_nemesis(self) -> bool {
        matches!(self, Process::Nemesis)
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Process::Client(p) => write!(f, "{p}"),
            Process::Nemesis => f.write_str("nemesis"),
        }
    }
}

impl Serialize for Process {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Process::Client(p) => s.serialize_u64(*p),
            Process::Nemesis => s.serialize_str("nemesis"),
        }
    }
}

impl<'de> Deserialize<'de> for Process {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Process;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a non-negative process number or \"nemesis\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Process, E> {
                Ok(Process::Client(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Process, E> {
                u64::try_from(v)
                    .map(Process::Client)
                    .map_err(|_| E::custom(format!("negative process {v}")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Process, E> {
                if v == "nemesis" {
                    Ok(Process::Nemesis)
                } else {
                    Err(E::custom(format!("unknown process {v:?}")))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// One event of a history, with Jepsen's meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (0-based).
    #[serde(default)]
    pub index: u64,
    /// Nanoseconds since the start of the test (importers without clocks use
    /// the line number).
    #[serde(default)]
    pub time: u64,
    /// Who issued it.
    pub process: Process,
    /// invoke / ok / fail / info.
    #[serde(rename = "type")]
    pub kind: OpType,
    /// The function: `read`, `write`, `cas`, `get`, `put`, `append`, `txn`, `add`, ...
    pub f: String,
    /// The key for keyed workloads (`None` for a single register or a txn).
    #[serde(default)]
    pub key: Option<Value>,
    /// Arguments at invocation, results at completion (Jepsen's shape).
    #[serde(default)]
    pub value: Value,
    /// The node the client talked to, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it failed or is indeterminate, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The line of the source file this event came from, for error messages.
    #[serde(skip)]
    pub line: Option<usize>,
}

impl Op {
    /// A new event with no key, node or error.
    pub fn new(process: Process, kind: OpType, f: impl Into<String>, value: Value) -> Op {
        Op {
            index: 0,
            time: 0,
            process,
            kind,
            f: f.into(),
            key: None,
            value,
            node: None,
            error: None,
            line: None,
        }
    }

    /// Builder-style: set the key.
    pub fn with_key(mut self, key: Value) -> Op {
        self.key = Some(key);
        self
    }

    /// Builder-style: set the time.
    pub fn at(mut self, time: u64) -> Op {
        self.time = time;
        self
    }

    /// Where this event came from, for error messages.
    pub fn location(&self) -> String {
        match self.line {
            Some(l) => format!("line {l}"),
            None => format!("operation index {}", self.index),
        }
    }
}

/// An invocation and how it ended: the unit checkers reason about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Position of the invocation in [`History::ops`].
    pub invoke: usize,
    /// Position of its completion; `None` if the history ended first (which
    /// means the same as `info`).
    pub complete: Option<usize>,
}

/// What a failed completion and a `null` register read mean. Formats
/// disagree, so each importer says which meaning its format has and
/// `--semantics` can override it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Semantics {
    /// Jepsen's and Knossos's contract (`history.edn`): a `fail` certainly
    /// did not take place and observed nothing; in the register models a
    /// read of `nil` constrains nothing.
    Jepsen,
    /// porcupine's and the published etcd logs': a failed cas ran and found
    /// a value other than its `from`; a `nil` read saw an empty register.
    Observation,
    /// Ours (`history.jsonl`): a failure whose `error` starts with
    /// `"unexecuted"` never ran; any other failed cas ran and found another
    /// value; a `null` read saw an empty register.
    #[default]
    Tagged,
}

impl Semantics {
    /// Names accepted by [`Semantics::from_str`](std::str::FromStr).
    pub const NAMES: &'static [&'static str] = &["jepsen", "observation", "tagged"];

    /// The name `--semantics` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Semantics::Jepsen => "jepsen",
            Semantics::Observation => "observation",
            Semantics::Tagged => "tagged",
        }
    }
}

impl fmt::Display for Semantics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Semantics {
    type Err = CheckError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "jepsen" | "knossos" => Ok(Semantics::Jepsen),
            "observation" | "porcupine" => Ok(Semantics::Observation),
            "tagged" => Ok(Semantics::Tagged),
            other => Err(CheckError::Usage(format!(
                "unknown semantics {other:?} (expected one of {})",
                Semantics::NAMES.join(", ")
            ))),
        }
    }
}

/// A sequence of events in real-time order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The events, in the order they happened.
    pub ops: Vec<Op>,
    /// What failures and `null` reads mean in this history (set by the
    /// importer of its format).
    pub semantics: Semantics,
}

impl History {
    /// Wrap events; `index` fields are renumbered to positions so that they
    /// always identify an event.
    pub fn new(mut ops: Vec<Op>) -> History {
        for (i, op) in ops.iter_mut().enumerate() {
            op.index = i as u64;
        }
        History {
            ops,
            semantics: Semantics::default(),
        }
    }

    /// Builder-style: set what failures and `null` reads mean.
    pub fn with_semantics(mut self, semantics: Semantics) -> History {
        self.semantics = semantics;
        self
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True if there are no events.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Append an event, numbering it.
    pub fn push(&mut self, mut op: Op) {
        op.index = self.ops.len() as u64;
        self.ops.push(op);
    }

    /// Pair every client invocation with its completion, in invocation order.
    ///
    /// Nemesis events are skipped. Errors on a completion without an
    /// invocation, an invocation while the same process still has one
    /// pending, or any event from a process after it got `info` (Jepsen's
    /// rule: such a process is retired).
    pub fn pairs(&self) -> Result<Vec<Pair>, CheckError> {
        use std::collections::HashMap;
        #[derive(Clone, Copy)]
        enum Slot {
            Pending(usize),
            Idle,
            Crashed,
        }
        let mut slots: HashMap<Process, Slot> = HashMap::new();
        let mut out: Vec<Pair> = Vec::new();
        for (i, op) in self.ops.iter().enumerate() {
            if op.process.is_nemesis() {
                continue;
            }
            let slot = slots.get(&op.process).copied().unwrap_or(Slot::Idle);
            let bad = |why: &str| {
                Err(CheckError::Malformed {
                    location: op.location(),
                    message: format!("process {} {why}", op.process),
                })
            };
            match (op.kind, slot) {
                (_, Slot::Crashed) => return bad("has an event after an info completion"),
                (OpType::Invoke, Slot::Pending(_)) => {
                    return bad("invoked while its previous operation is pending")
                }
                (OpType::Invoke, Slot::Idle) => {
                    slots.insert(op.process, Slot::Pending(out.len()));
                    out.push(Pair {
                        invoke: i,
                        complete: None,
                    });
                }
                (_, Slot::Idle) => return bad("completed an operation it never invoked"),
                (kind, Slot::Pending(p)) => {
                    if self.ops[out[p].invoke].f != op.f {
                        return bad(&format!(
                            "completed {:?} but invoked {:?}",
                            op.f, self.ops[out[p].invoke].f
                        ));
                    }
                    out[p].complete = Some(i);
                    let next = if kind == OpType::Info {
                        Slot::Crashed
                    } else {
                        Slot::Idle
                    };
                    slots.insert(op.process, next);
                }
            }
        }
        Ok(out)
    }

    /// The completion type of a pair: `info` when the history ended first.
    pub fn outcome(&self, pair: &Pair) -> OpType {
        pair.complete.map_or(OpType::Info, |c| self.ops[c].kind)
    }

    /// Read `history.jsonl`: one JSON object per line; blank lines are skipped.
    pub fn read_jsonl<R: BufRead>(reader: R) -> Result<History, CheckError> {
        let mut ops = Vec::new();
        for (n, line) in reader.lines().enumerate() {
            let line = line.map_err(|e| CheckError::Io(e.to_string()))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut op: Op = serde_json::from_str(&line).map_err(|e| {
                // serde's message ends with its own "at line 1 column N"; the
                // line is ours, the column is the useful part.
                let text = e.to_string();
                let message = text.split(" at line ").next().unwrap_or(&text).to_string();
                CheckError::Malformed {
                    location: format!("line {}, column {}", n + 1, e.column()),
                    message,
                }
            })?;
            op.line = Some(n + 1);
            ops.push(op);
        }
        Ok(History::new(ops))
    }

    /// Write `history.jsonl`, one event per line.
    pub fn write_jsonl<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        for op in &self.ops {
            serde_json::to_writer(&mut w, op)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn op_round_trips_through_json() {
        let line = r#"{"index":3,"time":10,"process":"nemesis","type":"info","f":"partition","key":null,"value":["n1"]}"#;
        let op: Op = serde_json::from_str(line).unwrap();
        assert_eq!(op.process, Process::Nemesis);
        assert_eq!(op.kind, OpType::Info);
        let back: Op = serde_json::from_str(&serde_json::to_string(&op).unwrap()).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn pairs_match_by_process_and_reject_events_after_info() {
        let c = Process::Client;
        let mut h = History::default();
        h.push(Op::new(c(0), OpType::Invoke, "write", json!(1)));
        h.push(Op::new(c(1), OpType::Invoke, "read", json!(null)));
        h.push(Op::new(c(1), OpType::Ok, "read", json!(1)));
        h.push(Op::new(c(0), OpType::Info, "write", json!(1)));
        let pairs = h.pairs().unwrap();
        assert_eq!(pairs[0].complete, Some(3));
        assert_eq!(pairs[1].complete, Some(2));
        h.push(Op::new(c(0), OpType::Invoke, "read", json!(null)));
        assert!(h.pairs().is_err());
    }
}
