//! The client that carries out invocations against a `dcf-node` cluster
//! and reports Jepsen completions. It keeps DESIGN.md §3's promise: a
//! completion is `fail` only when the operation cannot have taken effect.

use super::Invocation;
use checker::OpType;
use dcf::kv::client::KvClient;
use dcf::kv::machine::MicroOp;
use dcf::kv::protocol::{FailureCode, Outcome, RequestBody, Response};
use serde_json::{json, Value};
use std::time::Duration;

/// How an invocation ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    pub kind: OpType,
    pub value: Value,
    /// Why it failed or is unknown: `["unexecuted", why, code]` when the
    /// operation definitely never ran, `["cas-mismatch", why, code]` when a
    /// cas ran and found another value (both decided by the reply's
    /// [`FailureCode`]), `["indeterminate", why, code]` for `info`.
    pub error: Option<Value>,
    /// The node that answered, if any.
    pub node: Option<String>,
}

/// A client bound to one worker process.
pub struct WorkloadClient {
    kv: KvClient,
}

fn register_key(k: &Value) -> String {
    format!("r{}", k)
}

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

/// The request for an invocation, or why it cannot be sent.
pub fn request_for(inv: &Invocation) -> Result<RequestBody, String> {
    let key = inv.key.clone().unwrap_or(Value::Null);
    match inv.f.as_str() {
        "read" => Ok(RequestBody::Get {
            key: register_key(&key),
        }),
        "write" => Ok(RequestBody::Put {
            key: register_key(&key),
            value: inv.value.clone(),
        }),
        "cas" => {
            let pair = inv
                .value
                .as_array()
                .filter(|a| a.len() == 2)
                .ok_or("cas needs [from, to]")?;
            Ok(RequestBody::Cas {
                key: register_key(&key),
                from: pair[0].clone(),
                to: pair[1].clone(),
            })
        }
        "txn" => {
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
        other => Err(format!("unknown function {other:?}")),
    }
}

/// The reply's failure code as recorded in the history (`null` if none).
fn code_name(resp: &Response) -> Value {
    resp.code.map_or(Value::Null, |c| json!(c.as_str()))
}

/// The completion for a reply to `inv`.
pub fn completion_for(inv: &Invocation, resp: &Response) -> Completion {
    let node = resp.node.map(|n| n.to_string());
    match resp.outcome {
        Outcome::Ok => {
            let value = match inv.f.as_str() {
                "read" => resp.value.clone(),
                "txn" => match &resp.value {
                    Value::Array(mops) => Value::Array(
                        mops.iter()
                            .map(|m| match m.as_array() {
                                // The node reads a key that holds nothing as
                                // null; what the client saw is an empty list.
                                Some(m) if m.len() == 3 && m[0] == "r" && m[2].is_null() => {
                                    json!([m[0], unlist_key(&m[1]), []])
                                }
                                Some(m) if m.len() == 3 => json!([m[0], unlist_key(&m[1]), m[2]]),
                                _ => m.clone(),
                            })
                            .collect(),
                    ),
                    other => other.clone(),
                },
                _ => inv.value.clone(),
            };
            Completion {
                kind: OpType::Ok,
                value,
                error: None,
                node,
            }
        }
        Outcome::Fail => {
            let why = resp.error.clone().unwrap_or_default();
            // The reply's code says whether the operation ran (a cas that
            // found another value); without a code nothing can be assumed
            // to have run, which only ever weakens the check.
            let tag = match resp.code {
                Some(c) if c.executed() => c.as_str(),
                _ => checker::models::UNEXECUTED,
            };
            Completion {
                kind: OpType::Fail,
                value: inv.value.clone(),
                error: Some(json!([tag, why, code_name(resp)])),
                node,
            }
        }
        Outcome::Info => Completion {
            kind: OpType::Info,
            value: inv.value.clone(),
            error: Some(json!([
                "indeterminate",
                resp.error.clone().unwrap_or_default(),
                code_name(resp)
            ])),
            node,
        },
    }
}

impl WorkloadClient {
    /// A client over the cluster's client endpoints; `timeout` bounds each call.
    pub fn new(endpoints: Vec<String>, timeout: Duration, first: usize) -> WorkloadClient {
        let mut eps = endpoints;
        if !eps.is_empty() {
            let n = first % eps.len();
            eps.rotate_left(n);
        }
        WorkloadClient {
            kv: KvClient::new(eps, timeout),
        }
    }

    /// Carries out one invocation.
    pub async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let body = match request_for(inv) {
            Ok(b) => b,
            Err(e) => {
                return Completion {
                    kind: OpType::Fail,
                    value: inv.value.clone(),
                    error: Some(json!([
                        checker::models::UNEXECUTED,
                        e,
                        FailureCode::BadRequest.as_str()
                    ])),
                    node: None,
                }
            }
        };
        let resp = self.kv.call(body, true).await;
        completion_for(inv, &resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txn_keys_round_trip() {
        let inv = Invocation {
            f: "txn".into(),
            key: None,
            value: json!([["append", 3, 1], ["r", 3, null]]),
        };
        let req = request_for(&inv).unwrap();
        assert!(matches!(req, RequestBody::Txn { ref ops } if ops.len() == 2));
        let resp = Response::ok(1, json!([["append", "l3", 1], ["r", "l3", [1]]]));
        let c = completion_for(&inv, &resp);
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
        let c = completion_for(&inv, &resp);
        assert_eq!(c.value, json!([["r", 5, []], ["r", 6, [2]]]));
    }

    #[test]
    fn failed_cas_keeps_its_arguments() {
        let inv = Invocation {
            f: "cas".into(),
            key: Some(json!(1)),
            value: json!([1, 2]),
        };
        let c = completion_for(
            &inv,
            &Response::fail(1, FailureCode::CasMismatch, "r1 holds 3"),
        );
        assert_eq!(c.kind, OpType::Fail);
        assert_eq!(c.value, json!([1, 2]));
        assert_eq!(
            c.error.unwrap(),
            json!(["cas-mismatch", "r1 holds 3", "cas-mismatch"])
        );
        let c = completion_for(
            &inv,
            &Response::fail(1, FailureCode::NotLeader, "not leader (leader: 2)"),
        );
        assert_eq!(c.error.unwrap()[0], "unexecuted");
        let c = completion_for(&inv, &Response::info(1, FailureCode::Timeout, "timeout"));
        assert_eq!(c.kind, OpType::Info);
        assert_eq!(c.error.unwrap()[2], "timeout");
    }

    #[test]
    fn executed_is_decided_by_the_code_not_the_wording() {
        let inv = Invocation {
            f: "cas".into(),
            key: Some(json!(1)),
            value: json!([1, 2]),
        };
        // A message that reads like a mismatch, with another code.
        let r = Response::fail(1, FailureCode::Replaced, "cas mismatch: replaced entry");
        assert_eq!(completion_for(&inv, &r).error.unwrap()[0], "unexecuted");
        // A mismatch whatever the message says.
        let r = Response::fail(1, FailureCode::CasMismatch, "compare failed");
        assert_eq!(completion_for(&inv, &r).error.unwrap()[0], "cas-mismatch");
        // No code (an older node): nothing is assumed to have run.
        let mut r = Response::fail(1, FailureCode::CasMismatch, "cas mismatch: r1 holds 3");
        r.code = None;
        assert_eq!(completion_for(&inv, &r).error.unwrap()[0], "unexecuted");
    }
}
