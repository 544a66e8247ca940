//! The client of `--system etcd`: the workloads' requests carried out
//! through etcd's v3 API (gRPC), with the same completions as our own
//! node's client ([`crate::client`]).
//!
//! The workloads stay shared: a workload's [`crate::Codec`] turns an
//! invocation into a [`RequestBody`] (the key-value requests `dcf-node`
//! serves), and this module carries out that request on etcd and answers
//! with the [`Response`] `dcf-node` would have given, so
//! [`crate::client::completion_for`] records it the same way.
//!
//! # Encoding
//!
//! - Values are stored as their JSON text (`3`, `[1,2]`).
//! - `get` is a range request on the key: linearizable (etcd's default,
//!   served through the leader's read index) or, with
//!   [`ReadMode::Serializable`], answered from the contacted member's
//!   local state, which may be stale.
//! - `put` is a put.
//! - `cas` is one transaction: *if* the key's value equals `from` *then*
//!   put `to`. A transaction whose compare failed ran and found another
//!   value: `fail` with `cas-mismatch`, exactly as our node answers.
//! - A list-append transaction (`txn` of `r` and `append` micro-ops) is a
//!   read of every key it touches (one etcd transaction of range requests,
//!   so one revision), then, when it appends, one etcd transaction that
//!   compares every key's mod revision with the one read (0 for a key
//!   that does not exist) and puts the appended lists. The reads are
//!   computed from the snapshot with the transaction's own appends applied
//!   in order, so each micro-op keeps its meaning. When a key changed in
//!   between, the compare fails and nothing was written: `fail`, not
//!   retried (the harness records it; it observed nothing).
//!
//! # Failures
//!
//! An operation is `fail` only when it cannot have taken effect: a refused
//! connection (nothing was sent), an error etcd returns before it
//! proposes anything (no leader, too many requests, an invalid request),
//! a failed compare. A timeout, a connection lost after sending and every
//! other error of a write are `info`. A read changes nothing, so any
//! error of a read is a `fail`, as for our node.
//!
//! Each client is bound to one member, as Jepsen's clients are, so that a
//! client of a member cut off from the leader sees what that member
//! serves; only a member that refuses connections (killed) makes it move
//! on to the next endpoint.

use crate::etcd_rpc::{
    Compare, EtcdRpc, KeyValue, PutRequest, RangeRequest, RequestOp, Request_, Response_,
    TxnRequest,
};
use dcf::kv::machine::MicroOp;
use dcf::kv::protocol::{FailureCode, Outcome, RequestBody, Response};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// How `get` (and the reads of a transaction) are served.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReadMode {
    /// Through the leader's read index (etcd's default): linearizable.
    #[default]
    Linearizable,
    /// From the contacted member's own state: may be stale (a member cut
    /// off from the leader keeps answering).
    Serializable,
}

impl ReadMode {
    /// A range request for `key` in this mode.
    fn range(self, key: &str) -> RangeRequest {
        RangeRequest {
            key: key.as_bytes().to_vec(),
            serializable: self == ReadMode::Serializable,
        }
    }
}

/// Whether an etcd error leaves the operation's effect unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Certainty {
    /// The operation certainly did not take effect.
    NotApplied,
    /// It may or may not have taken effect.
    Unknown,
}

/// Why an etcd call failed, with whether it may have taken effect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EtcdError {
    /// The code the harness records (`unreachable`, `timeout`, ...).
    pub code: FailureCode,
    /// Whether the request may have taken effect.
    pub certainty: Certainty,
    pub message: String,
}

impl EtcdError {
    fn new(code: FailureCode, certainty: Certainty, message: impl Into<String>) -> EtcdError {
        EtcdError {
            code,
            certainty,
            message: message.into(),
        }
    }

    /// Nothing was sent: the member refused the connection or did not
    /// accept it in time.
    fn unreachable(endpoint: &str, why: impl std::fmt::Display) -> EtcdError {
        EtcdError::new(
            FailureCode::Unreachable,
            Certainty::NotApplied,
            format!("{endpoint}: cannot connect: {why}"),
        )
    }

    fn timeout(endpoint: &str, after: Duration) -> EtcdError {
        EtcdError::new(
            FailureCode::Timeout,
            Certainty::Unknown,
            format!("{endpoint}: no answer within {} ms", after.as_millis()),
        )
    }
}

/// etcd's server errors (`etcdserver: ...`) that are returned before a
/// request is proposed to raft, so it cannot have taken effect. Every
/// other server error of a write (`request timed out`, `leader changed`,
/// `server stopped`, ...) may follow a proposal that still commits.
const NOT_PROPOSED: &[&str] = &[
    "etcdserver: no leader",
    "etcdserver: too many requests",
    "etcdserver: not capable",
    "etcdserver: key is not provided",
    "etcdserver: value is provided",
    "etcdserver: duplicate key given in txn request",
    "etcdserver: too many operations in txn request",
    "etcdserver: request is too large",
    "etcdserver: mvcc: database space exceeded",
    "etcdserver: permission denied",
    // Membership changes etcd checks before proposing them.
    "etcdserver: unhealthy cluster",
    "etcdserver: re-configuration failed due to not enough started members",
    "etcdserver: member not found",
    "etcdserver: member ID already exist",
    "etcdserver: Peer URLs already exists",
];

/// Words of a transport error that mean the connection was never made,
/// so nothing was sent (tonic reconnects lazily and reports a refused
/// reconnect this way).
const CONNECT_FAILED: &[&str] = &[
    "tcp connect error",
    "error trying to connect",
    "Connection refused",
];

/// Classifies a failed call: gRPC status `code` and its `message`, as
/// tonic reports them (`None` when the failure was not a gRPC
/// status, e.g. a transport error).
pub fn classify(code: Option<tonic::Code>, message: &str) -> (FailureCode, Certainty) {
    if CONNECT_FAILED.iter().any(|w| message.contains(w)) {
        return (FailureCode::Unreachable, Certainty::NotApplied);
    }
    if NOT_PROPOSED.iter().any(|w| message.contains(w)) {
        let code = if message.contains("no leader") {
            FailureCode::NoQuorum
        } else {
            FailureCode::Refused
        };
        return (code, Certainty::NotApplied);
    }
    match code {
        Some(tonic::Code::DeadlineExceeded) => (FailureCode::Timeout, Certainty::Unknown),
        Some(tonic::Code::InvalidArgument) | Some(tonic::Code::Unimplemented) => {
            (FailureCode::BadRequest, Certainty::NotApplied)
        }
        _ if message.contains("timed out") => (FailureCode::Timeout, Certainty::Unknown),
        _ if message.contains("server stopped") => (FailureCode::Stopping, Certainty::Unknown),
        _ => (FailureCode::ConnectionLost, Certainty::Unknown),
    }
}

fn from_status(endpoint: &str, s: tonic::Status) -> EtcdError {
    // A transport error's cause is in the status's source chain.
    let mut message = s.message().to_string();
    if let Some(source) = std::error::Error::source(&s) {
        message.push_str(": ");
        message.push_str(&error_chain(source));
    }
    // etcd's own errors come as statuses; a failure to reach it comes as
    // an `Unknown` or `Unavailable` status carrying the transport error.
    let code = match s.code() {
        tonic::Code::Unknown if std::error::Error::source(&s).is_some() => None,
        c => Some(c),
    };
    let (fc, certainty) = classify(code, &message);
    EtcdError::new(fc, certainty, format!("{endpoint}: {message}"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// An etcd client connected to one member.
///
/// This is the handle other modules use (the benchmark among them):
/// [`EtcdKv::connect`] it to a member's client endpoint and call
/// [`EtcdKv::put`] and [`EtcdKv::get`], each bounded by the timeout. It is
/// `Clone`: clones share the one HTTP/2 connection (gRPC multiplexes
/// calls on it), so many tokio tasks can use clones of one handle, or
/// each connect its own.
#[derive(Clone)]
pub struct EtcdKv {
    endpoint: String,
    client: EtcdRpc,
    timeout: Duration,
    reads: ReadMode,
}

impl EtcdKv {
    /// Connects to the member at `endpoint` (`host:port` or a URL); the
    /// connection is made now, within `timeout`, so an error here means
    /// nothing was sent. `timeout` also bounds every later call.
    pub async fn connect(endpoint: &str, timeout: Duration) -> Result<EtcdKv, EtcdError> {
        EtcdKv::connect_with(endpoint, timeout, ReadMode::Linearizable).await
    }

    /// [`EtcdKv::connect`] with the given read mode.
    pub async fn connect_with(
        endpoint: &str,
        timeout: Duration,
        reads: ReadMode,
    ) -> Result<EtcdKv, EtcdError> {
        let url = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let ep = tonic::transport::Endpoint::from_shared(url)
            .map_err(|e| EtcdError::unreachable(endpoint, e))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .tcp_nodelay(true);
        let channel = match tokio::time::timeout(timeout, ep.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(EtcdError::unreachable(endpoint, error_chain(&e))),
            Err(_) => return Err(EtcdError::unreachable(endpoint, "connect timed out")),
        };
        let client = EtcdRpc::new(channel);
        Ok(EtcdKv {
            endpoint: endpoint.to_string(),
            client,
            timeout,
            reads,
        })
    }

    /// The member this client talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Runs `call` on the client within the timeout.
    async fn bounded<T, F>(&mut self, call: impl FnOnce(EtcdRpc) -> F) -> Result<T, EtcdError>
    where
        F: std::future::Future<Output = Result<T, tonic::Status>>,
    {
        match tokio::time::timeout(self.timeout, call(self.client.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(from_status(&self.endpoint, e)),
            Err(_) => Err(EtcdError::timeout(&self.endpoint, self.timeout)),
        }
    }

    /// Puts `value` under `key`.
    pub async fn put(&mut self, key: &str, value: &[u8]) -> Result<(), EtcdError> {
        let req = PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
        };
        self.bounded(|mut c| async move { c.put(req).await })
            .await
            .map(|_| ())
    }

    /// The value under `key` (`None` if there is none), read in the
    /// client's read mode.
    pub async fn get(&mut self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let req = self.reads.range(key);
        let resp = self
            .bounded(|mut c| async move { c.range(req).await })
            .await?;
        Ok(resp.kvs.into_iter().next().map(|kv| kv.value))
    }

    /// Compare-and-set in one transaction: puts `to` if `key` holds
    /// `from`. `Ok(false)` when the compare failed (nothing written).
    pub async fn cas(&mut self, key: &str, from: &[u8], to: &[u8]) -> Result<bool, EtcdError> {
        let txn = TxnRequest {
            compare: vec![Compare::value_equals(key, from)],
            success: vec![put_op(key, to.to_vec())],
            failure: Vec::new(),
        };
        let resp = self
            .bounded(|mut c| async move { c.txn(txn).await })
            .await?;
        Ok(resp.succeeded)
    }

    /// The member's status: its own member id and the leader it knows
    /// (0 if none).
    pub async fn status(&mut self) -> Result<(u64, u64), EtcdError> {
        let resp = self
            .bounded(|mut c| async move { c.status().await })
            .await?;
        let me = resp.header.map_or(0, |h| h.member_id);
        Ok((me, resp.leader))
    }

    /// Adds a member that will listen for peers at `peer_url`; returns
    /// its member id. The member must then be started with
    /// `--initial-cluster-state existing`.
    pub async fn member_add(&mut self, peer_url: &str) -> Result<u64, EtcdError> {
        let urls = vec![peer_url.to_string()];
        let resp = self
            .bounded(|mut c| async move { c.member_add(urls).await })
            .await?;
        Ok(resp.member.map_or(0, |m| m.id))
    }

    /// Removes the member with id `id`.
    pub async fn member_remove(&mut self, id: u64) -> Result<(), EtcdError> {
        self.bounded(|mut c| async move { c.member_remove(id).await })
            .await
            .map(|_| ())
    }

    /// The cluster's members: id, name (empty until a member added at run
    /// time has started) and peer URLs.
    pub async fn member_list(&mut self) -> Result<Vec<MemberInfo>, EtcdError> {
        let resp = self
            .bounded(|mut c| async move { c.member_list().await })
            .await?;
        Ok(resp
            .members
            .into_iter()
            .map(|m| MemberInfo {
                id: m.id,
                name: m.name,
                peer_urls: m.peer_urls,
            })
            .collect())
    }

    /// Reads `keys` at one revision: each key's value and mod revision
    /// (0 when the key does not exist).
    async fn read_keys(
        &mut self,
        keys: &[String],
    ) -> Result<BTreeMap<String, (Option<Vec<u8>>, i64)>, EtcdError> {
        let txn = TxnRequest {
            compare: Vec::new(),
            success: keys
                .iter()
                .map(|k| RequestOp {
                    request: Some(Request_::Range(self.reads.range(k))),
                })
                .collect(),
            failure: Vec::new(),
        };
        let resp = self
            .bounded(|mut c| async move { c.txn(txn).await })
            .await?;
        let mut out = BTreeMap::new();
        for (key, r) in keys.iter().zip(resp.responses) {
            let kv: Option<KeyValue> = match r.response {
                Some(Response_::Range(g)) => g.kvs.into_iter().next(),
                _ => None,
            };
            let entry = match kv {
                Some(kv) => (Some(kv.value), kv.mod_revision),
                None => (None, 0),
            };
            out.insert(key.clone(), entry);
        }
        Ok(out)
    }

    /// Carries out a list-append transaction (see the module's
    /// "Encoding"); the reply value is the micro-ops with their reads.
    async fn list_txn(&mut self, ops: &[MicroOp]) -> Result<TxnResult, EtcdError> {
        let mut keys: Vec<String> = ops.iter().map(|m| micro_key(m).to_string()).collect();
        keys.sort();
        keys.dedup();
        let read = self.read_keys(&keys).await?;
        let mut lists: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for (k, (v, _)) in &read {
            let list = match v {
                None => Vec::new(),
                Some(bytes) => match serde_json::from_slice::<Value>(bytes) {
                    Ok(Value::Array(a)) => a,
                    Ok(other) => vec![other],
                    Err(e) => {
                        return Err(EtcdError::new(
                            FailureCode::Internal,
                            Certainty::NotApplied,
                            format!("{k} holds no JSON list: {e}"),
                        ))
                    }
                },
            };
            lists.insert(k.clone(), list);
        }
        let mut results = Vec::with_capacity(ops.len());
        let mut written: Vec<String> = Vec::new();
        for m in ops {
            match m {
                MicroOp::R { key } => {
                    let l = &lists[key];
                    let v = if l.is_empty() && read[key].0.is_none() {
                        Value::Null
                    } else {
                        Value::Array(l.clone())
                    };
                    results.push(json!(["r", key, v]));
                }
                MicroOp::Append { key, value } => {
                    lists.get_mut(key).expect("read").push(value.clone());
                    written.push(key.clone());
                    results.push(json!(["append", key, value]));
                }
                MicroOp::W { key, value } => {
                    *lists.get_mut(key).expect("read") = vec![value.clone()];
                    written.push(key.clone());
                    results.push(json!(["w", key, value]));
                }
            }
        }
        if written.is_empty() {
            return Ok(TxnResult::Done(Value::Array(results)));
        }
        written.sort();
        written.dedup();
        let compares: Vec<Compare> = read
            .iter()
            .map(|(k, (_, rev))| Compare::mod_revision_equals(k, *rev))
            .collect();
        let puts: Vec<RequestOp> = written
            .iter()
            .map(|k| put_op(k, Value::Array(lists[k].clone()).to_string().into_bytes()))
            .collect();
        let txn = TxnRequest {
            compare: compares,
            success: puts,
            failure: Vec::new(),
        };
        let resp = self
            .bounded(|mut c| async move { c.txn(txn).await })
            .await?;
        Ok(if resp.succeeded {
            TxnResult::Done(Value::Array(results))
        } else {
            TxnResult::Conflict
        })
    }

    /// Carries out one of the workloads' requests and answers as
    /// `dcf-node` would (see the module's "Failures").
    pub async fn call(&mut self, body: &RequestBody) -> Response {
        let read_only = match body {
            RequestBody::Get { .. } => true,
            RequestBody::Txn { ops } => ops.iter().all(|m| matches!(m, MicroOp::R { .. })),
            _ => false,
        };
        let result: Result<Response, EtcdError> = match body {
            RequestBody::Get { key } => self.get(key).await.and_then(|v| {
                Ok(Response::ok(
                    0,
                    match v {
                        None => Value::Null,
                        Some(bytes) => decode(key, &bytes)?,
                    },
                ))
            }),
            RequestBody::Put { key, value } => self
                .put(key, value.to_string().as_bytes())
                .await
                .map(|_| Response::ok(0, Value::Null)),
            RequestBody::Cas { key, from, to } => self
                .cas(key, from.to_string().as_bytes(), to.to_string().as_bytes())
                .await
                .map(|applied| {
                    if applied {
                        Response::ok(0, Value::Null)
                    } else {
                        Response::fail(
                            0,
                            FailureCode::CasMismatch,
                            format!("{key} does not hold {from}"),
                        )
                    }
                }),
            RequestBody::Txn { ops } => self.list_txn(ops).await.map(|r| match r {
                TxnResult::Done(v) => Response::ok(0, v),
                TxnResult::Conflict => Response::fail(
                    0,
                    FailureCode::Refused,
                    "txn conflict: a key it read changed before it committed; nothing written",
                ),
            }),
            other => Err(EtcdError::new(
                FailureCode::BadRequest,
                Certainty::NotApplied,
                format!("etcd clients do not serve {other:?}"),
            )),
        };
        match result {
            Ok(r) => r,
            Err(e) => error_response(&e, read_only),
        }
    }
}

/// A transaction step that puts `value` under `key`.
fn put_op(key: &str, value: Vec<u8>) -> RequestOp {
    RequestOp {
        request: Some(Request_::Put(PutRequest {
            key: key.as_bytes().to_vec(),
            value,
        })),
    }
}

/// One member as etcd's member list gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: u64,
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// The response for a failed call: `fail` when it cannot have taken
/// effect (or only read), else `info`.
pub fn error_response(e: &EtcdError, read_only: bool) -> Response {
    if read_only || e.certainty == Certainty::NotApplied {
        Response::fail(0, e.code, e.message.clone())
    } else {
        Response::info(0, e.code, e.message.clone())
    }
}

enum TxnResult {
    Done(Value),
    Conflict,
}

fn micro_key(m: &MicroOp) -> &str {
    match m {
        MicroOp::R { key } | MicroOp::W { key, .. } | MicroOp::Append { key, .. } => key,
    }
}

fn decode(key: &str, bytes: &[u8]) -> Result<Value, EtcdError> {
    serde_json::from_slice(bytes).map_err(|e| {
        EtcdError::new(
            FailureCode::Internal,
            Certainty::NotApplied,
            format!("{key} holds no JSON value: {e}"),
        )
    })
}

/// A workload client's connection to etcd: bound to one member of
/// `endpoints` (connected on first use), moving on to the next only when
/// its member refuses connections.
pub struct EtcdWorkloadClient {
    endpoints: Vec<String>,
    /// The node id of each endpoint, for the history's `node`.
    node_ids: Vec<u32>,
    current: usize,
    timeout: Duration,
    reads: ReadMode,
    conn: Option<EtcdKv>,
}

impl EtcdWorkloadClient {
    /// A client of `endpoints` (node `node_ids[i]` at `endpoints[i]`),
    /// starting at `endpoints[first % len]`.
    pub fn new(
        endpoints: Vec<String>,
        node_ids: Vec<u32>,
        timeout: Duration,
        first: usize,
        reads: ReadMode,
    ) -> EtcdWorkloadClient {
        let current = if endpoints.is_empty() {
            0
        } else {
            first % endpoints.len()
        };
        EtcdWorkloadClient {
            endpoints,
            node_ids,
            current,
            timeout,
            reads,
            conn: None,
        }
    }

    /// Carries out `body` on the client's member; see [`EtcdKv::call`].
    pub async fn call(&mut self, body: &RequestBody) -> Response {
        let tries = self.endpoints.len();
        if tries == 0 {
            return Response::fail(0, FailureCode::BadRequest, "no endpoints given");
        }
        let mut errors = Vec::new();
        for _ in 0..tries {
            if self.conn.is_none() {
                let ep = &self.endpoints[self.current];
                match EtcdKv::connect_with(ep, self.timeout, self.reads).await {
                    Ok(c) => self.conn = Some(c),
                    Err(e) => {
                        errors.push(e.message);
                        self.current = (self.current + 1) % self.endpoints.len();
                        continue;
                    }
                }
            }
            let conn = self.conn.as_mut().expect("connected");
            let mut resp = conn.call(body).await;
            resp.node = self.node_ids.get(self.current).copied();
            if resp.outcome != Outcome::Ok && resp.code != Some(FailureCode::CasMismatch) {
                // A fresh connection next time: this one may be broken.
                self.conn = None;
            }
            if resp.code == Some(FailureCode::Unreachable) {
                // Refused on reconnect: nothing was sent; the next member.
                self.current = (self.current + 1) % self.endpoints.len();
            }
            return resp;
        }
        Response::fail(
            0,
            FailureCode::Unreachable,
            format!("no endpoint reachable ({})", errors.join("; ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn refused_connections_and_unproposed_errors_are_definite() {
        for (code, msg) in [
            (
                None,
                "transport error: tcp connect error: Connection refused (os error 111)",
            ),
            (
                Some(Code::Unavailable),
                "error trying to connect: tcp connect error",
            ),
            (Some(Code::Unavailable), "etcdserver: no leader"),
            (
                Some(Code::ResourceExhausted),
                "etcdserver: too many requests",
            ),
            (
                Some(Code::InvalidArgument),
                "etcdserver: duplicate key given in txn request",
            ),
        ] {
            assert_eq!(classify(code, msg).1, Certainty::NotApplied, "{msg}");
        }
        assert_eq!(
            classify(Some(Code::Unavailable), "etcdserver: no leader").0,
            FailureCode::NoQuorum
        );
    }

    #[test]
    fn timeouts_and_lost_connections_are_unknown() {
        for (code, msg, want) in [
            (
                Some(Code::Unavailable),
                "etcdserver: request timed out",
                FailureCode::Timeout,
            ),
            (
                Some(Code::Unavailable),
                "etcdserver: request timed out, possibly due to previous leader failure",
                FailureCode::Timeout,
            ),
            (
                Some(Code::DeadlineExceeded),
                "context deadline exceeded",
                FailureCode::Timeout,
            ),
            (
                Some(Code::Unavailable),
                "etcdserver: leader changed",
                FailureCode::ConnectionLost,
            ),
            (
                Some(Code::Unavailable),
                "etcdserver: server stopped",
                FailureCode::Stopping,
            ),
            (
                Some(Code::Unknown),
                "h2 protocol error: broken pipe",
                FailureCode::ConnectionLost,
            ),
            (
                None,
                "transport error: connection reset",
                FailureCode::ConnectionLost,
            ),
        ] {
            assert_eq!(classify(code, msg), (want, Certainty::Unknown), "{msg}");
        }
    }

    #[test]
    fn writes_with_unknown_outcome_are_info_and_reads_fail() {
        let e = EtcdError::new(FailureCode::Timeout, Certainty::Unknown, "no answer");
        assert_eq!(error_response(&e, false).outcome, Outcome::Info);
        assert_eq!(error_response(&e, true).outcome, Outcome::Fail);
        let e = EtcdError::new(FailureCode::Unreachable, Certainty::NotApplied, "refused");
        let r = error_response(&e, false);
        assert_eq!(
            (r.outcome, r.code),
            (Outcome::Fail, Some(FailureCode::Unreachable))
        );
    }

    /// With no member listening, every call is a definite failure naming
    /// the endpoints, and nothing was sent.
    #[tokio::test]
    async fn a_cluster_that_refuses_connections_fails_definitely() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let ep = format!("127.0.0.1:{port}");
        let mut c = EtcdWorkloadClient::new(
            vec![ep.clone()],
            vec![1],
            Duration::from_millis(500),
            0,
            ReadMode::Linearizable,
        );
        let r = c
            .call(&RequestBody::Put {
                key: "r1".into(),
                value: json!(1),
            })
            .await;
        assert_eq!(r.outcome, Outcome::Fail, "{r:?}");
        assert_eq!(r.code, Some(FailureCode::Unreachable));
        assert!(r.error.unwrap().contains(&ep));
        assert!(matches!(
            EtcdKv::connect(&ep, Duration::from_millis(500)).await,
            Err(EtcdError {
                certainty: Certainty::NotApplied,
                ..
            })
        ));
    }
}
