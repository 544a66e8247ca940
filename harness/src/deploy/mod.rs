//! Deployments: the hosts a test's nodes run on. A [`Deployment`] installs,
//! starts, stops, kills, pauses and resumes `dcf-node` on its hosts, runs
//! commands there and removes everything it created. It is also the
//! [`ClusterControl`] the nemesis acts through.
//!
//! The trait says nothing about how hosts are made: [`local::LocalDeployment`]
//! runs one process per node on this machine (each in its own network
//! namespace when the machine allows it), [`ssh::SshDeployment`] runs them
//! on hosts reached over SSH. [`kinds`] lists the
//! kinds `--deploy` chooses from; [`resources`] is the record each kind
//! keeps of what it created, which `dcf-harness cleanup` undoes.

pub mod clock;
pub mod cmd;
pub mod corrupt;
pub mod etcd;
pub mod kinds;
pub mod local;
pub mod lossy;
pub mod netns;
pub mod powercut;
pub mod process;
pub mod registry;
pub mod resources;
pub mod slow_net;
pub mod ssh;
pub mod status;

use nemesis::{Capability, ClusterControl, NodeId};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use etcd::{EtcdOptions, System};
pub use kinds::{DeployChoice, DeploymentKind, KindOptions};
pub use local::{LocalDeployment, LocalMode, LocalOptions};
pub use registry::Registry;
pub use resources::{cleanup_leftovers, CleanupReport, RESOURCES_FILE};

/// What to deploy: independent of where it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of nodes; ids are `1..=nodes`.
    pub nodes: u32,
    /// The `dcf-node` binary to run (copied or uploaded by remote deployments).
    pub node_binary: PathBuf,
    /// DCF parameters, each `NAME=VALUE` (passed as `--param`), e.g.
    /// `ELECTION_TIMEOUT=1000`.
    pub params: Vec<String>,
    /// Further `dcf-node` arguments, e.g. `--request-timeout-ms 2000`.
    pub extra_args: Vec<String>,
    /// Environment variables every node process gets besides the
    /// harness's own, e.g. the one that allows planted bugs.
    pub env: Vec<(String, String)>,
    /// Capabilities the run's faults need that must be prepared before
    /// the nodes start (clock skew preloads libfaketime, slow links put
    /// proxies on every link); the others are refused as unsupported.
    pub prepare: BTreeSet<Capability>,
    /// Where node folders (data, logs) and the resource file live; it
    /// should be unique to the run.
    pub base_dir: PathBuf,
    /// Node slots prepared at setup but not started, with ids after
    /// `nodes`: the nodes a membership change can add.
    pub spare_nodes: u32,
    /// Puts every node's data directory on powercut-fs (the power-loss
    /// fault needs it), mounted before the node starts.
    pub powercut_data: bool,
    /// What runs on the nodes: `dcf-node` (with the fields above) or etcd
    /// members (which use none of `node_binary`, `params`, `extra_args`).
    pub system: System,
}

impl ClusterSpec {
    /// A spec with no params or extra arguments.
    pub fn new(nodes: u32, node_binary: impl Into<PathBuf>, base_dir: impl Into<PathBuf>) -> Self {
        ClusterSpec {
            nodes,
            node_binary: node_binary.into(),
            params: Vec::new(),
            extra_args: Vec::new(),
            env: Vec::new(),
            prepare: BTreeSet::new(),
            base_dir: base_dir.into(),
            spare_nodes: 0,
            powercut_data: false,
            system: System::Dcf,
        }
    }

    /// A cluster of `nodes` etcd members run by `etcd` (see
    /// [`etcd::find_binary`]), with their folders under `base_dir`.
    ///
    /// With [`LocalDeployment`] in [`LocalMode::Loopback`] this is a plain
    /// etcd cluster on 127.0.0.1 with etcd's defaults (fsync on): set it
    /// up, take [`Deployment::client_endpoints`], and `teardown` (or drop)
    /// it to stop the members and delete their data.
    pub fn etcd(nodes: u32, etcd: impl Into<PathBuf>, base_dir: impl Into<PathBuf>) -> Self {
        let etcd = etcd.into();
        ClusterSpec {
            system: System::Etcd(EtcdOptions::new(etcd.clone())),
            ..ClusterSpec::new(nodes, etcd, base_dir)
        }
    }

    /// The program every node runs.
    pub fn program(&self) -> &Path {
        match &self.system {
            System::Dcf => &self.node_binary,
            System::Etcd(o) => &o.binary,
        }
    }

    /// The `dcf-node` arguments of `node` started with cluster config
    /// `config`: its identity and addresses, then the run's parameters and
    /// extra arguments. Every deployment starts nodes with these.
    pub fn node_args(&self, node: &NodeSpec, config: &str) -> Vec<String> {
        let mut args = vec![
            "--node-id".to_string(),
            node.id.to_string(),
            "--config".into(),
            config.to_string(),
            "--data-dir".into(),
            node.data_dir().display().to_string(),
            "--client-addr".into(),
            node.client_addr.to_string(),
        ];
        for p in &self.params {
            args.push("--param".into());
            args.push(p.clone());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Creates the base folder (for the resource file and collected node
    /// folders) and checks that the node binary exists: the first step of
    /// every deployment's setup.
    pub fn prepare_base(&self) -> Result<(), DeployError> {
        std::fs::create_dir_all(&self.base_dir).map_err(|e| {
            DeployError::io(format!("cannot create {}", self.base_dir.display()), e)
        })?;
        match &self.system {
            System::Dcf if !self.node_binary.is_file() => {
                return Err(DeployError::Other(format!(
                    "node binary {} not found (build it with `cargo build --release -p dcf --bin dcf-node`)",
                    self.node_binary.display()
                )));
            }
            System::Etcd(o) if !o.binary.is_file() => {
                return Err(DeployError::Other(format!(
                    "etcd binary {} not found ({})",
                    o.binary.display(),
                    etcd::INSTALL_HINT
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Adds a `NAME=VALUE` parameter.
    pub fn param(mut self, name: &str, value: impl std::fmt::Display) -> Self {
        self.params.push(format!("{name}={value}"));
        self
    }
}

/// One deployed node: its addresses and its folder on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    pub id: NodeId,
    /// The DCF (peer) address in the cluster config.
    pub peer_addr: SocketAddr,
    /// The client address the harness and workloads connect to.
    pub client_addr: SocketAddr,
    /// The node's folder on its host: `data/` plus stdout/stderr logs.
    pub dir: PathBuf,
}

impl NodeSpec {
    /// The node's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }
}

/// Why a deployment step failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// An external command (ip, iptables, ...) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The deployment cannot work here; the message says what is missing.
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("node {node}: {reason}")]
    Node { node: NodeId, reason: String },
    #[error("unknown node {0}")]
    UnknownNode(NodeId),
    /// Teardown could not remove everything; the list says what is left.
    #[error("teardown left resources behind: {0:?}")]
    Leftovers(Vec<String>),
    #[error("{0}")]
    Other(String),
}

impl DeployError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DeployError::Io {
            context: context.into(),
            source,
        }
    }
}

/// A set of hosts on which the harness installs and runs a cluster. Every
/// method takes `&self` so the deployment can be shared (as an `Arc`) with
/// the nemesis thread; implementations use interior mutability.
pub trait Deployment: ClusterControl {
    /// The kind's name ([`DeploymentKind::name`]), e.g. `local`.
    fn kind(&self) -> &'static str;
    /// The run-unique tag in the name of every resource it creates.
    fn tag(&self) -> &str;
    /// Creates the hosts, installs the node binary and starts every node.
    /// On error, whatever was created is still removed by
    /// [`Deployment::teardown`].
    fn setup(&self) -> Result<(), DeployError>;
    /// The deployed nodes, by id.
    fn nodes(&self) -> Vec<NodeSpec>;
    /// Client endpoints (`host:port`) in node-id order, for `KvClient`.
    fn client_endpoints(&self) -> Vec<String> {
        self.nodes()
            .iter()
            .map(|n| n.client_addr.to_string())
            .collect()
    }
    /// The cluster config JSON every node was started with.
    fn config_json(&self) -> String;
    /// Starts every node that is not running.
    fn start_all(&self) -> Result<(), DeployError>;
    /// Whether the node's process runs (a paused one does).
    fn is_running(&self, node: NodeId) -> bool;
    /// Stops every node (SIGTERM, then SIGKILL after a grace period).
    fn stop_all(&self);
    /// Copies the node's logs and data into `dest` (the run's store folder
    /// for that node), creating it.
    fn collect(&self, node: NodeId, dest: &Path) -> Result<(), DeployError>;
    /// Runs `argv` on the node's host (in its network namespace locally).
    fn run_command(&self, node: NodeId, argv: &[String]) -> Result<Output, DeployError>;
    /// Removes every process, host and network resource the deployment
    /// created. Idempotent; also run on drop.
    fn teardown(&self) -> Result<(), DeployError>;
    /// A one-line description for logs and `test.json`.
    fn describe(&self) -> String;
    /// This deployment as the nemesis's view of it.
    fn control(self: Arc<Self>) -> Arc<dyn ClusterControl>;
}

/// Polls [`ClusterControl::leader`] until some node reports itself leader
/// or `timeout` passes.
pub fn wait_for_leader(control: &dyn ClusterControl, timeout: Duration) -> Option<NodeId> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = control.leader() {
            return Some(l);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Finds a built `dcf-node` next to the running executable: the harness
/// binary lives in `target/<profile>/`, test executables in
/// `target/<profile>/deps/`, and cargo puts `dcf-node` in
/// `target/<profile>/`. Returns `None` if it has not been built.
pub fn find_node_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join("dcf-node"))
        .find(|p| p.is_file())
}
