//! Asking nodes who leads, and asking one to compact its log, through
//! their client ports. Each query runs on a fresh thread with its own
//! current-thread runtime, so it works whether or not the caller is inside
//! a tokio runtime, and it is bounded in time.

use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use nemesis::NodeId;
use serde_json::Value;
use std::time::Duration;

/// Every reachable node's stream status (`None` for the unreachable), in
/// the order of `endpoints`. Takes at most about `timeout`.
pub fn statuses(endpoints: &[(NodeId, String)], timeout: Duration) -> Vec<(NodeId, Option<Value>)> {
    let endpoints = endpoints.to_vec();
    let ids: Vec<NodeId> = endpoints.iter().map(|(id, _)| *id).collect();
    let worker = std::thread::spawn(move || {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::warn!(error = %e, "cannot build a runtime for status queries");
                return Vec::new();
            }
        };
        rt.block_on(async move {
            let queries = endpoints.into_iter().map(|(id, ep)| async move {
                let mut client = KvClient::new(vec![ep], timeout);
                let fut = client.call(RequestBody::Status, false);
                let value = match tokio::time::timeout(timeout, fut).await {
                    Ok(r) if r.outcome == Outcome::Ok => Some(r.value),
                    _ => None,
                };
                (id, value)
            });
            let handles: Vec<_> = queries.map(tokio::spawn).collect();
            let mut out = Vec::new();
            for h in handles {
                if let Ok(r) = h.await {
                    out.push(r);
                }
            }
            out
        })
    });
    let got = worker.join().unwrap_or_default();
    ids.into_iter()
        .map(|id| {
            let v = got
                .iter()
                .find(|(i, _)| *i == id)
                .and_then(|(_, v)| v.clone());
            (id, v)
        })
        .collect()
}

/// Asks the node at `endpoint` to truncate its log below everything it
/// applied (it takes a checkpoint first); returns its new first index.
pub fn compact(endpoint: &str, timeout: Duration) -> Result<u64, String> {
    let endpoint = endpoint.to_string();
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot build a runtime: {e}"))?;
        rt.block_on(async move {
            let mut client = KvClient::new(vec![endpoint], timeout);
            let call = client.call(
                RequestBody::Truncate {
                    first_kept: u64::MAX,
                },
                false,
            );
            match tokio::time::timeout(timeout, call).await {
                Ok(r) if r.outcome == Outcome::Ok => r.value["first_index"]
                    .as_u64()
                    .ok_or_else(|| format!("no first_index in the answer {}", r.value)),
                Ok(r) => Err(r.error.unwrap_or_else(|| "refused".into())),
                Err(_) => Err(format!("no answer within {timeout:?}")),
            }
        })
    });
    worker
        .join()
        .unwrap_or_else(|_| Err("compaction query panicked".into()))
}

/// The node that says it is leader; with several (a deposed leader that has
/// not noticed yet), the one with the highest term.
pub fn leader(endpoints: &[(NodeId, String)], timeout: Duration) -> Option<NodeId> {
    statuses(endpoints, timeout)
        .into_iter()
        .filter_map(|(id, v)| {
            let v = v?;
            (v.get("role")?.as_str()? == "LEADER")
                .then(|| (v.get("term").and_then(Value::as_u64).unwrap_or(0), id))
        })
        .max()
        .map(|(_, id)| id)
}
