//! The list-append workload (Elle's): transactions of appends and reads
//! over a few keys; every appended value is unique per key, so reads reveal
//! each key's version order.

use super::{Codec, Invocation, Workload, WorkloadKind};
use checker::Checker;
use dcf::kv::machine::MicroOp;
use dcf::kv::protocol::RequestBody;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// `--workload list-append`.
pub static KIND: WorkloadKind = WorkloadKind {
    name: "list-append",
    about: "transactions of list appends and reads, checked for serializability anomalies",
    build: || Box::new(ListAppend::default()),
};

/// List-append workload state.
pub struct ListAppend {
    /// Keys in play at once.
    pub active_keys: u64,
    /// Most micro-operations per transaction.
    pub max_txn_len: usize,
    /// Appends per key before the key is retired.
    pub appends_per_key: u64,
    next_value: BTreeMap<u64, u64>,
    base_key: u64,
}

impl Default for ListAppend {
    fn default() -> Self {
        ListAppend {
            active_keys: 5,
            max_txn_len: 4,
            appends_per_key: 200,
            next_value: BTreeMap::new(),
            base_key: 0,
        }
    }
}

impl Workload for ListAppend {
    fn name(&self) -> &'static str {
        "list-append"
    }

    fn next(&mut self, _process: u64, rng: &mut StdRng) -> Invocation {
        let len = rng.gen_range(1..=self.max_txn_len);
        let mut mops = Vec::with_capacity(len);
        for _ in 0..len {
            let key = self.base_key + rng.gen_range(0..self.active_keys);
            if rng.gen_bool(0.5) {
                mops.push(json!(["r", key, Value::Null]));
            } else {
                let v = self.next_value.entry(key).or_insert(1);
                mops.push(json!(["append", key, *v]));
                *v += 1;
                if *v > self.appends_per_key {
                    // Move the window on so lists stay short.
                    self.base_key += 1;
                }
            }
        }
        Invocation {
            f: "txn".into(),
            key: None,
            value: Value::Array(mops),
        }
    }

    fn final_reads(&self) -> Vec<Invocation> {
        let mut keys: Vec<u64> = self.next_value.keys().copied().collect();
        keys.sort_unstable();
        keys.chunks(4)
            .map(|ks| Invocation {
                f: "txn".into(),
                key: None,
                value: Value::Array(ks.iter().map(|k| json!(["r", k, Value::Null])).collect()),
            })
            .collect()
    }

    fn checker(&self) -> Checker {
        Checker::ListAppend
    }

    fn codec(&self) -> Arc<dyn Codec> {
        Arc::new(ListAppendCodec)
    }
}

/// Transactions as one `Txn` request: list `k` is the node's key `l<k>`.
pub struct ListAppendCodec;

fn list_key(k: &Value) -> String {
    format!("l{}", k)
}

fn unlist_key(k: &Value) -> Value {
    k.as_str()
        .and_then(|s| s.strip_prefix('l'))
        .and_then(|s| s.parse::<u64>().ok())
        .map(|n| json!(n))
        .unwrap_or_else(|| k.clone())
}

impl Codec for ListAppendCodec {
    fn request(&self, inv: &Invocation) -> Result<RequestBody, String> {
        if inv.f != "txn" {
            return Err(format!("unknown function {:?}", inv.f));
        }
        let mops = inv
            .value
            .as_array()
            .ok_or("txn needs a list of micro-ops")?;
        let mut ops = Vec::with_capacity(mops.len());
        for m in mops {
            let m = m
                .as_array()
                .filter(|m| m.len() == 3)
                .ok_or("micro-op needs [f, key, value]")?;
            let k = list_key(&m[1]);
            ops.push(match m[0].as_str() {
                Some("r") => MicroOp::R { key: k },
                Some("append") => MicroOp::Append {
                    key: k,
                    value: m[2].clone(),
                },
                Some("w") => MicroOp::W {
                    key: k,
                    value: m[2].clone(),
                },
                _ => return Err(format!("unknown micro-op {}", m[0])),
            });
        }
        Ok(RequestBody::Txn { ops })
    }

    /// The node's micro-ops with the workload's keys; a read of a key that
    /// holds nothing (the node says null) is the empty list the client saw.
    fn ok_value(&self, _: &Invocation, reply: &Value) -> Value {
        match reply {
            Value::Array(mops) => Value::Array(
                mops.iter()
                    .map(|m| match m.as_array() {
                        Some(m) if m.len() == 3 && m[0] == "r" && m[2].is_null() => {
                            json!([m[0], unlist_key(&m[1]), []])
                        }
                        Some(m) if m.len() == 3 => json!([m[0], unlist_key(&m[1]), m[2]]),
                        _ => m.clone(),
                    })
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::completion_for;
    use checker::OpType;
    use dcf::kv::protocol::Response;
    use rand::SeedableRng;

    #[test]
    fn txn_keys_round_trip() {
        let inv = Invocation {
            f: "txn".into(),
            key: None,
            value: json!([["append", 3, 1], ["r", 3, null]]),
        };
        let req = ListAppendCodec.request(&inv).unwrap();
        assert!(matches!(req, RequestBody::Txn { ref ops } if ops.len() == 2));
        let resp = Response::ok(1, json!([["append", "l3", 1], ["r", "l3", [1]]]));
        let c = completion_for(&ListAppendCodec, &inv, &resp);
        assert_eq!(c.kind, OpType::Ok);
        assert_eq!(c.value, json!([["append", 3, 1], ["r", 3, [1]]]));
    }

    #[test]
    fn reads_of_empty_list_keys_are_recorded_as_empty_lists() {
        let inv = Invocation {
            f: "txn".into(),
            key: None,
            value: json!([["r", 5, null], ["r", 6, null]]),
        };
        // What dcf-node answers for a key nobody appended to.
        let resp = Response::ok(1, json!([["r", "l5", null], ["r", "l6", [2]]]));
        let c = completion_for(&ListAppendCodec, &inv, &resp);
        assert_eq!(c.value, json!([["r", 5, []], ["r", 6, [2]]]));
    }

    #[test]
    fn appends_are_unique_per_key() {
        let mut w = ListAppend::default();
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let op = w.next(0, &mut rng);
            for m in op.value.as_array().unwrap() {
                let m = m.as_array().unwrap();
                if m[0] == "append" {
                    assert!(seen.insert((m[1].as_u64().unwrap(), m[2].as_u64().unwrap())));
                }
            }
        }
        assert!(!w.final_reads().is_empty());
    }
}
