//! Why the harness could not produce a verdict. Every such failure ends a
//! run as "harness failure" (exit 255): it says nothing about the system
//! under test.

use crate::analysis::AnalysisError;
use crate::deploy::DeployError;
use std::path::PathBuf;

/// A harness failure, by what failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    #[error("cannot create the run folder under {}: {source}", store.display())]
    RunFolder {
        store: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {file}: {source}")]
    RunFile {
        file: &'static str,
        source: std::io::Error,
    },
    #[error("--node-binary {} does not exist", .0.display())]
    NodeBinaryMissing(PathBuf),
    #[error(
        "cannot find dcf-node: build it with `cargo build --release -p dcf` or pass --node-binary"
    )]
    NodeBinaryNotFound,
    /// `--system etcd` without an etcd binary; the message says how to
    /// install one.
    #[error("{0}")]
    EtcdBinary(String),
    #[error("deploy: {0}")]
    Deploy(#[source] DeployError),
    #[error("starting nodes: {0}")]
    StartNodes(#[source] DeployError),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("no leader elected within 30 s of start")]
    NoLeader,
    #[error("history.jsonl: {0}")]
    HistoryCreate(#[source] std::io::Error),
    #[error("writing history.jsonl failed: {0}")]
    HistoryWrite(#[source] std::io::Error),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
}
