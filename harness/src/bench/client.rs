//! One benchmark client per system, behind one enum so that the load
//! generator is the same code for every system: a request is `Ok` only
//! when the system answered it successfully.

use clap::ValueEnum;
use dcf::kv::client::KvClient;
use dcf::kv::protocol::{Outcome, RequestBody};
use rand::Rng;
use serde::Serialize;
use serde_json::Value;
use workloads::etcd::EtcdKv;

/// What the clients send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchOp {
    /// Puts of fresh values (replicated and fsynced before the answer).
    Put,
    /// Linearizable reads (each confirmed by a quorum round).
    Get,
    /// Half puts, half reads, chosen at random per request.
    Mixed,
}

impl BenchOp {
    /// The operation of the next request (`Mixed` picks one).
    pub fn pick<R: Rng>(self, rng: &mut R) -> BenchOp {
        match self {
            BenchOp::Mixed if rng.gen_bool(0.5) => BenchOp::Get,
            BenchOp::Mixed => BenchOp::Put,
            op => op,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BenchOp::Put => "put",
            BenchOp::Get => "get",
            BenchOp::Mixed => "mixed",
        }
    }
}

/// A connected client of one system.
pub enum BenchClient {
    /// Our node's client (one TCP connection, one request at a time).
    Dcf(KvClient),
    /// etcd's v3 gRPC API (one HTTP/2 connection per client).
    Etcd(Box<EtcdKv>),
}

impl BenchClient {
    pub async fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
        match self {
            BenchClient::Dcf(kv) => {
                let body = RequestBody::Put {
                    key: key.to_string(),
                    value: Value::String(value.to_string()),
                };
                dcf_result(kv.call(body, true).await)
            }
            BenchClient::Etcd(etcd) => etcd
                .put(key, value.as_bytes())
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn get(&mut self, key: &str) -> Result<(), String> {
        match self {
            BenchClient::Dcf(kv) => {
                let body = RequestBody::Get {
                    key: key.to_string(),
                };
                dcf_result(kv.call(body, true).await)
            }
            BenchClient::Etcd(etcd) => etcd.get(key).await.map(drop).map_err(|e| e.to_string()),
        }
    }
}

fn dcf_result(r: dcf::kv::protocol::Response) -> Result<(), String> {
    match r.outcome {
        Outcome::Ok => Ok(()),
        _ => Err(r.error.unwrap_or_else(|| format!("{:?}", r.outcome))),
    }
}
