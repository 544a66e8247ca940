//! What a nemesis needs from a deployed cluster. The harness's deployments
//! (local namespaces now, SSH hosts later) implement [`ClusterControl`];
//! the nemesis never knows how a fault is carried out on a host.

use std::collections::{BTreeMap, BTreeSet};

/// A node id as in the DCF config.
pub type NodeId = u32;

/// Who drops whose packets: `grudge[a]` holds the nodes whose packets `a`
/// must not receive. A symmetric partition lists each side in the other's set.
pub type Grudge = BTreeMap<NodeId, BTreeSet<NodeId>>;

/// Why a fault could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultError {
    /// This deployment cannot do it at all (for example partitions without
    /// network namespaces); the message says why and how to fix it.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// It was attempted and failed.
    #[error("failed: {0}")]
    Failed(String),
}

/// Real faults on a real cluster. Every method acts on real processes or
/// kernel state and returns only once the change is in effect.
pub trait ClusterControl: Send + Sync {
    /// The node ids of the cluster.
    fn node_ids(&self) -> Vec<NodeId>;
    /// SIGKILL the node's process (no-op if it is not running).
    fn kill(&self, node: NodeId) -> Result<(), FaultError>;
    /// Start the node's process again (no-op if it is running).
    fn start(&self, node: NodeId) -> Result<(), FaultError>;
    /// SIGSTOP the node's process.
    fn pause(&self, node: NodeId) -> Result<(), FaultError>;
    /// SIGCONT the node's process.
    fn resume(&self, node: NodeId) -> Result<(), FaultError>;
    /// Make the kernel drop packets as the grudge says (replacing any
    /// earlier partition).
    fn partition(&self, grudge: &Grudge) -> Result<(), FaultError>;
    /// Remove every partition rule.
    fn heal(&self) -> Result<(), FaultError>;
    /// `Ok` if partitions can be made here, else the reason and the fix.
    fn partitions_supported(&self) -> Result<(), String>;
    /// The node that currently reports itself leader, if any (best effort).
    fn leader(&self) -> Option<NodeId>;
    /// Compacts the running node's log below everything it applied (the
    /// node takes a checkpoint first); returns its new first log index.
    fn compact(&self, node: NodeId) -> Result<u64, FaultError>;
}
