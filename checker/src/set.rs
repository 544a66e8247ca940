//! A checker for grow-only sets: `add` an element, `read` the whole set.
//!
//! Elements acknowledged by an `ok` add must appear in reads that begin
//! after the add completed. Reported: lost elements (acknowledged but absent
//! from the last read), stale reads (an element missing from a read and
//! present again later), never-read elements (no read began after the add
//! completed) and unexpected elements (read but never added).

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::CheckError;
use crate::history::{History, OpType};
use crate::result::{CheckResult, Validity};

/// What the set checker found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetReport {
    /// Elements whose add was invoked.
    pub attempted: usize,
    /// Elements whose add returned ok.
    pub acknowledged: usize,
    /// Successful reads.
    pub reads: usize,
    /// Acknowledged (or once read) elements missing from the last read.
    pub lost: Vec<Value>,
    /// Elements a read missed although known present before it began, and
    /// that a later read saw again.
    pub stale: Vec<Value>,
    /// Acknowledged elements no read could have seen (no read began after the add completed).
    pub never_read: Vec<Value>,
    /// Elements read but never added.
    pub unexpected: Vec<Value>,
}

#[derive(Default)]
struct Element {
    value: Value,
    /// History position from which the element is known present.
    known_from: Option<usize>,
    acknowledged: bool,
}

/// Check a set history.
pub fn check(history: &History) -> Result<CheckResult, CheckError> {
    let started = Instant::now();
    let pairs = history.pairs()?;
    let key = |v: &Value| v.to_string();
    let mut elements: BTreeMap<String, Element> = BTreeMap::new();
    // (invoke position, complete position, set read)
    let mut reads: Vec<(usize, usize, HashMap<String, Value>)> = Vec::new();
    for pair in &pairs {
        let inv = &history.ops[pair.invoke];
        let outcome = history.outcome(pair);
        match inv.f.as_str() {
            "add" => {
                let e = elements.entry(key(&inv.value)).or_insert_with(|| Element {
                    value: inv.value.clone(),
                    ..Element::default()
                });
                if outcome == OpType::Ok {
                    e.acknowledged = true;
                    e.known_from = pair.complete;
                }
            }
            "read" => {
                if let (OpType::Ok, Some(c)) = (outcome, pair.complete) {
                    let Value::Array(items) = &history.ops[c].value else {
                        return Err(CheckError::Unsupported {
                            location: history.ops[c].location(),
                            message: "a set read must return a list".into(),
                        });
                    };
                    reads.push((
                        pair.invoke,
                        c,
                        items.iter().map(|v| (key(v), v.clone())).collect(),
                    ));
                }
            }
            other => {
                return Err(CheckError::Unsupported {
                    location: inv.location(),
                    message: format!("the set checker has no {other:?} operation"),
                })
            }
        }
    }
    let mut report = SetReport {
        attempted: elements.len(),
        acknowledged: elements.values().filter(|e| e.acknowledged).count(),
        reads: reads.len(),
        lost: Vec::new(),
        stale: Vec::new(),
        never_read: Vec::new(),
        unexpected: Vec::new(),
    };
    let mut unexpected: BTreeMap<String, Value> = BTreeMap::new();
    for (_, _, set) in &reads {
        for (k, v) in set {
            if !elements.contains_key(k) {
                unexpected.insert(k.clone(), v.clone());
            }
        }
    }
    report.unexpected = unexpected.into_values().collect();
    for (k, e) in &elements {
        // Known present from the ack or from the first read that saw it.
        let first_seen = reads
            .iter()
            .filter(|r| r.2.contains_key(k))
            .map(|r| r.1)
            .min();
        let known = match (e.known_from, first_seen) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(known) = known else { continue };
        let later: Vec<bool> = reads
            .iter()
            .filter(|r| r.0 > known)
            .map(|r| r.2.contains_key(k))
            .collect();
        if later.is_empty() {
            if first_seen.is_none() {
                report.never_read.push(e.value.clone());
            }
            continue;
        }
        if later.last() == Some(&false) {
            report.lost.push(e.value.clone());
        } else if later.contains(&false) {
            report.stale.push(e.value.clone());
        }
    }
    let mut result = CheckResult::new("set", "set");
    result.op_count = pairs.len();
    result.valid = if !report.lost.is_empty() || !report.unexpected.is_empty() {
        Validity::Invalid
    } else if reads.is_empty() && report.attempted > 0 {
        result.unknown_reason = Some("no successful read".into());
        Validity::Unknown
    } else {
        Validity::Valid
    };
    result.set = Some(report);
    result.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Op, Process};
    use serde_json::json;

    fn op(p: u64, kind: OpType, f: &str, v: Value) -> Op {
        Op::new(Process::Client(p), kind, f, v)
    }

    #[test]
    fn finds_lost_stale_never_read_and_unexpected() {
        use OpType::*;
        let h = History::new(vec![
            op(0, Invoke, "add", json!(1)),
            op(0, Ok, "add", json!(1)),
            op(0, Invoke, "add", json!(2)),
            op(0, Ok, "add", json!(2)),
            op(1, Invoke, "read", json!(null)),
            op(1, Ok, "read", json!([1])),
            op(1, Invoke, "read", json!(null)),
            op(1, Ok, "read", json!([2, 9])),
            op(0, Invoke, "add", json!(3)),
            op(0, Ok, "add", json!(3)),
        ]);
        let r = check(&h).unwrap();
        let s = r.set.unwrap();
        assert_eq!(r.valid, Validity::Invalid);
        assert_eq!(s.lost, vec![json!(1)]);
        assert_eq!(s.stale, vec![json!(2)]);
        assert_eq!(s.never_read, vec![json!(3)]);
        assert_eq!(s.unexpected, vec![json!(9)]);
    }
}
