//! The local deployment's clock, slow-net and lossy-net faults: what is
//! prepared before the nodes start (libfaketime's files, the link
//! proxies) and the `ClusterControl` methods that drive them. See
//! [`crate::deploy::clock`], [`crate::deploy::slow_net`] and
//! [`crate::deploy::lossy`].

use super::{Inner, LocalDeployment, NS_PEER_PORT};
use crate::deploy::clock::NodeClocks;
use crate::deploy::netns::Network;
use crate::deploy::slow_net::{self, LinkProxies};
use crate::deploy::{lossy, DeployError};
use nemesis::{Capability, ClockSkew, FaultError, Link, LinkDelay, NodeId};
use std::net::Ipv4Addr;

/// Why a fault needing namespaces cannot run on loopback, and the fix.
/// (Takes the reason rather than the deployment: callers hold its lock.)
fn needs_namespaces(what: &str, loopback_reason: Option<&str>) -> String {
    format!(
        "{what} need network namespaces: run as root and `apt-get install iptables iproute2` \
         (running on loopback: {})",
        loopback_reason.unwrap_or("not set up in namespaces")
    )
}

impl LocalDeployment {
    /// Prepares what the requested faults need before any node starts;
    /// what cannot be prepared is remembered, with why, and its faults
    /// are refused as unsupported.
    pub(super) fn prepare_faults(&self, inner: &mut Inner) -> Result<(), DeployError> {
        let wants = |c| self.spec.prepare.contains(&c);
        if wants(Capability::Clock) {
            match NodeClocks::new(&self.spec.base_dir) {
                Ok(c) => inner.clocks = Some(c),
                Err(why) => {
                    tracing::warn!(%why, "clock faults unsupported");
                    inner.unprepared.insert(Capability::Clock, why);
                }
            }
        }
        if wants(Capability::SlowNet) {
            let Inner {
                network, registry, ..
            } = inner;
            match network {
                Some(net) => inner.proxies = Some(LinkProxies::start(net, NS_PEER_PORT, registry)?),
                None => {
                    let why = needs_namespaces("slow links", inner.loopback_reason.as_deref());
                    inner.unprepared.insert(Capability::SlowNet, why);
                }
            }
        }
        Ok(())
    }

    /// `Ok` if the capability was prepared (or needs no preparation).
    pub(super) fn fault_supported(&self, capability: Capability) -> Result<(), String> {
        let inner = self.lock();
        if let Some(why) = inner.unprepared.get(&capability) {
            return Err(why.clone());
        }
        match capability {
            Capability::Clock if inner.clocks.is_none() => Err(
                "the nodes were started without libfaketime: name clock in --nemesis or in the \
                 schedule so they are"
                    .into(),
            ),
            Capability::SlowNet if inner.proxies.is_none() => Err(
                "the links have no proxies: name slow-net in --nemesis or in the schedule so \
                 they get them before the nodes start"
                    .into(),
            ),
            Capability::LossyNet if inner.network.is_none() => Err(needs_namespaces(
                "lossy links",
                inner.loopback_reason.as_deref(),
            )),
            _ => Ok(()),
        }
    }

    /// The node's environment: the run's, plus its clock's.
    pub(super) fn node_env(&self, inner: &Inner, node: NodeId) -> Vec<(String, String)> {
        let mut env = self.spec.env.clone();
        if let Some(c) = &inner.clocks {
            env.extend(c.env(node));
        }
        env
    }

    /// Before a node's process starts: its clock file, recorded first.
    pub(super) fn before_spawn(&self, inner: &mut Inner, node: NodeId) -> Result<(), DeployError> {
        if let Some(c) = &inner.clocks {
            let path = c.path_of(node);
            inner.registry.add_file(path.clone());
            c.before_spawn(node)
                .map_err(|e| DeployError::io(format!("cannot write {}", path.display()), e))?;
        }
        Ok(())
    }

    /// The addresses `node`'s packets to another node may come from.
    pub(super) fn sources_of(inner: &Inner, net: &Network, node: NodeId) -> Vec<Ipv4Addr> {
        let mut out: Vec<Ipv4Addr> = net.ip_of(node).into_iter().collect();
        if inner.proxies.is_some() {
            out.push(slow_net::proxy_source(net, node));
        }
        out
    }

    pub(super) fn set_clock_impl(&self, node: NodeId, skew: ClockSkew) -> Result<(), FaultError> {
        self.fault_supported(Capability::Clock)
            .map_err(FaultError::Unsupported)?;
        // Spare slots run under libfaketime too once a member fault adds them.
        if !self.has_slot(node) {
            return Err(FaultError::Failed(format!("unknown node {node}")));
        }
        let inner = self.lock();
        let clocks = inner.clocks.as_ref().expect("checked above");
        clocks
            .set(node, skew)
            .map_err(|e| FaultError::Failed(format!("node {node}: cannot set its clock: {e}")))
    }

    pub(super) fn shape_links_impl(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), FaultError> {
        self.fault_supported(Capability::SlowNet)
            .map_err(FaultError::Unsupported)?;
        let inner = self.lock();
        let proxies = inner.proxies.as_ref().expect("checked above");
        proxies.shape(shapes).map_err(FaultError::Failed)
    }

    /// Replaces the run's loss rules by those `losses` need (each recorded
    /// before it is added).
    pub(super) fn drop_packets_impl(&self, losses: &[(Link, u32)]) -> Result<(), FaultError> {
        self.fault_supported(Capability::LossyNet)
            .map_err(FaultError::Unsupported)?;
        let mut inner = self.lock();
        let net = inner.network.clone().expect("checked above");
        let mut errors = Vec::new();
        let old: Vec<_> = inner
            .registry
            .ns_rules
            .iter()
            .filter(|r| lossy::is_loss_rule(r, &net.tag))
            .cloned()
            .collect();
        for rule in old {
            rule.delete();
            if rule.present() {
                errors.push(format!(
                    "cannot delete {} in {}",
                    rule.rule.join(" "),
                    rule.netns
                ));
            } else {
                inner.registry.remove_ns_rule(&rule);
            }
        }
        let new = lossy::rules(&net, losses, |n| Self::sources_of(&inner, &net, n));
        for rule in new {
            inner.registry.add_ns_rule(rule.clone());
            if let Err(e) = rule.add() {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            tracing::info!(links = losses.len(), "packet loss set");
            Ok(())
        } else {
            Err(FaultError::Failed(errors.join("; ")))
        }
    }
}
