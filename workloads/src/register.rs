//! The linearizable-register workload, as Jepsen's: independent keys, each
//! a cas register receiving random reads, writes and compare-and-sets; a
//! key gets a bounded number of operations and is then replaced by a fresh
//! one, which keeps each key's history small enough to check quickly.

use super::{Codec, Invocation, Workload, WorkloadKind};
use checker::{Checker, ModelKind};
use dcf::kv::protocol::RequestBody;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::{json, Value};
use std::sync::Arc;

/// `--workload register`.
pub static KIND: WorkloadKind = WorkloadKind {
    name: "register",
    about: "linearizable cas registers: reads, writes and compare-and-sets on independent keys",
    build: || Box::new(Register::default()),
};

/// Register workload state.
pub struct Register {
    /// Keys being worked on at once.
    pub active_keys: usize,
    /// Operations per key before it is retired.
    pub ops_per_key: u64,
    /// Values written are drawn from 0..value_range.
    pub value_range: u64,
    active: Vec<(u64, u64)>,
    next_key: u64,
}

impl Default for Register {
    fn default() -> Self {
        Register {
            active_keys: 4,
            ops_per_key: 300,
            value_range: 5,
            active: Vec::new(),
            next_key: 0,
        }
    }
}

impl Register {
    fn pick_key(&mut self, rng: &mut StdRng) -> u64 {
        while self.active.len() < self.active_keys {
            self.active.push((self.next_key, 0));
            self.next_key += 1;
        }
        let slot = rng.gen_range(0..self.active.len());
        let (key, used) = self.active[slot];
        if used + 1 >= self.ops_per_key {
            self.active[slot] = (self.next_key, 0);
            self.next_key += 1;
        } else {
            self.active[slot].1 += 1;
        }
        key
    }
}

impl Workload for Register {
    fn name(&self) -> &'static str {
        "register"
    }

    fn next(&mut self, _process: u64, rng: &mut StdRng) -> Invocation {
        let key = self.pick_key(rng);
        let (f, value) = match rng.gen_range(0..10) {
            0..=4 => ("read", Value::Null),
            5..=7 => ("write", json!(rng.gen_range(0..self.value_range))),
            _ => (
                "cas",
                json!([
                    rng.gen_range(0..self.value_range),
                    rng.gen_range(0..self.value_range)
                ]),
            ),
        };
        Invocation {
            f: f.into(),
            key: Some(json!(key)),
            value,
        }
    }

    fn final_reads(&self) -> Vec<Invocation> {
        (0..self.next_key)
            .map(|k| Invocation {
                f: "read".into(),
                key: Some(json!(k)),
                value: Value::Null,
            })
            .collect()
    }

    fn checker(&self) -> Checker {
        Checker::Linearizable(ModelKind::CasRegister)
    }

    fn codec(&self) -> Arc<dyn Codec> {
        Arc::new(RegisterCodec)
    }
}

/// Register operations as key-value requests: key `k` is the node's key
/// `r<k>`; `read` is a get, `write` a put, `cas` a compare-and-set.
pub struct RegisterCodec;

fn register_key(k: &Value) -> String {
    format!("r{}", k)
}

impl Codec for RegisterCodec {
    fn request(&self, inv: &Invocation) -> Result<RequestBody, String> {
        let key = register_key(inv.key.as_ref().unwrap_or(&Value::Null));
        match inv.f.as_str() {
            "read" => Ok(RequestBody::Get { key }),
            "write" => Ok(RequestBody::Put {
                key,
                value: inv.value.clone(),
            }),
            "cas" => {
                let pair = inv
                    .value
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .ok_or("cas needs [from, to]")?;
                Ok(RequestBody::Cas {
                    key,
                    from: pair[0].clone(),
                    to: pair[1].clone(),
                })
            }
            other => Err(format!("unknown function {other:?}")),
        }
    }

    /// A read completes with the value read; a write or cas with its own
    /// arguments.
    fn ok_value(&self, inv: &Invocation, reply: &Value) -> Value {
        match inv.f.as_str() {
            "read" => reply.clone(),
            _ => inv.value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn keys_are_retired_after_their_budget() {
        let mut w = Register {
            ops_per_key: 10,
            active_keys: 2,
            ..Register::default()
        };
        let mut rng = StdRng::seed_from_u64(1);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..200 {
            let op = w.next(0, &mut rng);
            *counts.entry(op.key.unwrap().as_u64().unwrap()).or_insert(0) += 1;
            assert!(["read", "write", "cas"].contains(&op.f.as_str()));
        }
        assert!(counts.values().all(|c| *c <= 10), "{counts:?}");
        assert!(counts.len() >= 20);
        assert_eq!(w.final_reads().len() as u64, w.next_key);
    }

    #[test]
    fn operations_map_to_the_nodes_register_keys() {
        let inv = |f: &str, value| Invocation {
            f: f.into(),
            key: Some(json!(4)),
            value,
        };
        let c = RegisterCodec;
        assert!(
            matches!(c.request(&inv("read", Value::Null)), Ok(RequestBody::Get { key }) if key == "r4")
        );
        assert!(matches!(
            c.request(&inv("cas", json!([1, 2]))),
            Ok(RequestBody::Cas { key, from, to }) if key == "r4" && from == json!(1) && to == json!(2)
        ));
        assert!(c.request(&inv("cas", json!(1))).is_err());
        assert!(c.request(&inv("txn", json!([]))).is_err());
        assert_eq!(c.ok_value(&inv("read", Value::Null), &json!(3)), json!(3));
        assert_eq!(c.ok_value(&inv("write", json!(5)), &Value::Null), json!(5));
    }
}
