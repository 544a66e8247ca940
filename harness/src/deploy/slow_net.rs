//! Slow links for local nodes without `tc netem`: one userspace TCP proxy
//! ([`link_proxy`]) per directed link, run by the harness. Before the
//! nodes start, a DNAT rule in `a`'s namespace (`nat OUTPUT`, tagged with
//! the run's tag) sends `a`'s connections to `b`'s peer port to the proxy
//! of `a -> b`, which listens on the bridge's address and connects to `b`
//! from an address of its own for `a` (`.150 + a` on the bridge), so that
//! partitions and losses still know whose packets they are. The fault
//! only changes the proxies' shapes; healing clears them.
//!
//! The proxies are threads of the harness: they end with it, even when it
//! is killed; the rules and addresses go with the namespaces and bridge.

use super::netns::{self, Network};
use super::registry::{NsRule, Registry};
use super::{cmd, DeployError};
use link_proxy::LinkProxy;
use nemesis::{Link, LinkDelay, NodeId};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Slow-net proxies put addresses `.151`–`.250` on the bridge.
pub const MAX_NODES: u32 = 100;

/// The address node `a`'s proxied connections come from.
pub fn proxy_source(net: &Network, node: NodeId) -> Ipv4Addr {
    netns::addr(net.prefix, (150 + node) as u8)
}

/// Every link's proxy, on a runtime of their own.
pub struct LinkProxies {
    rt: Option<tokio::runtime::Runtime>,
    proxies: BTreeMap<Link, LinkProxy>,
}

impl LinkProxies {
    /// Puts a proxy on every link of `net` (peers listen on `peer_port`),
    /// recording each redirect rule before adding it.
    pub fn start(net: &Network, peer_port: u16, reg: &mut Registry) -> Result<Self, DeployError> {
        if net.nodes.len() as u32 > MAX_NODES {
            return Err(DeployError::Unsupported(format!(
                "slow links support at most {MAX_NODES} nodes"
            )));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("link-proxy")
            .enable_all()
            .build()
            .map_err(|e| DeployError::io("cannot start the link proxies' runtime", e))?;
        let mut out = LinkProxies {
            rt: None,
            proxies: BTreeMap::new(),
        };
        let host = netns::addr(net.prefix, 1);
        for &(id, _, _) in &net.nodes {
            // On the bridge, which is recorded: removed with it.
            let src = format!("{}/32", proxy_source(net, id));
            cmd::run("ip", &["addr", "add", &src, "dev", &net.bridge])?;
        }
        let comment = format!("dcf-harness-{}-slow-net", net.tag);
        for &(a, ref ns, _) in &net.nodes {
            for &(b, _, b_ip) in &net.nodes {
                if a == b {
                    continue;
                }
                let proxy = rt
                    .block_on(LinkProxy::start_from(
                        SocketAddr::new(IpAddr::V4(host), 0),
                        SocketAddr::new(IpAddr::V4(b_ip), peer_port),
                        Some(IpAddr::V4(proxy_source(net, a))),
                    ))
                    .map_err(|e| DeployError::io(format!("cannot start the proxy {a}->{b}"), e))?;
                let rule = NsRule {
                    netns: ns.clone(),
                    table: "nat".into(),
                    rule: [
                        "OUTPUT",
                        "-p",
                        "tcp",
                        "-d",
                        &format!("{b_ip}/32"),
                        "--dport",
                        &peer_port.to_string(),
                        "-m",
                        "comment",
                        "--comment",
                        &comment,
                        "-j",
                        "DNAT",
                        "--to-destination",
                        &proxy.local_addr().to_string(),
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                };
                reg.add_ns_rule(rule.clone());
                rule.add()?;
                out.proxies.insert((a, b), proxy);
            }
        }
        out.rt = Some(rt);
        tracing::info!(links = out.proxies.len(), "link proxies in place");
        Ok(out)
    }

    /// Gives each listed link its shape and every other link none.
    pub fn shape(&self, shapes: &[(Link, LinkDelay)]) -> Result<(), String> {
        let wanted: BTreeMap<Link, LinkDelay> = shapes.iter().copied().collect();
        if let Some(l) = wanted.keys().find(|l| !self.proxies.contains_key(l)) {
            return Err(format!("no proxy on link {}->{}", l.0, l.1));
        }
        for (link, proxy) in &self.proxies {
            let shape = proxy.shape();
            match wanted.get(link) {
                Some(d) => {
                    shape.set_delay_ms(d.delay_ms, d.jitter_ms);
                    shape.set_stalled(d.stalled);
                }
                None => shape.clear(),
            }
        }
        tracing::info!(shaped = wanted.len(), "link shapes set");
        Ok(())
    }

    /// Bytes that crossed each link so far.
    pub fn bytes(&self) -> BTreeMap<Link, u64> {
        self.proxies
            .iter()
            .map(|(l, p)| (*l, p.shape().bytes()))
            .collect()
    }
}

impl Drop for LinkProxies {
    /// Closes every proxy and its connections; the runtime is shut down
    /// without blocking (teardown may run inside another runtime).
    fn drop(&mut self) {
        let _guard = self.rt.as_ref().map(|rt| rt.enter());
        self.proxies.clear();
        drop(_guard);
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
