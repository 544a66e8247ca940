//! The client that carries out invocations against a `dcf-node` (or, with
//! [`Target::Etcd`], an etcd) cluster and reports Jepsen completions. A completion is `fail` only when the
//! operation cannot have taken effect (the reply's code says so); anything
//! uncertain is `info`. The workload's [`Codec`] makes the request and the
//! value of an `ok` completion; failures are recorded alike for every
//! workload.

use super::{Codec, Invocation};
use crate::etcd::{EtcdWorkloadClient, ReadMode};
use checker::OpType;
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{FailureCode, Outcome, Response};
use serde_json::{json, Value};
use std::sync::Arc;
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

/// The system a client talks to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Target {
    /// `dcf-node`'s key-value protocol.
    #[default]
    Dcf,
    /// etcd's v3 API (see [`crate::etcd`]): `node_ids[i]` is the
    /// node at the i-th endpoint, recorded as the node that served an
    /// operation.
    Etcd { reads: ReadMode, node_ids: Vec<u32> },
}

enum Backend {
    Dcf(KvClient),
    /// Boxed: the etcd handle is large beside the other variants.
    Etcd(Box<EtcdWorkloadClient>),
}

/// A client bound to one worker process.
pub struct WorkloadClient {
    codec: Arc<dyn Codec>,
    backend: Backend,
}

/// The reply's failure code as recorded in the history (`null` if none).
fn code_name(resp: &Response) -> Value {
    resp.code.map_or(Value::Null, |c| json!(c.as_str()))
}

/// The completion for a reply to `inv`; `codec` gives an `ok` reply's value.
pub fn completion_for(codec: &dyn Codec, inv: &Invocation, resp: &Response) -> Completion {
    let node = resp.node.map(|n| n.to_string());
    match resp.outcome {
        Outcome::Ok => Completion {
            kind: OpType::Ok,
            value: codec.ok_value(inv, &resp.value),
            error: None,
            node,
        },
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
    /// A client of a workload (its `codec`) over the cluster's client
    /// endpoints; `timeout` bounds each call.
    pub fn new(
        codec: Arc<dyn Codec>,
        endpoints: Vec<String>,
        timeout: Duration,
        first: usize,
    ) -> WorkloadClient {
        let mut eps = endpoints;
        if !eps.is_empty() {
            let n = first % eps.len();
            eps.rotate_left(n);
        }
        WorkloadClient {
            codec,
            backend: Backend::Dcf(KvClient::new(eps, timeout)),
        }
    }

    /// A client of `target`'s cluster at `endpoints`, starting at
    /// `endpoints[first % len]`; `timeout` bounds each call.
    pub fn for_target(
        target: &Target,
        codec: Arc<dyn Codec>,
        endpoints: Vec<String>,
        timeout: Duration,
        first: usize,
    ) -> WorkloadClient {
        match target {
            Target::Dcf => WorkloadClient::new(codec, endpoints, timeout, first),
            Target::Etcd { reads, node_ids } => WorkloadClient {
                codec,
                backend: Backend::Etcd(Box::new(EtcdWorkloadClient::new(
                    endpoints,
                    node_ids.clone(),
                    timeout,
                    first,
                    *reads,
                ))),
            },
        }
    }

    /// How often a write whose outcome is unknown is retried with its tag
    /// on another node before it is recorded as unknown (0: tried once,
    /// as a Jepsen client does).
    /// Only our node's clients retry (they carry exactly-once tags); for
    /// etcd this does nothing (the harness refuses the option).
    pub fn with_write_retries(mut self, n: u32) -> WorkloadClient {
        if let Backend::Dcf(kv) = &mut self.backend {
            kv.set_write_retries(n);
        }
        self
    }

    /// Carries out one invocation.
    pub async fn invoke(&mut self, inv: &Invocation) -> Completion {
        let body = match self.codec.request(inv) {
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
        let resp = match &mut self.backend {
            Backend::Dcf(kv) => kv.call(body, true).await,
            Backend::Etcd(etcd) => etcd.call(&body).await,
        };
        completion_for(&*self.codec, inv, &resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::RegisterCodec;

    #[test]
    fn failed_cas_keeps_its_arguments() {
        let inv = Invocation {
            f: "cas".into(),
            key: Some(json!(1)),
            value: json!([1, 2]),
        };
        let c = completion_for(
            &RegisterCodec,
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
            &RegisterCodec,
            &inv,
            &Response::fail(1, FailureCode::NotLeader, "not leader (leader: 2)"),
        );
        assert_eq!(c.error.unwrap()[0], "unexecuted");
        let c = completion_for(
            &RegisterCodec,
            &inv,
            &Response::info(1, FailureCode::Timeout, "timeout"),
        );
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
        assert_eq!(
            completion_for(&RegisterCodec, &inv, &r).error.unwrap()[0],
            "unexecuted"
        );
        // A mismatch whatever the message says.
        let r = Response::fail(1, FailureCode::CasMismatch, "compare failed");
        assert_eq!(
            completion_for(&RegisterCodec, &inv, &r).error.unwrap()[0],
            "cas-mismatch"
        );
        // No code (an older node): nothing is assumed to have run.
        let mut r = Response::fail(1, FailureCode::CasMismatch, "cas mismatch: r1 holds 3");
        r.code = None;
        assert_eq!(
            completion_for(&RegisterCodec, &inv, &r).error.unwrap()[0],
            "unexecuted"
        );
    }
}
