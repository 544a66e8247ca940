//! What a nemesis needs from a deployed cluster. The harness's deployments
//! (local namespaces, SSH hosts) implement [`ClusterControl`];
//! the nemesis never knows how a fault is carried out on a host.
//!
//! Each thing a fault asks of a deployment is a [`Capability`] with its own
//! method. Every such method has a default that refuses with
//! [`FaultError::Unsupported`], naming what is missing and how to get it,
//! so a deployment that cannot do a fault reports it (the run's verdict
//! then says the fault was not injected) instead of failing obscurely.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::members::{MemberAck, MemberChange, MemberReply};

/// A node id as in the DCF config.
pub type NodeId = u32;

/// Who drops whose packets: `grudge[a]` holds the nodes whose packets `a`
/// must not receive. A symmetric partition lists each side in the other's set.
pub type Grudge = BTreeMap<NodeId, BTreeSet<NodeId>>;

/// A node's clock relative to real time, from the moment it is set:
/// `offset_ms` ahead (behind when negative), then running at
/// `rate_milli / 1000` times real speed. With `strobe_ms` above 0 the
/// clock flips between that offset and none every `strobe_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClockSkew {
    pub offset_ms: i64,
    pub rate_milli: u32,
    pub strobe_ms: u64,
}

impl ClockSkew {
    /// Real time.
    pub const NONE: ClockSkew = ClockSkew {
        offset_ms: 0,
        rate_milli: 1000,
        strobe_ms: 0,
    };
}

/// A directed link between two nodes: traffic that `from` sends to `to`.
pub type Link = (NodeId, NodeId);

/// What a slow link does to what crosses it: every chunk waits `delay_ms`
/// plus up to `jitter_ms`, and nothing crosses while `stalled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LinkDelay {
    pub delay_ms: u64,
    pub jitter_ms: u64,
    pub stalled: bool,
}

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

/// One thing a fault asks of a deployment; each is a method of
/// [`ClusterControl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// [`ClusterControl::kill`].
    Kill,
    /// [`ClusterControl::start`].
    Start,
    /// [`ClusterControl::pause`].
    Pause,
    /// [`ClusterControl::resume`].
    Resume,
    /// [`ClusterControl::partition`] and [`ClusterControl::heal`].
    Partition,
    /// [`ClusterControl::compact`].
    Compact,
    /// [`ClusterControl::change_members`] and
    /// [`ClusterControl::spare_nodes`].
    Membership,
    /// [`ClusterControl::set_work_mode`] and
    /// [`ClusterControl::node_status`].
    WorkMode,
    /// [`ClusterControl::power_cut`].
    PowerCut,
    /// [`ClusterControl::corrupt`] and [`ClusterControl::repair`].
    Corrupt,
    /// [`ClusterControl::set_clock`].
    Clock,
    /// [`ClusterControl::shape_links`].
    SlowNet,
    /// [`ClusterControl::drop_packets`].
    LossyNet,
}

impl Capability {
    /// What it does, completing "this deployment cannot ...".
    pub fn what(self) -> &'static str {
        match self {
            Capability::Kill => "kill a node's process",
            Capability::Start => "start a node's process",
            Capability::Pause => "pause a node's process",
            Capability::Resume => "resume a paused node",
            Capability::Partition => "drop packets between nodes",
            Capability::Compact => "compact a running node's log",
            Capability::Membership => "add, remove or reconfigure cluster members",
            Capability::WorkMode => "switch a node between normal and minority mode",
            Capability::PowerCut => "cut a node's power, dropping its unsynced writes",
            Capability::Corrupt => "corrupt a stopped node's stored files",
            Capability::Clock => "skew a node's clock",
            Capability::SlowNet => "delay or stall the links between nodes",
            Capability::LossyNet => "drop random packets between nodes",
        }
    }

    /// The [`ClusterControl`] method that provides it.
    pub fn method(self) -> &'static str {
        match self {
            Capability::Kill => "kill",
            Capability::Start => "start",
            Capability::Pause => "pause",
            Capability::Resume => "resume",
            Capability::Partition => "partition",
            Capability::Compact => "compact",
            Capability::Membership => "change_members",
            Capability::WorkMode => "set_work_mode",
            Capability::PowerCut => "power_cut",
            Capability::Corrupt => "corrupt",
            Capability::Clock => "set_clock",
            Capability::SlowNet => "shape_links",
            Capability::LossyNet => "drop_packets",
        }
    }

    /// The error of a deployment that does not provide it.
    pub fn unsupported(self) -> FaultError {
        FaultError::Unsupported(format!(
            "this deployment cannot {} (it does not implement ClusterControl::{}); \
             choose a deployment that can with --deploy, or implement it for this one",
            self.what(),
            self.method()
        ))
    }
}

/// Real faults on a real cluster. Every method acts on real processes or
/// kernel state and returns only once the change is in effect. Only
/// [`node_ids`](ClusterControl::node_ids) and
/// [`leader`](ClusterControl::leader) are required: a capability a
/// deployment does not implement is refused as unsupported.
pub trait ClusterControl: Send + Sync {
    /// The node ids of the cluster.
    fn node_ids(&self) -> Vec<NodeId>;
    /// The node that currently reports itself leader, if any (best effort).
    fn leader(&self) -> Option<NodeId>;
    /// `Ok` if `capability` can be used here now, else why not and the fix.
    /// The nemesis asks before it starts a fault, so a fault that cannot be
    /// injected is reported without being half-made. By default every
    /// capability is assumed to work and its method says otherwise.
    fn supports(&self, capability: Capability) -> Result<(), String> {
        let _ = capability;
        Ok(())
    }
    /// SIGKILL the node's process (no-op if it is not running).
    fn kill(&self, node: NodeId) -> Result<(), FaultError> {
        let _ = node;
        Err(Capability::Kill.unsupported())
    }
    /// Start the node's process again (no-op if it is running).
    fn start(&self, node: NodeId) -> Result<(), FaultError> {
        let _ = node;
        Err(Capability::Start.unsupported())
    }
    /// SIGSTOP the node's process.
    fn pause(&self, node: NodeId) -> Result<(), FaultError> {
        let _ = node;
        Err(Capability::Pause.unsupported())
    }
    /// SIGCONT the node's process.
    fn resume(&self, node: NodeId) -> Result<(), FaultError> {
        let _ = node;
        Err(Capability::Resume.unsupported())
    }
    /// Make the kernel drop packets as the grudge says (replacing any
    /// earlier partition).
    fn partition(&self, grudge: &Grudge) -> Result<(), FaultError> {
        let _ = grudge;
        Err(Capability::Partition.unsupported())
    }
    /// Remove every partition rule. Without partitions there is nothing to
    /// remove.
    fn heal(&self) -> Result<(), FaultError> {
        Ok(())
    }
    /// Compacts the running node's log below everything it applied (the
    /// node takes a checkpoint first); returns its new first log index.
    fn compact(&self, node: NodeId) -> Result<u64, FaultError> {
        let _ = node;
        Err(Capability::Compact.unsupported())
    }
    /// Nodes the deployment can add: prepared, never started, with a fresh
    /// data directory.
    fn spare_nodes(&self) -> Vec<NodeId> {
        Vec::new()
    }
    /// Asks the cluster's leader for a membership, role, priority or
    /// leadership change and keeps [`node_ids`](ClusterControl::node_ids)
    /// in step with what the cluster did: an added node is started first,
    /// a removed one is stopped. `Err` only when the deployment could not
    /// act; the cluster's own answer (even a refusal) is the reply.
    fn change_members(&self, change: MemberChange) -> Result<MemberReply, FaultError> {
        let _ = change;
        Err(Capability::Membership.unsupported())
    }
    /// Sets the node's work mode through its admin API: minority mode with
    /// `vote_num` votes (DCF's `set-work-mode minority --vote-num N`), or
    /// normal mode for `None`. The reply is the node's answer.
    fn set_work_mode(
        &self,
        node: NodeId,
        vote_num: Option<u64>,
    ) -> Result<MemberReply, FaultError> {
        let _ = (node, vote_num);
        Err(Capability::WorkMode.unsupported())
    }
    /// The node's stream status (role, term, work mode, indexes) if it
    /// answers.
    fn node_status(&self, node: NodeId) -> Option<serde_json::Value> {
        let _ = node;
        None
    }
    /// Cuts the power of `nodes` at one instant: their disks persist
    /// nothing more, their processes are SIGKILLed, and every write to
    /// their data directories that was not durable (file data not
    /// fsynced, names not made durable by a directory fsync) is dropped.
    /// The nodes stay down. Returns what each lost, by node, for the
    /// history.
    fn power_cut(&self, nodes: &[NodeId]) -> Result<serde_json::Value, FaultError> {
        let _ = nodes;
        Err(Capability::PowerCut.unsupported())
    }
    /// Stops the node, damages one of its stored files as the seed `how`
    /// decides (which file, where, how), starts it again and watches
    /// whether it comes up or refuses to; returns exactly what was done
    /// (file, offset, bytes, mode) and `refused`, for the history.
    fn corrupt(&self, node: NodeId, how: u64) -> Result<serde_json::Value, FaultError> {
        let _ = (node, how);
        Err(Capability::Corrupt.unsupported())
    }
    /// Makes a node that refused to start on a damaged file whole again
    /// (the deployment says how) and starts it.
    fn repair(&self, node: NodeId) -> Result<serde_json::Value, FaultError> {
        let _ = node;
        Err(Capability::Corrupt.unsupported())
    }
    /// Sets the node's clock as `skew` says, from now on, without a
    /// restart ([`ClockSkew::NONE`] returns it to real time).
    fn set_clock(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        let _ = (node, skew);
        Err(Capability::Clock.unsupported())
    }
    /// Shapes each listed link (replacing every earlier shape; links not
    /// listed become healthy, so an empty list heals them all).
    fn shape_links(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), FaultError> {
        let _ = shapes;
        Err(Capability::SlowNet.unsupported())
    }
    /// Makes the kernel drop each listed link's packets at random with the
    /// given probability in thousandths (replacing every earlier loss; an
    /// empty list removes it all).
    fn drop_packets(&self, losses: &[(Link, u32)]) -> Result<(), FaultError> {
        let _ = losses;
        Err(Capability::LossyNet.unsupported())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bare;

    impl ClusterControl for Bare {
        fn node_ids(&self) -> Vec<NodeId> {
            vec![1]
        }
        fn leader(&self) -> Option<NodeId> {
            None
        }
    }

    /// A deployment that implements nothing refuses each capability as
    /// unsupported, naming the method to implement.
    #[test]
    fn unimplemented_capabilities_are_unsupported_with_the_fix() {
        let g = Grudge::new();
        let results = [
            (Capability::Kill, Bare.kill(1)),
            (Capability::Start, Bare.start(1)),
            (Capability::Pause, Bare.pause(1)),
            (Capability::Resume, Bare.resume(1)),
            (Capability::Partition, Bare.partition(&g)),
            (Capability::Compact, Bare.compact(1).map(|_| ())),
            (
                Capability::Membership,
                Bare.change_members(MemberChange::Promote { node: 1 })
                    .map(|_| ()),
            ),
            (
                Capability::WorkMode,
                Bare.set_work_mode(1, None).map(|_| ()),
            ),
            (Capability::PowerCut, Bare.power_cut(&[1]).map(|_| ())),
            (Capability::Corrupt, Bare.corrupt(1, 7).map(|_| ())),
            (Capability::Clock, Bare.set_clock(1, ClockSkew::NONE)),
            (Capability::SlowNet, Bare.shape_links(&[])),
            (Capability::LossyNet, Bare.drop_packets(&[])),
        ];
        for (cap, r) in results {
            let Err(FaultError::Unsupported(why)) = r else {
                panic!("{cap:?}: {r:?}")
            };
            assert!(
                why.contains(&format!("ClusterControl::{}", cap.method()))
                    && why.contains("--deploy"),
                "{why}"
            );
        }
        assert_eq!(Bare.heal(), Ok(()));
        assert_eq!(Bare.supports(Capability::Partition), Ok(()));
    }
}
