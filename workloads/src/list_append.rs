//! The list-append workload (Elle's): transactions of appends and reads
//! over a few keys; every appended value is unique per key, so reads reveal
//! each key's version order.

use super::{Invocation, Workload};
use checker::Checker;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
