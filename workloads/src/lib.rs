//! # workloads
//!
//! What the harness's clients do: each workload names its operation
//! generator, the client that turns an operation into requests to a
//! `dcf-node`, and the checker that judges the resulting history
//! (register → linearizability per key, list-append → Elle-style cycles).

pub mod client;
pub mod list_append;
pub mod register;

use checker::Checker;
use rand::rngs::StdRng;
use serde_json::Value;

/// An operation about to be invoked: Jepsen's `f`, key and value.
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub f: String,
    pub key: Option<Value>,
    pub value: Value,
}

/// A workload: a generator of invocations and how to check them.
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
}

/// Why a workload name was not recognised.
#[derive(Debug, thiserror::Error)]
#[error("unknown workload {0:?} (expected register or list-append)")]
pub struct UnknownWorkload(pub String);

/// Builds a workload by name.
pub fn by_name(name: &str) -> Result<Box<dyn Workload>, UnknownWorkload> {
    match name {
        "register" => Ok(Box::new(register::Register::default())),
        "list-append" => Ok(Box::new(list_append::ListAppend::default())),
        other => Err(UnknownWorkload(other.to_string())),
    }
}

/// The names of every workload.
pub const NAMES: &[&str] = &["register", "list-append"];
