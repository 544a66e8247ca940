//! # workloads
//!
//! What the harness's clients do. A workload is one module that owns its
//! operation generator, the mapping of its operations to `dcf-node`
//! requests and of the replies back to completions ([`Codec`]), the checker
//! that judges its histories and the final reads that read back everything
//! it wrote. [`WORKLOADS`] lists them; adding one is its module plus one
//! line there.
//!
//! The requests a codec makes are `dcf-node`'s; [`etcd`] carries
//! the same requests out on etcd, so every workload runs against either
//! system ([`client::Target`]).

pub mod client;
pub mod etcd;
pub mod etcd_rpc;
pub mod list_append;
pub mod register;

use checker::Checker;
use dcf::kv::protocol::RequestBody;
use rand::rngs::StdRng;
use serde_json::Value;
use std::sync::Arc;

/// Every workload, in the order `--help` lists them.
pub static WORKLOADS: &[&WorkloadKind] = &[&register::KIND, &list_append::KIND];

/// An operation about to be invoked: Jepsen's `f`, key and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
}

/// How a workload's operations travel: the request a node gets for an
/// invocation, and the value an `ok` reply completes it with. Failures are
/// recorded the same way for every workload (see [`client`]).
pub trait Codec: Send + Sync {
    /// The request for `inv`, or why it cannot be sent (then it is recorded
    /// as failed without running).
    fn request(&self, inv: &Invocation) -> Result<RequestBody, String>;
    /// The value of `inv`'s `ok` completion, given the reply's value.
    fn ok_value(&self, inv: &Invocation, reply: &Value) -> Value;
}

/// A workload: a generator of invocations, how they are sent, and how
/// their history is checked.
pub trait Workload: Send {
    /// Its name on the command line.
    fn name(&self) -> &'static str;
    /// The next operation for `process`.
    fn next(&mut self, process: u64, rng: &mut StdRng) -> Invocation;
    /// Operations that read the final state of everything written, run
    /// after the cluster healed.
    fn final_reads(&self) -> Vec<Invocation>;
    /// The checker that judges this workload's histories.
    fn checker(&self) -> Checker;
    /// How its operations map to requests and replies to completions.
    fn codec(&self) -> Arc<dyn Codec>;
}

/// A workload as `--workload` names it.
#[derive(Debug)]
pub struct WorkloadKind {
    /// Its name, e.g. `list-append`.
    pub name: &'static str,
    /// One line for `--help`.
    pub about: &'static str,
    /// A fresh generator.
    pub build: fn() -> Box<dyn Workload>,
}

/// Why a workload name was not recognised.
#[derive(Debug, thiserror::Error)]
#[error("unknown workload {0:?} (expected one of {expected})", expected = names().join(", "))]
pub struct UnknownWorkload(pub String);

/// The workload kind named `name`.
pub fn kind(name: &str) -> Result<&'static WorkloadKind, UnknownWorkload> {
    WORKLOADS
        .iter()
        .copied()
        .find(|k| k.name == name)
        .ok_or_else(|| UnknownWorkload(name.to_string()))
}

/// Builds a workload by name.
pub fn by_name(name: &str) -> Result<Box<dyn Workload>, UnknownWorkload> {
    kind(name).map(|k| (k.build)())
}

/// The names of every workload.
pub fn names() -> Vec<&'static str> {
    WORKLOADS.iter().map(|k| k.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_builds_under_its_own_name() {
        for k in WORKLOADS {
            assert_eq!((k.build)().name(), k.name);
            assert_eq!(kind(k.name).unwrap().name, k.name);
        }
        let e = by_name("foo").err().unwrap().to_string();
        assert!(
            e.contains("\"foo\"") && e.contains("register, list-append"),
            "{e}"
        );
    }
}
