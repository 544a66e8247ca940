//! The clusters `dcf-harness bench` measures: three nodes of one system as
//! plain processes on loopback (no namespaces, no faults), each system
//! with its own defaults and fsync on, started through the same local
//! deployment the tests use and torn down when dropped.

use super::client::BenchClient;
use crate::deploy::{
    etcd, find_node_binary, wait_for_leader, ClusterSpec, Deployment, LocalDeployment, LocalMode,
    LocalOptions,
};
use dcf::kv::client::KvClient;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use workloads::etcd::EtcdKv;

/// Nodes per benchmarked cluster.
pub const NODES: u32 = 3;
/// How long a request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fresh cluster has to elect a leader.
const LEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// A system `dcf-harness bench` can measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchSystem {
    /// Our `dcf-node`.
    Dcf,
    /// etcd (`--etcd-binary`, default on PATH), with its defaults.
    Etcd,
}

impl BenchSystem {
    pub fn name(self) -> &'static str {
        match self {
            BenchSystem::Dcf => "dcf",
            BenchSystem::Etcd => "etcd",
        }
    }

    /// Every system, for `--system`'s help and parser.
    pub const ALL: [BenchSystem; 2] = [BenchSystem::Dcf, BenchSystem::Etcd];

    /// Parses one name of `--system`.
    pub fn parse(s: &str) -> Result<BenchSystem, String> {
        BenchSystem::ALL
            .iter()
            .copied()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = BenchSystem::ALL.iter().map(|x| x.name()).collect();
                format!("unknown system {s:?} (expected {})", names.join(", "))
            })
    }
}

/// Why a cluster could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("dcf-node is not built next to dcf-harness: run `cargo build --release --workspace` or pass --node-binary")]
    NoNodeBinary,
    #[error("{0}")]
    NoEtcdBinary(String),
    #[error("starting the {system} cluster: {source}")]
    Deploy {
        system: &'static str,
        #[source]
        source: crate::deploy::DeployError,
    },
    #[error("the {0} cluster elected no leader within 30 s")]
    NoLeader(&'static str),
}

/// Where the binaries come from.
#[derive(Debug, Clone, Default)]
pub struct Binaries {
    /// `dcf-node` (default: next to this executable).
    pub node: Option<PathBuf>,
    /// `etcd` (default: on PATH).
    pub etcd: Option<PathBuf>,
}

/// A running cluster of one system.
pub struct BenchCluster {
    pub system: BenchSystem,
    deployment: Arc<LocalDeployment>,
    /// Every client endpoint, the leader's first: clients talk to the
    /// leader, the best case of every system.
    endpoints: Vec<String>,
}

impl BenchCluster {
    /// Starts `system`'s cluster with its folders under `base` and waits
    /// for a leader.
    pub fn start(
        system: BenchSystem,
        base: &Path,
        binaries: &Binaries,
    ) -> Result<BenchCluster, ClusterError> {
        let spec = match system {
            BenchSystem::Dcf => {
                let node = binaries
                    .node
                    .clone()
                    .or_else(find_node_binary)
                    .ok_or(ClusterError::NoNodeBinary)?;
                ClusterSpec::new(NODES, node, base)
            }
            BenchSystem::Etcd => {
                let etcd = etcd::find_binary(binaries.etcd.as_deref())
                    .map_err(ClusterError::NoEtcdBinary)?;
                ClusterSpec::etcd(NODES, etcd, base)
            }
        };
        let deployment = Arc::new(LocalDeployment::new(
            spec,
            LocalOptions {
                mode: LocalMode::Loopback,
                ..LocalOptions::default()
            },
        ));
        let name = system.name();
        deployment.setup().map_err(|source| ClusterError::Deploy {
            system: name,
            source,
        })?;
        let leader =
            wait_for_leader(&*deployment, LEADER_TIMEOUT).ok_or(ClusterError::NoLeader(name))?;
        let mut endpoints = Vec::new();
        for n in deployment.nodes() {
            let ep = n.client_addr.to_string();
            if n.id == leader {
                endpoints.insert(0, ep);
            } else {
                endpoints.push(ep);
            }
        }
        Ok(BenchCluster {
            system,
            deployment,
            endpoints,
        })
    }

    /// A new client with its own connection.
    pub async fn connect(&self, _index: u32) -> Result<BenchClient, String> {
        match self.system {
            BenchSystem::Dcf => {
                let mut kv = KvClient::new(self.endpoints.clone(), REQUEST_TIMEOUT);
                // An error is counted, not hidden by a retry.
                kv.set_write_retries(0);
                Ok(BenchClient::Dcf(kv))
            }
            BenchSystem::Etcd => EtcdKv::connect(&self.endpoints[0], REQUEST_TIMEOUT)
                .await
                .map(|c| BenchClient::Etcd(Box::new(c)))
                .map_err(|e| e.to_string()),
        }
    }

    /// One line on what runs, for the bench's set-up lines.
    pub fn describe(&self) -> String {
        self.deployment.describe()
    }

    /// Stops the nodes and removes what the deployment created.
    pub fn stop(self) -> Result<(), ClusterError> {
        self.deployment.stop_all();
        self.deployment
            .teardown()
            .map_err(|source| ClusterError::Deploy {
                system: self.system.name(),
                source,
            })
    }
}
